#include "dynamo/k8s/client.h"

#include <utility>

#include "dynamo/base/strings.h"
#include "dynamo/k8s/cpprest_http_client.h"

namespace dynamo::k8s {
namespace {

constexpr char kJson[] = "application/json";
constexpr char kMergePatch[] = "application/merge-patch+json";
constexpr char kApplyPatch[] = "application/apply-patch+yaml";

absl::Status WithCode(int code, std::string_view reason, std::string message) {
  switch (code) {
    case 404:
      return absl::NotFoundError(message);
    case 409:
      return reason == "AlreadyExists" ? absl::AlreadyExistsError(message)
                                       : absl::AbortedError(message);
    case 410:
      return absl::OutOfRangeError(message);
    case 400:
    case 415:
    case 422:
      return absl::InvalidArgumentError(message);
    case 401:
      return absl::UnauthenticatedError(message);
    case 403:
      return absl::PermissionDeniedError(message);
    case 429:
      return absl::ResourceExhaustedError(message);
    default:
      if (code >= 500) return absl::UnavailableError(message);
      return absl::UnknownError(message);
  }
}

}  // namespace

bool IsNotFound(const absl::Status& s) { return s.code() == absl::StatusCode::kNotFound; }
bool IsAlreadyExists(const absl::Status& s) { return s.code() == absl::StatusCode::kAlreadyExists; }
bool IsConflict(const absl::Status& s) { return s.code() == absl::StatusCode::kAborted; }
bool IsGone(const absl::Status& s) { return s.code() == absl::StatusCode::kOutOfRange; }

absl::Status StatusFromResponse(const HttpResponse& response, std::string_view what) {
  std::string message;
  std::string reason;
  absl::StatusOr<json::Value> body = json::Parse(response.body);
  if (body.ok() && (*body)["kind"].AsString() == "Status") {
    message = (*body)["message"].AsString();
    reason = (*body)["reason"].AsString();
  } else {
    message = response.body.substr(0, 200);
  }
  return WithCode(response.status, reason,
                  Cat(what, ": HTTP ", response.status, reason.empty() ? "" : " ", reason,
                      message.empty() ? "" : ": ", message));
}

absl::Status WatchDecoder::Feed(std::string_view chunk,
                                const std::function<bool(std::string_view)>& on_line) {
  buffer_.append(chunk);
  size_t start = 0;
  while (true) {
    const size_t nl = buffer_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(buffer_.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    start = nl + 1;
    if (!line.empty() && !on_line(line)) break;
  }
  buffer_.erase(0, start);
  if (buffer_.size() > kLineBytesMax) {
    buffer_.clear();
    return absl::ResourceExhaustedError(
        Cat("watch event longer than ", kLineBytesMax, " bytes without a newline"));
  }
  return absl::OkStatus();
}

absl::StatusOr<WatchEvent> ParseWatchEvent(std::string_view line) {
  absl::StatusOr<json::Value> v = json::Parse(line);
  if (!v.ok()) return absl::DataLossError(Cat("bad watch event: ", v.status().message()));
  WatchEvent e;
  e.type = (*v)["type"].AsString();
  e.object = (*v)["object"];
  if (e.type == "ERROR") {
    const json::Value& st = e.object;
    const int code = static_cast<int>(st["code"].AsInt(500));
    return WithCode(code, st["reason"].AsString(),
                    Cat("watch: ERROR event ", code, " ", st["reason"].AsString(), ": ",
                        st["message"].AsString()));
  }
  if (e.type.empty() || !e.object.is_object()) {
    return absl::DataLossError(Cat("bad watch event: ", line.substr(0, 200)));
  }
  return e;
}

Client::Client(std::unique_ptr<HttpClient> http, std::shared_ptr<TokenSource> tokens)
    : http_(std::move(http)), tokens_(std::move(tokens)) {}

std::unique_ptr<Client> Client::FromConfig(const Config& config) {
  TlsOptions tls;
  tls.ca_pem = config.ca_pem;
  tls.client_cert_pem = config.client_cert_pem;
  tls.client_key_pem = config.client_key_pem;
  tls.insecure_skip_verify = config.insecure_skip_verify;
  std::shared_ptr<TokenSource> tokens;
  if (!config.token.empty() || !config.token_file.empty()) {
    tokens = std::make_shared<TokenSource>(config);
  }
  return std::make_unique<Client>(NewCppRestHttpClient(config.server, tls), std::move(tokens));
}

void Client::Authorize(HttpRequest* request) {
  request->headers.emplace_back("User-Agent", kUserAgent);
  request->headers.emplace_back("Accept", kJson);
  if (tokens_) {
    const std::string token = tokens_->Token();
    if (!token.empty()) request->headers.emplace_back("Authorization", "Bearer " + token);
  }
}

absl::StatusOr<json::Value> Client::Call(HttpRequest request, std::string_view what,
                                         Cancellation* cancel) {
  Authorize(&request);
  absl::StatusOr<HttpResponse> response = http_->Send(request, cancel);
  if (!response.ok()) return response.status();
  if (response->status < 200 || response->status >= 300) {
    return StatusFromResponse(*response, what);
  }
  if (response->body.empty()) return json::Value();
  absl::StatusOr<json::Value> body = json::Parse(response->body);
  if (!body.ok()) {
    return absl::DataLossError(Cat(what, ": unreadable response: ", body.status().message()));
  }
  return body;
}

absl::StatusOr<json::Value> Client::Get(const ResourceType& type, std::string_view ns,
                                        std::string_view name, Cancellation* cancel) {
  HttpRequest r;
  r.path = type.Path(ns, name);
  return Call(std::move(r), Cat("get ", type.kind, " ", ns, "/", name), cancel);
}

absl::StatusOr<ListResult> Client::List(const ResourceType& type, std::string_view ns,
                                        const ListOptions& options, Cancellation* cancel) {
  ListResult result;
  std::string next;
  for (int page = 0; page < options.pages_max; ++page) {
    HttpRequest r;
    r.path = type.Path(ns);
    if (!options.label_selector.empty())
      r.query.emplace_back("labelSelector", options.label_selector);
    if (!options.field_selector.empty())
      r.query.emplace_back("fieldSelector", options.field_selector);
    if (options.page_size > 0) r.query.emplace_back("limit", std::to_string(options.page_size));
    if (!next.empty()) r.query.emplace_back("continue", next);
    absl::StatusOr<json::Value> list =
        Call(std::move(r), Cat("list ", type.plural, ns.empty() ? "" : " in ", ns), cancel);
    if (!list.ok()) return list.status();  // a 410 on "continue": the caller re-lists
    for (const json::Value& item : (*list)["items"].AsArray()) {
      json::Value copy = item;
      // Items of a list omit apiVersion and kind.
      if (copy["apiVersion"].is_null()) copy["apiVersion"] = type.ApiVersion();
      if (copy["kind"].is_null()) copy["kind"] = type.kind;
      result.items.push_back(std::move(copy));
    }
    result.resource_version = (*list).At({"metadata", "resourceVersion"}).AsString();
    next = (*list).At({"metadata", "continue"}).AsString();
    if (next.empty()) return result;
  }
  return absl::ResourceExhaustedError(
      Cat("list ", type.plural, ": more than ", options.pages_max, " pages"));
}

absl::StatusOr<json::Value> Client::Create(const ResourceType& type, std::string_view ns,
                                           const json::Value& object) {
  HttpRequest r;
  r.method = "POST";
  r.path = type.Path(ns);
  r.body = object.Dump();
  r.content_type = kJson;
  return Call(std::move(r),
              Cat("create ", type.kind, " ", ns, "/", object.At({"metadata", "name"}).AsString()));
}

absl::StatusOr<json::Value> Client::Replace(const ResourceType& type, std::string_view ns,
                                            std::string_view name, const json::Value& object,
                                            std::string_view subresource) {
  HttpRequest r;
  r.method = "PUT";
  r.path = type.Path(ns, name, subresource);
  r.body = object.Dump();
  r.content_type = kJson;
  return Call(std::move(r), Cat("replace ", type.kind, " ", ns, "/", name,
                                subresource.empty() ? "" : "/", subresource));
}

absl::StatusOr<json::Value> Client::MergePatch(const ResourceType& type, std::string_view ns,
                                               std::string_view name, const json::Value& patch,
                                               std::string_view subresource) {
  HttpRequest r;
  r.method = "PATCH";
  r.path = type.Path(ns, name, subresource);
  r.body = patch.Dump();
  r.content_type = kMergePatch;
  return Call(std::move(r), Cat("patch ", type.kind, " ", ns, "/", name,
                                subresource.empty() ? "" : "/", subresource));
}

absl::StatusOr<json::Value> Client::Apply(const ResourceType& type, std::string_view ns,
                                          std::string_view name, const json::Value& object,
                                          std::string_view field_manager, bool force) {
  HttpRequest r;
  r.method = "PATCH";
  r.path = type.Path(ns, name);
  r.query.emplace_back("fieldManager", std::string(field_manager));
  if (force) r.query.emplace_back("force", "true");
  r.body = object.Dump();
  r.content_type = kApplyPatch;
  return Call(std::move(r), Cat("apply ", type.kind, " ", ns, "/", name));
}

absl::Status Client::Delete(const ResourceType& type, std::string_view ns, std::string_view name,
                            std::string_view propagation, std::string_view precondition_uid) {
  HttpRequest r;
  r.method = "DELETE";
  r.path = type.Path(ns, name);
  json::Value options = json::Value::Obj({{"kind", "DeleteOptions"}, {"apiVersion", "v1"}});
  if (!propagation.empty()) options["propagationPolicy"] = propagation;
  if (!precondition_uid.empty()) {
    options["preconditions"] = json::Value::Obj({{"uid", precondition_uid}});
  }
  r.body = options.Dump();
  r.content_type = kJson;
  absl::StatusOr<json::Value> result =
      Call(std::move(r), Cat("delete ", type.kind, " ", ns, "/", name));
  if (!result.ok() && !k8s::IsNotFound(result.status())) return result.status();
  return absl::OkStatus();
}

absl::StatusOr<json::Value> Client::Update(const ResourceType& type, std::string_view ns,
                                           std::string_view name,
                                           const std::function<bool(json::Value&)>& mutate,
                                           std::string_view subresource, int attempts) {
  absl::Status last;
  for (int i = 0; i < attempts; ++i) {
    absl::StatusOr<json::Value> current = Get(type, ns, name);
    if (!current.ok()) return current.status();
    json::Value next = *current;
    if (!mutate(next)) return current;
    // Conditional on the version just read: a concurrent writer makes it 409.
    next["metadata"]["resourceVersion"] = (*current).At({"metadata", "resourceVersion"});
    absl::StatusOr<json::Value> written = Replace(type, ns, name, next, subresource);
    if (written.ok() || !IsConflict(written.status())) return written;
    last = written.status();
  }
  return last;
}

absl::Status Client::Watch(const ResourceType& type, std::string_view ns,
                           const WatchOptions& options,
                           const std::function<bool(const WatchEvent&)>& on_event,
                           Cancellation* cancel) {
  HttpRequest r;
  r.path = type.Path(ns);
  r.query.emplace_back("watch", "true");
  if (!options.resource_version.empty()) {
    r.query.emplace_back("resourceVersion", options.resource_version);
  }
  if (options.allow_bookmarks) r.query.emplace_back("allowWatchBookmarks", "true");
  if (!options.label_selector.empty())
    r.query.emplace_back("labelSelector", options.label_selector);
  if (!options.field_selector.empty())
    r.query.emplace_back("fieldSelector", options.field_selector);
  r.query.emplace_back("timeoutSeconds", std::to_string(options.timeout_s));
  // The longest silence tolerated: the server's own timeout plus a margin.
  r.timeout_ms = (options.timeout_s + 30) * 1000;
  Authorize(&r);

  WatchDecoder decoder;
  absl::Status stream_error;
  bool stop = false;
  const auto on_line = [&](std::string_view line) {
    absl::StatusOr<WatchEvent> e = ParseWatchEvent(line);
    if (!e.ok()) {
      stream_error = e.status();
      return false;
    }
    if (!on_event(*e)) stop = true;
    return !stop;
  };
  absl::StatusOr<HttpResponse> response = http_->Stream(
      r,
      [&](std::string_view chunk) {
        absl::Status fed = decoder.Feed(chunk, on_line);
        if (!fed.ok()) stream_error = fed;
        return stream_error.ok() && !stop;
      },
      cancel);
  if (!stream_error.ok()) return stream_error;
  if (!response.ok()) return response.status();
  if (response->status < 200 || response->status >= 300) {
    return StatusFromResponse(*response, Cat("watch ", type.plural));
  }
  return absl::OkStatus();
}

}  // namespace dynamo::k8s
