#!/usr/bin/env python3
"""The autoscaling signal, checked without a cluster: what KEDA and prometheus-adapter would run.

    # static: the adapter rule parses as prometheus-adapter's config (its yaml.UnmarshalStrict
    # field set) in both forms the chart ships (adapter chart values, rendered ConfigMap)
    python3 ci/autoscaling_check.py config --adapter-values helm/pipeserve/files/prometheus-adapter-values.yaml \
        --rendered rendered/adapter.yaml
    # live: against a Prometheus that scrapes a loaded server, while load runs
    python3 ci/autoscaling_check.py live --server http://127.0.0.1:PORT --prometheus http://127.0.0.1:PPORT \
        --scaledobject rendered-keda.yaml --adapter-values ... --namespace ci --pod pipeserve-ci-0 --seconds 62

live samples the server's own /metrics (pipeserve_queue_depth) every 0.25 s for --seconds, then at
the end time T evaluates, on the live Prometheus:
  1. the ScaledObject's query, copied verbatim from the rendered chart (KEDA runs exactly this);
  2. the adapter rule's metricsQuery with <<.Series>>, <<.LabelMatchers>> and <<.GroupBy>> filled in
     the way prometheus-adapter does for GET .../namespaces/NS/pods/*/pipeserve_queue_depth, and its
     seriesQuery (discovery) through /api/v1/series;
  3. the raw samples the queries read (pipeserve_queue_depth{...}[1m] at T).
Pass: the KEDA value equals the mean of those raw samples (exactly), the adapter returns that value
for the pod, both are > 0 under load, and they agree with the mean of the server's own readings over
the same minute (sampled, so within 25% or 1 input). It prints the replicas KEDA/the HPA would ask
for (ceil(value / threshold)).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request

import yaml

# prometheus-adapter pkg/config/config.go (DiscoveryRule and its parts), loaded with
# yaml.UnmarshalStrict: any other key is a fatal config error.
RULE_KEYS = {"seriesQuery", "seriesFilters", "resources", "name", "metricsQuery", "labelValueReplacements"}
RESOURCES_KEYS = {"template", "overrides"}
NAME_KEYS = {"matches", "as"}
CONFIG_KEYS = {"rules", "resourceRules", "externalRules"}


def check_rule(rule: dict) -> list[str]:
    errs = [f"unknown rule key {k}" for k in rule if k not in RULE_KEYS]
    errs += [f"unknown resources key {k}" for k in rule.get("resources", {}) if k not in RESOURCES_KEYS]
    errs += [f"unknown name key {k}" for k in rule.get("name", {}) if k not in NAME_KEYS]
    for label, gr in rule.get("resources", {}).get("overrides", {}).items():
        if set(gr) - {"group", "resource"} or "resource" not in gr:
            errs.append(f"override {label}: {gr}")
    for tmpl in re.findall(r"<<(.*?)>>", rule.get("metricsQuery", "")):
        if tmpl.strip() not in (".Series", ".LabelMatchers", ".GroupBy"):
            errs.append(f"metricsQuery template {tmpl!r}")
    if not rule.get("seriesQuery"):
        errs.append("seriesQuery missing")
    return errs


def adapter_rule(values_file: str) -> dict:
    return yaml.safe_load(open(values_file))["rules"]["custom"][0]


def cmd_config(args) -> int:
    errs = []
    values = yaml.safe_load(open(args.adapter_values))
    if set(values) != {"rules"} or set(values["rules"]) - {"default", "custom", "external", "existing", "resource"}:
        errs.append(f"adapter chart values: unexpected keys {sorted(values)} / {sorted(values['rules'])}")
    for r in values["rules"]["custom"]:
        errs += [f"values: {e}" for e in check_rule(r)]
    n = 0
    for f in args.rendered:
        for d in yaml.safe_load_all(open(f)):
            if not d or d["kind"] != "ConfigMap" or not d["metadata"]["name"].endswith("-adapter-rules"):
                continue
            n += 1
            cfg = yaml.safe_load(d["data"]["config.yaml"])
            errs += [f"{d['metadata']['name']}: unknown key {k}" for k in cfg if k not in CONFIG_KEYS]
            for r in cfg["rules"]:
                errs += [f"{d['metadata']['name']}: {e}" for e in check_rule(r)]
            if cfg["rules"] != values["rules"]["custom"]:
                errs.append(f"{d['metadata']['name']}: rules differ from {args.adapter_values}")
    for e in errs:
        print(f"  FAIL {e}")
    print(f"  adapter rule: {len(values['rules']['custom'])} custom rule(s) in the chart values form, "
          f"{n} rendered ConfigMap(s); fields match prometheus-adapter's strict config")
    return 1 if errs or not n else 0


def query(base: str, expr: str, at: float) -> dict:
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    with urllib.request.urlopen(url, timeout=10) as r:
        out = json.load(r)
    if out.get("status") != "success":
        raise RuntimeError(f"{expr}: {out}")
    return out["data"]


def queue_depth(server: str) -> float | None:
    try:
        with urllib.request.urlopen(server.rstrip("/") + "/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    m = re.search(r"^pipeserve_queue_depth(?:\{[^}]*\})? ([0-9.eE+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def cmd_live(args) -> int:
    so = next(d for d in yaml.safe_load_all(open(args.scaledobject)) if d and d.get("kind") == "ScaledObject")
    trig = so["spec"]["triggers"][0]["metadata"]
    keda_query, threshold = trig["query"], float(trig["threshold"])
    rule = adapter_rule(args.adapter_values)
    matchers = f'namespace="{args.namespace}",pod=~"{args.pod}"'
    adapter_query = (rule["metricsQuery"].replace("<<.Series>>", "pipeserve_queue_depth")
                     .replace("<<.LabelMatchers>>", matchers).replace("<<.GroupBy>>", "pod"))
    print(f"  KEDA query (from the rendered ScaledObject): {keda_query}  threshold {threshold:g}")
    print(f"  adapter metricsQuery as the adapter fills it: {adapter_query}")

    samples: list[tuple[float, float]] = []
    t_end = time.time() + args.seconds
    while time.time() < t_end:
        v = queue_depth(args.server)
        if v is not None:
            samples.append((time.time(), v))
        time.sleep(0.25)
    at = time.time()
    time.sleep(2.5)  # the scrape covering `at` lands (1 s interval)

    errs = []
    keda = query(args.prometheus, keda_query, at)["result"]
    keda_v = float(keda[0]["value"][1]) if keda else math.nan
    sel = re.search(r"pipeserve_queue_depth\{[^}]*\}", keda_query).group(0)
    raw = query(args.prometheus, f"{sel}[1m]", at)["result"]
    raw_v = sum(sum(float(v) for _, v in s["values"]) / len(s["values"]) for s in raw) if raw else math.nan
    adapter = query(args.prometheus, adapter_query, at)["result"]
    series = json.load(urllib.request.urlopen(args.prometheus.rstrip("/") + "/api/v1/series?" + urllib.parse.urlencode(
        {"match[]": rule["seriesQuery"], "start": f"{at - 60:.0f}", "end": f"{at:.0f}"}), timeout=10))["data"]
    window = [v for t, v in samples if t >= at - 60]
    direct = sum(window) / len(window) if window else math.nan

    print(f"  server /metrics, sampled {len(window)}x over the minute: mean {direct:.2f}, max {max(window, default=0):g}")
    print(f"  raw samples Prometheus holds for that minute: {sum(len(s['values']) for s in raw)} in {len(raw)} series, mean {raw_v:.4f}")
    print(f"  KEDA query -> {keda_v:.4f}: desired replicas ceil({keda_v:.2f} / {threshold:g}) = "
          f"{math.ceil(keda_v / threshold) if keda_v == keda_v else '?'}")
    print(f"  adapter    -> {[(s['metric'], s['value'][1]) for s in adapter]}")
    print(f"  adapter seriesQuery {rule['seriesQuery']} discovers {[(s.get('namespace'), s.get('pod')) for s in series]}")
    if len(keda) != 1:
        errs.append(f"KEDA query returned {len(keda)} series (want 1)")
    if not raw or abs(keda_v - raw_v) > 1e-9 * max(1.0, raw_v):
        errs.append(f"KEDA value {keda_v} != mean of the raw samples {raw_v}")
    if not keda_v > 0:
        errs.append("queue depth 0 under load: the check proves nothing")
    if len(adapter) != 1 or adapter[0]["metric"].get("pod") != args.pod or abs(float(adapter[0]["value"][1]) - keda_v) > 1e-9 * max(1.0, keda_v):
        errs.append(f"adapter result {adapter} is not {{pod={args.pod}}} = {keda_v}")
    if not any(s.get("namespace") == args.namespace and s.get("pod") == args.pod for s in series):
        errs.append("the adapter's seriesQuery does not discover the pod's series")
    if not abs(keda_v - direct) <= max(1.0, 0.25 * direct):
        errs.append(f"Prometheus' {keda_v:.2f} and the server's own mean {direct:.2f} disagree")
    for e in errs:
        print(f"  FAIL {e}")
    return 1 if errs else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("config")
    c.add_argument("--adapter-values", required=True)
    c.add_argument("--rendered", nargs="+", required=True)
    live = sub.add_parser("live")
    live.add_argument("--server", required=True)
    live.add_argument("--prometheus", required=True)
    live.add_argument("--scaledobject", required=True)
    live.add_argument("--adapter-values", required=True)
    live.add_argument("--namespace", required=True)
    live.add_argument("--pod", required=True)
    live.add_argument("--seconds", type=float, default=62)
    args = ap.parse_args()
    return cmd_config(args) if args.cmd == "config" else cmd_live(args)


if __name__ == "__main__":
    sys.exit(main())
