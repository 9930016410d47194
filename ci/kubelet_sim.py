#!/usr/bin/env python3
"""Run pipeserve exactly as a rendered chart's Deployment says, and act as the kubelet would.

    helm template ci helm/pipeserve -f helm/pipeserve/ci/hostpath-values.yaml > rendered.yaml
    python3 ci/kubelet_sim.py rendered.yaml --bin target/release/pipeserve \
        --host-path-map /var/lib/pipeserve/models=models

What comes from the rendering (nothing is duplicated here): the server container's args and
environment (env with $(VAR) expansion and resourceFieldRef, envFrom the batching ConfigMap),
volume mounts (emptyDir -> temporary folder, hostPath -> --host-path-map), runAsUser/runAsGroup
(via setpriv when run as root), the three probes (path, period, timeout, thresholds), the preStop
sleep and terminationGracePeriodSeconds, and the `helm test` pod's script.

Two deliberate deviations, printed at start: PIPESERVE_HOST is 127.0.0.1 (loopback only) and
PIPESERVE_PORT is a free port, to which the probes' named port `http` is mapped.

Sequence: start; startup probe until it passes (or failureThreshold -> FAIL); liveness and
readiness probes in the background from then on; the helm test script; concurrent load; then
termination as the kubelet does it: preStop sleep, SIGTERM, wait for exit up to the grace period
(SIGKILL -> FAIL). Load keeps coming during preStop and until SIGTERM + drain delay - 1 s (routers
that have not yet seen the endpoint removal), then stops issuing; 0.5 s before the drain delay
ends a few heavy "straggler" requests go out, still running when the listener closes. Pass: every request got an HTTP
response, every well-formed one a 200, no probe failed before SIGTERM, readiness turned 503 after
SIGTERM while inference still answered 200, exit code 0 within the grace period.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402

T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"  [{time.monotonic() - T0:6.2f}s] {msg}", flush=True)


def quantity(q) -> float:
    s = str(q)
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", s)
    if not m:
        raise ValueError(f"quantity {q!r}")
    return float(m.group(1)) * units.get(m.group(2), 1)


def seconds(d: str) -> float:
    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)\s*(ms|s|m|h)", d):
        total += float(num) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, timeout: float) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


class Pod:
    def __init__(self, docs: list[dict], args):
        self.args = args
        deploy = next(d for d in docs if d.get("kind") == "Deployment")
        self.configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d.get("kind") == "ConfigMap"}
        self.test_pod = next((d for d in docs if d.get("kind") == "Pod"
                              and d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"), None)
        self.spec = deploy["spec"]["template"]["spec"]
        self.c = next(c for c in self.spec["containers"] if c["name"] == "server")
        self.grace = self.spec.get("terminationGracePeriodSeconds", 30)
        pre = self.c.get("lifecycle", {}).get("preStop", {})
        if pre and "sleep" not in pre:
            raise SystemExit("FAIL preStop is not the native sleep action (the image has no shell)")
        self.prestop = pre.get("sleep", {}).get("seconds", 0)
        self.tmp = Path(tempfile.mkdtemp(prefix="kubelet-sim-"))
        os.chmod(self.tmp, 0o755)  # traversable by runAsUser
        self.port = free_port()
        self.container_port = next(p["containerPort"] for p in self.c["ports"] if p["name"] == "http")
        self.mounts = self._mounts()
        self.env = self._env()

    def _mounts(self) -> dict[str, Path]:
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        host_map = dict(m.split("=", 1) for m in self.args.host_path_map)
        sc = self.spec.get("securityContext", {})
        mounts = {}
        for m in self.c.get("volumeMounts", []):
            v = volumes[m["name"]]
            if "emptyDir" in v:
                local = self.tmp / "volumes" / m["name"]
                local.mkdir(parents=True)
                os.chmod(local.parent, 0o755)
                if os.geteuid() == 0 and "runAsUser" in sc:
                    os.chown(local, sc["runAsUser"], sc.get("fsGroup", sc.get("runAsGroup", 0)))
                os.chmod(local, 0o2770)
            elif "hostPath" in v:
                local = Path(host_map.get(v["hostPath"]["path"], v["hostPath"]["path"])).resolve()
                if v["hostPath"].get("type") == "Directory" and not local.is_dir():
                    raise SystemExit(f"FAIL hostPath {local} is not a directory (kubelet would refuse)")
            else:
                raise SystemExit(f"FAIL volume {m['name']}: only emptyDir and hostPath can be simulated")
            mounts[m["mountPath"].rstrip("/")] = local
        return mounts

    def _map_path(self, value: str) -> str:
        for mount, local in sorted(self.mounts.items(), key=lambda kv: -len(kv[0])):
            if value == mount or value.startswith(mount + "/"):
                return str(local) + value[len(mount):]
        return value

    def _resource_field(self, ref: dict) -> str:
        res, _, kind = ref["resource"].partition(".")
        amount = self.c.get("resources", {}).get(res, {}).get(kind)
        if amount is None:
            amount = os.cpu_count() if kind == "cpu" else 8 * 2**30  # node allocatable stand-in
        return str(math.ceil(quantity(amount) / quantity(ref.get("divisor", "1"))))

    def _env(self) -> dict[str, str]:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
        for src in self.c.get("envFrom", []):
            env.update(self.configmaps[src["configMapRef"]["name"]])
        for e in self.c.get("env", []):
            if "value" in e:
                val = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), str(e["value"]))
            elif "resourceFieldRef" in e.get("valueFrom", {}):
                val = self._resource_field(e["valueFrom"]["resourceFieldRef"])
            elif "configMapKeyRef" in e.get("valueFrom", {}):
                r = e["valueFrom"]["configMapKeyRef"]
                val = self.configmaps[r["name"]][r["key"]]
            else:
                raise SystemExit(f"FAIL env {e['name']}: unsupported valueFrom")
            env[e["name"]] = val
        if env.get("PIPESERVE_PORT") != str(self.container_port):
            raise SystemExit(f"FAIL PIPESERVE_PORT={env.get('PIPESERVE_PORT')} but containerPort http={self.container_port}")
        env = {k: self._map_path(v) for k, v in env.items()}
        env["PIPESERVE_HOST"] = "127.0.0.1"
        env["PIPESERVE_PORT"] = str(self.port)
        return env

    def command(self) -> list[str]:
        if self.c.get("command"):
            raise SystemExit("FAIL container overrides the image entrypoint; cannot map it to the binary")
        cmd = [str(Path(self.args.bin).resolve())] + [self._map_path(a) for a in self.c.get("args", [])]
        sc = {**self.spec.get("securityContext", {}), **self.c.get("securityContext", {})}
        if os.geteuid() == 0 and "runAsUser" in sc and shutil.which("setpriv"):
            cmd = ["setpriv", f"--reuid={sc['runAsUser']}", f"--regid={sc.get('runAsGroup', sc['runAsUser'])}",
                   "--clear-groups", "--inh-caps=-all", "--no-new-privs", "--"] + cmd
        return cmd

    def probe(self, kind: str) -> dict:
        p = self.c[kind]
        assert p["httpGet"]["port"] in ("http", self.container_port), p
        return p


class Prober(threading.Thread):
    """A kubelet probe loop: GET every periodSeconds with timeoutSeconds; records every result."""

    def __init__(self, pod: Pod, kind: str):
        super().__init__(daemon=True)
        self.pod, self.kind, self.p = pod, kind, pod.probe(kind)
        self.results: list[tuple[float, int | None]] = []
        self.stop = threading.Event()

    def check(self) -> tuple[bool, int | None]:
        status = http_get(self.pod.port, self.p["httpGet"]["path"], self.p.get("timeoutSeconds", 1))
        self.results.append((time.monotonic(), status))
        return status is not None and 200 <= status < 400, status

    def run(self):
        while not self.stop.wait(self.p.get("periodSeconds", 10)):
            self.check()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rendered", type=Path)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--host-path-map", action="append", default=[], metavar="NODE_PATH=LOCAL_PATH")
    ap.add_argument("--load-seconds", type=float, default=8, help="load before termination starts")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--stragglers", type=int, default=4, help="heavy requests sent just before the listener closes")
    ap.add_argument("--log", type=Path, help="server stdout/stderr go here")
    args = ap.parse_args()

    docs = [d for d in yaml.safe_load_all(args.rendered.read_text()) if d]
    pod = Pod(docs, args)
    failures: list[str] = []
    drain = seconds(pod.env.get("PIPESERVE_DRAIN_DELAY", "5s"))
    shutdown_timeout = seconds(pod.env.get("PIPESERVE_SHUTDOWN_TIMEOUT", "20s"))
    print(f"  deviations from the rendering: PIPESERVE_HOST=127.0.0.1 (was 0.0.0.0), PIPESERVE_PORT={pod.port} "
          f"(was {pod.container_port}; probes' port http mapped to it)")
    print(f"  env: " + " ".join(f"{k}={v}" for k, v in sorted(pod.env.items()) if k != "PATH"))
    print(f"  grace {pod.grace}s = preStop {pod.prestop}s + drain {drain:g}s + shutdown timeout {shutdown_timeout:g}s"
          f" + margin {pod.grace - pod.prestop - drain - shutdown_timeout:g}s")
    if pod.grace < pod.prestop + drain + shutdown_timeout:
        failures.append("grace period shorter than preStop + drain + shutdown timeout")

    logf = open(args.log or pod.tmp / "server.log", "wb")
    cmd = pod.command()
    log("start: " + " ".join(cmd))
    proc = subprocess.Popen(cmd, env=pod.env, cwd=pod.mounts.get("/tmp", pod.tmp), stdout=logf, stderr=subprocess.STDOUT)
    try:
        # Startup probe: first check right away, then every periodSeconds.
        sp = Prober(pod, "startupProbe")
        fails = 0
        while True:
            ok, status = sp.check()
            if ok:
                log(f"startupProbe passed ({sp.p['httpGet']['path']} -> {status}) after {len(sp.results)} checks")
                break
            fails += 1
            if proc.poll() is not None:
                failures.append(f"server exited with {proc.returncode} during startup")
                raise StopIteration
            if fails >= sp.p.get("failureThreshold", 3):
                failures.append(f"startupProbe failed {fails} times (kubelet would restart the container)")
                raise StopIteration
            time.sleep(sp.p.get("periodSeconds", 10))
        live, ready = Prober(pod, "livenessProbe"), Prober(pod, "readinessProbe")
        ok, status = ready.check()  # the first readiness check follows startup immediately
        if not ok:
            failures.append(f"readiness {status} right after startup passed")
        log(f"readinessProbe -> {status}: pod Ready")
        live.start()
        ready.start()

        # helm test pod script, pointed at this server.
        if pod.test_pod and shutil.which("curl") and shutil.which("sh"):
            tc = pod.test_pod["spec"]["containers"][0]
            tenv = {"PATH": os.environ["PATH"], **{e["name"]: e["value"] for e in tc.get("env", [])},
                    "BASE_URL": f"http://127.0.0.1:{pod.port}"}
            r = subprocess.run(tc["command"], env=tenv, capture_output=True, text=True, timeout=60)
            last = (r.stdout.strip().splitlines() or [""])[-1]
            log(f"helm test script: exit {r.returncode}: {last}")
            if r.returncode != 0:
                failures.append(f"helm test script failed: {r.stdout[-500:]} {r.stderr[-500:]}")

        stop = threading.Event()
        load_result: dict = {}
        lt = threading.Thread(target=lambda: load_result.update(
            r=loadgen.run(f"http://127.0.0.1:{pod.port}", 3600, args.concurrency, stop=stop)), daemon=True)
        lt.start()
        time.sleep(args.load_seconds)
        if proc.poll() is not None:
            failures.append(f"server exited with {proc.returncode} under load")
            raise StopIteration

        # Termination, kubelet style: preStop sleep (native), then SIGTERM, then the grace period.
        t_delete = time.monotonic()
        log(f"pod deleted: preStop sleep {pod.prestop}s (load continues)")
        time.sleep(pod.prestop)
        t_term = time.monotonic()
        log("SIGTERM")
        proc.send_signal(signal.SIGTERM)
        time.sleep(min(0.5, drain / 4))
        r_status = http_get(pod.port, pod.probe("readinessProbe")["httpGet"]["path"], 2)
        l_status = http_get(pod.port, pod.probe("livenessProbe")["httpGet"]["path"], 2)
        i_status, _, _ = loadgen.one("127.0.0.1", pod.port, "POST", "/embed", b'{"inputs":"draining"}', "application/json", 30)
        log(f"during drain: readiness {r_status}, liveness {l_status}, inference {i_status}")
        if r_status == 200 or r_status is None:
            failures.append(f"readiness answered {r_status} during drain (expected 503)")
        if i_status != 200:
            failures.append(f"inference answered {i_status} during drain (expected 200)")
        # Late routers keep sending until just before the drain delay ends.
        time.sleep(max(0.0, t_term + drain - 1.0 - time.monotonic()))
        stop.set()
        log("load stops issuing new requests; waiting for in-flight ones")
        # Stragglers: heavy requests sent 0.5 s before the listener closes, so they are still
        # running when it does; the server must finish them (within --shutdown-timeout).
        time.sleep(max(0.0, t_term + drain - 0.5 - time.monotonic()))
        heavy = json.dumps({"inputs": [loadgen.LONG] * 32}).encode()
        stragglers: list = []

        def straggle():
            t0 = time.monotonic()
            st, err, _ = loadgen.one("127.0.0.1", pod.port, "POST", "/embed", heavy, "application/json", shutdown_timeout + 10)
            stragglers.append((t0, time.monotonic(), st, err))
        sts = [threading.Thread(target=straggle, daemon=True) for _ in range(args.stragglers)]
        for t in sts:
            t.start()
        for t in sts:
            t.join(shutdown_timeout + 15)
        lt.join(shutdown_timeout + 10)
        closed_at = t_term + drain
        running = [x for x in stragglers if x[0] < closed_at < x[1]]
        log(f"stragglers: {len(stragglers)} sent 0.5s before the listener closed, {len(running)} still running at close, "
            f"statuses {[x[2] or x[3] for x in stragglers]}, finished {max((x[1] for x in stragglers), default=0) - closed_at:+.2f}s after close")
        # Answered is what counts: 200, or a 503 the server chose at admission (it predicted the
        # request could not finish within its deadline) — never a reset, a 504 or a 5xx failure.
        bad = [x for x in stragglers if x[2] not in (200, 503)]
        if bad or len(stragglers) != args.stragglers:
            failures.append(f"requests sent before the listener closed and not answered (200 or an admission 503): {[x[2] or x[3] for x in bad]}")
        try:
            rc = proc.wait(timeout=max(0.0, t_delete + pod.grace - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            failures.append(f"still running at the end of the grace period ({pod.grace}s): SIGKILL")
        t_exit = time.monotonic()
        log(f"exit code {rc}, {t_exit - t_term:.2f}s after SIGTERM, {t_exit - t_delete:.2f}s after deletion (grace {pod.grace}s)")
        after = loadgen.one("127.0.0.1", pod.port, "GET", "/health/live", b"", "", 2)[1]
        log(f"after exit: new connection -> {after}")
        if rc != 0:
            failures.append(f"exit code {rc}")

        res = load_result.get("r")
        if res is None:
            failures.append("load generator did not finish")
        else:
            log("load: " + loadgen.summary(res))
            for (path, status), n in res.statuses.items():
                malformed = path == "/embed" and status in (400, 413, 415, 422)
                if status != 200 and not malformed:
                    failures.append(f"{n} x {path} answered {status}")
            if res.conn_errors:
                failures.append(f"requests without an HTTP response: {dict(res.conn_errors)}")
            if not any(s == 200 for (_, s) in res.statuses):
                failures.append("no request succeeded")
        live.stop.set()
        ready.stop.set()
        for prober in (live, ready):
            before = [s for t, s in prober.results if t < t_term]
            bad = [s for s in before if s is None or not 200 <= s < 400]
            log(f"{prober.kind}: {len(before)} checks before SIGTERM, {len(bad)} failed")
            if bad:
                failures.append(f"{prober.kind} failed {len(bad)} times before termination: {bad}")
    except StopIteration:
        pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        logf.close()
    if failures:
        print("  server log tail:")
        print("\n".join("    " + l for l in Path(logf.name).read_text(errors="replace").splitlines()[-30:]))
        for f in failures:
            print(f"  FAIL {f}")
        return 1
    shutil.rmtree(pod.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
