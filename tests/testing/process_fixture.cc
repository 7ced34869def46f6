#include "tests/testing/process_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "helpline/chat/v1/chat_service.grpc.pb.h"
#include "openssl/evp.h"

namespace helpline::testutil {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

// True when every thread of `pid` is in the stopped state ('T' in /proc/<pid>/task/*/stat,
// the field after the command name in parentheses); false while any thread still runs or
// when /proc cannot be read.
bool AllThreadsStopped(pid_t pid) {
  std::error_code error;
  std::filesystem::directory_iterator tasks(absl::StrCat("/proc/", pid, "/task"), error);
  if (error) return false;
  int threads = 0;
  for (const std::filesystem::directory_entry& task : tasks) {
    std::ifstream in(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size()) return false;
    if (stat[close + 2] != 'T') return false;
    ++threads;
  }
  return threads > 0;
}

std::string EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : std::string(fallback);
}

// Polling interval while waiting for a child; short enough not to slow tests down.
constexpr absl::Duration kPoll = absl::Milliseconds(20);


}  // namespace

std::string BinaryDir() { return EnvOr("HELPLINE_BINARY_DIR", ".") + "/bin"; }
std::string SourceDir() { return EnvOr("HELPLINE_SOURCE_DIR", "."); }

absl::StatusOr<std::string> MakeTempDir(absl::string_view prefix) {
  std::string tmpl = absl::StrCat(EnvOr("TMPDIR", "/tmp"), "/", prefix, "XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", tmpl, ": ", std::strerror(errno)));
  }
  return tmpl;
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  urandom.read(raw.data(), static_cast<std::streamsize>(bytes));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> ReadKeyValueFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  std::map<std::string, std::string> values;
  std::string line;
  while (std::getline(in, line)) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    absl::string_view key = absl::StripAsciiWhitespace(kv.first);
    if (key.empty() || key[0] == '#') continue;
    values[std::string(key)] = std::string(absl::StripAsciiWhitespace(kv.second));
  }
  return values;
}

absl::StatusOr<HttpResponse> HttpCall(int port, absl::string_view method,
                                      absl::string_view target, absl::string_view body,
                                      const std::map<std::string, std::string>& headers,
                                      absl::Duration timeout) {
  boost::asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  bhttp::request<bhttp::string_body> request;
  request.method_string(std::string(method));
  request.target(std::string(target));
  request.version(11);
  request.set(bhttp::field::host, absl::StrCat("127.0.0.1:", port));
  request.set(bhttp::field::connection, "close");
  for (const auto& [name, value] : headers) request.set(name, value);
  if (!body.empty() || method == "POST") {
    if (request.find(bhttp::field::content_type) == request.end()) {
      request.set(bhttp::field::content_type, "application/json");
    }
    request.body() = std::string(body);
    request.prepare_payload();
  }

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(256u << 20);
  parser.header_limit(1u << 20);
  beast::error_code result;
  bool done = false;
  stream.expires_after(absl::ToChronoNanoseconds(timeout));
  tcp::endpoint endpoint(boost::asio::ip::make_address("127.0.0.1"),
                         static_cast<unsigned short>(port));
  stream.async_connect(endpoint, [&](beast::error_code ec) {
    if (ec) {
      result = ec;
      done = true;
      return;
    }
    bhttp::async_write(stream, request, [&](beast::error_code ec, size_t) {
      if (ec) {
        result = ec;
        done = true;
        return;
      }
      bhttp::async_read(stream, buffer, parser, [&](beast::error_code ec, size_t) {
        result = ec;
        done = true;
      });
    });
  });
  ioc.run();
  if (!done) return absl::InternalError("HTTP call did not complete");
  if (result == beast::error::timeout) {
    return absl::DeadlineExceededError(
        absl::StrCat(method, " ", target, ": no response within ", absl::FormatDuration(timeout)));
  }
  if (result) {
    return absl::UnavailableError(
        absl::StrCat(method, " 127.0.0.1:", port, target, ": ", result.message()));
  }
  bhttp::response<bhttp::string_body> response = parser.release();
  HttpResponse out;
  out.status = static_cast<int>(response.result_int());
  for (const auto& field : response) {
    out.headers[absl::AsciiStrToLower(std::string(field.name_string()))] =
        std::string(field.value());
  }
  out.body = std::move(response.body());
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return out;
}

// ---------------------------------------------------------------------------------------
// ServiceProcess

ServiceProcess::ServiceProcess(ProcessOptions options) : options_(std::move(options)) {
  ports_path_ = absl::StrCat(options_.work_dir, "/", options_.name, ".ports");
  log_path_ = absl::StrCat(options_.work_dir, "/", options_.name, ".log");
}

ServiceProcess::~ServiceProcess() { (void)Kill(); }

absl::StatusOr<std::unique_ptr<ServiceProcess>> ServiceProcess::Launch(ProcessOptions options) {
  if (options.binary.empty() || options.name.empty() || options.work_dir.empty()) {
    return absl::InvalidArgumentError("ProcessOptions: binary, name and work_dir are required");
  }
  std::unique_ptr<ServiceProcess> process(new ServiceProcess(std::move(options)));
  absl::Status spawned = process->Spawn(/*same_ports=*/false);
  if (!spawned.ok()) return spawned;
  return process;
}

absl::StatusOr<std::unique_ptr<ServiceProcess>> ServiceProcess::Start(ProcessOptions options) {
  absl::StatusOr<std::unique_ptr<ServiceProcess>> process = Launch(std::move(options));
  if (!process.ok()) return process.status();
  absl::Status ready = (*process)->WaitReady();
  if (!ready.ok()) return ready;
  return process;
}

absl::Status ServiceProcess::Spawn(bool same_ports) {
  std::string binary = absl::StrCat(BinaryDir(), "/", options_.binary);
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat(binary, ": not an executable (built?)"));
  }
  unlink(ports_path_.c_str());

  std::vector<std::string> args = {binary};
  auto set = [&args](const std::string& assignment) {
    args.push_back("--set");
    args.push_back(assignment);
  };
  set(absl::StrCat("server.grpc_port=", same_ports ? grpc_port_ : 0));
  // The gateway serves /metrics on its HTTP port when metrics_port is 0.
  set(absl::StrCat("server.metrics_port=",
                   same_ports && !options_.gateway ? metrics_port_ : 0));
  if (options_.gateway) set(absl::StrCat("http_port=", same_ports ? http_port_ : 0));
  set(absl::StrCat("server.ports_file=", ports_path_));
  for (const std::string& arg : options_.args) args.push_back(arg);

  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat(log_path_, ": ", std::strerror(errno)));
  }
  std::string banner = absl::StrCat("=== fixture: exec ", absl::StrJoin(args, " "), "\n");
  (void)!write(log_fd, banner.data(), banner.size());

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  pid_ = pid;
  return absl::OkStatus();
}

bool ServiceProcess::Reap(bool block) {
  if (pid_ <= 0) return true;
  int wstatus = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &wstatus, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  if (r == pid_) {
    last_exit_code_ = WIFEXITED(wstatus)     ? WEXITSTATUS(wstatus)
                      : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus)
                                             : -1;
  }
  pid_ = -1;
  return true;
}

bool ServiceProcess::running() { return pid_ > 0 && !Reap(/*block=*/false); }

std::string ServiceProcess::grpc_target() const { return absl::StrCat("127.0.0.1:", grpc_port_); }

std::string ServiceProcess::LogTail(size_t bytes) const {
  std::ifstream in(log_path_, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

absl::Status ServiceProcess::WithLog(absl::Status status) const {
  return absl::Status(status.code(), absl::StrCat(options_.name, ": ", status.message(),
                                                  "\n--- ", log_path_, " (tail) ---\n",
                                                  LogTail()));
}

bool ServiceProcess::IsReady() const {
  int port = options_.gateway ? http_port_ : metrics_port_;
  if (port <= 0) return false;
  absl::StatusOr<HttpResponse> response =
      HttpCall(port, "GET", "/readyz", "", {}, absl::Seconds(2));
  return response.ok() && response->status == 200;
}

absl::Status ServiceProcess::WaitReady(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  // 1. The ports file, written once the servers are bound.
  while (true) {
    if (!running()) {
      return WithLog(absl::FailedPreconditionError(
          absl::StrCat("exited with code ", last_exit_code_, " before writing its ports")));
    }
    absl::StatusOr<std::map<std::string, std::string>> ports = ReadKeyValueFile(ports_path_);
    if (ports.ok() && ports->count("GRPC_PORT") > 0 &&
        (!options_.gateway || ports->count("HTTP_PORT") > 0)) {
      auto number = [&](const char* key) {
        int value = 0;
        auto it = ports->find(key);
        if (it != ports->end()) (void)absl::SimpleAtoi(it->second, &value);
        return value;
      };
      grpc_port_ = number("GRPC_PORT");
      metrics_port_ = number("METRICS_PORT");
      if (options_.gateway) http_port_ = number("HTTP_PORT");
      break;
    }
    if (absl::Now() > deadline) {
      return WithLog(absl::DeadlineExceededError(
          absl::StrCat("no ports file ", ports_path_, " within ", absl::FormatDuration(timeout))));
    }
    absl::SleepFor(kPoll);
  }
  // 2. Readiness.
  while (true) {
    if (!running()) {
      return WithLog(absl::FailedPreconditionError(
          absl::StrCat("exited with code ", last_exit_code_, " before becoming ready")));
    }
    if (IsReady()) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return WithLog(absl::DeadlineExceededError(
          absl::StrCat("not ready within ", absl::FormatDuration(timeout))));
    }
    absl::SleepFor(kPoll * 2);
  }
}

absl::Status ServiceProcess::Signal(int signal) {
  if (!running()) {
    return absl::FailedPreconditionError(absl::StrCat(options_.name, " is not running"));
  }
  if (kill(pid_, signal) != 0) {
    return absl::InternalError(absl::StrCat("kill ", pid_, ": ", std::strerror(errno)));
  }
  if (signal != SIGSTOP) return absl::OkStatus();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!AllThreadsStopped(pid_)) {
    if (!running()) {
      return WithLog(absl::FailedPreconditionError(
          absl::StrCat(options_.name, " exited with code ", last_exit_code_, " on SIGSTOP")));
    }
    if (absl::Now() > deadline) {
      return WithLog(absl::DeadlineExceededError(
          absl::StrCat(options_.name, ": not every thread stopped within 10s of SIGSTOP")));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> ServiceProcess::WaitForExit(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!Reap(/*block=*/false)) {
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          options_.name, " did not exit within ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(kPoll);
  }
  return last_exit_code_;
}

absl::StatusOr<int> ServiceProcess::Terminate(absl::Duration grace) {
  absl::Status signalled = Signal(SIGTERM);
  if (!signalled.ok()) return signalled;
  kill(pid_, SIGCONT);  // A stopped process must run to handle SIGTERM.
  absl::StatusOr<int> code = WaitForExit(grace);
  if (code.ok()) return code;
  (void)Kill();
  return WithLog(absl::DeadlineExceededError(absl::StrCat(
      "did not exit within ", absl::FormatDuration(grace), " of SIGTERM; killed")));
}

absl::Status ServiceProcess::Kill() {
  if (pid_ <= 0) return absl::OkStatus();
  kill(pid_, SIGKILL);
  Reap(/*block=*/true);
  return absl::OkStatus();
}

absl::Status ServiceProcess::Restart(bool kill_it) {
  if (running()) {
    if (kill_it) {
      (void)Kill();
    } else {
      absl::StatusOr<int> code = Terminate();
      if (!code.ok()) return code.status();
    }
  }
  const bool have_ports = grpc_port_ > 0;
  // Rebinding the same ports right after the old process exited normally works
  // (SO_REUSEADDR); retry a few times in case a port is briefly still held.
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::Status spawned = Spawn(/*same_ports=*/have_ports);
    if (!spawned.ok()) return spawned;
    last = WaitReady();
    if (last.ok()) return last;
    (void)Kill();
    absl::SleepFor(absl::Milliseconds(300));
  }
  return last;
}

// ---------------------------------------------------------------------------------------
// Stack

const std::vector<std::string>& StageNames() {
  static const auto* names =
      new std::vector<std::string>{"preprocess", "fusion", "dst", "generation"};
  return *names;
}

absl::StatusOr<std::unique_ptr<Stack>> Stack::Start(StackOptions options) {
  std::unique_ptr<Stack> stack(new Stack());
  if (options.domain_file.empty()) {
    options.domain_file = absl::StrCat(SourceDir(), "/domains/shop.yaml");
  }
  if (options.generation_model_dir.empty()) {
    std::string shipped = absl::StrCat(SourceDir(), "/models/helpline-small");
    struct stat info;
    if (stat((shipped + "/config.json").c_str(), &info) == 0) {
      options.generation_model_dir = shipped;
    }
  }
  if (options.generation_model_dir == "none") options.generation_model_dir.clear();
  stack->options_ = std::move(options);
  absl::StatusOr<std::string> dir = MakeTempDir("helpline-stack-");
  if (!dir.ok()) return dir.status();
  stack->work_dir_ = *dir;

  // Data survives Stop() + Restart(), so that tests can check what a crash left behind.
  RedisServerOptions redis_options;
  redis_options.extra_args = {"--appendonly", "yes", "--appendfsync", "always"};
  absl::StatusOr<std::unique_ptr<RedisServer>> redis = RedisServer::Start(redis_options);
  if (!redis.ok()) return redis.status();
  stack->redis_ = std::move(*redis);

  for (const std::string& stage : StageNames()) {
    ProcessOptions process;
    process.binary = "helpline-" + stage;
    process.name = stage;
    process.work_dir = stack->work_dir_;
    process.ready_timeout = stack->options_.ready_timeout;
    if (stage == "dst" || stage == "generation") {
      process.args = {"--set", "domain_file=" + stack->options_.domain_file};
    }
    if (stage == "generation" && !stack->options_.generation_model_dir.empty()) {
      process.args.push_back("--set");
      process.args.push_back("model.dir=" + stack->options_.generation_model_dir);
    }
    for (const std::string& extra : stack->options_.stage_sets[stage]) {
      process.args.push_back("--set");
      process.args.push_back(extra);
    }
    absl::StatusOr<std::unique_ptr<ServiceProcess>> launched =
        ServiceProcess::Launch(std::move(process));
    if (!launched.ok()) return launched.status();
    stack->stages_[stage] = std::move(*launched);
  }
  for (const std::string& stage : StageNames()) {
    absl::Status ready = stack->stages_[stage]->WaitReady();
    if (!ready.ok()) return ready;
  }
  absl::Status gateway = stack->StartGateway();
  if (!gateway.ok()) return gateway;
  return stack;
}

absl::Status Stack::StartGateway() {
  // The gateway config: upstream targets, the store, and a salted hash per API key.
  std::string yaml;
  absl::StrAppend(&yaml, "server:\n  host: 127.0.0.1\n");
  for (const std::string& stage : StageNames()) {
    absl::StrAppend(&yaml, stage, ":\n  target: ", stages_[stage]->grpc_target(), "\n");
  }
  absl::StrAppend(&yaml, "store:\n  redis_url: ", redis_->url(), "\n");
  absl::StrAppend(&yaml, "domain_file: ", options_.domain_file, "\n");
  absl::StrAppend(&yaml, "api_keys:\n");
  for (const std::string& tenant : options_.tenants) {
    if (keys_.count(tenant) == 0) keys_[tenant] = absl::StrCat("hlk-", tenant, "-", RandomHex(16));
    std::string salt = RandomHex(8);
    absl::StrAppend(&yaml, "  - tenant: ", tenant, "\n    salt: \"", salt, "\"\n    sha256: \"",
                    Sha256Hex(salt + keys_[tenant]), "\"\n    name: ", tenant, "-test\n");
  }
  std::string config_path = absl::StrCat(work_dir_, "/gateway.yaml");
  {
    std::ofstream out(config_path);
    out << yaml;
    if (!out) return absl::InternalError(absl::StrCat(config_path, ": cannot be written"));
  }
  ProcessOptions process;
  process.binary = "helpline-gateway";
  process.name = "gateway";
  process.work_dir = work_dir_;
  process.gateway = true;
  process.ready_timeout = options_.ready_timeout;
  process.args = {"--config", config_path};
  for (const std::string& extra : options_.gateway_sets) {
    process.args.push_back("--set");
    process.args.push_back(extra);
  }
  absl::StatusOr<std::unique_ptr<ServiceProcess>> gateway =
      ServiceProcess::Start(std::move(process));
  if (!gateway.ok()) return gateway.status();
  gateway_ = std::move(*gateway);
  return absl::OkStatus();
}

Stack::~Stack() {
  if (gateway_) (void)gateway_->Kill();
  for (auto& [name, stage] : stages_) (void)stage->Kill();
}

ServiceProcess& Stack::service(absl::string_view name) {
  if (name == "gateway") return *gateway_;
  return *stages_.at(std::string(name));
}

const std::string& Stack::api_key(absl::string_view tenant) const {
  return keys_.at(std::string(tenant));
}

std::string Stack::bearer(absl::string_view tenant) const {
  return absl::StrCat("Bearer ", api_key(tenant));
}

std::shared_ptr<grpc::Channel> Stack::NewChannel() const {
  grpc::ChannelArguments args;
  // A fresh connection per channel, not shared with earlier channels to a dead process.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(grpc_target(), grpc::InsecureChannelCredentials(), args);
}

absl::Status Stack::WaitGatewayReady(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!gateway_->IsReady()) {
    if (!gateway_->running()) {
      return absl::FailedPreconditionError(
          absl::StrCat("gateway exited with code ", gateway_->last_exit_code()));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "gateway not ready within ", absl::FormatDuration(timeout), "\n", Logs()));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::OkStatus();
}

absl::Status Stack::WaitGatewayServing(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status ready = WaitGatewayReady(timeout);
  if (!ready.ok()) return ready;
  auto stub = chat::v1::ChatService::NewStub(NewChannel());
  std::string last;
  while (absl::Now() < deadline) {
    chat::v1::ConverseRequest request;
    request.set_text("hello");
    chat::v1::ConverseResponse response;
    grpc::ClientContext context;
    context.AddMetadata("authorization", bearer(options_.tenants.front()));
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    grpc::Status status = stub->Converse(&context, request, &response);
    if (status.ok() && !response.degraded()) return absl::OkStatus();
    last = status.ok() ? absl::StrCat("degraded: ", absl::StrJoin(response.degraded_stages(), ","))
                       : status.error_message();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "gateway not serving full turns within ", absl::FormatDuration(timeout), ": ", last,
      "\n", Logs()));
}

absl::Status Stack::EnsureHealthy() {
  if (!redis_->running()) {
    absl::Status restarted = redis_->Restart();
    if (!restarted.ok()) return restarted;
  }
  for (const std::string& stage : StageNames()) {
    ServiceProcess& process = *stages_[stage];
    if (process.running()) {
      (void)process.Signal(SIGCONT);
    } else {
      absl::Status restarted = process.Restart();
      if (!restarted.ok()) return restarted;
    }
  }
  if (gateway_->running()) {
    (void)gateway_->Signal(SIGCONT);
  } else {
    absl::Status restarted = gateway_->Restart();
    if (!restarted.ok()) return restarted;
  }
  return WaitGatewayServing();
}

std::string Stack::Logs(size_t bytes_per_log) const {
  std::string out;
  for (const auto& [name, stage] : stages_) {
    absl::StrAppend(&out, "--- ", stage->log_path(), " ---\n", stage->LogTail(bytes_per_log));
  }
  if (gateway_) {
    absl::StrAppend(&out, "--- ", gateway_->log_path(), " ---\n",
                    gateway_->LogTail(bytes_per_log));
  }
  return out;
}

}  // namespace helpline::testutil
