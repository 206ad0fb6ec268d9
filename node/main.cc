// dynamo-node: one storage node of a Dynamo cluster. See --help.

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "dynamo/net/node_server.h"
#include "dynamo/server/options.h"

int main(int argc, char** argv) {
  // Debian's absl is built with lock-order checking on: every absl::Mutex
  // lock (gRPC's too) updates a graph, 9% of a write's instructions
  // (bench/RESULTS.md). Tests and sanitizer builds keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(dynamo::server::Usage().c_str(), stdout);
      return 0;
    }
  }
  std::string config_text;
  if (std::string path = dynamo::server::ConfigPathFromArgs(args); !path.empty()) {
    std::ifstream in(path);
    if (!in) {
      std::fprintf(stderr, "dynamo-node: cannot read config file %s\n", path.c_str());
      return 2;
    }
    std::stringstream buf;
    buf << in.rdbuf();
    config_text = buf.str();
  }
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  absl::StatusOr<dynamo::server::ServerOptions> options =
      dynamo::server::ParseOptions(args, config_text, host);
  if (!options.ok()) {
    std::fprintf(stderr, "dynamo-node: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }

  // SIGTERM and SIGINT are taken by one thread, which shuts down gracefully.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<dynamo::server::NodeServer>> server =
      dynamo::server::NodeServer::Start(*options);
  if (!server.ok()) {
    std::fprintf(stderr, "dynamo-node: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "dynamo-node %s: serving gRPC on %s (advertised as %s), HTTP on %s\n",
               options->node.node_id.c_str(), options->listen.c_str(),
               options->node.address.c_str(), options->http.c_str());
  std::atomic<bool> stopped{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (stopped.load()) return;
    std::fprintf(stderr, "dynamo-node %s: signal %d, shutting down\n",
                 options->node.node_id.c_str(), sig);
    (*server)->Shutdown();
  });
  (*server)->Wait();
  // A node that stopped itself (removed) wakes the waiter, still in sigwait.
  stopped.store(true);
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  std::fprintf(stderr, "dynamo-node %s: stopped\n", options->node.node_id.c_str());
  if (const std::string by = (*server)->removed_by(); !by.empty()) {
    std::fprintf(stderr, "dynamo-node %s: removed from the cluster by %s\n",
                 options->node.node_id.c_str(), by.c_str());
    return 3;
  }
  return 0;
}
