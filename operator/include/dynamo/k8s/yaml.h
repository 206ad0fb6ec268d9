#pragma once

// The YAML that kubeconfig files use, read into JSON values: block mappings
// and sequences (including "key:\n- item" at the key's indentation), plain,
// single- and double-quoted scalars, comments, and "{}" / "[]" / JSON flow
// values. Anchors, tags, multi-documents and block scalars are refused with
// an error naming the line. A document that is JSON is read as JSON.

#include <string_view>

#include "absl/status/statusor.h"
#include "dynamo/json/json.h"

namespace dynamo::k8s {

absl::StatusOr<json::Value> ParseYaml(std::string_view text);

}  // namespace dynamo::k8s
