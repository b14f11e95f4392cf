"""Headless Chromium without network, driven over the DevTools protocol (standard library only).

Pages are checked the way a user sees them offline, by two locks on the network, either of
which holds alone (tests/test_browser.py checks that no request leaves):

- Chromium runs under `unshare --net` where the kernel allows it: in a network namespace of
  its own whose only interface, loopback, is down, so no host exists, not even this machine;
- its own settings send every request, loopback included, to a proxy on a closed port, and
  resolve no host name (containers without CAP_SYS_ADMIN, for instance, refuse namespaces).

The protocol goes over `--remote-debugging-pipe` (requests on the browser's fd 3, replies on
its fd 4, each a JSON message ending in a NUL byte): no port is opened.
"""

import functools
import json
import os
import select
import subprocess
import tempfile
import time
from base64 import b64decode
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1280,900",
    "--remote-debugging-pipe",
    "--proxy-server=socks5://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


@functools.cache
def network_namespace() -> tuple[str, ...]:
    """The `unshare` command that runs a program without network, or () where none is allowed.

    As root it needs CAP_SYS_ADMIN; otherwise a user namespace of its own grants that.
    """
    for unshare in (("unshare", "--net", "--"), ("unshare", "--map-root-user", "--net", "--")):
        try:
            if subprocess.run([*unshare, "true"], capture_output=True).returncode == 0:
                return unshare
        except FileNotFoundError:  # no util-linux
            return ()
    return ()


class BrowserError(Exception):
    """Chromium failed, a page threw, or a reply did not come in time."""


class OfflineBrowser:
    """One headless Chromium with one tab and no network, for `with` blocks."""

    def __init__(self, timeout: float = 60) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-")
        self._log = Path(self._profile.name) / "chromium.log"
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # bash (sh may not take fds above 9) moves the pipe ends to the fds Chromium reads and
        # writes, then execs unshare, which execs Chromium (or Chromium itself).
        shell = f'exec "$@" 3<&{commands_read} 4>&{replies_write}'
        argv = [
            *network_namespace(),
            str(CHROMIUM),
            *FLAGS,
            f"--user-data-dir={self._profile.name}",
        ]
        with self._log.open("w") as log:
            self._process = subprocess.Popen(
                ["bash", "-c", shell, "bash", *argv],
                pass_fds=(commands_read, replies_write),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        os.close(commands_read)
        os.close(replies_write)
        self._buffer = b""
        self._events: list[dict] = []
        self._next_id = 0
        try:
            target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
            attached = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})
            self._session = attached["sessionId"]
            self.send("Page.enable")
            self.send("Page.setLifecycleEventsEnabled", {"enabled": True})
        except BrowserError:
            self.close()
            raise

    def __enter__(self) -> "OfflineBrowser":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close Chromium (killed if it does not exit within seconds) and delete its profile."""
        if self._process.poll() is None:
            try:
                self._send("Browser.close")
                self._process.wait(timeout=10)
            except (BrowserError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for fd in (self._commands, self._replies):
            os.close(fd)
        self._profile.cleanup()

    def open(self, page: Path) -> None:
        """Load a file in the tab; return once its load event fired (images included)."""
        navigation = self.send("Page.navigate", {"url": page.resolve().as_uri()})
        if "errorText" in navigation:
            raise BrowserError(f"{page}: {navigation['errorText']}")
        self._wait_for(
            lambda event: (
                event.get("method") == "Page.lifecycleEvent"
                and event["params"]["name"] == "load"
                and event["params"]["loaderId"] == navigation["loaderId"]
            )
        )

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        reply = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description", details["text"]))
        return reply["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """Save the whole page, not only the window, as a PNG at `path`."""
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.send("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
        path.write_bytes(b64decode(shot["data"]))
        return path

    def send(self, method: str, params: dict | None = None) -> dict:
        """A DevTools command to the tab; its result."""
        return self._send(method, params, self._session)

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        reply = self._wait_for(lambda incoming: incoming.get("id") == self._next_id)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply["result"]

    def _wait_for(self, matches: Callable[[dict], bool]) -> dict:
        """The first message that `matches`; events read meanwhile are kept for later waits."""
        for event in self._events:
            if matches(event):
                self._events.remove(event)
                return event
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._read(deadline)
            if matches(message):
                return message
            if "method" in message:
                self._events.append(message)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise BrowserError(f"no reply from Chromium within {self.timeout} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium exited:\n{self._log.read_text()[-2000:]}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)
