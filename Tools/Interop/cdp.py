"""A minimal Chrome DevTools Protocol client: start a headless Chromium, open its page target, evaluate
JavaScript in it. Only what the interop scenarios need (Runtime.evaluate), over the `websockets` package."""

import asyncio
import itertools
import json
import os
import signal
import subprocess
import urllib.request

# /usr/bin/chromium is a wrapper script that may fork; start the real browser so that the PID we hold
# is the browser's own and stopping it stops every child it spawned (renderers, GPU, utility processes).
CHROMIUM_BINARY = os.environ.get("BRAID_CHROMIUM", "/usr/lib/chromium/chromium")

# The flags PLATFORM.md measured: headless=new, fake camera and microphone, no permission prompt.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-gpu",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    # Headless tabs are never visible: keep timers and media running at full rate.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class CDPError(Exception):
    """A DevTools call failed, or the page threw."""


class Browser:
    """One headless Chromium process with its own user-data dir, showing one page."""

    def __init__(self, name, user_data_dir, log_path, extra_flags=()):
        self.name = name
        self.extra_flags = list(extra_flags)
        self.user_data_dir = user_data_dir
        self.log_path = log_path
        self.process = None
        self._ws = None
        self._ids = itertools.count(1)
        self._pending = {}
        self._reader = None

    async def start(self, url, timeout=20.0):
        """Starts the browser on `url` and connects to that page's DevTools socket."""
        import websockets  # noqa: PLC0415 (imported here so `--help` works without the venv)

        os.makedirs(self.user_data_dir, exist_ok=True)
        port_file = os.path.join(self.user_data_dir, "DevToolsActivePort")
        if os.path.exists(port_file):
            os.remove(port_file)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [CHROMIUM_BINARY, *CHROMIUM_FLAGS, *self.extra_flags, f"--user-data-dir={self.user_data_dir}", url],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        port = None
        while port is None:
            if self.process.poll() is not None:
                raise CDPError(f"{self.name}: chromium exited with {self.process.returncode} (see {self.log_path})")
            if loop.time() > deadline:
                raise CDPError(f"{self.name}: no DevToolsActivePort after {timeout:.0f} s (see {self.log_path})")
            try:
                with open(port_file) as f:
                    first = f.readline().strip()
                port = int(first) if first else None
            except (FileNotFoundError, ValueError):
                pass
            if port is None:
                await asyncio.sleep(0.1)
        page_ws = None
        while page_ws is None:
            if loop.time() > deadline:
                raise CDPError(f"{self.name}: no page target on DevTools port {port}")
            targets = await asyncio.to_thread(_get_json, f"http://127.0.0.1:{port}/json/list")
            page_ws = next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)
            if page_ws is None:
                await asyncio.sleep(0.1)
        self._ws = await websockets.connect(page_ws, max_size=16 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read())

    async def _read(self):
        try:
            async for message in self._ws:
                reply = json.loads(message)
                future = self._pending.pop(reply.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(reply)
        except Exception:  # noqa: BLE001 (connection gone: fail every waiting call below)
            pass
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CDPError(f"{self.name}: DevTools connection closed"))
        self._pending.clear()

    async def call(self, method, params=None, timeout=15.0):
        """Sends one DevTools command and returns its `result`."""
        if self._ws is None:
            raise CDPError(f"{self.name}: not connected")
        message_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self._ws.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        reply = await asyncio.wait_for(future, timeout)
        if "error" in reply:
            raise CDPError(f"{self.name}: {method}: {reply['error'].get('message')}")
        return reply["result"]

    async def evaluate(self, expression, timeout=15.0):
        """Evaluates `expression` in the page (awaiting a promise) and returns its JSON value."""
        result = await self.call("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
        }, timeout=timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"{self.name}: page threw: {text}")
        return result["result"].get("value")

    async def stop(self):
        """Closes the DevTools socket and stops the browser process group it started."""
        if self._ws is not None:
            try:
                await asyncio.wait_for(self._ws.close(), 2)
            except Exception:  # noqa: BLE001
                pass
        if self._reader is not None:
            self._reader.cancel()
        if self.process is not None and self.process.poll() is None:
            # The browser was started in its own session: its PID is the process group id of every
            # child it spawned, and nothing else is in that group.
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.to_thread(self.process.wait, 5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                await asyncio.to_thread(self.process.wait, 5)


def _get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())
