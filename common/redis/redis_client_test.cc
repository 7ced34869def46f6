// Against a real redis-server started by tests/testing/redis_fixture.h.
#include "common/redis/redis_client.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/metrics/metrics.h"
#include "gtest/gtest.h"
#include "tests/testing/redis_fixture.h"

namespace helpline::redis {
namespace {

using testutil::RedisServer;

RedisOptions OptionsFor(const RedisServer& server) {
  RedisOptions options;
  options.host = server.host();
  options.port = server.port();
  options.connect_timeout = absl::Milliseconds(500);
  options.command_timeout = absl::Milliseconds(500);
  options.pool_size = 4;
  return options;
}

double ErrorCount(absl::string_view kind) {
  return metrics::Registry::Default()
      .AddCounter("helpline_redis_errors_total", "", {"kind"})
      .Get({kind})
      .Value();
}

class RedisClientTest : public testutil::RedisTest {};

TEST_F(RedisClientTest, BinarySafeRoundTrip) {
  Pool pool(OptionsFor(server()));
  const std::string key("k\0ey", 4);
  const std::string value("a\0b\xff\r\n", 6);
  auto set = pool.Command({"SET", key, value});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->type, Reply::Type::kStatus);
  EXPECT_EQ(set->str, "OK");
  auto get = pool.Command({"GET", key});
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(get->type, Reply::Type::kString);
  EXPECT_EQ(get->str, value);
  EXPECT_EQ(get->str.size(), 6u);
  auto strlen = pool.Command({"STRLEN", key});
  ASSERT_TRUE(strlen.ok());
  EXPECT_EQ(strlen->type, Reply::Type::kInteger);
  EXPECT_EQ(strlen->integer, 6);
  auto missing = pool.Command({"GET", "missing"});
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->is_nil());
}

TEST_F(RedisClientTest, ArraysKeepNilsAndNesting) {
  Pool pool(OptionsFor(server()));
  ASSERT_TRUE(pool.Command({"RPUSH", "list", "x", std::string("\0", 1), "z"}).ok());
  auto range = pool.Command({"LRANGE", "list", "0", "-1"});
  ASSERT_TRUE(range.ok()) << range.status();
  ASSERT_EQ(range->type, Reply::Type::kArray);
  ASSERT_EQ(range->elements.size(), 3u);
  EXPECT_EQ(range->elements[1].str, std::string("\0", 1));
  auto mget = pool.Command({"MGET", "nope", "list"});
  ASSERT_TRUE(mget.ok()) << mget.status();
  ASSERT_EQ(mget->elements.size(), 2u);
  EXPECT_TRUE(mget->elements[0].is_nil());
  auto mixed = pool.Command({"EVAL", "return {1, false, {'a'}}", "0"});
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  ASSERT_EQ(mixed->elements.size(), 3u);
  EXPECT_EQ(mixed->elements[0].integer, 1);
  EXPECT_TRUE(mixed->elements[1].is_nil());
  ASSERT_EQ(mixed->elements[2].elements.size(), 1u);
  EXPECT_EQ(mixed->elements[2].elements[0].str, "a");
}

TEST_F(RedisClientTest, ErrorRepliesAreInternalAndKeepTheConnection) {
  auto connection = Connection::Connect(OptionsFor(server()));
  ASSERT_TRUE(connection.ok()) << connection.status();
  ASSERT_TRUE((*connection)->Command({"SET", "text", "abc"}).ok());
  double before = ErrorCount("reply");
  auto incr = (*connection)->Command({"INCR", "text"});
  ASSERT_FALSE(incr.ok());
  EXPECT_EQ(incr.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(incr.status().message().find("not an integer"), absl::string_view::npos)
      << incr.status();
  EXPECT_EQ(ErrorCount("reply"), before + 1);
  EXPECT_FALSE((*connection)->broken());
  EXPECT_TRUE((*connection)->Command({"PING"}).ok());
}

TEST_F(RedisClientTest, ScriptAbortAndNoScriptAreMapped) {
  Pool pool(OptionsFor(server()));
  auto aborted = pool.Command({"EVAL", "return redis.error_reply('ABORTED lease lost')", "0"});
  EXPECT_EQ(aborted.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(aborted.status().message(), "lease lost");
  auto noscript = pool.Command({"EVALSHA", std::string(40, 'a'), "0"});
  EXPECT_EQ(noscript.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(noscript.status().message().substr(0, 8), "NOSCRIPT");
}

TEST_F(RedisClientTest, CommandTimeoutIsUnavailableAndTheConnectionIsReplaced) {
  RedisOptions options = OptionsFor(server());
  options.command_timeout = absl::Milliseconds(200);
  options.pool_size = 1;
  Pool pool(options);
  double before = ErrorCount("timeout");
  absl::Time start = absl::Now();
  // The server answers BLPOP only after 5 s: the client gives up after 200 ms.
  auto blocked = pool.Command({"BLPOP", "never-filled", "5"});
  absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(blocked.status().message().find("no answer within 200ms"), absl::string_view::npos)
      << blocked.status();
  EXPECT_LT(took, absl::Seconds(2));
  EXPECT_EQ(ErrorCount("timeout"), before + 1);
  // The timed-out connection was dropped; the next command gets a fresh one (pool_size 1).
  auto ping = pool.Command({"PING"});
  ASSERT_TRUE(ping.ok()) << ping.status();
  EXPECT_EQ(ping->str, "PONG");
}

TEST_F(RedisClientTest, RedisDownIsUnavailableAndThePoolReconnectsAfterRestart) {
  Pool pool(OptionsFor(server()));
  // Several idle connections in the pool before the server goes away.
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] { EXPECT_TRUE(pool.Command({"BLPOP", "none", "0.05"}).ok()); });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(server().Stop().ok());
  for (int i = 0; i < 3; ++i) {
    auto down = pool.Command({"PING"});
    ASSERT_FALSE(down.ok());
    EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
    EXPECT_NE(down.status().message().find(absl::StrCat("redis at 127.0.0.1:", server().port())),
              absl::string_view::npos)
        << down.status();
  }
  ASSERT_TRUE(server().Restart().ok());
  for (int i = 0; i < 6; ++i) {
    auto up = pool.Command({"INCR", "after-restart"});
    ASSERT_TRUE(up.ok()) << up.status();
    EXPECT_EQ(up->integer, i + 1);
  }
}

TEST_F(RedisClientTest, StaleIdleConnectionsCostNoFailedCommandAfterRestart) {
  Pool pool(OptionsFor(server()));
  ASSERT_TRUE(pool.Command({"PING"}).ok());
  ASSERT_TRUE(server().Restart().ok());
  // The idle connection was closed by the old server; the pool notices before using it.
  auto ping = pool.Command({"PING"});
  ASSERT_TRUE(ping.ok()) << ping.status();
}

TEST_F(RedisClientTest, BrokenConnectionReportsUnavailable) {
  auto connection = Connection::Connect(OptionsFor(server()));
  ASSERT_TRUE(connection.ok());
  ASSERT_TRUE(server().Stop().ok());
  EXPECT_TRUE((*connection)->PeerClosed());
  auto reply = (*connection)->Command({"PING"});
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE((*connection)->broken());
}

TEST_F(RedisClientTest, ConnectToClosedPortIsUnavailable) {
  RedisOptions options = OptionsFor(server());
  ASSERT_TRUE(server().Stop().ok());
  double before = ErrorCount("connect");
  auto connection = Connection::Connect(options);
  ASSERT_FALSE(connection.ok());
  EXPECT_EQ(connection.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(connection.status().message().find("unreachable"), absl::string_view::npos)
      << connection.status();
  EXPECT_EQ(ErrorCount("connect"), before + 1);
}

TEST_F(RedisClientTest, SelectsTheDatabase) {
  RedisOptions db2 = OptionsFor(server());
  db2.db = 2;
  Pool pool2(db2);
  Pool pool0(OptionsFor(server()));
  ASSERT_TRUE(pool2.Command({"SET", "only-in-2", "x"}).ok());
  EXPECT_TRUE(pool0.Command({"GET", "only-in-2"})->is_nil());
  EXPECT_EQ(pool2.Command({"GET", "only-in-2"})->str, "x");
}

TEST_F(RedisClientTest, ManyThreadsShareASmallPool) {
  RedisOptions options = OptionsFor(server());
  options.pool_size = 2;
  options.command_timeout = absl::Seconds(2);
  Pool pool(options);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) ASSERT_TRUE(pool.Command({"INCR", "counter"}).ok());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(pool.Command({"GET", "counter"})->str, "800");
}

TEST_F(RedisClientTest, RecordsCommandLatency) {
  Pool pool(OptionsFor(server()));
  auto& histogram = metrics::Registry::Default()
                        .AddHistogram("helpline_redis_command_seconds", "", {"command"})
                        .Get({"ECHO"});
  uint64_t before = histogram.Count();
  ASSERT_TRUE(pool.Command({"echo", "hi"}).ok());
  EXPECT_EQ(histogram.Count(), before + 1);
}

TEST(RedisAuthTest, AuthWithPasswordAndWrongPassword) {
  auto server = testutil::RedisServer::Start({.extra_args = {"--requirepass", "pa ss"}});
  ASSERT_TRUE(server.ok()) << server.status();
  auto options = ParseRedisUrl(absl::StrCat("redis://:pa%20ss@127.0.0.1:", (*server)->port()));
  ASSERT_TRUE(options.ok()) << options.status();
  Pool pool(*options);
  auto ping = pool.Command({"PING"});
  ASSERT_TRUE(ping.ok()) << ping.status();
  options->password = "wrong";
  auto connection = Connection::Connect(*options);
  ASSERT_FALSE(connection.ok());
  EXPECT_EQ(connection.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(connection.status().message().find("AUTH failed"), absl::string_view::npos)
      << connection.status();
  EXPECT_EQ(connection.status().message().find("wrong"), absl::string_view::npos);
}

}  // namespace
}  // namespace helpline::redis
