#include "tools/bench/load.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "helpline/chat/v1/chat_service.grpc.pb.h"

namespace helpline::bench {
namespace {

using Clock = std::chrono::steady_clock;

// State shared by the workers of one run.
struct Run {
  const LoadOptions* options = nullptr;
  std::vector<std::unique_ptr<chat::v1::ChatService::Stub>> stubs;
  std::atomic<int> next_session{0};

  std::mutex mu;
  std::condition_variable cv;
  int workers_left = 0;
  std::vector<double> latencies_ms;
  std::map<std::string, std::vector<double>> stage_ms;
  int64_t errors = 0;
  std::string first_error;
};

// One turn in flight. Kept alive one turn longer than needed (see Worker::OnDone) so that
// it is never destroyed inside its own completion callback.
struct Call {
  grpc::ClientContext context;
  chat::v1::ConverseRequest request;
  chat::v1::ConverseResponse response;
  Clock::time_point start;
};

// One of the C slots: runs sessions one after the other, each turn after the previous one.
class Worker {
 public:
  Worker(Run& run, int index) : run_(run), index_(index) {}

  void StartNextSession() {
    session_ = run_.next_session.fetch_add(1);
    if (session_ >= run_.options->sessions) {
      std::lock_guard<std::mutex> lock(run_.mu);
      if (--run_.workers_left == 0) run_.cv.notify_all();
      return;
    }
    turn_ = 0;
    Issue();
  }

 private:
  void Issue() {
    previous_ = std::move(current_);
    current_ = std::make_unique<Call>();
    Call& call = *current_;
    const LoadOptions& options = *run_.options;
    if (!options.api_key.empty()) {
      call.context.AddMetadata("authorization", absl::StrCat("Bearer ", options.api_key));
    }
    call.context.set_deadline(std::chrono::system_clock::now() +
                              absl::ToChronoNanoseconds(options.turn_timeout));
    call.request.set_session_id(absl::StrCat(options.session_prefix, "-", session_));
    call.request.set_text(options.text);
    call.start = Clock::now();
    auto& stub = *run_.stubs[index_ % run_.stubs.size()];
    stub.async()->Converse(&call.context, &call.request, &call.response,
                           [this](grpc::Status status) { OnDone(status); });
  }

  void OnDone(const grpc::Status& status) {
    const double ms =
        std::chrono::duration<double, std::milli>(Clock::now() - current_->start).count();
    {
      std::lock_guard<std::mutex> lock(run_.mu);
      if (status.ok()) {
        run_.latencies_ms.push_back(ms);
        for (const auto& timing : current_->response.timings()) {
          run_.stage_ms[timing.stage()].push_back(static_cast<double>(timing.micros()) / 1e3);
        }
      } else {
        if (run_.errors++ == 0) {
          run_.first_error =
              absl::StrCat(static_cast<int>(status.error_code()), ": ", status.error_message());
        }
      }
    }
    if (++turn_ < run_.options->turns) {
      Issue();
    } else {
      StartNextSession();
    }
  }

  Run& run_;
  const int index_;
  int session_ = 0;
  int turn_ = 0;
  std::unique_ptr<Call> current_;
  std::unique_ptr<Call> previous_;
};

}  // namespace

double Quantile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
  rank = std::clamp<size_t>(rank, 1, values.size());
  return values[rank - 1];
}

LoadResult RunLoad(const LoadOptions& options) {
  Run run;
  run.options = &options;
  const int concurrency = std::max(1, std::min(options.concurrency, options.sessions));
  const int channels = std::max(1, std::min(options.channels, concurrency));
  for (int i = 0; i < channels; ++i) {
    grpc::ChannelArguments args;
    // Each channel gets its own connection.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("helpline.bench.channel", i);
    run.stubs.push_back(chat::v1::ChatService::NewStub(
        grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args)));
  }
  run.workers_left = concurrency;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < concurrency; ++i) workers.push_back(std::make_unique<Worker>(run, i));

  const Clock::time_point start = Clock::now();
  for (auto& worker : workers) worker->StartNextSession();
  {
    std::unique_lock<std::mutex> lock(run.mu);
    run.cv.wait(lock, [&] { return run.workers_left == 0; });
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  LoadResult result;
  result.concurrency = concurrency;
  result.turns = static_cast<int64_t>(run.latencies_ms.size());
  result.errors = run.errors;
  result.first_error = run.first_error;
  result.seconds = seconds;
  result.turns_per_second = seconds > 0 ? static_cast<double>(result.turns) / seconds : 0;
  result.p50_ms = Quantile(run.latencies_ms, 0.50);
  result.p90_ms = Quantile(run.latencies_ms, 0.90);
  result.p99_ms = Quantile(run.latencies_ms, 0.99);
  result.max_ms = run.latencies_ms.empty() ? 0 : run.latencies_ms.back();
  for (auto& [stage, values] : run.stage_ms) {
    result.stage_median_ms[stage] = Quantile(values, 0.5);
  }
  return result;
}

}  // namespace helpline::bench
