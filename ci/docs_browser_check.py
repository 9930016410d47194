#!/usr/bin/env python3
"""Open pipeserve's /docs page in a real headless Chromium and use it as a person would.

    python3 ci/docs_browser_check.py --bin target/release/pipeserve \
        --model-dir models/all-MiniLM-L6-v2 [--screenshot docs/docs-page.png]

Starts the server with --api-key, drives Chromium over the DevTools protocol (on a pipe:
--remote-debugging-pipe, no port and no extra package), and checks: the page renders the
routes from /openapi.json (the Inference API, TEI, OpenAI and KServe v2 ones); every request the
page makes goes to the server itself and the browser reports no error (a Content-Security-Policy
violation included); "Try it out" on POST /embed answers 401 without the key, and 200 with an
embedding once the key is entered under "Authorize". Optionally saves a screenshot.
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

KEY = "docs-check-key"


class Browser:
    """Chromium with the DevTools protocol on fds 3 (commands in) and 4 (replies out)."""

    def __init__(self, binary: str, profile: str):
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds():
            # Out of the way first: either end may itself be fd 3 or 4.
            r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1600",
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            # close_fds would run after preexec_fn and close 3 and 4 again.
            close_fds=False, preexec_fn=fds,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        self.session: str | None = None

    def _read(self) -> dict:
        while b"\0" not in self._buf:
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            if "method" in reply:
                self.events.append(reply)

    def js(self, expression: str):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression: str, seconds: float, what: str):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {seconds}s waiting for {what}")

    def close(self):
        self.proc.kill()
        self.proc.wait()


# Swagger UI's DOM (5.x): an operation is .opblock.opblock-<method> with
# .opblock-summary-path[data-path]; "Try it out" is on (tryItOutEnabled), so a request body
# textarea and an Execute button show once the operation is expanded.
EMBED = "[...document.querySelectorAll('.opblock-post')].find(b => b.querySelector('.opblock-summary-path')?.dataset.path === '/embed')"
EXPAND = f"(() => {{ const b = {EMBED}; b.querySelector('.opblock-summary-control').click(); return true; }})()"
FILL_AND_EXECUTE = f"""(() => {{
  const b = {EMBED};
  const area = b.querySelector('textarea.body-param__text');
  if (!area) return false;
  // A React-controlled textarea: set the value natively, then tell React.
  Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value').set.call(area, '{{"inputs": "hello from /docs"}}');
  area.dispatchEvent(new Event('input', {{ bubbles: true }}));
  b.querySelector('button.execute').click();
  return true;
}})()"""
STATUS = f"(() => {{ const s = {EMBED}.querySelector('.live-responses-table tbody .response-col_status'); return s ? s.textContent.trim() : null; }})()"
BODY = f"(() => {{ const c = {EMBED}.querySelector('.live-responses-table tbody .microlight, .live-responses-table tbody pre'); return c ? c.textContent : null; }})()"
CLEAR = f"(() => {{ const c = {EMBED}.querySelector('.btn-clear'); if (c) c.click(); return true; }})()"
AUTHORIZE = f"""(() => {{
  document.querySelector('.auth-wrapper .btn.authorize').click();
  return true;
}})()"""
FILL_KEY = f"""(() => {{
  const input = document.querySelector('.modal-ux input[type=text], .modal-ux input[type=password]');
  if (!input) return false;
  Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(input, '{KEY}');
  input.dispatchEvent(new Event('input', {{ bubbles: true }}));
  document.querySelector('.modal-ux .auth-btn-wrapper .btn.modal-btn.authorize').click();
  document.querySelector('.modal-ux .btn-done, .modal-ux .close-modal').click();
  return true;
}})()"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    p.add_argument("--screenshot")
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="docs-check.")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(pathlib.Path(work) / "server.log", "w")
    server = subprocess.Popen([a.bin, "--model", a.model_dir, "--host", "127.0.0.1", "--port", str(port),
                               "--api-key", KEY], stdout=log, stderr=subprocess.STDOUT)
    browser = None
    errs: list[str] = []
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"{base}/health/ready", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.25)
        browser = Browser(a.chromium, str(pathlib.Path(work) / "profile"))
        target = browser.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        browser.session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable")
        browser.call("Page.navigate", {"url": f"{base}/docs"})
        n = browser.wait_for("document.querySelectorAll('.opblock').length", 30, "the operations to render")
        paths = set(browser.js("[...document.querySelectorAll('.opblock-summary-path')].map(e => e.dataset.path)"))
        print(f"/docs renders {n} operations")
        for want in ["/", "/predict", "/embed", "/rerank", "/v1/embeddings", "/v2/models/{name}/infer", "/v2/health/ready"]:
            if want not in paths:
                errs.append(f"route {want} not on the page")
        if not browser.js("!!document.querySelector('.auth-wrapper .btn.authorize')"):
            errs.append("no Authorize button (the document declares no security scheme?)")
        # Try it out, without the key, then with it.
        browser.js(EXPAND)
        browser.wait_for(FILL_AND_EXECUTE, 10, "the /embed request body and Execute button")
        status = browser.wait_for(STATUS, 30, "the /embed answer without a key")
        print(f"Try it out POST /embed without the key: {status}")
        if status != "401":
            errs.append(f"POST /embed from the page without the key: {status}, want 401")
        browser.js(CLEAR)
        browser.js(AUTHORIZE)
        browser.wait_for(FILL_KEY, 10, "the Authorize dialog")
        browser.wait_for(FILL_AND_EXECUTE, 10, "the Execute button")
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            status = browser.js(STATUS)
            if status == "200":
                break
            time.sleep(0.2)
        body = browser.js(BODY) or ""
        print(f"Try it out POST /embed with the key: {status}, body {body[:60]!r}...")
        if status != "200":
            errs.append(f"POST /embed from the page with the key: {status}, want 200")
        else:
            vectors = json.loads(body)
            if len(vectors) != 1 or len(vectors[0]) < 8:
                errs.append(f"POST /embed from the page: not one embedding: {body[:200]}")
        if a.screenshot:
            browser.js(f"{EMBED}.scrollIntoView()")
            browser.js("window.scrollTo(0, 0)")
            shot = browser.call("Page.captureScreenshot", {"format": "png"})
            pathlib.Path(a.screenshot).write_bytes(base64.b64decode(shot["data"]))
            print(f"screenshot: {a.screenshot}")
        # Everything the page asked for came from the server; the browser logged no error.
        urls = [e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"]
        foreign = [u for u in urls if not (u.startswith(base + "/") or u.startswith("data:"))]
        if foreign:
            errs.append(f"requests off the server: {foreign}")
        print(f"{len(urls)} requests, all to {base}" if not foreign else "")
        problems = [e["params"]["entry"] for e in browser.events if e["method"] == "Log.entryAdded"
                    and (e["params"]["entry"]["level"] == "error" or e["params"]["entry"].get("source") == "security")]
        problems += [e["params"] for e in browser.events if e["method"] == "Runtime.exceptionThrown"]
        # The 401 the first "Try it out" got is the expected answer, not a page error.
        problems = [pr for pr in problems if "401" not in pr.get("text", "") or "/embed" not in pr.get("url", pr.get("text", ""))]
        for pr in problems:
            errs.append(f"browser error: {json.dumps(pr)[:300]}")
    except Exception as e:  # noqa: BLE001 - any failure to drive the page is a failed check
        errs.append(f"{type(e).__name__}: {e}")
    finally:
        if browser:
            browser.close()
        server.terminate()
        server.wait(timeout=60)
    for e in errs:
        print("FAIL", e)
    print("ok" if not errs else f"{len(errs)} problems")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
