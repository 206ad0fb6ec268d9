"""Field names of Kubernetes (and prometheus-operator) objects, for finding
unknown fields offline.

The JSON schemas that k8s_validate.mjs applies accept unknown fields, as the
API server does unless asked for strict validation; but an unknown field in a
chart is almost always a typo or a field at the wrong level (a container's
readOnlyRootFilesystem put in the pod's securityContext), which the server
drops silently. The TypeScript declarations of the kubernetes-models packages
list every field of every type, generated from the same OpenAPI spec; this
module reads them and walks an object against them.
"""
import json
import os
import re

_INTERFACE = re.compile(r"^export interface (\w+)(?: extends [\w, <>\"\[\]]+)? \{$")
_PROPERTY = re.compile(r'^    "([^"]+)"\??: (.*)$')
_EXPORT_TYPE = re.compile(r"^export type \{ (.*) \};$")
_ARRAY = re.compile(r"^Array<(.+)>$")
_MAP = re.compile(r"^\{ \[key: string\]: (.+); \}$")
_IDENT = re.compile(r"^[A-Za-z_]\w*$")

ANY = None  # a field whose content is not checked


def _parse_file(path):
    """Returns ({interface: {field: type string}}, {alias: local name})."""
    interfaces, aliases = {}, {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _INTERFACE.match(line)
        if m:
            name, fields = m.group(1), {}
            i += 1
            while i < len(lines) and lines[i] != "}":
                pm = _PROPERTY.match(lines[i])
                if pm:
                    type_text = pm.group(2)
                    # A type that does not end on its line (an inline object) is not checked.
                    fields[pm.group(1)] = type_text[:-1] if type_text.endswith(";") else "any"
                i += 1
            interfaces[name] = fields
        m = _EXPORT_TYPE.match(line)
        if m:
            for part in m.group(1).split(","):
                bits = part.strip().split(" as ")
                if len(bits) == 2:
                    aliases[bits[1].strip()] = bits[0].strip()
        i += 1
    return interfaces, aliases


def build_index(node_modules):
    """Reads the declarations once; returns a JSON-able index."""
    roots = [os.path.join(node_modules, "kubernetes-models"),
             os.path.join(node_modules, "@kubernetes-models", "apimachinery"),
             os.path.join(node_modules, "@kubernetes-models", "prometheus-operator")]
    types = {}       # global name -> {field: type string}
    kinds = {}       # "apiVersion/kind" -> global name
    for root in roots:
        for dirpath, _, files in os.walk(root):
            if "node_modules" in os.path.relpath(dirpath, root).split(os.sep):
                continue
            for fn in files:
                if not fn.endswith(".d.ts"):
                    continue
                interfaces, aliases = _parse_file(os.path.join(dirpath, fn))
                local_to_global = {}
                for alias, local in aliases.items():
                    if local in interfaces:
                        local_to_global[local] = alias
                for local, fields in interfaces.items():
                    gname = local_to_global.get(local)
                    if gname is None:
                        continue
                    types[gname] = fields
                    api = fields.get("apiVersion", "")
                    kind = fields.get("kind", "")
                    if api.startswith('"') and kind.startswith('"'):
                        kinds[f"{api.strip(chr(34))}/{kind.strip(chr(34))}"] = gname
    return {"types": types, "kinds": kinds}


def load_index(node_modules, cache_path):
    if cache_path and os.path.exists(cache_path):
        with open(cache_path, encoding="utf-8") as f:
            return json.load(f)
    index = build_index(node_modules)
    if cache_path:
        with open(cache_path, "w", encoding="utf-8") as f:
            json.dump(index, f)
    return index


def unknown_fields(index, obj):
    """Paths of fields of obj that its kind does not declare.

    Returns None when the kind is not in the index."""
    gname = index["kinds"].get(f"{obj.get('apiVersion')}/{obj.get('kind')}")
    if gname is None:
        return None
    found = []
    _walk(index["types"], gname, obj, "", found)
    return found


def _walk(types, type_text, value, path, found):
    type_text = type_text.strip()
    m = _ARRAY.match(type_text)
    if m:
        if isinstance(value, list):
            for i, item in enumerate(value):
                _walk(types, m.group(1), item, f"{path}[{i}]", found)
        return
    m = _MAP.match(type_text)
    if m:
        if isinstance(value, dict):
            for k, item in value.items():
                _walk(types, m.group(1), item, f"{path}.{k}", found)
        return
    if not _IDENT.match(type_text) or type_text not in types:
        return  # a scalar, a union, an alias of a scalar, or not checked
    if not isinstance(value, dict):
        return  # the schema validation reports the type mismatch
    fields = types[type_text]
    for k, item in value.items():
        if k not in fields:
            found.append(f"{path}.{k}" if path else k)
        else:
            _walk(types, fields[k], item, f"{path}.{k}" if path else k, found)
