"""Validates DynamoCluster objects against the CRD the way the API server
would, offline: structural defaults, the OpenAPI v3 schema (with
python3-jsonschema) and the x-kubernetes-validations rules.

jsonschema does not evaluate CEL, so each rule of the CRD has a Python
emulation below (RULES); a rule without one is an error, so the two cannot
drift apart silently. check_crd.py also evaluates every rule with a real CEL
implementation (k8s_validate.mjs) and fails if it disagrees with the emulation.
"""
import copy
import re

import jsonschema

# rule text -> (self, oldSelf or None) -> bool. Transition rules (those that
# mention oldSelf) are evaluated only on updates, as by the API server.
RULES = {
    "self.replication.factor <= self.replicas":
        lambda s, o: s["replication"]["factor"] <= s["replicas"],
    "self.readQuorum >= 1 && self.readQuorum <= self.factor":
        lambda s, o: 1 <= s["readQuorum"] <= s["factor"],
    "self.writeQuorum >= 1 && self.writeQuorum <= self.factor":
        lambda s, o: 1 <= s["writeQuorum"] <= s["factor"],
    "self.durability == 'durable' || self.syncDelayMicroseconds == 0":
        lambda s, o: s["durability"] == "durable" or s["syncDelayMicroseconds"] == 0,
    "self == oldSelf":
        lambda s, o: s == o,
}

_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _format_checker():
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("int32")
    def _int32(v):
        return not isinstance(v, int) or -2**31 <= v < 2**31

    @checker.checks("int64")
    def _int64(v):
        return not isinstance(v, int) or -2**63 <= v < 2**63

    @checker.checks("date-time")
    def _date_time(v):
        return not isinstance(v, str) or bool(_DATE_TIME.match(v))

    return checker


def to_json_schema(node, strict=True):
    """OpenAPI v3 (Kubernetes structural schema) -> JSON Schema draft 4.

    strict: objects with properties reject unknown fields, which the API server
    would prune (drop) rather than reject: in a sample they are mistakes."""
    if isinstance(node, list):
        return [to_json_schema(n, strict) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k.startswith("x-kubernetes-") or k in ("nullable", "description", "example"):
            continue
        if k == "properties":
            out[k] = {name: to_json_schema(p, strict) for name, p in v.items()}
        elif k in ("items", "additionalProperties", "not") and isinstance(v, dict):
            out[k] = to_json_schema(v, strict)
        elif k in ("allOf", "anyOf", "oneOf"):
            out[k] = to_json_schema(v, strict)
        else:
            out[k] = copy.deepcopy(v)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (strict and node.get("type") == "object" and "properties" in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in node):
        out["additionalProperties"] = False
    return out


def apply_defaults(schema, value):
    """Structural defaulting: a missing field with a default gets it, then the
    defaults of its own fields (so `default: {}` fills a whole object)."""
    if isinstance(value, dict) and schema.get("type") == "object":
        for name, prop in schema.get("properties", {}).items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                apply_defaults(prop, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for k in value:
                if k not in schema.get("properties", {}):
                    apply_defaults(extra, value[k])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(schema["items"], item)
    return value


def collect_rules(schema, path=()):
    """[(path of keys, rule, message)] for every x-kubernetes-validations."""
    found = []
    for r in schema.get("x-kubernetes-validations", []):
        found.append((path, r["rule"], r.get("message", "")))
    for name, prop in schema.get("properties", {}).items():
        found.extend(collect_rules(prop, path + (name,)))
    if isinstance(schema.get("items"), dict) and schema["items"].get("x-kubernetes-validations"):
        raise ValueError("rules under list items are not emulated")
    return found


def _at(obj, path):
    for k in path:
        if not isinstance(obj, dict) or k not in obj:
            return None, False
        obj = obj[k]
    return obj, True


class Validator:
    def __init__(self, crd, version="v1alpha1"):
        versions = [v for v in crd["spec"]["versions"] if v["name"] == version]
        if not versions:
            raise ValueError(f"the CRD has no version {version}")
        self.openapi = versions[0]["schema"]["openAPIV3Schema"]
        self.group = crd["spec"]["group"]
        self.version = version
        self.kind = crd["spec"]["names"]["kind"]
        self.schema = to_json_schema(self.openapi)
        jsonschema.Draft4Validator.check_schema(self.schema)
        self.validator = jsonschema.Draft4Validator(self.schema, format_checker=_format_checker())
        self.rules = collect_rules(self.openapi)
        missing = [r for _, r, _ in self.rules if r not in RULES]
        if missing:
            raise ValueError(f"no Python emulation for CEL rules {missing}: add them to RULES")

    def evaluations(self, obj, old=None):
        """The CEL evaluations an admission of obj (an update of old) runs,
        after defaulting: [(path, rule, message, self, oldSelf or None, transition)]."""
        out = []
        for path, rule, message in self.rules:
            value, present = _at(obj, path)
            if not present:
                continue
            transition = "oldSelf" in rule
            old_value, old_present = _at(old, path) if old is not None else (None, False)
            if transition and not old_present:
                continue
            out.append((path, rule, message, value, old_value if transition else None, transition))
        return out

    def validate(self, obj, old=None):
        """Returns (defaulted object, [errors]) for a create (or an update of old)."""
        errors = []
        if obj.get("apiVersion") != f"{self.group}/{self.version}" or obj.get("kind") != self.kind:
            errors.append(f"apiVersion/kind is not {self.group}/{self.version} {self.kind}")
        meta = obj.get("metadata") or {}
        if not meta.get("name"):
            errors.append("metadata.name is missing")
        obj = apply_defaults(self.openapi, copy.deepcopy(obj))
        if old is not None:
            old = apply_defaults(self.openapi, copy.deepcopy(old))
        for e in sorted(self.validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in e.absolute_path) or "(root)"
            errors.append(f"{where}: {e.message}")
        if errors:
            return obj, errors  # the API server stops at schema errors before CEL
        for path, rule, message, value, old_value, _ in self.evaluations(obj, old):
            try:
                ok = RULES[rule](value, old_value)
            except (KeyError, TypeError) as ex:
                ok = False
                message = f"{message} (evaluation error: {ex!r})"
            if not ok:
                errors.append(f"{'.'.join(path) or '(root)'}: {message} [rule: {rule}]")
        return obj, errors
