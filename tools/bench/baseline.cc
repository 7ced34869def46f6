#include "tools/bench/baseline.h"

#include <hiredis/hiredis.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "grpcpp/grpcpp.h"
#include "helpline/chat/v1/chat_service.grpc.pb.h"
#include "helpline/preprocess/v1/preprocess_service.grpc.pb.h"

namespace helpline::bench {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t MicrosSince(Clock::time_point start) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
}

struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string password;
};

absl::StatusOr<RedisAddress> ParseUrl(absl::string_view url) {
  RedisAddress address;
  if (!absl::ConsumePrefix(&url, "redis://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--redis-url: '", url, "' does not start with redis://"));
  }
  url = url.substr(0, url.find('/'));
  size_t at = url.rfind('@');
  if (at != absl::string_view::npos) {
    absl::string_view user_info = url.substr(0, at);
    size_t colon = user_info.find(':');
    address.password =
        std::string(colon == absl::string_view::npos ? user_info : user_info.substr(colon + 1));
    url = url.substr(at + 1);
  }
  size_t colon = url.rfind(':');
  if (colon != absl::string_view::npos) {
    if (!absl::SimpleAtoi(url.substr(colon + 1), &address.port)) {
      return absl::InvalidArgumentError("--redis-url: bad port");
    }
    url = url.substr(0, colon);
  }
  if (!url.empty()) address.host = std::string(url);
  return address;
}

redisContext* Connect(const RedisAddress& address) {
  timeval timeout{2, 0};
  redisContext* context = redisConnectWithTimeout(address.host.c_str(), address.port, timeout);
  if (context == nullptr) return nullptr;
  if (context->err != 0) {
    redisFree(context);
    return nullptr;
  }
  redisSetTimeout(context, timeout);
  if (!address.password.empty()) {
    auto* reply = static_cast<redisReply*>(
        redisCommand(context, "AUTH %b", address.password.data(), address.password.size()));
    bool ok = reply != nullptr && reply->type != REDIS_REPLY_ERROR;
    if (reply != nullptr) freeReplyObject(reply);
    if (!ok) {
      redisFree(context);
      return nullptr;
    }
  }
  return context;
}

// Threads with one Redis connection each, running blocking round trips off gRPC's threads
// (as the gateway's executor does).
class RedisWorkers {
 public:
  using Task = std::function<void(redisContext*)>;  // Gets nullptr when Redis is down.

  RedisWorkers(RedisAddress address, int threads) : address_(std::move(address)) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~RedisWorkers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& thread : threads_) thread.join();
  }
  void Schedule(Task task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    redisContext* context = nullptr;
    while (true) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) break;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      if (context != nullptr && context->err != 0) {
        redisFree(context);
        context = nullptr;
      }
      if (context == nullptr) context = Connect(address_);
      task(context);
    }
    if (context != nullptr) redisFree(context);
  }

  const RedisAddress address_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// A stage that does nothing: the text comes back.
class EchoService final : public preprocess::v1::PreprocessService::CallbackService {
 public:
  grpc::ServerUnaryReactor* Preprocess(grpc::CallbackServerContext* context,
                                       const preprocess::v1::PreprocessRequest* request,
                                       preprocess::v1::PreprocessResponse* response) override {
    response->mutable_result()->set_normalized_text(request->text());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

constexpr std::array<const char*, 4> kHops = {"preprocess", "fusion", "dst", "generation"};

class FrontService;

// One turn through the front: GET, four hops, SET, reply. Deletes itself when done.
class Turn final : public grpc::ServerUnaryReactor {
 public:
  Turn(FrontService& front, const chat::v1::ConverseRequest* request,
       chat::v1::ConverseResponse* response)
      : front_(front), request_(request), response_(response) {}

  void Start();
  void OnDone() override { delete this; }

 private:
  void Load(redisContext* redis);
  void Hop(size_t i);
  void Commit(redisContext* redis);
  void AddTiming(const char* stage, uint64_t micros) {
    auto* timing = response_->add_timings();
    timing->set_stage(stage);
    timing->set_micros(micros);
  }
  std::string Key() const { return absl::StrCat("bench:{", request_->session_id(), "}:state"); }

  FrontService& front_;
  const chat::v1::ConverseRequest* request_;
  chat::v1::ConverseResponse* response_;
  std::string state_;
  std::array<grpc::ClientContext, 4> hop_contexts_;
  std::array<preprocess::v1::PreprocessRequest, 4> hop_requests_;
  std::array<preprocess::v1::PreprocessResponse, 4> hop_responses_;
  Clock::time_point hop_start_;
};

class FrontService final : public chat::v1::ChatService::CallbackService {
 public:
  FrontService(std::vector<std::shared_ptr<grpc::Channel>> hops, RedisWorkers& redis)
      : redis_(redis) {
    for (auto& channel : hops)
      stubs_.push_back(preprocess::v1::PreprocessService::NewStub(channel));
  }

  grpc::ServerUnaryReactor* Converse(grpc::CallbackServerContext* context,
                                     const chat::v1::ConverseRequest* request,
                                     chat::v1::ConverseResponse* response) override {
    auto* turn = new Turn(*this, request, response);
    turn->Start();
    return turn;
  }

  RedisWorkers& redis() { return redis_; }
  preprocess::v1::PreprocessService::Stub& stub(size_t i) { return *stubs_[i]; }

 private:
  RedisWorkers& redis_;
  std::vector<std::unique_ptr<preprocess::v1::PreprocessService::Stub>> stubs_;
};

void Turn::Start() {
  front_.redis().Schedule([this](redisContext* redis) { Load(redis); });
}

void Turn::Load(redisContext* redis) {
  const Clock::time_point start = Clock::now();
  if (redis == nullptr) {
    Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "redis is down"));
    return;
  }
  const std::string key = Key();
  auto* reply = static_cast<redisReply*>(redisCommand(redis, "GET %b", key.data(), key.size()));
  if (reply == nullptr) {
    Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "redis GET failed"));
    return;
  }
  if (reply->type == REDIS_REPLY_STRING) state_.assign(reply->str, reply->len);
  freeReplyObject(reply);
  AddTiming("session_load", MicrosSince(start));
  Hop(0);
}

void Turn::Hop(size_t i) {
  if (i == kHops.size()) {
    front_.redis().Schedule([this](redisContext* redis) { Commit(redis); });
    return;
  }
  hop_requests_[i].set_text(i == 0 ? request_->text()
                                   : hop_responses_[i - 1].result().normalized_text());
  hop_contexts_[i].set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  hop_start_ = Clock::now();
  front_.stub(i).async()->Preprocess(&hop_contexts_[i], &hop_requests_[i], &hop_responses_[i],
                                     [this, i](grpc::Status status) {
                                       AddTiming(kHops[i], MicrosSince(hop_start_));
                                       if (!status.ok()) {
                                         Finish(status);
                                         return;
                                       }
                                       Hop(i + 1);
                                     });
}

void Turn::Commit(redisContext* redis) {
  const Clock::time_point start = Clock::now();
  if (redis == nullptr) {
    Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "redis is down"));
    return;
  }
  // A value of the size of a small session record.
  std::string value = state_.size() >= 256 ? state_ : std::string(256, 's');
  const std::string key = Key();
  auto* reply = static_cast<redisReply*>(
      redisCommand(redis, "SET %b %b EX 600", key.data(), key.size(), value.data(), value.size()));
  const bool ok = reply != nullptr && reply->type != REDIS_REPLY_ERROR;
  if (reply != nullptr) freeReplyObject(reply);
  if (!ok) {
    Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "redis SET failed"));
    return;
  }
  AddTiming("session_commit", MicrosSince(start));
  response_->set_session_id(request_->session_id());
  response_->set_reply(hop_responses_.back().result().normalized_text());
  Finish(grpc::Status::OK);
}

class BaselineImpl final : public Baseline {
 public:
  std::string target() const override { return absl::StrCat("127.0.0.1:", front_port_); }

  absl::Status Init(const RedisAddress& address, int redis_threads) {
    // Fail fast when Redis is not there.
    redisContext* probe = Connect(address);
    if (probe == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("redis at ", address.host, ":", address.port, " cannot be reached"));
    }
    redisFree(probe);
    redis_ = std::make_unique<RedisWorkers>(address, redis_threads);

    std::vector<std::shared_ptr<grpc::Channel>> channels;
    for (size_t i = 0; i < kHops.size(); ++i) {
      int port = 0;
      grpc::ServerBuilder builder;
      builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
      builder.RegisterService(&echo_);
      echo_servers_.push_back(builder.BuildAndStart());
      if (echo_servers_.back() == nullptr || port == 0) {
        return absl::UnavailableError("echo server did not start");
      }
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      channels.push_back(grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                                   grpc::InsecureChannelCredentials(), args));
    }
    front_ = std::make_unique<FrontService>(std::move(channels), *redis_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &front_port_);
    builder.RegisterService(front_.get());
    front_server_ = builder.BuildAndStart();
    if (front_server_ == nullptr || front_port_ == 0) {
      return absl::UnavailableError("front server did not start");
    }
    return absl::OkStatus();
  }

  ~BaselineImpl() override {
    if (front_server_) front_server_->Shutdown();
    for (auto& server : echo_servers_) server->Shutdown();
  }

 private:
  EchoService echo_;
  std::unique_ptr<RedisWorkers> redis_;
  std::vector<std::unique_ptr<grpc::Server>> echo_servers_;
  std::unique_ptr<FrontService> front_;
  std::unique_ptr<grpc::Server> front_server_;
  int front_port_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Baseline>> Baseline::Start(const std::string& redis_url,
                                                          int redis_threads) {
  absl::StatusOr<RedisAddress> address = ParseUrl(redis_url);
  if (!address.ok()) return address.status();
  auto baseline = std::make_unique<BaselineImpl>();
  absl::Status started = baseline->Init(*address, redis_threads);
  if (!started.ok()) return started;
  return baseline;
}

}  // namespace helpline::bench
