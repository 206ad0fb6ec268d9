#pragma once

// HttpClient on cpprestsdk (web::http::client). The only place in the
// operator that includes cpprestsdk headers.

#include <memory>
#include <string>

#include "dynamo/k8s/http_client.h"

namespace dynamo::k8s {

struct TlsOptions {
  std::string ca_pem;           // trust these CAs (in addition to none: replaces defaults)
  std::string client_cert_pem;  // with client_key_pem: mutual TLS
  std::string client_key_pem;
  bool insecure_skip_verify = false;
};

// `base_url`: "https://host:port" or "http://host:port". Thread-safe.
std::unique_ptr<HttpClient> NewCppRestHttpClient(const std::string& base_url,
                                                 const TlsOptions& tls = {});

}  // namespace dynamo::k8s
