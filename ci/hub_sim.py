#!/usr/bin/env python3
"""The hub paths of the chart, run for real against ci/fake_hub.py (a private, slow hub on loopback).

    helm template ci helm/pipeserve -f helm/pipeserve/ci/initcontainer-values.yaml \
        --set model.hub.endpoint=http://127.0.0.1:HUBPORT > rendered.yaml
    python3 ci/hub_sim.py PHASE rendered.yaml --bin pipeserve --hub-port HUBPORT --hub-log hub.log \
        --secret hf-token/token=hf_ci --work DIR

The environment of each container comes from the rendered Deployment (env, envFrom, secretKeyRef
through --secret); HF_HOME's emptyDir becomes a folder under --work; PIPESERVE_HOST/PORT become
127.0.0.1 and a free port, proxy variables are dropped (loopback only).

Phases (each prints PASS/FAIL lines and exits 1 on any FAIL):
  slow-load  the server container downloading the model itself (source: hub; HF_HUB_OFFLINE
             removed) from a hub that holds the weights back: while it loads, /health/live must be
             200, /health/ready 503, /metrics must show pipeserve_ready 0 and pipeserve_model_loaded
             0; then ready 200, pipeserve_model_loaded 1, one inference, exit 0 on SIGTERM. The hub
             requires the token, so the download also proves HF_TOKEN reaches it.
  init       the init container (the server image with PIPESERVE_DOWNLOAD_ONLY) fills the hub cache
             at the pinned revision and exits 0.
  offline    the server container on that cache: ready, one inference, and not one request to the
             hub (HF_HUB_OFFLINE=1: the load needs no network, as behind a NetworkPolicy).
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

FAILED: list[str] = []


def result(ok: bool, what: str) -> bool:
    print(f"  {'PASS' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        FAILED.append(what)
    return ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, method: str = "GET", body: bytes | None = None) -> tuple[int | None, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers={"content-type": "application/json"} if body else {})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return None, ""
    finally:
        conn.close()


def gauge(text: str, name: str) -> float | None:
    m = re.search(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.eE+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


class Rendered:
    def __init__(self, path: Path, secrets: dict[str, str], work: Path):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        dep = next(d for d in docs if d["kind"] == "Deployment")
        self.configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
        self.spec = dep["spec"]["template"]["spec"]
        self.secrets, self.work = secrets, work

    def container(self, init: bool) -> dict:
        return (self.spec.get("initContainers", []) if init else self.spec["containers"])[0]

    def env(self, c: dict, cache: Path) -> dict[str, str]:
        env = {"PATH": "/usr/bin:/bin"}
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                env.update(self.configmaps[src["configMapRef"]["name"]])
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = str(e["value"])
            elif "secretKeyRef" in e.get("valueFrom", {}):
                ref = e["valueFrom"]["secretKeyRef"]
                env[e["name"]] = self.secrets[f"{ref['name']}/{ref['key']}"]
            elif "resourceFieldRef" in e.get("valueFrom", {}):
                env[e["name"]] = "1"
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        if env.get("HF_HOME") != "/cache/huggingface" or mounts.get("/cache/huggingface") != "hub-cache":
            raise SystemExit(f"FAIL {c['name']}: HF_HOME is not the hub-cache volume")
        env["HF_HOME"] = str(cache)
        env["HOME"] = str(self.work / "home")
        for k in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            env.pop(k, None)
        return env


def hub_requests(log: Path) -> int:
    return sum(1 for l in log.read_text().splitlines() if l.startswith(("GET ", "HEAD ")))


def start(binary: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**env, "PIPESERVE_HOST": "127.0.0.1", "PIPESERVE_PORT": str(port)}
    return subprocess.Popen([binary], env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT), port


def stop(p: subprocess.Popen) -> int:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def embed_ok(port: int) -> bool:
    status, body = get(port, "/embed", "POST", b'{"inputs":"hello"}')
    return status == 200 and body.startswith("[[")


def phase_slow_load(r: Rendered, args) -> None:
    c = r.container(init=False)
    env = r.env(c, args.work / "cache-slow")
    env.pop("HF_HUB_OFFLINE", None)
    before = hub_requests(args.hub_log)
    t0 = time.monotonic()
    p, port = start(args.bin, env, args.work / "server-slow.log")
    seen_live_loading = seen_ready_503 = seen_metrics_loading = False
    metrics_loading = ""
    ready_at = None
    try:
        while time.monotonic() - t0 < args.timeout and p.poll() is None:
            live, _ = get(port, "/health/live")
            ready, _ = get(port, "/health/ready")
            if ready == 200:
                ready_at = time.monotonic() - t0
                break
            if live == 200 and ready == 503:
                seen_live_loading, seen_ready_503 = True, True
                m_status, text = get(port, "/metrics")
                if m_status == 200 and gauge(text, "pipeserve_ready") == 0 and gauge(text, "pipeserve_model_loaded") == 0:
                    seen_metrics_loading = True
                    metrics_loading = f"pipeserve_ready 0, pipeserve_model_loaded 0 at {time.monotonic() - t0:.1f}s"
            time.sleep(0.25)
        result(seen_live_loading, f"slow load: /health/live 200 while the model was loading (hub delay {args.delay:g}s)")
        result(seen_ready_503, "slow load: /health/ready 503 while loading")
        result(seen_metrics_loading, f"slow load: /metrics answered while loading ({metrics_loading or 'never'})")
        if result(ready_at is not None, f"slow load: ready after {ready_at or 0:.1f}s (exit code {p.poll()})"):
            _, text = get(port, "/metrics")
            result(gauge(text, "pipeserve_model_loaded") == 1 and gauge(text, "pipeserve_ready") == 1,
                   "slow load: after it, pipeserve_ready 1 and pipeserve_model_loaded 1")
            result(embed_ok(port), "slow load: inference /embed 200")
        log = args.hub_log.read_text().splitlines()[before:]
        result(bool(log) and not any("-> 401" in l for l in log),
               f"slow load: {len(log)} hub requests, none refused (HF_TOKEN from the Secret reached the hub)")
    finally:
        result(stop(p) == 0, "slow load: server exits 0 on SIGTERM")


def phase_init(r: Rendered, args) -> None:
    c = r.container(init=True)
    if c.get("command"):
        raise SystemExit("FAIL the init container overrides the image entrypoint")
    env = r.env(c, args.work / "cache-init")
    t0 = time.monotonic()
    p = subprocess.Popen([args.bin] + c.get("args", []), env=env, stdout=open(args.work / "init.log", "ab"),
                         stderr=subprocess.STDOUT)
    try:
        rc = p.wait(args.timeout)
    except subprocess.TimeoutExpired:
        rc = None
        p.kill()
        p.wait()
    result(rc == 0, f"init container (server image, PIPESERVE_DOWNLOAD_ONLY) exits 0: "
                    f"{'exit ' + str(rc) if rc is not None else 'still running after %ds' % args.timeout} "
                    f"in {time.monotonic() - t0:.1f}s")
    rev = env.get("PIPESERVE_REVISION", "main")
    snaps = list((args.work / "cache-init" / "hub").glob("models--*/snapshots/*"))
    names = sorted(p.name for s in snaps for p in s.rglob("*") if p.is_file() or p.is_symlink())
    result(any("config.json" in n for n in names) and "model.safetensors" in names,
           f"init container: hub cache holds {names} in {[s.name for s in snaps]} (revision {rev})")


def phase_offline(r: Rendered, args) -> None:
    c = r.container(init=False)
    env = r.env(c, args.work / "cache-init")
    result(env.get("HF_HUB_OFFLINE") == "1", "server container sets HF_HUB_OFFLINE=1 after the init container")
    before = hub_requests(args.hub_log)
    t0 = time.monotonic()
    p, port = start(args.bin, env, args.work / "server-offline.log")
    try:
        ready = False
        while time.monotonic() - t0 < args.timeout and p.poll() is None:
            if get(port, "/health/ready")[0] == 200:
                ready = True
                break
            time.sleep(0.25)
        if result(ready, f"offline: ready on the prefilled cache after {time.monotonic() - t0:.1f}s (exit code {p.poll()})"):
            result(embed_ok(port), "offline: inference /embed 200")
        n = hub_requests(args.hub_log) - before
        result(n == 0, f"offline: {n} requests reached the hub while the server loaded")
    finally:
        stop(p)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=["slow-load", "init", "offline"])
    ap.add_argument("rendered", type=Path)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--hub-log", type=Path, required=True)
    ap.add_argument("--secret", action="append", default=[], metavar="NAME/KEY=VALUE")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--delay", type=float, default=0, help="the hub's delay, for the messages")
    ap.add_argument("--timeout", type=float, default=90)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    secrets = dict(s.split("=", 1) for s in args.secret)
    r = Rendered(args.rendered, secrets, args.work)
    {"slow-load": phase_slow_load, "init": phase_init, "offline": phase_offline}[args.phase](r, args)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
