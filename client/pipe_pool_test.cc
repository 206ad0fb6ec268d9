// PipePool against an in-process KV service on loopback that answers, stays
// silent or refuses: pipes are reused, one per concurrent caller, a request
// ends at its deadline when no answer comes, the stream's own error is the
// call's, and a pipe broken by a server restart is replaced.

#include "pipe_pool.h"

#include <atomic>
#include <thread>
#include <vector>

#include "dynamo/client/client.h"
#include "gtest/gtest.h"

namespace dynamo::client::internal {
namespace {

using Clock = std::chrono::system_clock;

enum class Behaviour { kAnswer, kSlow, kSilent, kRefuse };

class FakeKv final : public v1::KV::Service {
 public:
  explicit FakeKv(Behaviour behaviour) : behaviour_(behaviour) {}

  grpc::Status Pipe(grpc::ServerContext* context,
                    grpc::ServerReaderWriter<v1::PipeResponse, v1::PipeRequest>* stream) override {
    ++opened;
    if (behaviour_ == Behaviour::kRefuse) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong token");
    }
    v1::PipeRequest request;
    while (stream->Read(&request)) {
      if (behaviour_ == Behaviour::kSilent) {
        while (!context->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        return grpc::Status::CANCELLED;
      }
      // Slow answers keep concurrent callers on pipes of their own.
      if (behaviour_ == Behaviour::kSlow) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      v1::PipeResponse response;
      response.set_id(request.id());
      *response.mutable_get()->add_siblings()->mutable_value() = request.get().key();
      response.mutable_get()->set_found(true);
      if (!stream->Write(response)) break;
    }
    return grpc::Status::OK;
  }

  std::atomic<int> opened{0};

 private:
  const Behaviour behaviour_;
};

// A node from before KV.Pipe: unary Get only.
class OldKv final : public v1::KV::Service {
 public:
  grpc::Status Get(grpc::ServerContext*, const v1::GetRequest* request,
                   v1::GetResponse* response) override {
    ++gets;
    response->set_found(true);
    response->add_siblings()->set_value(request->key());
    return grpc::Status::OK;
  }
  std::atomic<int> gets{0};
};

// A server of a fake KV on loopback; `port` 0 picks one.
template <typename Service>
struct ServerOf {
  template <typename... Args>
  explicit ServerOf(int port, Args... args) : kv(args...) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port),
                             grpc::InsecureServerCredentials(), &this->port);
    builder.RegisterService(&kv);
    server = builder.BuildAndStart();
  }
  ~ServerOf() { server->Shutdown(Clock::now()); }
  Service kv;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

struct Server : ServerOf<FakeKv> {
  Server(Behaviour behaviour, int port) : ServerOf<FakeKv>(port, behaviour) {}
};

std::shared_ptr<v1::KV::Stub> StubTo(int port) {
  return v1::KV::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                             grpc::InsecureChannelCredentials()));
}

grpc::Status Get(PipePool& pool, const std::string& key, v1::PipeResponse* response,
                 int64_t timeout_ms = 5000) {
  v1::PipeRequest request;
  request.mutable_get()->set_key(key);
  return pool.Call(request, response, Clock::now() + std::chrono::milliseconds(timeout_ms));
}

TEST(PipePoolTest, SequentialRequestsShareOnePipe) {
  Server server(Behaviour::kAnswer, 0);
  PipePool pool(StubTo(server.port));
  for (int i = 0; i < 5; ++i) {
    v1::PipeResponse response;
    const std::string key = "k" + std::to_string(i);
    grpc::Status status = Get(pool, key, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.get().siblings(0).value(), key);
  }
  EXPECT_EQ(server.kv.opened.load(), 1);
  EXPECT_EQ(pool.idle(), 1u);
}

TEST(PipePoolTest, ConcurrentCallersEachGetTheirAnswer) {
  Server server(Behaviour::kAnswer, 0);
  PipePool pool(StubTo(server.port));
  constexpr int kThreads = 6, kCalls = 50;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        v1::PipeResponse response;
        const std::string key = std::to_string(t) + "/" + std::to_string(i);
        if (!Get(pool, key, &response).ok() || response.get().siblings(0).value() != key) ++wrong;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  // No more pipes than callers at once, all of them kept for the next calls.
  EXPECT_LE(server.kv.opened.load(), kThreads);
  EXPECT_EQ(pool.idle(), static_cast<size_t>(server.kv.opened.load()));
}

TEST(PipePoolTest, NoAnswerEndsAtTheDeadlineAndDropsThePipe) {
  Server server(Behaviour::kSilent, 0);
  PipePool pool(StubTo(server.port));
  v1::PipeResponse response;
  grpc::Status status = Get(pool, "k", &response, 300);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_EQ(pool.idle(), 0u);
}

TEST(PipePoolTest, TheStreamsErrorIsTheCallsStatus) {
  Server server(Behaviour::kRefuse, 0);
  PipePool pool(StubTo(server.port));
  v1::PipeResponse response;
  grpc::Status status = Get(pool, "k", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "wrong token");
  EXPECT_EQ(pool.idle(), 0u);
}

TEST(PipePoolTest, NothingListeningIsUnavailable) {
  int port = 0;
  { Server gone(Behaviour::kAnswer, 0); port = gone.port; }
  PipePool pool(StubTo(port));
  v1::PipeResponse response;
  EXPECT_EQ(Get(pool, "k", &response).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// Several pipes idle across the restart (callers were concurrent before it):
// all of them died, and the first request after it still goes through.
TEST(PipePoolTest, IdlePipesBrokenByARestartAreReplaced) {
  auto first = std::make_unique<Server>(Behaviour::kSlow, 0);
  const int port = first->port;
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  PipePool pool(v1::KV::NewStub(channel));
  v1::PipeResponse response;
  std::vector<std::thread> callers;
  for (int i = 0; i < 4; ++i) {
    callers.emplace_back([&pool] {
      v1::PipeResponse r;
      EXPECT_TRUE(Get(pool, "before", &r).ok());
    });
  }
  for (std::thread& t : callers) t.join();
  ASSERT_GE(pool.idle(), 2u) << "the callers overlapped";
  first.reset();  // the pipes in the pool are now broken
  // Once the client has seen the connection go: the case of a pipe idle
  // across a node's restart (a request racing the close itself may fail).
  while (channel->GetState(false) == GRPC_CHANNEL_READY) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Server second(Behaviour::kAnswer, port);
  ASSERT_EQ(second.port, port);
  grpc::Status status = Get(pool, "after", &response);
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_EQ(response.get().siblings(0).value(), "after");
  EXPECT_EQ(second.kv.opened.load(), 1);
}

TEST(PipePoolTest, AClientOnPipesFallsBackToCallsOnANodeWithoutThem) {
  ServerOf<OldKv> old(0);
  ClientOptions options;
  options.seeds = {"127.0.0.1:" + std::to_string(old.port)};
  options.pipes = true;
  options.discover_nodes = false;
  options.attempts_max = 1;
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  for (const std::string key : {"a", "b"}) {
    absl::StatusOr<GetResult> got = (*client)->Get(key);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->siblings.size(), 1u);
    EXPECT_EQ(got->siblings[0].value, key);
  }
  EXPECT_EQ(old.kv.gets.load(), 2);
  EXPECT_EQ((*client)->stats().attempts, 2u);  // the fallback is not a retry
}

// deadline_ms bounds a whole Update: its rounds share it. Against a node
// that never answers, the first round's read spends it, and no round follows
// (each round had a fresh deadline and attempts_max attempts of its own).
TEST(PipePoolTest, AnUpdateEndsAtItsDeadlineRoundsIncluded) {
  Server silent(Behaviour::kSilent, 0);
  ClientOptions options;
  options.seeds = {"127.0.0.1:" + std::to_string(silent.port)};
  options.discover_nodes = false;
  options.deadline_ms = 600;
  options.attempt_timeout_ms = 200;
  options.attempts_max = 3;
  options.update_attempts_max = 3;
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<WriteResult> updated =
      (*client)->Update("k", [](const std::vector<Sibling>&) { return std::string("v"); });
  EXPECT_EQ(updated.status().code(), absl::StatusCode::kDeadlineExceeded) << updated.status();
  EXPECT_LE((*client)->stats().attempts, 3u);
}

}  // namespace
}  // namespace dynamo::client::internal
