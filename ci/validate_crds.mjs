// Validates the Prometheus Operator objects (ServiceMonitor, PrometheusRule) of a rendered chart
// against the operator's CRD schemas (@kubernetes-models/prometheus-operator), which
// kubernetes-validate does not carry. Reads multi-document YAML files; exits 1 on any error.
//   node ci/validate_crds.mjs rendered.yaml...
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.TOOLS_NODE_MODULES + "/");
const yaml = require("js-yaml");
const { ServiceMonitor } = await import(
  process.env.TOOLS_NODE_MODULES + "/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js");
const { PrometheusRule } = await import(
  process.env.TOOLS_NODE_MODULES + "/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule.js");

const models = { ServiceMonitor, PrometheusRule };
let failed = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
    if (!doc || doc.apiVersion !== "monitoring.coreos.com/v1") continue;
    const Model = models[doc.kind];
    const where = `${file}: ${doc.kind}/${doc.metadata?.name}`;
    if (!Model) { console.log(`FAIL ${where}: no schema for this kind`); failed++; continue; }
    try {
      new Model(doc).validate();
      console.log(`ok   ${where}`);
    } catch (e) {
      console.log(`FAIL ${where}: ${e.message}`); failed++;
    }
  }
}
process.exit(failed ? 1 : 0);
