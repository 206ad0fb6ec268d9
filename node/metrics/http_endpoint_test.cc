#include "dynamo/metrics/http_endpoint.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

// cpprestsdk's U() macro would clash with template parameters named U
// (gtest's, absl's); we never use it.
#define _TURN_OFF_PLATFORM_STRING
#include <cpprest/http_client.h>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace http = web::http;

struct Response {
  int status = 0;
  std::string content_type;
  std::string body;
};

// GETs (or `method`s) url + path; a transport failure shows as status -1.
Response Fetch(const std::string& url, const std::string& path,
               const http::method& method = http::methods::GET) {
  Response r;
  try {
    http::client::http_client_config config;
    config.set_timeout(std::chrono::seconds(5));
    http::client::http_client client(url, config);
    http::http_response response = client.request(method, path).get();
    r.status = response.status_code();
    r.content_type = response.headers().content_type();
    r.body = response.extract_utf8string(/*ignore_content_type=*/true).get();
  } catch (const std::exception& e) {
    r.status = -1;
    r.body = e.what();
  }
  return r;
}

class HttpEndpointTest : public ::testing::Test {
 protected:
  using Check = HttpEndpoint::Check;

  void SetUp() override {
    auto requests = registry_.AddIntCounter("dynamo_requests_total", "Requests.");
    ASSERT_TRUE(requests.ok());
    (*requests)->Increment(7);
  }

  Check Readiness() {
    return [this](std::string* why) {
      if (ready_.load()) return true;
      *why = "joining the ring";
      return false;
    };
  }

  Check Liveness() {
    return [this](std::string* why) {
      if (live_.load()) return true;
      *why = "storage failed; restart the node";
      return false;
    };
  }

  Registry registry_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> live_{true};
};

TEST_F(HttpEndpointTest, ServesMetricsHealthAndReadiness) {
  HttpEndpoint endpoint("127.0.0.1:0", &registry_, Readiness());
  ASSERT_TRUE(endpoint.Start().ok());
  ASSERT_GT(endpoint.port(), 0);
  const std::string url = endpoint.url();
  EXPECT_EQ(url, absl::StrCat("http://127.0.0.1:", endpoint.port()));

  const Response metrics = Fetch(url, "/metrics");
  EXPECT_EQ(metrics.status, 200) << metrics.body;
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(metrics.body, registry_.Render());
  EXPECT_THAT(metrics.body, HasSubstr("dynamo_requests_total 7\n"));

  const Response health = Fetch(url, "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  EXPECT_THAT(health.content_type, StartsWith("text/plain"));

  const Response not_ready = Fetch(url, "/readyz");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(not_ready.body, "not ready: joining the ring\n");
  ready_ = true;
  const Response ready = Fetch(url, "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ok\n");
  ready_ = false;
  EXPECT_EQ(Fetch(url, "/readyz").status, 503);
}

TEST_F(HttpEndpointTest, HealthzFailsWithTheReasonWhenTheLivenessCheckDoes) {
  HttpEndpoint endpoint("127.0.0.1:0", &registry_, Readiness(), Liveness());
  ASSERT_TRUE(endpoint.Start().ok());
  EXPECT_EQ(Fetch(endpoint.url(), "/healthz").status, 200);
  live_ = false;
  const Response dead = Fetch(endpoint.url(), "/healthz");
  EXPECT_EQ(dead.status, 503);
  EXPECT_EQ(dead.body, "unhealthy: storage failed; restart the node\n");
  EXPECT_EQ(Fetch(endpoint.url(), "/metrics").status, 200);  // still scraped meanwhile
  live_ = true;
  EXPECT_EQ(Fetch(endpoint.url(), "/healthz").status, 200);
}

TEST_F(HttpEndpointTest, UnknownPathsAndMethods) {
  HttpEndpoint endpoint("127.0.0.1:0", &registry_, nullptr);
  ASSERT_TRUE(endpoint.Start().ok());
  EXPECT_EQ(Fetch(endpoint.url(), "/").status, 404);
  EXPECT_EQ(Fetch(endpoint.url(), "/metricsx").status, 404);
  EXPECT_EQ(Fetch(endpoint.url(), "/metrics/extra").status, 404);
  EXPECT_EQ(Fetch(endpoint.url(), "/metrics?name=x").status, 200);  // the query is ignored
  EXPECT_EQ(Fetch(endpoint.url(), "/metrics", http::methods::POST).status, 405);
  EXPECT_EQ(Fetch(endpoint.url(), "/readyz").status, 200);  // no check: always ready
}

TEST_F(HttpEndpointTest, MetricsReflectUpdatesBetweenScrapes) {
  auto gauge = registry_.AddGauge("dynamo_level", "Level.");
  ASSERT_TRUE(gauge.ok());
  HttpEndpoint endpoint("127.0.0.1:0", &registry_, nullptr);
  ASSERT_TRUE(endpoint.Start().ok());
  (*gauge)->Set(1);
  EXPECT_THAT(Fetch(endpoint.url(), "/metrics").body, HasSubstr("dynamo_level 1\n"));
  (*gauge)->Set(2);
  EXPECT_THAT(Fetch(endpoint.url(), "/metrics").body, HasSubstr("dynamo_level 2\n"));
}

TEST_F(HttpEndpointTest, ConcurrentScrapes) {
  HttpEndpoint endpoint("127.0.0.1:0", &registry_, nullptr);
  ASSERT_TRUE(endpoint.Start().ok());
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 10; ++i) ok += Fetch(endpoint.url(), "/metrics").status == 200;
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(ok.load(), 40);
}

TEST_F(HttpEndpointTest, SecondEndpointOnTheSamePortFailsWithAStatus) {
  HttpEndpoint first("127.0.0.1:0", &registry_, nullptr);
  ASSERT_TRUE(first.Start().ok());
  HttpEndpoint second(absl::StrCat("127.0.0.1:", first.port()), &registry_, nullptr);
  const absl::Status s = second.Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("in use"));
  EXPECT_EQ(second.port(), 0);
  EXPECT_EQ(second.url(), "");
  // The failed start must not have disturbed the first endpoint.
  EXPECT_EQ(Fetch(first.url(), "/healthz").status, 200);
}

TEST_F(HttpEndpointTest, PortTakenByAnotherSocketFailsWithAStatus) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);

  HttpEndpoint endpoint(absl::StrCat("127.0.0.1:", port), &registry_, nullptr);
  const absl::Status s = endpoint.Start();
  close(fd);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("127.0.0.1:", port)));
}

TEST_F(HttpEndpointTest, StartTwiceStopAndRestart) {
  HttpEndpoint endpoint("127.0.0.1:0", &registry_, nullptr);
  ASSERT_TRUE(endpoint.Start().ok());
  EXPECT_EQ(endpoint.Start().code(), absl::StatusCode::kFailedPrecondition);
  const std::string url = endpoint.url();
  endpoint.Stop();
  endpoint.Stop();  // idempotent
  EXPECT_EQ(endpoint.url(), "");
  EXPECT_EQ(Fetch(url, "/healthz").status, -1);  // nothing listens any more
  ASSERT_TRUE(endpoint.Start().ok());
  EXPECT_EQ(Fetch(endpoint.url(), "/healthz").status, 200);
}

TEST_F(HttpEndpointTest, FixedPortCanBeReusedAfterStop) {
  HttpEndpoint probe("127.0.0.1:0", &registry_, nullptr);
  ASSERT_TRUE(probe.Start().ok());
  const int port = probe.port();
  probe.Stop();
  HttpEndpoint endpoint(absl::StrCat("127.0.0.1:", port), &registry_, nullptr);
  ASSERT_TRUE(endpoint.Start().ok());
  EXPECT_EQ(endpoint.port(), port);
  EXPECT_EQ(Fetch(endpoint.url(), "/healthz").status, 200);
}

TEST_F(HttpEndpointTest, WildcardHostIsReachableOnLoopback) {
  HttpEndpoint endpoint(":0", &registry_, nullptr);
  ASSERT_TRUE(endpoint.Start().ok());
  EXPECT_EQ(endpoint.url(), absl::StrCat("http://127.0.0.1:", endpoint.port()));
  EXPECT_EQ(Fetch(endpoint.url(), "/healthz").status, 200);
}

TEST_F(HttpEndpointTest, MalformedAddressesAreRejected) {
  for (const char* address : {"", "localhost", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536",
                              "127.0.0.1:-1", "127.0.0.1:80x"}) {
    HttpEndpoint endpoint(address, &registry_, nullptr);
    EXPECT_EQ(endpoint.Start().code(), absl::StatusCode::kInvalidArgument) << address;
  }
  for (const char* address : {"[::1]:0", "::1:0"}) {
    HttpEndpoint endpoint(address, &registry_, nullptr);
    const absl::Status s = endpoint.Start();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_THAT(s.message(), HasSubstr("IPv6")) << address;
  }
  HttpEndpoint unresolvable("no-such-host.invalid:0", &registry_, nullptr);
  EXPECT_EQ(unresolvable.Start().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace dynamo::metrics
