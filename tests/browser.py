"""A headless Chromium driven over the DevTools protocol through a pipe, for tests that must see
a page as a browser renders it (the share page: tests/webhooks/share/test_browser.py).

Why this and not a library: Debian's `chromium` speaks the DevTools protocol itself on file
descriptors 3 and 4 (`--remote-debugging-pipe`, what Puppeteer and Playwright use underneath),
one JSON message per NUL-terminated frame. The few commands a test needs (open a tab at a size,
load a page, evaluate an expression, take a screenshot, collect console errors) are a page of
code on the standard library: no Python dependency, no chromedriver matched to the browser's
version, no second browser download (Playwright's Python package fetches a Node driver and
expects its own browser builds; selenium needs chromedriver). `make test` installs `chromium`
where missing (the Makefile's `browser` step).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any


class BrowserError(RuntimeError):
    pass


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise BrowserError("chromium is not installed: `make browser` installs Debian's package")
    return path


class Chromium:
    """One headless Chromium process and one tab in it, until the `with` block is left."""

    def __init__(self, profile_dir: Path, width: int, height: int, mobile: bool) -> None:
        self.width, self.height, self.mobile = width, height, mobile
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        self._buffer = b""
        self._session: str | None = None
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def as_fds_3_and_4() -> None:
            # Above 9 first, so that neither end is overwritten while the other moves to 3 or 4.
            high = [
                fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_read, from_browser_write)
            ]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [
                chromium_path(),
                "--headless",
                "--remote-debugging-pipe",
                "--no-sandbox",  # these machines run the tests as root
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--hide-scrollbars",
                f"--user-data-dir={profile_dir}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=as_fds_3_and_4,  # a few dup calls, nothing else
            close_fds=False,  # 3 and 4 must stay open; everything else here is close-on-exec
            start_new_session=True,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)

    def __enter__(self) -> Chromium:
        target = self.command("Target.createTarget", url="about:blank")["targetId"]
        attached = self.command("Target.attachToTarget", targetId=target, flatten=True)
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.command(f"{domain}.enable")
        self.command(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=self.mobile,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        os.close(self._to_browser)
        os.close(self._from_browser)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def command(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send one command (to the tab once attached) and wait for its answer; events that
        arrive meanwhile are kept in `events`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            if "method" in answer:
                self.events.append(answer)

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError("chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium exited (status {self.process.poll()})")
            self._buffer += chunk
        frame, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(frame)
        return message

    def wait_for_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event["method"] == method:
                    return event
            message = self._receive(deadline)
            if "method" in message:
                self.events.append(message)

    def load(self, url: str) -> None:
        """Navigate and wait for the load event (every image of the page fetched)."""
        answer = self.command("Page.navigate", url=url)
        if answer.get("errorText"):
            raise BrowserError(f"{url}: {answer['errorText']}")
        self.wait_for_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        answer = self.command(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the viewport), written to `path`."""
        data = self.command("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def console_errors(self) -> list[str]:
        """Errors the page's console showed: console.error calls, uncaught exceptions, and the
        browser's own (a resource that failed to load, a Content-Security-Policy violation)."""
        errors = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled" and params.get("type") == "error":
                errors.append(" ".join(str(arg.get("value")) for arg in params.get("args", [])))
            elif event["method"] == "Runtime.exceptionThrown":
                errors.append(str(params.get("exceptionDetails", {}).get("text")))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
        return errors
