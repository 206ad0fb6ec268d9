// Unit tests of the client's pure parts: YAML, kubeconfig and in-cluster
// config, token re-reading, and watch stream decoding.
#include "dynamo/k8s/config.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "absl/strings/escaping.h"
#include "dynamo/base/strings.h"
#include "dynamo/k8s/client.h"
#include "dynamo/k8s/yaml.h"

namespace dynamo::k8s {
namespace {

class ManualClock final : public Clock {
 public:
  int64_t SteadyMs() const override { return ms; }
  int64_t UnixMicros() const override { return 1700000000000000 + ms * 1000; }
  int64_t ms = 0;
};

std::string B64(const std::string& s) {
  std::string out;
  absl::Base64Escape(ToAbsl(s), &out);
  return out;
}

TEST(YamlTest, ReadsKubectlStyleDocuments) {
  const auto v = ParseYaml(R"(apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: QUJD
    server: https://127.0.0.1:6443   # kind
  name: kind-kind
contexts:
- context:
    cluster: kind-kind
    user: "kind-kind"
    namespace: 'db'
  name: kind-kind
current-context: kind-kind
kind: Config
preferences: {}
users:
- name: kind-kind
  user:
    token: abc#notacomment
list:
  - 1
  - true
  - ~
  - - nested
)");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)["current-context"].AsString(), "kind-kind");
  EXPECT_EQ((*v)["clusters"].AsArray()[0].At({"cluster", "server"}).AsString(),
            "https://127.0.0.1:6443");
  EXPECT_EQ((*v)["contexts"].AsArray()[0].At({"context", "user"}).AsString(), "kind-kind");
  EXPECT_EQ((*v)["contexts"].AsArray()[0].At({"context", "namespace"}).AsString(), "db");
  EXPECT_TRUE((*v)["preferences"].is_object());
  EXPECT_EQ((*v)["users"].AsArray()[0].At({"user", "token"}).AsString(), "abc#notacomment");
  const json::Array& list = (*v)["list"].AsArray();
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[0].AsInt(), 1);
  EXPECT_TRUE(list[1].AsBool());
  EXPECT_TRUE(list[2].is_null());
  EXPECT_EQ(list[3].AsArray()[0].AsString(), "nested");
}

TEST(YamlTest, JsonIsAccepted) {
  const auto v = ParseYaml(R"({"a": [1, 2]})");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ((*v)["a"].size(), 2u);
}

TEST(YamlTest, RefusesWhatItDoesNotSupport) {
  EXPECT_FALSE(ParseYaml("a: &x 1\n").ok());
  EXPECT_FALSE(ParseYaml("a: |\n  text\n").ok());
  EXPECT_FALSE(ParseYaml("a: 1\n---\nb: 2\n").ok());
  EXPECT_FALSE(ParseYaml("a:\n  b: 1\n c: 2\n").ok());
}

struct FakeFiles {
  std::map<std::string, std::string> files;
  FileReader reader() {
    return [this](const std::string& path) -> absl::StatusOr<std::string> {
      const auto it = files.find(path);
      if (it == files.end()) return absl::NotFoundError(path);
      return it->second;
    };
  }
};

TEST(KubeconfigTest, CurrentContextWithClientCertificate) {
  FakeFiles fs;
  fs.files["/home/u/.kube/config"] = Cat(R"(apiVersion: v1
kind: Config
current-context: b
clusters:
- name: one
  cluster:
    server: https://one.example:6443/
    certificate-authority: ca.pem
- name: two
  cluster:
    server: https://two.example
    insecure-skip-tls-verify: true
contexts:
- name: a
  context: {"cluster": "one", "user": "tok"}
- name: b
  context:
    cluster: one
    user: cert
users:
- name: tok
  user:
    token: secret-token
- name: cert
  user:
    client-certificate-data: )",
                                         B64("CERT"), "\n    client-key-data: ", B64("KEY"), "\n");
  fs.files["/home/u/.kube/ca.pem"] = "CA";
  auto c = KubeconfigConfig("/home/u/.kube/config", "", fs.reader());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://one.example:6443");
  EXPECT_EQ(c->ca_pem, "CA");
  EXPECT_EQ(c->client_cert_pem, "CERT");
  EXPECT_EQ(c->client_key_pem, "KEY");
  EXPECT_EQ(c->default_namespace, "default");
  EXPECT_TRUE(c->token.empty());

  c = KubeconfigConfig("/home/u/.kube/config", "a", fs.reader());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->token, "secret-token");
  EXPECT_FALSE(KubeconfigConfig("/home/u/.kube/config", "zzz", fs.reader()).ok());
  EXPECT_FALSE(KubeconfigConfig("/nope", "", fs.reader()).ok());
}

TEST(KubeconfigTest, ExecPluginsAreReportedNotIgnored) {
  FakeFiles fs;
  fs.files["/k"] = R"(current-context: c
clusters:
- name: k
  cluster:
    server: https://x
contexts:
- name: c
  context:
    cluster: k
    user: eks
users:
- name: eks
  user:
    exec:
      command: aws
)";
  const auto c = KubeconfigConfig("/k", "", fs.reader());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(InClusterTest, ReadsServiceAccountFiles) {
  FakeFiles fs;
  fs.files["/sa/token"] = "tok-1\n";
  fs.files["/sa/ca.crt"] = "CA";
  fs.files["/sa/namespace"] = "dynamo-system";
  std::map<std::string, std::string> env = {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                            {"KUBERNETES_SERVICE_PORT", "443"}};
  const EnvReader get = [&](const std::string& k) -> std::optional<std::string> {
    const auto it = env.find(k);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  auto c = InClusterConfig(get, fs.reader(), "/sa");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->ca_pem, "CA");
  EXPECT_EQ(c->token_file, "/sa/token");
  EXPECT_EQ(c->default_namespace, "dynamo-system");

  env["KUBERNETES_SERVICE_HOST"] = "fd00::1";
  EXPECT_EQ(InClusterConfig(get, fs.reader(), "/sa")->server, "https://[fd00::1]:443");
  env.clear();
  EXPECT_EQ(InClusterConfig(get, fs.reader(), "/sa").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(TokenSourceTest, RereadsTheRotatedTokenEveryMinute) {
  FakeFiles fs;
  fs.files["/sa/token"] = "one\n";
  Config c;
  c.token_file = "/sa/token";
  ManualClock clock;
  TokenSource tokens(c, clock, fs.reader());
  EXPECT_EQ(tokens.Token(), "one");
  fs.files["/sa/token"] = "two";
  clock.ms = TokenSource::kRereadMs - 1;
  EXPECT_EQ(tokens.Token(), "one");  // cached
  clock.ms = TokenSource::kRereadMs;
  EXPECT_EQ(tokens.Token(), "two");
  fs.files.clear();  // briefly missing during rotation: keep the last one
  clock.ms = 3 * TokenSource::kRereadMs;
  EXPECT_EQ(tokens.Token(), "two");
}

// ---------------------------------------------------------------------------
// Watch stream decoding.

std::string Event(int i) {
  return json::Value::Obj(
             {{"type", "ADDED"},
              {"object",
               json::Value::Obj({{"metadata", json::Value::Obj({{"name", Cat("o", i)}})}})}})
             .Dump() +
         "\n";
}

TEST(WatchDecoderTest, EventsSurviveAnySplit) {
  std::string stream;
  for (int i = 0; i < 50; ++i) stream += Event(i);
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    WatchDecoder d;
    std::vector<std::string> names;
    size_t pos = 0;
    while (pos < stream.size()) {
      const size_t n = std::min<size_t>(1 + rng() % 97, stream.size() - pos);
      ASSERT_TRUE(d.Feed(std::string_view(stream).substr(pos, n), [&](std::string_view line) {
                     const auto e = ParseWatchEvent(line);
                     EXPECT_TRUE(e.ok()) << e.status();
                     names.push_back(e->object.At({"metadata", "name"}).AsString());
                     return true;
                   }).ok());
      pos += n;
    }
    ASSERT_EQ(names.size(), 50u) << "round " << round;
    for (int i = 0; i < 50; ++i) EXPECT_EQ(names[i], Cat("o", i));
    EXPECT_EQ(d.buffered(), 0u);
  }
}

TEST(WatchDecoderTest, PartialLineWaitsAndCrlfIsAccepted) {
  WatchDecoder d;
  int lines = 0;
  const auto count = [&](std::string_view line) {
    EXPECT_EQ(line.back(), '}');
    ++lines;
    return true;
  };
  ASSERT_TRUE(d.Feed("{\"type\":\"ADDED\",", count).ok());
  EXPECT_EQ(lines, 0);
  ASSERT_TRUE(d.Feed("\"object\":{}}\r\n\n", count).ok());
  EXPECT_EQ(lines, 1);
}

TEST(WatchDecoderTest, BoundsTheBuffer) {
  WatchDecoder d;
  const std::string big(WatchDecoder::kLineBytesMax + 1, 'x');
  EXPECT_FALSE(d.Feed(big, [](std::string_view) { return true; }).ok());
}

TEST(WatchDecoderTest, ErrorEventsBecomeStatuses) {
  const auto gone = ParseWatchEvent(
      R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}})");
  EXPECT_TRUE(IsGone(gone.status())) << gone.status();
  const auto other = ParseWatchEvent(R"({"type":"ERROR","object":{"kind":"Status","code":500}})");
  EXPECT_FALSE(other.ok());
  EXPECT_FALSE(IsGone(other.status()));
  EXPECT_FALSE(ParseWatchEvent("{not json").ok());
}

TEST(StatusMappingTest, HttpCodesAndReasons) {
  HttpResponse r;
  r.status = 409;
  r.body = R"({"kind":"Status","reason":"AlreadyExists","message":"x exists"})";
  EXPECT_TRUE(k8s::IsAlreadyExists(StatusFromResponse(r, "create")));
  r.body = R"({"kind":"Status","reason":"Conflict","message":"modified"})";
  EXPECT_TRUE(IsConflict(StatusFromResponse(r, "update")));
  EXPECT_NE(StatusFromResponse(r, "update").message().find("modified"), absl::string_view::npos);
  r.status = 410;
  EXPECT_TRUE(IsGone(StatusFromResponse(r, "watch")));
  r.status = 404;
  EXPECT_TRUE(k8s::IsNotFound(StatusFromResponse(r, "get")));
  r.status = 503;
  EXPECT_EQ(StatusFromResponse(r, "get").code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace dynamo::k8s
