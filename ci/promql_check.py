#!/usr/bin/env python3
"""Check every PromQL expression of the Grafana dashboard and the alert rules.

    # parse only (promtool, no server)
    python3 ci/promql_check.py --dashboard dashboards/pipeserve.json --alerts dashboards/alerts.yml \
        --promtool .tools/prometheus/usr/bin/promtool
    # parse and evaluate against a Prometheus that scraped a loaded server
    python3 ci/promql_check.py ... --prometheus http://127.0.0.1:9090

Dashboard variables are substituted the way Grafana does: $__rate_interval and $__interval by
fixed windows, multi-value variables by their "All" value (.*). Template-variable queries
(label_values(metric{...}, label)) are checked as "metric{...} has series carrying that label".
Live, every dashboard query must return at least one series; an alert must evaluate without
error and the part left of its top-level threshold comparison must return data (the alert itself
is not expected to fire on a healthy server).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

SUBST = {"$__rate_interval": "1m", "${__rate_interval}": "1m", "$__interval": "15s", "${__interval}": "15s",
         "$__range": "5m", "${__range}": "5m"}
COMPARISONS = (">=", "<=", "==", "!=", ">", "<")
COMPARISON_ANYWHERE = re.compile(r"(>=|<=|==|!=|>|<)")


def substitute(expr: str, variables: dict[str, str]) -> str:
    for k, v in SUBST.items():
        expr = expr.replace(k, v)
    for name, value in variables.items():
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    if "$" in expr:
        raise ValueError(f"unsubstituted variable in {expr!r}")
    return expr


def dashboard_exprs(path: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    dash = json.loads(path.read_text())
    variables = {}
    label_checks = []
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            variables[v["name"]] = v.get("allValue") or ".*"
        elif v.get("type") in ("constant", "custom"):
            q = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
            variables[v["name"]] = q.split(",")[0].strip()
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", q)
        if not m:
            raise ValueError(f"variable {v['name']}: unsupported query {q!r}")
        label_checks.append((f"variable ${v['name']}", substitute(m.group(1), variables), m.group(2)))
    exprs = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                if t.get("expr"):
                    exprs.append((f"panel {p.get('title')!r} {t.get('refId')}", substitute(t["expr"], variables)))
    walk(dash.get("panels", []))
    return exprs, label_checks


def alert_exprs(path: Path) -> list[tuple[str, str]]:
    doc = yaml.safe_load(path.read_text())
    return [(f"alert {r.get('alert') or r.get('record')}", r["expr"].strip())
            for g in doc["groups"] for r in g["rules"]]


def split_threshold(expr: str) -> str:
    """The operand left of the last top-level comparison (outside (), {}, [] and strings)."""
    depth, quote, cut = 0, None, None
    i = 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            for op in COMPARISONS:
                if expr.startswith(op, i) and not expr.startswith("=~", i) and not expr.startswith("!~", i):
                    cut = i
                    i += len(op) - 1
                    break
        i += 1
    return expr[:cut].strip() if cut is not None else expr


SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{[^}]*\}")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def selectors(expr: str) -> list[str]:
    """Every vector selector `name{...}` of an expression (for rules whose comparisons all sit
    inside parentheses, e.g. multi-window burn-rate alerts joined with and/or)."""
    return sorted({m.group(0) for m in SELECTOR.finditer(expr) if m.group(1) not in KEYWORDS})


def promtool_parse(promtool: str, items: list[tuple[str, str]]) -> list[str]:
    """Parse every expression with promtool by wrapping them as recording rules."""
    rules = {"groups": [{"name": "parse", "rules": [
        {"record": f"check:expr_{i}", "expr": e} for i, (_, e) in enumerate(items)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(rules, f)
    res = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    Path(f.name).unlink()
    if res.returncode != 0:
        return [res.stdout + res.stderr]
    return []


def query(base: str, expr: str) -> dict:
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def describe(result: dict) -> str:
    data = result.get("data", {}).get("result", [])
    vals = [d.get("value", [None, None])[1] for d in data][:3]
    return f"{len(data)} series, e.g. {vals}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dashboard", type=Path, required=True)
    ap.add_argument("--alerts", type=Path, required=True)
    ap.add_argument("--promtool", required=True)
    ap.add_argument("--prometheus", help="base URL of a live Prometheus; omit to only parse")
    args = ap.parse_args()

    panels, label_checks = dashboard_exprs(args.dashboard)
    alerts = alert_exprs(args.alerts)
    items = panels + alerts + [(n, e) for n, e, _ in label_checks]
    failures = promtool_parse(args.promtool, items)
    if failures:
        print("FAIL promtool could not parse the expressions:\n" + failures[0])
        return 1
    print(f"  parsed {len(panels)} dashboard queries, {len(label_checks)} variable queries, "
          f"{len(alerts)} alert expressions (promtool)")
    if not args.prometheus:
        return 0

    bad = 0
    for name, expr in panels:
        r = query(args.prometheus, expr)
        ok = r.get("status") == "success" and r["data"]["result"]
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {describe(r) if r.get('status') == 'success' else r.get('error')}")
        if not ok:
            print(f"       {expr}")
        bad += not ok
    for name, expr, label in label_checks:
        r = query(args.prometheus, expr)
        values = sorted({s["metric"].get(label) for s in r.get("data", {}).get("result", [])} - {None})
        ok = r.get("status") == "success" and bool(values)
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: label {label} values {values}")
        bad += not ok
    for name, expr in alerts:
        full = query(args.prometheus, expr)
        lhs_expr = split_threshold(expr)
        state = "condition true now" if full.get("data", {}).get("result") else "condition false now"
        if lhs_expr != expr or not COMPARISON_ANYWHERE.search(expr):
            lhs = query(args.prometheus, lhs_expr)
            ok = full.get("status") == "success" and lhs.get("status") == "success" and lhs["data"]["result"]
            print(f"  {'ok  ' if ok else 'FAIL'} {name}: evaluates ({state}); operand {describe(lhs)}")
            if not ok:
                print(f"       {lhs_expr}  -> {lhs.get('error')}")
        else:
            # No top-level comparison (e.g. `(a > x and b > x) or (c > y and d > y)`): every
            # selector it reads must return data.
            empty = [s for s in selectors(expr) if not query(args.prometheus, s).get("data", {}).get("result")]
            ok = full.get("status") == "success" and not empty
            print(f"  {'ok  ' if ok else 'FAIL'} {name}: evaluates ({state}); "
                  f"{len(selectors(expr)) - len(empty)}/{len(selectors(expr))} selectors return data")
            for s in empty:
                print(f"       no data: {s}")
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
