#!/usr/bin/env python3
"""A Hugging Face hub stand-in on loopback: serves one local model folder as any repo id, the way
hf-hub's client (and the server's --download-only) fetches it. Standard library only.

    python3 ci/fake_hub.py models/all-MiniLM-L6-v2 --port 0 --token hf_ci --delay 8 --port-file p.txt

GET /{org}/{name}/resolve/{revision}/{file}: 404 for files the folder lacks; otherwise the file
with the headers the client reads (x-repo-commit, etag, content-range for Range requests). With
--token, requests without `Authorization: Bearer <token>` get 401 (a private repo). With --delay,
the body of every *.safetensors download waits that many seconds (a slow hub or a big model), so a
server loading from it stays in its loading state that long. Each request is logged on stdout
(method, path, range, status) so a caller can count what reached the hub.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", type=Path, help="write the bound port here")
    ap.add_argument("--token", default="")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--commit", default=COMMIT, help="commit sha every revision resolves to")
    args = ap.parse_args()
    root = args.folder.resolve()

    class Hub(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):  # our own one-line log below
            pass

        def send(self, status: int, body: bytes = b"", headers: dict | None = None):
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            print(f"{self.command} {self.path} range={self.headers.get('Range')} -> {status}", flush=True)

        def do_GET(self):
            if args.token and self.headers.get("Authorization") != f"Bearer {args.token}":
                return self.send(401, b'{"error":"Invalid credentials"}', {"Content-Type": "application/json"})
            m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self.path.split("?")[0])
            if not m:
                return self.send(404)
            f = (root / m.group(3)).resolve()
            if root not in f.parents or not f.is_file():
                return self.send(404, b'{"error":"Entry not found"}', {"X-Error-Code": "EntryNotFound"})
            data = f.read_bytes()
            headers = {"X-Repo-Commit": args.commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                       "Content-Type": "application/octet-stream"}
            rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if rng:
                start = int(rng.group(1))
                end = int(rng.group(2)) if rng.group(2) else len(data) - 1
                is_probe = rng.group(0) == "bytes=0-0"
                if f.suffix == ".safetensors" and not is_probe and args.delay:
                    time.sleep(args.delay)
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                return self.send(206, data[start:end + 1], headers)
            if f.suffix == ".safetensors" and args.delay:
                time.sleep(args.delay)
            return self.send(200, data, headers)

        do_HEAD = do_GET

    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Hub)
    srv.daemon_threads = True
    if args.port_file:
        args.port_file.write_text(str(srv.server_address[1]))
    print(f"fake hub on 127.0.0.1:{srv.server_address[1]} serving {root}", flush=True)
    # SIGTERM ends it cleanly (exit 0), like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
