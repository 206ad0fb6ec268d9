// Offline validation helpers for scripts/check-packaging.sh, run by node.
//
//   node k8s_validate.mjs NODE_MODULES_DIR REQUEST.json
//
// REQUEST.json: {"objects": [k8s objects], "cel": [{"rule", "self", "oldSelf"?}]}
// Prints {"objects": [{"ok", "errors"}], "cel": [{"ok", "value", "error"}]}.
//
// objects: each object is validated against the JSON schema of its kind,
// generated from the Kubernetes OpenAPI spec (package kubernetes-models) or
// from prometheus-operator's CRDs: types, required fields, enums, formats.
// Unknown fields are not reported here (check_rendered.py does that).
//
// cel: each rule of the CRD's x-kubernetes-validations is evaluated with a
// real CEL implementation (@marcbachmann/cel-js), so that the test of the
// CRD does not only trust a Python emulation of the rules.
import {readFileSync} from 'node:fs';
import {pathToFileURL} from 'node:url';
import path from 'node:path';

const [nodeModules, requestPath] = process.argv.slice(2);
if (!nodeModules || !requestPath) {
  console.error('usage: node k8s_validate.mjs NODE_MODULES_DIR REQUEST.json');
  process.exit(2);
}
const request = JSON.parse(readFileSync(requestPath, 'utf8'));

function modelFile(apiVersion, kind) {
  if (apiVersion === 'v1') return path.join(nodeModules, 'kubernetes-models', 'v1', `${kind}.js`);
  const [group, version] = apiVersion.split('/');
  if (group === 'monitoring.coreos.com') {
    return path.join(nodeModules, '@kubernetes-models', 'prometheus-operator', group, version, `${kind}.js`);
  }
  return path.join(nodeModules, 'kubernetes-models', group, version, `${kind}.js`);
}

const modelCache = new Map();
async function model(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (!modelCache.has(key)) {
    let cls = null;
    try {
      const mod = await import(pathToFileURL(modelFile(apiVersion, kind)).href);
      cls = mod[kind] ?? null;
    } catch {
      cls = null;
    }
    modelCache.set(key, cls);
  }
  return modelCache.get(key);
}

function describe(err) {
  if (Array.isArray(err?.errors) && err.errors.length) {
    return err.errors.map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}` +
      (e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''));
  }
  return [String(err?.message ?? err)];
}

const out = {objects: [], cel: []};
for (const obj of request.objects ?? []) {
  const cls = await model(obj.apiVersion, obj.kind);
  if (!cls) {
    out.objects.push({ok: false, errors: [`no schema for ${obj.apiVersion} ${obj.kind}`]});
    continue;
  }
  try {
    new cls(obj).validate();
    out.objects.push({ok: true, errors: []});
  } catch (err) {
    out.objects.push({ok: false, errors: describe(err)});
  }
}

// CEL integers are int64: turn JSON integers into BigInt so that `self.r >= 1`
// compares int with int, as the API server does for fields of type integer.
function toCel(v) {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map(toCel);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toCel(x)]));
  return v;
}

if ((request.cel ?? []).length) {
  const {evaluate} = await import(pathToFileURL(path.join(nodeModules, '@marcbachmann', 'cel-js', 'lib', 'index.js')).href);
  for (const c of request.cel) {
    const vars = {self: toCel(c.self)};
    if ('oldSelf' in c) vars.oldSelf = toCel(c.oldSelf);
    try {
      const value = evaluate(c.rule, vars);
      out.cel.push({ok: true, value: value === true});
    } catch (err) {
      out.cel.push({ok: false, error: String(err?.message ?? err).split('\n')[0]});
    }
  }
}

process.stdout.write(JSON.stringify(out));
