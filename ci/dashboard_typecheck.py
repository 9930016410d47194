#!/usr/bin/env python3
"""Type-check a Grafana dashboard JSON against @grafana/schema with `tsc --strict`.

    python3 ci/dashboard_typecheck.py dashboards/pipeserve.json --node-dir .tools/node

The whole dashboard becomes a TypeScript literal typed `Dashboard`; each panel's `options` and
`fieldConfig.defaults.custom` are also checked (`satisfies`) against that panel plugin's own
generated types (timeseries, stat, state-timeline, table), which the generic Panel type leaves
open. Object literals get excess-property checks, so a misspelt key fails too. A deliberately
broken copy must fail the same way (self-test), or the check itself is reported broken.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# Panel type -> (module, has its own FieldConfig type)
PLUGINS = {
    "timeseries": ("timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen", True),
    "stat": ("stat/panelcfg/x/StatPanelCfg_types.gen", False),
    "state-timeline": ("statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen", True),
    "table": ("table/panelcfg/x/TablePanelCfg_types.gen", True),
}
TSCONFIG = {
    "compilerOptions": {
        "strict": True, "noEmit": True, "target": "ES2022", "module": "ESNext",
        "moduleResolution": "Bundler", "skipLibCheck": True, "types": [],
    },
    "files": ["dashboard.ts"],
}


def alias(kind: str) -> str:
    return "P_" + kind.replace("-", "_")


def render_ts(dash: dict) -> str:
    lines = [
        "import type { Dashboard } from '@grafana/schema';",
        "// JSON carries enum members as their string values: map every string enum E to `${E}`.",
        "type Json<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T",
        "  : T extends Array<infer U> ? Array<Json<U>> : T extends object ? { [K in keyof T]: Json<T[K]> } : T;",
    ]
    for kind, (mod, _) in PLUGINS.items():
        lines.append(f"import type * as {alias(kind)} from '@grafana/schema/dist/esm/raw/composable/{mod}';")
    lines.append(f"export const dashboard: Json<Dashboard> = {json.dumps(dash, indent=2)};")
    checks = []
    for panel in dash.get("panels", []):
        kind = panel.get("type")
        if kind == "row":
            continue
        mod, has_fc = PLUGINS[kind]
        checks.append(f"  p{panel['id']}_options: {json.dumps(panel.get('options', {}))} satisfies Json<{alias(kind)}.Options>,")
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
        if has_fc and custom is not None:
            checks.append(f"  p{panel['id']}_custom: {json.dumps(custom)} satisfies Json<{alias(kind)}.FieldConfig>,")
    lines.append("export const plugins = {\n" + "\n".join(checks) + "\n};")
    return "\n".join(lines) + "\n"


def structural_errors(dash: dict) -> list[str]:
    errors = []
    variables = {v["name"] for v in dash.get("templating", {}).get("list", [])}
    ids = [p.get("id") for p in dash.get("panels", [])]
    if len(ids) != len(set(ids)):
        errors.append("panel ids are not unique")
    for p in dash.get("panels", []):
        if p.get("type") == "row":
            continue
        if p.get("type") not in PLUGINS:
            errors.append(f"panel {p.get('title')!r}: type {p.get('type')!r} has no type check here")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"panel {p.get('title')!r}: datasource is not the $datasource variable")
        for t in p.get("targets", []):
            if not t.get("expr") or not t.get("refId"):
                errors.append(f"panel {p.get('title')!r}: target without expr/refId")
            for var in ("$namespace", "$job", "$pod"):
                if var.strip("$") in variables and var not in t.get("expr", ""):
                    errors.append(f"panel {p.get('title')!r}: query ignores {var}")
    return errors


def tsc(node_dir: Path, work: Path, source: str) -> subprocess.CompletedProcess:
    work.mkdir(parents=True, exist_ok=True)
    (work / "dashboard.ts").write_text(source)
    (work / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2))
    return subprocess.run([str(node_dir / "node_modules/.bin/tsc"), "-p", str(work)],
                          capture_output=True, text=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dashboard", type=Path)
    ap.add_argument("--node-dir", type=Path, required=True, help="folder whose node_modules holds @grafana/schema and typescript")
    args = ap.parse_args()
    node_dir = args.node_dir.resolve()
    dash = json.loads(args.dashboard.read_text())

    errors = structural_errors(dash)
    for e in errors:
        print(f"  {e}")
    # The check folder sits under node_dir so that module resolution finds its node_modules.
    res = tsc(node_dir, node_dir / "check", render_ts(dash))
    if res.returncode != 0:
        print(res.stdout + res.stderr)
        return 1
    # Self-test: an unknown option and a wrongly typed field must both be rejected.
    broken = json.loads(json.dumps(dash))
    first = next(p for p in broken["panels"] if p.get("type") == "timeseries")
    first["options"]["legend"]["placement"] = "sideways"
    broken["refresh"] = 30
    bad = tsc(node_dir, node_dir / "check-broken", render_ts(broken))
    if bad.returncode == 0 or "sideways" not in bad.stdout:
        print("  self-test: tsc accepted a broken dashboard; the type check is not effective")
        return 1
    print(f"  tsc --strict: {len([p for p in dash['panels'] if p.get('type') != 'row'])} panels, "
          f"{len(dash.get('templating', {}).get('list', []))} variables typed; broken copy rejected")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
