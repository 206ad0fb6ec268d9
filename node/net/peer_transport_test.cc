#include "peer_transport.h"

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <string>

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

std::unique_ptr<grpc::Server> Serve(EchoReplica* service, const std::string& address,
                                    int* port) {
  grpc::ServerBuilder builder;
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

// The failure detector decides when a peer is worth calling; gRPC's reconnect
// backoff must not refuse the call of a peer that came back meanwhile (a
// restarted node's peers would fail their first reads of it).
TEST(PeerTransportTest, CallsAPeerThatRestartedWhileItsChannelWasBackingOff) {
  EchoReplica service;
  int port = 0;
  std::unique_ptr<grpc::Server> server = Serve(&service, "127.0.0.1:0", &port);
  ASSERT_NE(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  PeerTransport transport(1 << 20, grpc::InsecureChannelCredentials());
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
  EchoReplica service;
  int port = 0;
  std::unique_ptr<grpc::Server> server = Serve(&service, "127.0.0.1:0", &port);
  ASSERT_NE(port, 0);
  server->Shutdown();
  server.reset();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  PeerTransport transport(1 << 20, grpc::InsecureChannelCredentials());
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
  EchoReplica service;
  int port = 0;
  std::unique_ptr<grpc::Server> server = Serve(&service, "127.0.0.1:0", &port);
  ASSERT_NE(port, 0);
  server->Shutdown();
  server.reset();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  PeerTransport transport(1 << 20, grpc::InsecureChannelCredentials());
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

}  // namespace
}  // namespace dynamo::server
