#include "dynamo/metrics/http_endpoint.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <string_view>
#include <utility>
#include <vector>

// cpprestsdk's U() macro would clash with template parameters named U
// (gtest's, absl's); we never use it.
#define _TURN_OFF_PLATFORM_STRING
#include <cpprest/http_listener.h>
#include <cpprest/http_msg.h>

#include "absl/strings/str_cat.h"
#include "dynamo/base/strings.h"

namespace dynamo::metrics {
namespace {

namespace http = web::http;
using web::http::experimental::listener::http_listener;


struct ListenAddress {
  std::string host;
  int port = 0;
};

bool IsIpv6(std::string_view host) { return host.find(':') != std::string_view::npos; }

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view address) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(Cat("listen address \"", address, "\" ", why));
  };
  if (address.starts_with("[")) {
    // Its hostport_listener splits "host:port" at the first colon.
    return bad("is IPv6, which cpprestsdk's listener cannot bind; use an IPv4 address or a name");
  }
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return bad("has no port (want host:port)");
  ListenAddress parsed;
  parsed.host = std::string(address.substr(0, colon));
  if (IsIpv6(parsed.host)) return bad("is IPv6, which cpprestsdk's listener cannot bind");
  if (parsed.host.empty()) parsed.host = "0.0.0.0";
  const std::string_view port = address.substr(colon + 1);
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), parsed.port);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || parsed.port < 0 ||
      parsed.port > 65535) {
    return bad("has no valid port number (want host:port, port 0 to 65535)");
  }
  return parsed;
}

// Binds a socket to host:port the way cpprestsdk's asio acceptor will (first
// resolved address, SO_REUSEADDR) and returns the bound port, then releases
// it. This learns which port 0 picks, and finds a taken port before
// cpprestsdk does: when two of its listeners in one process share a
// "host:port" and the second fails, its cleanup tears down the first one's
// acceptor (http_linux_server::register_listener erases the hostport entry).
absl::StatusOr<int> ProbeBind(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* resolved = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &resolved); rc != 0) {
    return absl::UnavailableError(
        Cat("cannot resolve listen host \"", host, "\": ", gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(resolved, &freeaddrinfo);
  const int fd = socket(resolved->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(Cat("socket: ", std::strerror(errno)));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, resolved->ai_addr, resolved->ai_addrlen) != 0) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(
        Cat("cannot listen on ", host, ":", port, ": ", std::strerror(err)));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  const int rc = getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int err = errno;
  close(fd);
  if (rc != 0) return absl::UnavailableError(Cat("getsockname: ", std::strerror(err)));
  if (bound.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
}

// A reply's task must be observed: pplx terminates the process when a task
// holding an exception (say, the client hung up) is destroyed unobserved.
void Reply(const http::http_request& request, http::status_code status, std::string body,
           std::string_view content_type = "text/plain; charset=utf-8") {
  try {
    http::http_response response(status);
    // The byte-vector overload: set_body(std::string) casts a streambuf<char>
    // to streambuf<unsigned char> inside cpprestsdk, which UBSan reports.
    response.set_body(std::vector<unsigned char>(body.begin(), body.end()));
    response.headers().set_content_type(std::string(content_type));
    if (status == http::status_codes::MethodNotAllowed) response.headers().add("Allow", "GET");
    request.reply(response).then([](const pplx::task<void>& sent) {
      try {
        sent.get();
      } catch (...) {
      }
    });
  } catch (...) {
  }
}

// Serializes Start and Stop of all endpoints in the process, so that the
// probe in ProbeBind sees every listener another endpoint has opened.
ABSL_CONST_INIT absl::Mutex g_listeners_mu(absl::kConstInit);

}  // namespace

class HttpEndpoint::Impl {
 public:
  Impl(const Registry* registry, const Check* ready, const Check* live, std::string url, int port)
      : registry_(registry), ready_(ready), live_(live), url_(std::move(url)), port_(port) {}

  ~Impl() { Close(); }

  absl::Status Open() {
    try {
      listener_ = std::make_unique<http_listener>(web::uri(url_ + "/"));
      listener_->support([this](http::http_request request) { Handle(request); });
      listener_->open().get();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      listener_.reset();
      return absl::UnavailableError(Cat("cannot serve on ", url_, ": ", e.what()));
    } catch (...) {
      listener_.reset();
      return absl::UnavailableError(Cat("cannot serve on ", url_));
    }
  }

  // Waits for handlers in flight (cpprestsdk's close does).
  void Close() {
    if (listener_ == nullptr) return;
    try {
      listener_->close().get();
    } catch (...) {
    }
    listener_.reset();
  }

  const std::string& url() const { return url_; }
  int port() const { return port_; }

 private:
  void Handle(const http::http_request& request) {
    try {
      const std::string path = request.relative_uri().path();
      if (path != "/metrics" && path != "/healthz" && path != "/readyz") {
        Reply(request, http::status_codes::NotFound, "not found\n");
        return;
      }
      if (request.method() != http::methods::GET) {
        Reply(request, http::status_codes::MethodNotAllowed, "only GET is supported\n");
        return;
      }
      if (path == "/metrics") {
        Reply(request, http::status_codes::OK, registry_->Render(), kTextContentType);
      } else if (path == "/healthz") {
        ReplyCheck(request, *live_, "unhealthy");
      } else {
        ReplyCheck(request, *ready_, "not ready");
      }
    } catch (const std::exception& e) {
      Reply(request, http::status_codes::InternalError, Cat("internal error: ", e.what(), "\n"));
    } catch (...) {
      Reply(request, http::status_codes::InternalError, "internal error\n");
    }
  }

  // 200 "ok" if the check passes (or there is none), else 503 "<failed>: why".
  static void ReplyCheck(const http::http_request& request, const Check& check,
                         const char* failed) {
    std::string why;
    if (!check || check(&why)) {
      Reply(request, http::status_codes::OK, "ok\n");
    } else {
      Reply(request, http::status_codes::ServiceUnavailable,
            why.empty() ? Cat(failed, "\n") : Cat(failed, ": ", why, "\n"));
    }
  }

  const Registry* const registry_;
  const Check* const ready_;
  const Check* const live_;
  const std::string url_;
  const int port_;
  std::unique_ptr<http_listener> listener_;
};

HttpEndpoint::HttpEndpoint(std::string listen_address, const Registry* registry, Check ready,
                           Check live)
    : listen_address_(std::move(listen_address)),
      registry_(registry),
      ready_(std::move(ready)),
      live_(std::move(live)) {}

HttpEndpoint::~HttpEndpoint() { Stop(); }

absl::Status HttpEndpoint::Start() {
  absl::MutexLock lock(&mu_);
  if (impl_ != nullptr) {
    return absl::FailedPreconditionError(
        Cat("HTTP endpoint on ", listen_address_, " is already started"));
  }
  absl::StatusOr<ListenAddress> address = ParseListenAddress(listen_address_);
  if (!address.ok()) return address.status();
  absl::MutexLock global(&g_listeners_mu);
  // With port 0 another process may take the probed port before cpprestsdk
  // binds it; a few fresh probes make that race harmless.
  const int attempts = address->port == 0 ? 5 : 1;
  absl::Status last;
  for (int i = 0; i < attempts; ++i) {
    absl::StatusOr<int> port = ProbeBind(address->host, address->port);
    if (!port.ok()) return port.status();
    auto impl = std::make_unique<Impl>(registry_, &ready_, &live_,
                                       Cat("http://", address->host, ":", *port), *port);
    last = impl->Open();
    if (last.ok()) {
      impl_ = std::move(impl);
      return absl::OkStatus();
    }
  }
  return last;
}

void HttpEndpoint::Stop() {
  absl::MutexLock lock(&mu_);
  if (impl_ == nullptr) return;
  absl::MutexLock global(&g_listeners_mu);
  impl_->Close();
  impl_.reset();
}

int HttpEndpoint::port() const {
  absl::MutexLock lock(&mu_);
  return impl_ == nullptr ? 0 : impl_->port();
}

std::string HttpEndpoint::url() const {
  absl::MutexLock lock(&mu_);
  if (impl_ == nullptr) return "";
  absl::StatusOr<ListenAddress> address = ParseListenAddress(listen_address_);
  std::string host = address.ok() ? address->host : "";
  if (host == "0.0.0.0") host = "127.0.0.1";
  return Cat("http://", host, ":", impl_->port());
}

}  // namespace dynamo::metrics
