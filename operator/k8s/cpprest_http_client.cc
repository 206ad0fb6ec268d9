#include "dynamo/k8s/cpprest_http_client.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>

// cpprestsdk's U() macro would clash with template parameters named U.
#define _TURN_OFF_PLATFORM_STRING
#include <cpprest/http_client.h>

#include "dynamo/base/strings.h"

namespace dynamo::k8s {
namespace {

namespace http = web::http;
using http::client::http_client;
using http::client::http_client_config;

constexpr size_t kStreamChunkBytesMax = 64 * 1024;

class CppRestHttpClient final : public HttpClient {
 public:
  CppRestHttpClient(std::string base_url, TlsOptions tls)
      : base_url_(std::move(base_url)), tls_(std::move(tls)) {}

  absl::StatusOr<HttpResponse> Send(const HttpRequest& request, Cancellation* cancel) override {
    return Run(request, nullptr, cancel);
  }

  absl::StatusOr<HttpResponse> Stream(const HttpRequest& request,
                                      const std::function<bool(std::string_view)>& on_chunk,
                                      Cancellation* cancel) override {
    return Run(request, &on_chunk, cancel);
  }

 private:
  std::shared_ptr<http_client> ClientFor(int timeout_ms) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = clients_.find(timeout_ms);
    if (it != clients_.end()) return it->second;
    http_client_config config;
    config.set_timeout(std::chrono::milliseconds(std::max(timeout_ms, 1)));
    config.set_validate_certificates(!tls_.insecure_skip_verify);
    if (!tls_.ca_pem.empty() || !tls_.client_cert_pem.empty()) {
      const TlsOptions tls = tls_;
      config.set_ssl_context_callback([tls](boost::asio::ssl::context& ctx) {
        // Exceptions here surface as the request's failure.
        if (!tls.ca_pem.empty()) {
          ctx.add_certificate_authority(boost::asio::buffer(tls.ca_pem.data(), tls.ca_pem.size()));
        }
        if (!tls.client_cert_pem.empty()) {
          ctx.use_certificate_chain(
              boost::asio::buffer(tls.client_cert_pem.data(), tls.client_cert_pem.size()));
          ctx.use_private_key(
              boost::asio::buffer(tls.client_key_pem.data(), tls.client_key_pem.size()),
              boost::asio::ssl::context::pem);
        }
      });
    }
    auto client = std::make_shared<http_client>(base_url_, config);
    clients_.emplace(timeout_ms, client);
    return client;
  }

  absl::StatusOr<HttpResponse> Run(const HttpRequest& request,
                                   const std::function<bool(std::string_view)>* on_chunk,
                                   Cancellation* cancel) {
    pplx::cancellation_token_source cts;
    int registration = 0;
    if (cancel != nullptr) {
      registration = cancel->Register([cts]() mutable { cts.cancel(); });
    }
    struct Unregister {
      Cancellation* cancel;
      int id;
      ~Unregister() {
        if (cancel != nullptr && id != 0) cancel->Unregister(id);
      }
    } unregister{cancel, registration};

    const std::string what = Cat(request.method, " ", request.path);
    try {
      std::shared_ptr<http_client> client = ClientFor(request.timeout_ms);
      http::http_request msg(request.method);
      std::string uri = request.path;
      if (!request.query.empty()) uri += "?" + EncodeQuery(request.query);
      msg.set_request_uri(web::uri(uri));
      for (const auto& [name, value] : request.headers) msg.headers().add(name, value);
      if (!request.body.empty() || !request.content_type.empty()) {
        msg.set_body(request.body, request.content_type.empty() ? std::string("application/json")
                                                                : request.content_type);
      }
      http::http_response response = client->request(msg, cts.get_token()).get();
      HttpResponse out;
      out.status = response.status_code();
      for (const auto& [name, value] : response.headers()) {
        std::string lower = name;
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        out.headers[lower] = value;
      }
      const bool ok = out.status >= 200 && out.status < 300;
      if (on_chunk == nullptr || !ok) {
        const std::vector<unsigned char> body = response.extract_vector().get();
        out.body.assign(body.begin(), body.end());
        return out;
      }
      // Hand over whatever has arrived: at least one byte (waiting for it),
      // then everything else already buffered.
      Concurrency::streams::streambuf<uint8_t> buf = response.body().streambuf();
      std::vector<uint8_t> chunk(kStreamChunkBytesMax);
      while (true) {
        if (cancel != nullptr && cancel->cancelled()) {
          return absl::CancelledError(Cat(what, ": cancelled"));
        }
        const size_t avail = buf.in_avail();
        const size_t want = std::clamp<size_t>(avail, 1, kStreamChunkBytesMax);
        const size_t got = buf.getn(chunk.data(), want).get();
        if (got == 0) break;  // the body ended
        if (!(*on_chunk)(std::string_view(reinterpret_cast<const char*>(chunk.data()), got))) {
          break;
        }
      }
      if (cancel != nullptr && cancel->cancelled()) {
        return absl::CancelledError(Cat(what, ": cancelled"));
      }
      return out;
    } catch (const pplx::task_canceled&) {
      return absl::CancelledError(Cat(what, ": cancelled"));
    } catch (const std::exception& e) {
      if (cancel != nullptr && cancel->cancelled()) {
        return absl::CancelledError(Cat(what, ": cancelled"));
      }
      return absl::UnavailableError(Cat(what, " to ", base_url_, " failed: ", e.what()));
    }
  }

  const std::string base_url_;
  const TlsOptions tls_;
  std::mutex mu_;
  std::map<int, std::shared_ptr<http_client>> clients_;  // by timeout; guarded by mu_
};

}  // namespace

std::unique_ptr<HttpClient> NewCppRestHttpClient(const std::string& base_url,
                                                 const TlsOptions& tls) {
  return std::make_unique<CppRestHttpClient>(base_url, tls);
}

}  // namespace dynamo::k8s
