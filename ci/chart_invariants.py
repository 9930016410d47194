#!/usr/bin/env python3
"""Checks on rendered chart output that neither helm lint nor schema validation makes.

    python3 ci/chart_invariants.py --alerts helm/pipeserve/files/alerts.yml rendered/*.yaml

- every object carries the app.kubernetes.io labels from _helpers.tpl;
- Deployment: non-root, read-only root filesystem, ALL capabilities dropped, RuntimeDefault
  seccomp, /tmp on an emptyDir, native sleep preStop, grace period >= preStop + drain delay +
  shutdown timeout, three HTTP probes on the named port, the batching ConfigMap in envFrom and
  its checksum on the pod template;
- Service and PDB select only the server pods (not the helm test pod);
- a PrometheusRule embeds exactly the rules of the alerts file (no second, diverging copy).
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


def check(docs: list[dict], alerts: dict) -> list[str]:
    errs = []
    for d in docs:
        name = f"{d['kind']}/{d['metadata']['name']}"
        missing = [l for l in LABELS if l not in d["metadata"].get("labels", {})]
        if missing:
            errs.append(f"{name}: missing labels {missing}")
        if d["kind"] == "Deployment":
            pod = d["spec"]["template"]
            spec = pod["spec"]
            c = next(c for c in spec["containers"] if c["name"] == "server")
            psc, csc = spec.get("securityContext", {}), c.get("securityContext", {})
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
            limits = c.get("resources", {}).get("limits", {})
            if any(k.endswith("/gpu") for k in limits) and not env.get("PIPESERVE_DEVICE", "").startswith("cuda"):
                errs.append(f"{name}: GPU requested but device is {env.get('PIPESERVE_DEVICE')}")
        if d["kind"] in ("Service", "PodDisruptionBudget"):
            sel = d["spec"]["selector"]
            sel = sel.get("matchLabels", sel)
            if sel.get("app.kubernetes.io/component") != "server":
                errs.append(f"{name}: selector does not pin component=server")
        if d["kind"] == "PrometheusRule" and d["spec"] != alerts:
            errs.append(f"{name}: spec differs from the alerts file")
    return errs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=Path, required=True)
    ap.add_argument("rendered", type=Path, nargs="+")
    args = ap.parse_args()
    alerts = yaml.safe_load(args.alerts.read_text())
    bad = 0
    for f in args.rendered:
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d]
        errs = check(docs, alerts)
        kinds = sorted({d["kind"] for d in docs})
        print(f"  {'ok  ' if not errs else 'FAIL'} {f.name}: {len(docs)} objects ({', '.join(kinds)})")
        for e in errs:
            print(f"       {e}")
        bad += bool(errs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
