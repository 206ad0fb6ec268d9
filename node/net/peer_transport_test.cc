#include "peer_transport.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace dynamo::server {
namespace {

// Answers every Call with an empty reply envelope.
class EchoReplica final : public v1::Replica::CallbackService {
  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* context, const v1::Envelope*,
                                 v1::Envelope* reply) override {
    reply->set_is_reply(true);
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

// A transport whose calls complete on a loop of its own, as a node's do on
// its server's; closed, then its loop stopped, when this goes.
struct LoopedTransport {
  template <typename... Args>
  explicit LoopedTransport(Args&&... args)
      : loop(std::make_unique<grpc::CompletionQueue>()),
        transport(loop.cq(), std::forward<Args>(args)...) {
    loop.Start("test-loop");
  }
  ~LoopedTransport() {
    transport.Close();
    loop.Stop();
  }
  CompletionLoop loop;
  PeerTransport transport;
};

// Short, so that a test sees a silent connection closed within a second or two.
constexpr PeerTransport::Keepalive kTestKeepalive{.interval_ms = 300, .timeout_ms = 300};

// A TCP relay to a loopback port that can turn into a black hole: it then
// keeps its connections open and drops every byte, as a partition that
// drops packets would (no reset, no FIN).
class BlackHoleRelay {
 public:
  explicit BlackHoleRelay(int to_port) : to_port_(to_port) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = Loopback(0);
    bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(listener_, 8);
    socklen_t len = sizeof(addr);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accepting_ = std::thread([this] { Accept(); });
  }
  ~BlackHoleRelay() {
    stopping_ = true;
    shutdown(listener_, SHUT_RDWR);
    accepting_.join();
    absl::MutexLock lock(&mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    for (std::thread& t : pumps_) t.join();
    for (int fd : fds_) close(fd);
    close(listener_);
  }
  int port() const { return port_; }
  void Swallow() { swallowing_ = true; }

 private:
  static sockaddr_in Loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
  }
  void Accept() {
    while (!stopping_) {
      const int in = accept(listener_, nullptr, nullptr);
      if (in < 0) return;
      const int out = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in to = Loopback(to_port_);
      if (connect(out, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
        close(in);
        close(out);
        continue;
      }
      absl::MutexLock lock(&mu_);
      fds_.push_back(in);
      fds_.push_back(out);
      pumps_.emplace_back([this, in, out] { Pump(in, out); });
      pumps_.emplace_back([this, in, out] { Pump(out, in); });
    }
  }
  void Pump(int from, int to) {
    char buffer[16384];
    while (true) {
      const ssize_t n = read(from, buffer, sizeof(buffer));
      if (n <= 0) return;
      if (!swallowing_ && write(to, buffer, static_cast<size_t>(n)) != n) return;
    }
  }

  const int to_port_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false}, swallowing_{false};
  absl::Mutex mu_;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> pumps_ ABSL_GUARDED_BY(mu_);
  std::thread accepting_;
};

// Serves Replica.Stream: answers each request it reads, unless silent.
class StreamReplica final : public v1::Replica::CallbackService {
 public:
  explicit StreamReplica(bool silent) : silent_(silent) {}

  grpc::ServerBidiReactor<v1::EnvelopeBatch, v1::EnvelopeBatch>* Stream(
      grpc::CallbackServerContext*) override {
    return new Reactor(this);
  }
  // Requests read so far, from every stream.
  int requests_read() {
    absl::MutexLock lock(&mu_);
    return read_;
  }

 private:
  class Reactor final : public grpc::ServerBidiReactor<v1::EnvelopeBatch, v1::EnvelopeBatch> {
   public:
    explicit Reactor(StreamReplica* service) : service_(service) { StartRead(&in_); }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      {
        absl::MutexLock lock(&service_->mu_);
        service_->read_ += in_.envelopes_size();
      }
      if (service_->silent_) {
        StartRead(&in_);
        return;
      }
      out_.Clear();
      for (const v1::Envelope& e : in_.envelopes()) {
        v1::Envelope* reply = out_.add_envelopes();
        reply->set_is_reply(true);
        reply->set_request_id(e.request_id());
      }
      StartWrite(&out_);  // the next read starts once this write is done
    }
    void OnWriteDone(bool) override { StartRead(&in_); }
    void OnDone() override { delete this; }

   private:
    StreamReplica* const service_;
    v1::EnvelopeBatch in_, out_;
  };
  const bool silent_;
  absl::Mutex mu_;
  int read_ ABSL_GUARDED_BY(mu_) = 0;
};

template <typename Service>
std::unique_ptr<grpc::Server> Serve(Service* service, const std::string& address, int* port) {
  grpc::ServerBuilder builder;
  PeerTransport::AcceptKeepalive(builder, kTestKeepalive);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), port);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

bool Refused(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

grpc::Status CallOnce(PeerTransport& transport, const std::string& address) {
  std::promise<grpc::Status> done;
  transport.Call(address, v1::Envelope(), 500,
                 [&done](const grpc::Status& status, v1::Envelope) { done.set_value(status); });
  return done.get_future().get();
}

// The address of a peer that is down: a server that listened there has stopped.
std::string AddressOfAStoppedPeer() {
  EchoReplica service;
  int port = 0;
  std::unique_ptr<grpc::Server> server = Serve(&service, "127.0.0.1:0", &port);
  EXPECT_NE(port, 0);
  server->Shutdown();
  return "127.0.0.1:" + std::to_string(port);
}

// The failure detector decides when a peer is worth calling; gRPC's reconnect
// backoff must not refuse the call of a peer that came back meanwhile (a
// restarted node's peers would fail their first reads of it).
TEST(PeerTransportTest, CallsAPeerThatRestartedWhileItsChannelWasBackingOff) {
  EchoReplica service;
  int port = 0;
  std::unique_ptr<grpc::Server> server = Serve(&service, "127.0.0.1:0", &port);
  ASSERT_NE(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  LoopedTransport looped(1 << 20, grpc::InsecureChannelCredentials());
  PeerTransport& transport = looped.transport;
  ASSERT_TRUE(CallOnce(transport, address).ok());

  server->Shutdown();
  server.reset();
  // Calls while the peer is down fail, each failed connection growing the
  // channel's backoff (up to 1 s).
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(Refused(CallOnce(transport, address)));

  int again = 0;
  server = Serve(&service, address, &again);
  ASSERT_EQ(again, port);
  const grpc::Status status = CallOnce(transport, address);
  EXPECT_TRUE(status.ok()) << status.error_message();
  server->Shutdown();
  transport.Close();
}

TEST(PeerTransportTest, CallsToAPeerThatStaysDownFail) {
  const std::string address = AddressOfAStoppedPeer();
  LoopedTransport looped(1 << 20, grpc::InsecureChannelCredentials());
  PeerTransport& transport = looped.transport;
  for (int i = 0; i < 3; ++i) {
    const grpc::Status status = CallOnce(transport, address);
    EXPECT_TRUE(Refused(status)) << status.error_message();
  }
  transport.Close();
}

// A stopping node must not wait out the deadlines of calls to peers that are
// down: Close cancels them. The call waits for its peer (its channel was
// backing off, so it waits for the next attempt), with a deadline far beyond
// the test's: without the cancel the status would be DEADLINE_EXCEEDED.
TEST(PeerTransportTest, CloseCancelsCallsWaitingForAPeerThatIsDown) {
  const std::string address = AddressOfAStoppedPeer();
  LoopedTransport looped(1 << 20, grpc::InsecureChannelCredentials());
  PeerTransport& transport = looped.transport;
  EXPECT_TRUE(Refused(CallOnce(transport, address)));  // the channel now backs off
  std::promise<grpc::Status> done;
  transport.Call(address, v1::Envelope(), 600000,
                 [&done](const grpc::Status& status, v1::Envelope) { done.set_value(status); });
  transport.Close();
  EXPECT_EQ(done.get_future().get().error_code(), grpc::StatusCode::CANCELLED);
  std::promise<grpc::Status> late;
  transport.Call(address, v1::Envelope(), 600000,
                 [&late](const grpc::Status& status, v1::Envelope) { late.set_value(status); });
  EXPECT_EQ(late.get_future().get().error_code(), grpc::StatusCode::UNAVAILABLE)
      << "a closed transport refuses calls";
}

// What a transport's streams handed back: replies and lost requests.
class StreamLog {
 public:
  PeerTransport::StreamHandlers Handlers() {
    return {.replies =
                [this](std::vector<v1::Envelope> replies) {
                  absl::MutexLock lock(&mu_);
                  for (const v1::Envelope& r : replies) replied_.push_back(r.request_id());
                },
            .lost =
                [this](std::vector<PeerTransport::SentRequest> lost) {
                  absl::MutexLock lock(&mu_);
                  for (auto& [node, id] : lost) lost_.push_back(id);
                }};
  }
  // The ids replied to (or lost) once there are `count` of them, sorted;
  // what there is after 10 s.
  std::vector<uint64_t> Replied(size_t count) { return Wait(&replied_, count); }
  std::vector<uint64_t> Lost(size_t count) { return Wait(&lost_, count); }

 private:
  std::vector<uint64_t> Wait(std::vector<uint64_t>* ids, size_t count) {
    absl::MutexLock lock(&mu_);
    auto enough = [ids, count]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return ids->size() >= count; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
    std::vector<uint64_t> sorted = *ids;
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }
  absl::Mutex mu_;
  std::vector<uint64_t> replied_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> lost_ ABSL_GUARDED_BY(mu_);
};

std::vector<core::OutMessage> Reads(const std::string& address, std::vector<uint64_t> ids) {
  std::vector<core::OutMessage> out;
  for (uint64_t id : ids) {
    core::OutMessage m{.to_node = "peer", .to_address = address, .envelope = {}};
    m.envelope.set_request_id(id);
    m.envelope.mutable_read()->add_keys("k");
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<uint64_t> IdsOf(const std::vector<core::OutMessage>& messages) {
  std::vector<uint64_t> ids;
  for (const core::OutMessage& m : messages) ids.push_back(m.envelope.request_id());
  return ids;
}

// A peer serving `service` on a free loopback port, and a transport to it
// (closed first when this goes).
struct StreamSetup {
  template <typename Service>
  explicit StreamSetup(Service* service, size_t message_bytes_max = 1 << 20)
      : server(Serve(service, "127.0.0.1:0", &port)),
        address("127.0.0.1:" + std::to_string(port)),
        looped(message_bytes_max, grpc::InsecureChannelCredentials(), log.Handlers()) {}
  // Streams reads with these ids; the ids of those left to the caller.
  std::vector<uint64_t> Send(std::vector<uint64_t> ids, int64_t timeout_ms = 10000) {
    return IdsOf(transport.Stream(address, Reads(address, std::move(ids)), timeout_ms));
  }

  int port = 0;
  std::unique_ptr<grpc::Server> server;
  std::string address;
  StreamLog log;
  LoopedTransport looped;
  PeerTransport& transport = looped.transport;
};

TEST(PeerTransportTest, AStreamCarriesRequestsAndBringsTheirRepliesBack) {
  StreamReplica service(/*silent=*/false);
  StreamSetup peer(&service);
  EXPECT_TRUE(peer.Send({1, 2, 3}).empty());
  EXPECT_TRUE(peer.Send({4}).empty());
  EXPECT_EQ(peer.log.Replied(4), (std::vector<uint64_t>{1, 2, 3, 4}));
  peer.transport.Close();
  EXPECT_TRUE(peer.log.Lost(0).empty()) << "every request was answered";
}

// A node of an older version has no Replica.Stream: its peers call it.
TEST(PeerTransportTest, APeerWithoutStreamsIsLeftToCalls) {
  EchoReplica service;
  StreamSetup peer(&service);
  EXPECT_TRUE(peer.Send({1}).empty());
  EXPECT_EQ(peer.log.Lost(1), (std::vector<uint64_t>{1})) << "the stream's UNIMPLEMENTED loses it";
  EXPECT_EQ(peer.Send({2, 3}), (std::vector<uint64_t>{2, 3}));
}

// The core must learn at once of requests a dead peer will never answer,
// not wait out their timeouts.
TEST(PeerTransportTest, ABrokenStreamLosesTheRequestsItHadNotAnswered) {
  StreamReplica service(/*silent=*/true);
  StreamSetup peer(&service);
  EXPECT_TRUE(peer.Send({7, 8}, 600000).empty());
  for (int i = 0; i < 1000 && service.requests_read() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(service.requests_read(), 2);
  peer.server->Shutdown(std::chrono::system_clock::now());
  EXPECT_EQ(peer.log.Lost(2), (std::vector<uint64_t>{7, 8}));
}

TEST(PeerTransportTest, CloseEndsStreamsAndLeavesLaterRequestsToTheCaller) {
  StreamReplica service(/*silent=*/true);
  StreamSetup peer(&service);
  EXPECT_TRUE(peer.Send({1}, 600000).empty());
  peer.transport.Close();  // returns: the stream waiting for its answer is cancelled
  EXPECT_EQ(peer.log.Lost(1), (std::vector<uint64_t>{1}));
  EXPECT_EQ(peer.Send({2}, 600000), (std::vector<uint64_t>{2}));
}

// A peer whose packets stop coming (its machine vanished, a partition):
// nothing closes the connection, yet the core must learn that the requests
// on it are lost, and the next ones must go on a new connection.
TEST(PeerTransportTest, AStreamToAPeerGoneSilentEndsByKeepalive) {
  StreamReplica service(/*silent=*/false);
  int port = 0;
  std::unique_ptr<grpc::Server> server = Serve(&service, "127.0.0.1:0", &port);
  ASSERT_NE(port, 0);
  BlackHoleRelay relay(port);
  const std::string address = "127.0.0.1:" + std::to_string(relay.port());
  StreamLog log;
  LoopedTransport looped(1 << 20, grpc::InsecureChannelCredentials(), log.Handlers(),
                          kTestKeepalive);
  PeerTransport& transport = looped.transport;
  EXPECT_TRUE(transport.Stream(address, Reads(address, {1}), 600000).empty());
  ASSERT_EQ(log.Replied(1), (std::vector<uint64_t>{1}));
  relay.Swallow();
  EXPECT_TRUE(transport.Stream(address, Reads(address, {2}), 600000).empty());
  EXPECT_EQ(log.Lost(1), (std::vector<uint64_t>{2}))
      << "the request's deadline is 10 minutes away: only the keepalive ends its stream";
  transport.Close();
  server->Shutdown(std::chrono::system_clock::now());
}

TEST(PeerTransportTest, ARequestTooLargeForAStreamMessageIsLeftToACall) {
  StreamReplica service(/*silent=*/false);
  StreamSetup peer(&service, 4096);
  std::vector<core::OutMessage> reads = Reads(peer.address, {1, 2});
  reads[1].envelope.mutable_read()->add_keys(std::string(5000, 'x'));
  EXPECT_EQ(IdsOf(peer.transport.Stream(peer.address, std::move(reads), 10000)),
            (std::vector<uint64_t>{2}));
  EXPECT_EQ(peer.log.Replied(1), (std::vector<uint64_t>{1}));
}

}  // namespace
}  // namespace dynamo::server
