#!/usr/bin/env python3
"""Check the KServe manifests in deploy/kserve/ beyond their CRD schemas (ci/validate_crds.mjs).

    python3 ci/kserve_check.py config deploy/kserve
    python3 ci/kserve_check.py live deploy/kserve --bin target/release/pipeserve \
        --model-dir models/all-MiniLM-L6-v2

config: the ClusterServingRuntime and the ServingRuntime carry the same spec; the runtime loads
KServe's model folder (/mnt/models), names the model after the InferenceService ({{.Name}}), and
its HTTP port is the one its probes and its prometheus.kserve.io/port annotation use; each
InferenceService names the runtime, runs in Standard mode with prometheus.io annotations on that
port, and the gRPC example lists the runtime's two ports, HTTP first (Standard mode puts the
first on the Service's port 80) and a port named grpc.

live: runs the binary with the runtime's own args and env, the way KServe's pod would (after the
storage initializer filled /mnt/models): /mnt/models -> --model-dir, {{.Name}} -> the REST example
InferenceService's name, requests.cpu -> PIPESERVE_CPUS; deviations, printed: --host is
127.0.0.1 and the two ports are free ones, mapped onto the probes and the Prometheus port. Then:
every flag of the args is one the binary knows; the startup probe passes within its budget;
liveness and readiness and the v2 health routes answer 200; /v2/models/NAME names the model; a v2
infer with a BYTES input returns an FP32 [1, dim] tensor; the Prometheus path answers with
pipeserve's metrics; a batching limit the env sets is the one /info reports; the gRPC port
accepts connections; SIGTERM ends the server with 0.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import pathlib
import re
import socket
import subprocess
import sys
import tempfile
import time

import yaml

MODEL_MOUNT = "/mnt/models"  # KServe's DefaultModelLocalMountPath


def load(folder: pathlib.Path) -> dict[str, list[dict]]:
    docs: dict[str, list[dict]] = {}
    for f in sorted(folder.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                docs.setdefault(d["kind"], []).append(d)
    return docs


def flag(args: list[str], name: str) -> str | None:
    for a in args:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def runtime_facts(runtime: dict) -> dict:
    container = runtime["spec"]["containers"][0]
    args = container.get("args", [])
    return {
        "container": container,
        "args": args,
        "http_port": int(flag(args, "port") or 0),
        "grpc_port": int(flag(args, "grpc-port") or 0),
    }


def check_config(folder: pathlib.Path) -> list[str]:
    docs = load(folder)
    errs: list[str] = []
    cluster, namespaced = docs.get("ClusterServingRuntime", []), docs.get("ServingRuntime", [])
    if len(cluster) != 1 or len(namespaced) != 1:
        return [f"want one ClusterServingRuntime and one ServingRuntime, got {len(cluster)} and {len(namespaced)}"]
    if cluster[0]["spec"] != namespaced[0]["spec"]:
        errs.append("ClusterServingRuntime and ServingRuntime specs differ")
    if cluster[0]["metadata"]["name"] != namespaced[0]["metadata"]["name"]:
        errs.append("ClusterServingRuntime and ServingRuntime names differ")
    runtime = cluster[0]
    name = runtime["metadata"]["name"]
    facts = runtime_facts(runtime)
    args, port = facts["args"], facts["http_port"]
    if flag(args, "model") != MODEL_MOUNT:
        errs.append(f"--model is not KServe's model folder {MODEL_MOUNT}: {args}")
    if flag(args, "served-model-name") != "{{.Name}}":
        errs.append("--served-model-name is not {{.Name}} (the InferenceService's name)")
    if not port or not facts["grpc_port"] or port == facts["grpc_port"]:
        errs.append(f"--port and --grpc-port must both be set and differ: {args}")
    if port != 8080:
        errs.append(f"--port={port}: KServe (and Knative) send HTTP to 8080")
    if "ports" in facts["container"]:
        errs.append("the runtime declares ports: they would merge with an InferenceService's (Knative allows one)")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = facts["container"].get(probe, {}).get("httpGet")
        if not get:
            errs.append(f"{probe} missing")
        elif int(get["port"]) != port:
            errs.append(f"{probe} probes port {get['port']}, the server listens on {port}")
    annotations = runtime["spec"].get("annotations", {})
    if annotations.get("prometheus.kserve.io/port") != str(port):
        errs.append(f"prometheus.kserve.io/port {annotations.get('prometheus.kserve.io/port')} is not --port={port}")
    if annotations.get("prometheus.kserve.io/path") != "/metrics":
        errs.append("prometheus.kserve.io/path is not /metrics")
    isvcs = docs.get("InferenceService", [])
    if not isvcs:
        errs.append("no InferenceService example")
    for isvc in isvcs:
        where = f"InferenceService/{isvc['metadata']['name']}"
        model = isvc["spec"]["predictor"]["model"]
        if model.get("runtime") != name:
            errs.append(f"{where}: runtime {model.get('runtime')} is not {name}")
        if isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode") != "Standard":
            errs.append(f"{where}: not in Standard mode (the prometheus.io annotations assume no queue-proxy)")
        pod = isvc["spec"]["predictor"].get("annotations", {})
        want = {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"}
        if any(pod.get(k) != v for k, v in want.items()):
            errs.append(f"{where}: predictor annotations {pod} are not {want}")
        ports = model.get("ports")
        if ports is not None:
            if ports[0]["containerPort"] != port:
                errs.append(f"{where}: first port {ports[0]['containerPort']} is not the HTTP port {port}")
            grpc = [p for p in ports if "grpc" in p.get("name", "") or "h2c" in p.get("name", "")]
            if [p["containerPort"] for p in grpc] != [facts["grpc_port"]]:
                errs.append(f"{where}: no port named grpc on {facts['grpc_port']}")
    print(f"runtime {name}: args {args}; {len(isvcs)} InferenceService examples")
    return errs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, payload, {"content-type": "application/json"} if payload else {})
        r = conn.getresponse()
        return r.status, r.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


def check_live(folder: pathlib.Path, binary: str, model_dir: str) -> list[str]:
    docs = load(folder)
    runtime = docs["ClusterServingRuntime"][0]
    isvc = next(i for i in docs["InferenceService"] if "ports" not in i["spec"]["predictor"]["model"])
    name = isvc["metadata"]["name"]
    facts = runtime_facts(runtime)
    container = facts["container"]
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    errs = [f"the binary has no {a.split('=')[0]}" for a in facts["args"] if a.split("=")[0] not in help_text]
    if errs:
        return errs
    http_port, grpc_port = free_port(), free_port()
    substitute = {"port": str(http_port), "grpc-port": str(grpc_port), "host": "127.0.0.1"}
    args = []
    for a in facts["args"]:
        key = a[2:].split("=", 1)[0]
        a = a.replace("{{.Name}}", name).replace(MODEL_MOUNT, model_dir)
        args.append(f"--{key}={substitute[key]}" if key in substitute else a)
    cpu = isvc["spec"]["predictor"]["model"]["resources"]["requests"]["cpu"]
    env = {"PATH": "/usr/bin:/bin", "HOME": tempfile.mkdtemp()}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif e.get("valueFrom", {}).get("resourceFieldRef", {}).get("resource") == "requests.cpu":
            env[e["name"]] = str(math.ceil(float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)))
    print(f"as KServe's pod, with deviations: --host=127.0.0.1, --port={http_port} (8080), "
          f"--grpc-port={grpc_port} (8081), {MODEL_MOUNT} -> {model_dir}")
    print("args:", " ".join(args), "| env:", {k: v for k, v in env.items() if k not in ("PATH", "HOME")})
    log = open(pathlib.Path(env["HOME"]) / "server.log", "w+")
    server = subprocess.Popen([binary, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        startup = container["startupProbe"]
        budget = startup["periodSeconds"] * startup["failureThreshold"]
        t0 = time.monotonic()
        while request(http_port, "GET", startup["httpGet"]["path"])[0] != 200:
            if time.monotonic() - t0 > budget or server.poll() is not None:
                log.seek(0)
                return [f"startup probe {startup['httpGet']['path']} did not pass in {budget}s: {log.read()[-2000:]}"]
            time.sleep(0.25)
        print(f"startup probe passed after {time.monotonic() - t0:.1f}s")
        paths = [container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")]
        for path in [*paths, "/v2/health/live", "/v2/health/ready", f"/v2/models/{name}/ready"]:
            status, _ = request(http_port, "GET", path)
            if status != 200:
                errs.append(f"GET {path}: {status}")
        status, body = request(http_port, "GET", f"/v2/models/{name}")
        if status != 200 or json.loads(body).get("name") != name:
            errs.append(f"GET /v2/models/{name}: {status} {body[:200]!r}")
        infer = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["KServe calls pipeserve."]}]}
        status, body = request(http_port, "POST", f"/v2/models/{name}/infer", infer)
        if status != 200:
            errs.append(f"POST /v2/models/{name}/infer: {status} {body[:300]!r}")
        else:
            out = json.loads(body)["outputs"][0]
            print(f"v2 infer: {out['name']} {out['datatype']} {out['shape']}")
            if out["datatype"] != "FP32" or len(out["shape"]) != 2 or out["shape"][0] != 1:
                errs.append(f"v2 infer output {out['datatype']} {out['shape']}")
        # The runtime's batching env reached the server (the chart's runtime sets both).
        status, body = request(http_port, "GET", "/info")
        info = json.loads(body) if status == 200 else {}
        for var, field in (("PIPESERVE_MAX_BATCH_TOKENS", "max_batch_tokens"), ("PIPESERVE_MAX_QUEUE", "max_concurrent_requests")):
            if var in env and str(info.get(field)) != env[var]:
                errs.append(f"{var}={env[var]} but /info {field} is {info.get(field)}")
        annotations = runtime["spec"]["annotations"]
        assert int(annotations["prometheus.kserve.io/port"]) == 8080  # the --port the config check pins
        status, body = request(http_port, "GET", annotations["prometheus.kserve.io/path"])
        if status != 200 or not re.search(rb"^pipeserve_requests_total", body, re.M):
            errs.append(f"GET {annotations['prometheus.kserve.io/path']}: {status}, no pipeserve_requests_total")
        try:
            socket.create_connection(("127.0.0.1", grpc_port), timeout=5).close()
            print(f"gRPC port {grpc_port} accepts connections")
        except OSError as e:
            errs.append(f"gRPC port {grpc_port}: {e}")
    finally:
        server.terminate()
        try:
            rc = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            rc = "killed after 60s"
    if rc != 0:
        errs.append(f"exit status after SIGTERM: {rc}")
    return errs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["config", "live"])
    p.add_argument("folder", type=pathlib.Path)
    p.add_argument("--bin")
    p.add_argument("--model-dir")
    a = p.parse_args()
    errs = check_config(a.folder) if a.mode == "config" else check_live(a.folder, a.bin, a.model_dir)
    for e in errs:
        print("FAIL", e)
    print("ok" if not errs else f"{len(errs)} problems")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
