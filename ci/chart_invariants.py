#!/usr/bin/env python3
"""Checks on rendered chart output that neither helm lint nor schema validation makes.

    python3 ci/chart_invariants.py --alerts helm/pipeserve/files/alerts.yml rendered/*.yaml

- every object carries the app.kubernetes.io labels from _helpers.tpl;
- Deployment: non-root, read-only root filesystem, ALL capabilities dropped, RuntimeDefault
  seccomp, /tmp on an emptyDir, native sleep preStop, grace period >= preStop + drain delay +
  shutdown timeout, three HTTP probes on the named port, the batching ConfigMap in envFrom and
  its checksum on the pod template;
- a KServe runtime (kserve.runtime.enabled): the same hardening on its container, a valid image,
  the GPU rules, --shutdown-timeout >= --request-timeout, and none of the chart's own workload;
- Service and PDB select only the server pods (not the helm test pod);
- the image reference is repository[:tag] or repository@sha256:<64 hex> (never a tag glued after
  a digest, as "0.1.0@sha256:...-cuda" was); a GPU pod pins its compute capability;
- --shutdown-timeout is at least --request-timeout;
- autoscaling: at most one of HPA and ScaledObject, no fixed replicas with either; the
  ScaledObject's query selects this release (namespace and job) and an empty result is an error
  (so KEDA's fallback applies);
- NetworkPolicy admits the chart's test pod and the monitoring namespace it names;
- a PrometheusRule embeds exactly the rules of the alerts file after the documented substitutions
  (release selector, objectives, latency bucket, runbook base, notReadyFor), recomputed here from
  the scenario's values (no second, diverging copy).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

LABELS = ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
          "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "app.kubernetes.io/component",
          "helm.sh/chart"]


def secs(d: str) -> float:
    return sum(float(n) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"([0-9.]+)(ms|s|m|h)", d))


IMAGE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
                   r"((:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})|(@sha256:[a-f0-9]{64}))$")
DEFAULT_RUNBOOK = "https://github.com/pipeserve/pipeserve/blob/main/docs/runbook.md"


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def expected_rules(alerts_text: str, values: dict, namespace: str, job: str) -> dict:
    """The PrometheusRule spec the chart should embed, computed independently of the template."""
    pr, slo = values["metrics"]["prometheusRule"], values["metrics"]["slo"]
    text = alerts_text.replace('job=~".*pipeserve.*"', f'namespace="{namespace}", job="{job}"')
    text = text.replace(DEFAULT_RUNBOOK, pr["runbookBaseUrl"].rstrip("/"))
    spec = yaml.safe_load(text)
    for g in spec["groups"]:
        for r in g["rules"]:
            slo_label = (r.get("labels") or {}).get("slo")
            if slo_label == "availability":
                r["expr"] = r["expr"].replace("(1 - 0.999)", f"(1 - {slo['availability']})")
            elif slo_label == "latency":
                r["expr"] = r["expr"].replace("(1 - 0.99)", f"(1 - {slo['latency']})")
            if str(r.get("record", "")).startswith("pipeserve:slo_latency:"):
                r["expr"] = r["expr"].replace('le="0.5"', f'le="{slo["latencyThreshold"]}"')
            if r.get("alert") == "PipeserveNotReady":
                r["for"] = pr["notReadyFor"]
    return spec


def hardened(name: str, spec: dict, c: dict, psc: dict) -> list[str]:
    """Non-root, read-only root, no capabilities, RuntimeDefault seccomp (from the pod-level
    context psc where the pod has one), /tmp on an emptyDir."""
    errs, csc = [], c.get("securityContext", {})
    if not (psc.get("runAsNonRoot") and csc.get("runAsNonRoot")):
        errs.append(f"{name}: runAsNonRoot not set")
    if not csc.get("readOnlyRootFilesystem"):
        errs.append(f"{name}: root filesystem writable")
    if csc.get("capabilities", {}).get("drop") != ["ALL"] or csc.get("allowPrivilegeEscalation") is not False:
        errs.append(f"{name}: capabilities/privilege escalation")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        errs.append(f"{name}: seccomp")
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
    if not tmp or "emptyDir" not in vols[tmp[0]["name"]]:
        errs.append(f"{name}: /tmp is not an emptyDir")
    return errs


def gpu_and_images(name: str, spec: dict, c: dict, env: dict) -> list[str]:
    """A GPU request runs on a CUDA device of a pinned compute capability; image references parse."""
    errs, limits = [], c.get("resources", {}).get("limits", {})
    if any(k.endswith("/gpu") for k in limits) and not env.get("PIPESERVE_DEVICE", "").startswith("cuda"):
        errs.append(f"{name}: GPU requested but device is {env.get('PIPESERVE_DEVICE')}")
    if any(k.endswith("/gpu") for k in limits) and "nvidia.com/gpu.compute.major" not in spec.get("nodeSelector", {}):
        errs.append(f"{name}: GPU pod without a compute-capability node selector")
    for ctr in spec["containers"] + spec.get("initContainers", []):
        if not IMAGE.match(ctr["image"]):
            errs.append(f"{name}: container {ctr['name']}: invalid image reference {ctr['image']!r}")
    return errs


def check(docs: list[dict], alerts_text: str, values: dict, namespace: str) -> list[str]:
    errs = []
    kinds = [d["kind"] for d in docs]
    if "HorizontalPodAutoscaler" in kinds and "ScaledObject" in kinds:
        errs.append("both an HPA and a KEDA ScaledObject (KEDA makes its own HPA)")
    for d in docs:
        name = f"{d['kind']}/{d['metadata']['name']}"
        missing = [l for l in LABELS if l not in d["metadata"].get("labels", {})]
        if missing:
            errs.append(f"{name}: missing labels {missing}")
        if d["kind"] == "Deployment":
            pod = d["spec"]["template"]
            spec = pod["spec"]
            c = next(c for c in spec["containers"] if c["name"] == "server")
            errs += hardened(name, spec, c, spec.get("securityContext", {}))
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
            if pre is None:
                errs.append(f"{name}: preStop is not a native sleep")
            need = (pre or 0) + secs(env.get("PIPESERVE_DRAIN_DELAY", "5s")) + secs(env.get("PIPESERVE_SHUTDOWN_TIMEOUT", "20s"))
            if spec.get("terminationGracePeriodSeconds", 30) < need:
                errs.append(f"{name}: grace {spec.get('terminationGracePeriodSeconds')} < {need}")
            for probe, path in (("startupProbe", "/health/ready"), ("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
                p = c.get(probe, {}).get("httpGet", {})
                if p.get("path") != path or p.get("port") != "http":
                    errs.append(f"{name}: {probe} is not GET {path} on port http")
            if not any("configMapRef" in e for e in c.get("envFrom", [])):
                errs.append(f"{name}: batching ConfigMap not in envFrom")
            if "checksum/batching" not in pod["metadata"].get("annotations", {}):
                errs.append(f"{name}: no checksum/batching annotation")
            errs += gpu_and_images(name, spec, c, env)
            cms = {x["metadata"]["name"]: x.get("data", {}) for x in docs if x["kind"] == "ConfigMap"}
            batching = next((cms[e["configMapRef"]["name"]] for e in c.get("envFrom", []) if "configMapRef" in e
                             and e["configMapRef"]["name"] in cms), {})
            req = batching.get("PIPESERVE_REQUEST_TIMEOUT")
            if req and secs(env.get("PIPESERVE_SHUTDOWN_TIMEOUT", "0s")) < secs(req):
                errs.append(f"{name}: shutdown timeout {env.get('PIPESERVE_SHUTDOWN_TIMEOUT')} < request timeout {req}")
            if ("HorizontalPodAutoscaler" in kinds or "ScaledObject" in kinds) and "replicas" in d["spec"]:
                errs.append(f"{name}: fixed replicas while an autoscaler owns the count")
        if d["kind"] in ("ServingRuntime", "ClusterServingRuntime"):
            # KServe's pods: no pod securityContext in a runtime, so the container carries it all.
            spec = d["spec"]
            c = next(c for c in spec["containers"] if c["name"] == "kserve-container")
            errs += hardened(name, spec, c, c.get("securityContext", {}))
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            errs += gpu_and_images(name, spec, c, env)
            req, shut = env.get("PIPESERVE_REQUEST_TIMEOUT"), env.get("PIPESERVE_SHUTDOWN_TIMEOUT")
            if not req or not shut or secs(shut) < secs(req):
                errs.append(f"{name}: shutdown timeout {shut} < request timeout {req}")
            if any(k in kinds for k in ("Deployment", "Service", "HorizontalPodAutoscaler", "ScaledObject")):
                errs.append(f"{name}: rendered next to the chart's own workload (KServe creates the pods)")
        if d["kind"] in ("Service", "PodDisruptionBudget"):
            sel = d["spec"]["selector"]
            sel = sel.get("matchLabels", sel)
            if sel.get("app.kubernetes.io/component") != "server":
                errs.append(f"{name}: selector does not pin component=server")
        if d["kind"] == "ScaledObject":
            trig = d["spec"]["triggers"][0]["metadata"]
            want = f'namespace="{namespace}", job="{d["spec"]["scaleTargetRef"]["name"]}"'
            if want not in trig.get("query", ""):
                errs.append(f"{name}: query does not select {want}: {trig.get('query')}")
            if trig.get("ignoreNullValues") != "false":
                errs.append(f"{name}: ignoreNullValues must be \"false\" (empty result -> fallback, not 0)")
            if "fallback" not in d["spec"]:
                errs.append(f"{name}: no fallback")
        if d["kind"] == "NetworkPolicy":
            peers = [p for rule in d["spec"].get("ingress", []) for p in rule.get("from", [])]
            if not any(p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "test" for p in peers):
                errs.append(f"{name}: the helm test pod is not admitted")
            mon = values.get("networkPolicy", {}).get("monitoringNamespace")
            if mon and not any(p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == mon for p in peers):
                errs.append(f"{name}: monitoring namespace {mon} not admitted")
        if d["kind"] == "PrometheusRule":
            want = expected_rules(alerts_text, values, namespace, d["metadata"]["name"])
            if d["spec"] != want:
                errs.append(f"{name}: spec differs from the alerts file with the documented substitutions")
    return errs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=Path, required=True)
    ap.add_argument("--chart", type=Path, default=Path("helm/pipeserve"),
                    help="chart folder: values.yaml and ci/<name>-values.yaml of each rendered <name>.yaml")
    ap.add_argument("--namespace", default="pipeserve", help="namespace the files were rendered for")
    ap.add_argument("rendered", type=Path, nargs="+")
    args = ap.parse_args()
    alerts_text = args.alerts.read_text()
    defaults = yaml.safe_load((args.chart / "values.yaml").read_text())
    bad = 0
    for f in args.rendered:
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d]
        scenario = args.chart / "ci" / f"{f.stem}-values.yaml"
        values = deep_merge(defaults, yaml.safe_load(scenario.read_text()) if scenario.exists() else {})
        errs = check(docs, alerts_text, values, args.namespace)
        kinds = sorted({d["kind"] for d in docs})
        print(f"  {'ok  ' if not errs else 'FAIL'} {f.name}: {len(docs)} objects ({', '.join(kinds)})")
        for e in errs:
            print(f"       {e}")
        bad += bool(errs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
