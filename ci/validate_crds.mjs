// Validates the custom resources of a rendered chart against their CRD schemas, which
// kubernetes-validate does not carry:
//   - ServiceMonitor, PrometheusRule: the Prometheus Operator's schemas
//     (@kubernetes-models/prometheus-operator);
//   - every kind with a CRD vendored under ci/crds/ (KEDA's ScaledObject; KServe's ServingRuntime,
//     ClusterServingRuntime, InferenceService, gzipped: the InferenceService CRD is 2 MB): the
//     CRD's own openAPIV3Schema, compiled with ajv. Unknown fields are errors, as with
//     `kubectl apply --validate=strict` (objects without x-kubernetes-preserve-unknown-fields get
//     additionalProperties: false), plus the checks KEDA's admission webhook makes that a schema
//     cannot (replica bounds, fallback needs an AverageValue trigger, prometheus trigger metadata)
//     and those KServe's controller makes (protocol names, the runtime an InferenceService names
//     exists among the files and supports its model format and protocol).
// Reads multi-document YAML files; exits 1 on any error.
//   node ci/validate_crds.mjs rendered.yaml... deploy/kserve/*.yaml
// A self-test first feeds a broken ScaledObject and a broken runtime and InferenceService, and
// fails if they are accepted.
import { readFileSync, readdirSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(process.env.TOOLS_NODE_MODULES + "/");
const yaml = require("js-yaml");
const Ajv = require("ajv");
const { ServiceMonitor } = await import(
  process.env.TOOLS_NODE_MODULES + "/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js");
const { PrometheusRule } = await import(
  process.env.TOOLS_NODE_MODULES + "/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule.js");
const operatorModels = { ServiceMonitor, PrometheusRule };

// Structural schema -> JSON schema with strict unknown-field handling.
function strict(schema) {
  if (Array.isArray(schema)) return schema.map(strict);
  if (!schema || typeof schema !== "object") return schema;
  const out = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k.startsWith("x-kubernetes-")) continue;
    out[k] = ["properties", "patternProperties", "definitions"].includes(k)
      ? Object.fromEntries(Object.entries(v).map(([p, s]) => [p, strict(s)]))
      : strict(v);
  }
  if (schema.nullable && out.type) out.type = [out.type, "null"];
  delete out.nullable;
  if (schema["x-kubernetes-int-or-string"]) { delete out.type; }
  if (out.properties && out.additionalProperties === undefined && !schema["x-kubernetes-preserve-unknown-fields"]) {
    out.additionalProperties = false;
  }
  return out;
}

const crdDir = join(dirname(fileURLToPath(import.meta.url)), "crds");
const ajv = new Ajv({ allErrors: true, strict: false });
// The OpenAPI formats structural schemas use.
ajv.addFormat("int32", { type: "number", validate: (n) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
ajv.addFormat("int64", { type: "number", validate: (n) => Number.isInteger(n) });
ajv.addFormat("double", { type: "number", validate: () => true });
ajv.addFormat("float", { type: "number", validate: () => true });
ajv.addFormat("date-time", /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
ajv.addFormat("byte", /^[A-Za-z0-9+/]*={0,2}$/);
const crdValidators = {};
for (const f of readdirSync(crdDir).filter((f) => f.endsWith(".yaml") || f.endsWith(".yaml.gz"))) {
  const raw = readFileSync(join(crdDir, f));
  const text = (f.endsWith(".gz") ? gunzipSync(raw) : raw).toString("utf8");
  for (const crd of yaml.loadAll(text)) {
    if (crd?.kind !== "CustomResourceDefinition") continue;
    for (const v of crd.spec.versions) {
      const schema = strict(v.schema.openAPIV3Schema);
      // metadata is validated by the API server itself; keep it open here.
      schema.properties.metadata = { type: "object" };
      crdValidators[`${crd.spec.group}/${v.name}/${crd.spec.names.kind}`] = { validate: ajv.compile(schema), source: f };
    }
  }
}

// What KEDA's webhook and scalers check beyond the schema (keda v2.20: CheckReplicaCountBoundsAreValid,
// CheckFallbackValid, prometheusMetadata's keda:"name=..." fields).
const PROMETHEUS_KEYS = new Set(["serverAddress", "query", "queryParameters", "threshold", "activationThreshold",
  "namespace", "customHeaders", "ignoreNullValues", "unsafeSsl", "awsRegion", "timeout", "identityOwner"]);
function kedaSemantics(doc) {
  const errs = [];
  const s = doc.spec ?? {};
  const min = s.minReplicaCount ?? 0, max = s.maxReplicaCount ?? 100;
  if (min > max) errs.push(`minReplicaCount ${min} > maxReplicaCount ${max}`);
  if (s.fallback && !(s.triggers ?? []).some((t) => !["cpu", "memory"].includes(t.type) && (t.metricType ?? "AverageValue") === "AverageValue")) {
    errs.push("fallback needs a trigger (not cpu/memory) with metricType AverageValue");
  }
  for (const t of s.triggers ?? []) {
    if (t.type !== "prometheus") continue;
    const m = t.metadata ?? {};
    for (const k of Object.keys(m)) if (!PROMETHEUS_KEYS.has(k)) errs.push(`prometheus trigger: unknown metadata key ${k}`);
    for (const k of ["serverAddress", "query", "threshold"]) if (!m[k]) errs.push(`prometheus trigger: ${k} missing`);
    for (const k of ["threshold", "activationThreshold"]) if (m[k] !== undefined && !/^-?[0-9]+(\.[0-9]+)?$/.test(m[k])) errs.push(`prometheus trigger: ${k} ${m[k]} is not a number`);
    for (const k of ["ignoreNullValues", "unsafeSsl"]) if (m[k] !== undefined && !["true", "false"].includes(m[k])) errs.push(`prometheus trigger: ${k} must be "true" or "false"`);
  }
  return errs;
}

// What KServe v0.20 checks beyond the schema: protocolVersions are its four protocol names
// (pkg/constants InferenceServiceProtocol); the serving container is `kserve-container`; an
// InferenceService's predictor.model names a runtime (ServingRuntime or ClusterServingRuntime in
// `runtimes`, the other documents checked) that lists its model format and protocol, and has a
// storageUri in a scheme the storage initializer reads.
const KSERVE_PROTOCOLS = new Set(["v1", "v2", "grpc-v1", "grpc-v2"]);
const STORAGE_SCHEMES = ["hf://", "s3://", "gs://", "pvc://", "https://", "http://", "oci://", "hdfs://", "webhdfs://"];
const runtimes = new Map();
function kserveSemantics(doc) {
  const errs = [];
  const s = doc.spec ?? {};
  if (doc.kind === "ServingRuntime" || doc.kind === "ClusterServingRuntime") {
    for (const p of s.protocolVersions ?? []) if (!KSERVE_PROTOCOLS.has(p)) errs.push(`protocolVersions: unknown protocol ${p}`);
    if (s.containers?.[0]?.name !== "kserve-container") errs.push("the first container must be kserve-container");
  }
  if (doc.kind === "InferenceService") {
    const m = s.predictor?.model;
    if (!m) return errs;
    const rt = runtimes.get(m.runtime);
    if (!rt) { errs.push(`runtime ${m.runtime} is not among the files checked`); return errs; }
    if (!(rt.spec.supportedModelFormats ?? []).some((f) => f.name === m.modelFormat?.name)) {
      errs.push(`runtime ${m.runtime} does not support model format ${m.modelFormat?.name}`);
    }
    const protocol = m.protocolVersion ?? "v1";
    if (!(rt.spec.protocolVersions ?? ["v1"]).includes(protocol)) errs.push(`runtime ${m.runtime} does not speak ${protocol}`);
    if (m.storageUri && !STORAGE_SCHEMES.some((p) => m.storageUri.startsWith(p))) errs.push(`storageUri ${m.storageUri}: unknown scheme`);
  }
  return errs;
}

function validate(doc) {
  const [group, version] = (doc.apiVersion ?? "").split("/");
  if (group === "monitoring.coreos.com") {
    const Model = operatorModels[doc.kind];
    if (!Model) return ["no schema for this kind"];
    try { new Model(doc).validate(); return []; } catch (e) { return [e.message]; }
  }
  const v = crdValidators[`${group}/${version}/${doc.kind}`];
  if (!v) return null;  // a core kind: kubernetes-validate's job
  const errs = v.validate(doc) ? [] : v.validate.errors.map((e) => `${e.instancePath || "/"} ${e.message}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ""}`);
  if (group === "keda.sh") errs.push(...kedaSemantics(doc));
  if (group === "serving.kserve.io") errs.push(...kserveSemantics(doc));
  return errs;
}

// Self-test: a ScaledObject with a misspelt field, a bad fallback and an unknown trigger key.
const broken = { apiVersion: "keda.sh/v1alpha1", kind: "ScaledObject", metadata: { name: "x" },
  spec: { scaleTargetRef: { name: "x" }, minReplicaCount: 3, maxReplicaCount: 2, pollingIntervall: 5,
    fallback: { failureThreshold: 3, replicas: 1 },
    triggers: [{ type: "prometheus", metricType: "Value", metadata: { serverAddress: "http://p", query: "q", treshold: "1" } }] } };
const brokenErrs = validate(broken) ?? [];
for (const want of ["pollingIntervall", "minReplicaCount 3 > maxReplicaCount 2", "fallback needs", "treshold", "threshold missing"]) {
  if (!brokenErrs.some((e) => e.includes(want))) {
    console.log(`FAIL self-test: a broken ScaledObject was not rejected for ${want}: ${JSON.stringify(brokenErrs)}`);
    process.exit(1);
  }
}
console.log(`ok   self-test: broken ScaledObject rejected (${brokenErrs.length} errors)`);
// Self-test: a runtime with a misspelt container field and an unknown protocol, and an
// InferenceService that names it with a format and protocol it lacks.
const brokenRuntime = { apiVersion: "serving.kserve.io/v1alpha1", kind: "ClusterServingRuntime", metadata: { name: "broken" },
  spec: { supportedModelFormats: [{ name: "huggingface" }], protocolVersions: ["v2", "rest-v2"],
    containers: [{ name: "kserve-container", image: "x", argz: ["--port=8080"] }] } };
runtimes.set("broken", brokenRuntime);
const brokenIsvc = { apiVersion: "serving.kserve.io/v1beta1", kind: "InferenceService", metadata: { name: "x" },
  spec: { predictor: { model: { modelFormat: { name: "onnx" }, runtime: "broken", protocolVersion: "grpc-v2", storageUri: "ftp://x" }, replica: 1 } } };
const kserveErrs = [...(validate(brokenRuntime) ?? []), ...(validate(brokenIsvc) ?? [])];
for (const want of ["argz", "rest-v2", "replica", "model format onnx", "does not speak grpc-v2", "unknown scheme"]) {
  if (!kserveErrs.some((e) => e.includes(want))) {
    console.log(`FAIL self-test: a broken runtime/InferenceService was not rejected for ${want}: ${JSON.stringify(kserveErrs)}`);
    process.exit(1);
  }
}
runtimes.clear();
console.log(`ok   self-test: broken ServingRuntime/InferenceService rejected (${kserveErrs.length} errors); CRDs: ${Object.keys(crdValidators).join(", ")}`);

const inputs = process.argv.slice(2).flatMap((file) =>
  yaml.loadAll(readFileSync(file, "utf8")).filter(Boolean).map((doc) => ({ file, doc })));
for (const { doc } of inputs) {
  if (doc.kind === "ServingRuntime" || doc.kind === "ClusterServingRuntime") runtimes.set(doc.metadata?.name, doc);
}
let failed = 0, checked = 0;
for (const { file, doc } of inputs) {
  const errs = validate(doc);
  if (errs === null) continue;
  checked++;
  const where = `${file.split("/").pop()}: ${doc.kind}/${doc.metadata?.name}`;
  if (errs.length) { console.log(`FAIL ${where}: ${errs.join("; ")}`); failed++; }
  else console.log(`ok   ${where}`);
}
console.log(`${checked} custom resources checked, ${failed} invalid`);
process.exit(failed ? 1 : 0);
