"""Open the index and every report in headless Chromium, as a reader would, and say what is wrong with them: console
errors and uncaught exceptions, images that do not decode, links whose target (file or #anchor) is missing, and a
summary card (reports) or scorecard (index) not visible on the first screen. Screenshots of each first screen.

Dependency-free: Chromium's DevTools protocol over a pipe (--remote-debugging-pipe: commands on fd 3, replies on
fd 4, NUL-terminated JSON), so nothing but the Debian `chromium` package is needed, offline.

    python -m lib.running.browser OUTPUTS [SCREENSHOT_DIR]
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-pipe",
         "--allow-file-access-from-files"]
SCREEN = (1280, 800)  # the first screen: a laptop's browser window
FIRST_SCREEN = {"index.html": "scorecard"}  # page name -> element id that must show on the first screen
CARD = "summary-card"                       # every report's card (lib.running.report_html)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def _high(fd: int) -> int:
    """`fd` moved to a number of at least 10 (close-on-exec); the original is closed."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Chromium:
    """One headless Chromium with a fresh profile, driven over the DevTools pipe."""

    def __init__(self, binary: str, timeout: float = 60):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="lab-chromium-")
        # pipe ends moved above fd 10 so that placing the child's ends on 3 and 4 clobbers none of them
        to_child, self._w, self._r, from_child = (_high(fd) for fd in (*os.pipe(), *os.pipe()))

        def fds():  # the child reads commands on fd 3 and writes replies on fd 4
            os.dup2(to_child, 3, inheritable=True)
            os.dup2(from_child, 4, inheritable=True)

        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(to_child)
        os.close(from_child)
        self._buf, self._id, self.events = b"", 0, []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        w, h = SCREEN
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=w, height=h, deviceScaleFactor=1,
                  mobile=False)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.time()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method: str, session: bool = False, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> None:
        deadline = time.time() + self.timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read(deadline))

    def evaluate(self, expression: str):
        r = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True)
        return r.get("result", {}).get("value")

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


# every image that has not decoded (complete with a natural width) by the load event, after a short settle
_IMAGES = "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 100))"
_LINKS = "Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))"
_VISIBLE = """(() => { const e = document.getElementById(%s); if (!e) return 'missing';
  const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
  return (r.height > 0 && r.top < innerHeight && r.bottom > 0 && s.visibility !== 'hidden' && s.display !== 'none')
    ? 'ok' : 'not on the first screen (top ' + Math.round(r.top) + ' px, height ' + Math.round(r.height) + ')'; })()"""


def _errors(events: list) -> list[str]:
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append(f"uncaught exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(f"console error: {p['entry'].get('text')} {p['entry'].get('url', '')}".strip())
    return out


def _ids(page: Path, cache: dict) -> str:
    if page not in cache:
        cache[page] = page.read_text(encoding="utf-8", errors="replace")
    return cache[page]


def _link_problems(page: Path, hrefs: list, cache: dict) -> list[str]:
    """Relative links whose file is missing, and #anchors (on this page or another local page) that are not there."""
    out = []
    for href in hrefs or []:
        if href.startswith(("http://", "https://", "mailto:", "javascript:", "data:")):
            continue
        path, _, frag = href.partition("#")
        target = page if not path else (page.parent / urllib.parse.unquote(path.split("?")[0]))
        if not target.exists():
            out.append(f"broken link {href}: {target} does not exist")
            continue
        if frag and target.suffix == ".html":
            text = _ids(target, cache)  # the id as written, or percent-decoded (browsers try both)
            if not any(f"id={q}{f}{q}" in text for f in {frag, urllib.parse.unquote(frag)} for q in "\"'"):
                out.append(f"broken link {href}: no element with id {frag!r} in {target.name}")
    return out


def check_page(browser: Chromium, page: Path, screenshot: Path | None, cache: dict) -> list[str]:
    """Everything wrong with one page as Chromium shows it (empty: fine)."""
    browser.events.clear()
    browser.call("Page.navigate", session=True, url=page.resolve().as_uri())
    browser.wait_for("Page.loadEventFired")
    time.sleep(0.3)  # late console messages and image decodes
    browser.evaluate("1")  # flush events that arrived meanwhile
    problems = _errors(browser.events)
    problems += [f"image does not decode: {src}" for src in browser.evaluate(_IMAGES) or []]
    problems += _link_problems(page, browser.evaluate(_LINKS), cache)
    first = FIRST_SCREEN.get(page.name, CARD)
    seen = browser.evaluate(_VISIBLE % json.dumps(first))
    if seen != "ok":
        problems.append(f"#{first}: {seen}")
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        shot = browser.call("Page.captureScreenshot", session=True, format="png")["data"]
        screenshot.write_bytes(base64.b64decode(shot))
    return [f"{page}: {p}" for p in problems]


def check_site(out: Path, screenshots: Path | None = None, binary: str | None = None) -> list[str]:
    """Open out/index.html and every out/<notebook>/<run>/report.html; screenshots go to `screenshots`
    (index.png, <notebook>__<run>.png). Returns every problem found."""
    binary = binary or find_chromium()
    if not binary:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install chromium)")
    pages = [out / "index.html", *sorted(out.glob("*/*/report.html"))]
    browser, cache, problems = Chromium(binary), {}, []
    try:
        for page in pages:
            name = "index" if page.name == "index.html" else f"{page.parent.parent.name}__{page.parent.name}"
            problems += check_page(browser, page, screenshots / f"{name}.png" if screenshots else None, cache)
    finally:
        browser.close()
    return problems


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__)
        return 2
    out = Path(args[0])
    problems = check_site(out, Path(args[1]) if len(args) > 1 else out / "screenshots")
    print("\n".join(problems) or f"{out}: every page is fine")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
