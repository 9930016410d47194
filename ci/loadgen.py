#!/usr/bin/env python3
"""A small bounded HTTP load generator for pipeserve (loopback only, standard library).

    python3 ci/loadgen.py http://127.0.0.1:8000 --seconds 20 --concurrency 8

Each worker opens a fresh connection per request (so a closed listener shows up as a connection
error, not as a stale keep-alive socket) and cycles through a mix of requests: single and batched
embeddings on /embed, /predict, /v1/embeddings, a raw-text POST /, a malformed body (expects
4xx) and a GET /info. Used by ci/deploy-checks.sh for the Prometheus check and by
ci/kubelet_sim.py during the simulated pod termination.
"""
from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 12)


def default_mix() -> list[tuple[str, str, bytes, str]]:
    """(method, path, body, content-type)."""
    j = lambda o: json.dumps(o).encode()
    return [
        ("POST", "/embed", j({"inputs": "hello world"}), "application/json"),
        ("POST", "/embed", j({"inputs": [f"sentence number {i}" for i in range(8)]}), "application/json"),
        ("POST", "/predict", j({"inputs": "a short input"}), "application/json"),
        ("POST", "/v1/embeddings", j({"input": ["openai style", "request"], "model": "x"}), "application/json"),
        ("POST", "/", b"raw text body", "text/plain"),
        ("POST", "/embed", j({"inputs": [LONG] * 4}), "application/json"),
        ("POST", "/embed", b"{not json", "application/json"),
        ("GET", "/info", b"", ""),
    ]


@dataclass
class Result:
    statuses: Counter = field(default_factory=Counter)   # (path, status) -> count
    conn_errors: Counter = field(default_factory=Counter)  # (path, error kind) -> count
    latencies: list = field(default_factory=list)
    spans: list = field(default_factory=list)  # (start, end, status or None), monotonic clock
    lock: threading.Lock = field(default_factory=threading.Lock)

    def total(self) -> int:
        return sum(self.statuses.values()) + sum(self.conn_errors.values())


def one(host: str, port: int, method: str, path: str, body: bytes, ctype: str, timeout: float):
    """Returns (status or None, error kind or None, response body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        try:
            conn.connect()
        except OSError as e:
            return None, "connect:" + type(e).__name__, b""
        headers = {"content-type": ctype} if ctype else {}
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, None, data
        except (OSError, http.client.HTTPException) as e:
            return None, "after-connect:" + type(e).__name__, b""
    finally:
        conn.close()


def run(base: str, seconds: float, concurrency: int, mix=None, stop: threading.Event | None = None,
        timeout: float = 60.0, max_requests: int = 100_000) -> Result:
    """Runs until `seconds` elapse, `stop` is set, or max_requests were issued; waits for in-flight."""
    u = urllib.parse.urlsplit(base)
    host, port = u.hostname, u.port
    assert host in ("127.0.0.1", "localhost", "::1"), "loopback only"
    mix = mix or default_mix()
    res = Result()
    deadline = time.monotonic() + seconds
    stop = stop or threading.Event()
    issued = [0]

    def worker(k: int):
        i = k
        while time.monotonic() < deadline and not stop.is_set():
            with res.lock:
                if issued[0] >= max_requests:
                    return
                issued[0] += 1
            method, path, body, ctype = mix[i % len(mix)]
            i += 1
            t0 = time.monotonic()
            status, err, _ = one(host, port, method, path, body, ctype, timeout)
            with res.lock:
                res.spans.append((t0, time.monotonic(), status))
                if status is not None:
                    res.statuses[(path, status)] += 1
                    res.latencies.append(time.monotonic() - t0)
                else:
                    res.conn_errors[(path, err)] += 1

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + timeout + 5)
    return res


def summary(res: Result) -> str:
    by_status = Counter()
    for (_, s), n in res.statuses.items():
        by_status[s] += n
    lat = sorted(res.latencies)
    p = lambda q: f"{lat[min(len(lat) - 1, int(q * len(lat)))] * 1000:.0f}ms" if lat else "-"
    errs = dict(res.conn_errors)
    return (f"{res.total()} requests, status {dict(sorted(by_status.items()))}, "
            f"p50 {p(0.5)} p99 {p(0.99)}" + (f", connection errors {errs}" if errs else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base_url")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    res = run(args.base_url, args.seconds, args.concurrency)
    print(summary(res))
    for (path, status), n in sorted(res.statuses.items()):
        print(f"  {path:16} {status}  {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
