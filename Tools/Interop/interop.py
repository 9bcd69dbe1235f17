"""The Braid WebRTC interop suite: real Chromium and aiortc peers against a real braid-node on loopback.

Starts the node (its own HTTP port, an ephemeral UDP media port, log to a file), serves the test pages
from a loopback http.server, runs every scenario with a timeout, prints one PASS/FAIL line per scenario
with what it measured, and stops everything it started. Exit status 1 when any scenario fails.
Run it through Tools/Interop/run.sh, which picks the virtual environment and the node binary.
"""

import argparse
import asyncio
import contextlib
import functools
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from cdp import Browser, CDPError
from lossy_link import LossyLink

HERE = os.path.dirname(os.path.abspath(__file__))
PUBLISH_ROOM = "chromium-sim"
DEMO_ROOM = "demo"
AIORTC_ROOM = "aiortc"
MESH_ROOM = "aiortc-mesh"
SAMPLE_SECONDS = 10
CAP_BPS = 150_000
LOSSY_SECONDS = 15          # each lossy-link measurement window
LOSSY_LEVELS = (0.2, 0.5)   # RTP dropped toward the subscribers


class ScenarioFailure(Exception):
    """A scenario step did not see what it expected. The message names the step and what was seen."""


# ---------------------------------------------------------------------------------------------------------
# Node and page server

def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(method, url, body=None, content_type=None, timeout=5):
    """Returns (status, body text); HTTP errors are returned, not raised."""
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


class Node:
    """One braid-node process on loopback; `extra_args` add flags (the cluster options of a mesh node)."""

    def __init__(self, binary, log_path, extra_args=()):
        self.binary = binary
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.process = None
        self.base = None

    def start(self):
        port = free_tcp_port()
        self.base = f"http://127.0.0.1:{port}"
        log = open(self.log_path, "ab")
        # Only the flags below configure this node: a developer's BRAID_* settings (and the suite's own
        # BRAID_INTEROP_* variables, which the node would warn about) stay out of its environment.
        environment = {key: value for key, value in os.environ.items() if not key.startswith("BRAID_")}
        # SIGTERM drains: peers that left without DELETE (aiortc) count until consent expires, so keep it short.
        drain = [] if "--drain-timeout-seconds" in self.extra_args else ["--drain-timeout-seconds", "3"]
        self.process = subprocess.Popen(
            [self.binary, "--http-address", "127.0.0.1", "--admin-port", "0", "--http-port", str(port), "--media-address", "127.0.0.1",
             "--media-port", "0", "--log-level", "debug"] + drain + self.extra_args,
            env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                status, _ = http_request("GET", f"{self.base}/healthz", timeout=1)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"braid-node did not answer /healthz within 20 s (log {self.log_path})")

    def check_alive(self):
        if self.process.poll() is not None:
            raise ScenarioFailure(f"braid-node exited with status {self.process.returncode} (log {self.log_path})")

    async def status(self):
        self.check_alive()
        status, body = await asyncio.to_thread(http_request, "GET", f"{self.base}/api/v1/node")
        if status != 200:
            raise ScenarioFailure(f"GET /api/v1/node: HTTP {status}")
        return json.loads(body)

    async def session(self, session_id):
        for entry in (await self.status()).get("sessions", {}).get("list", []):
            if entry.get("id") == session_id:
                return entry
        return None

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class Etcd:
    """A real etcd (/usr/bin/etcd, Debian etcd-server) on free loopback ports with a data directory of its own."""

    def __init__(self, work_dir):
        self.work_dir = work_dir
        self.process = None
        self.url = None

    def start(self):
        binary = shutil.which("etcd") or "/usr/bin/etcd"
        if not os.path.exists(binary):
            raise ScenarioFailure("etcd is not installed (Tools/install-deps.sh installs etcd-server)")
        client, peer = free_tcp_port(), free_tcp_port()
        self.url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        data = os.path.join(self.work_dir, "etcd-data")
        shutil.rmtree(data, ignore_errors=True)
        log = open(os.path.join(self.work_dir, "etcd.log"), "ab")
        self.process = subprocess.Popen(
            [binary, "--name", "braid-interop", "--data-dir", data, "--listen-client-urls", self.url,
             "--advertise-client-urls", self.url, "--listen-peer-urls", peer_url,
             "--initial-advertise-peer-urls", peer_url, "--initial-cluster", f"braid-interop={peer_url}",
             "--log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ScenarioFailure(f"etcd exited with status {self.process.returncode} (log {self.work_dir}/etcd.log)")
            with contextlib.suppress(OSError):
                if http_request("GET", f"{self.url}/health", timeout=1)[0] == 200:
                    return
            time.sleep(0.1)
        raise ScenarioFailure(f"etcd not healthy within 20 s (log {self.work_dir}/etcd.log)")

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def start_page_server():
    handler = functools.partial(QuietHandler, directory=os.path.join(HERE, "pages"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------------------------------------------------
# Measuring

def deltas(series):
    return [b - a for a, b in zip(series, series[1:])]


def check_rising(what, series, step):
    """Passes when the series grew over the whole window and in at least 8 of every 10 one-second steps
    (a loaded 2-core machine may stall a peer for a moment; a stopped stream fails)."""
    steps = deltas(series)
    rising = sum(1 for d in steps if d > 0)
    if len(steps) < SAMPLE_SECONDS or series[-1] <= series[0] or rising * 10 < len(steps) * 8:
        raise ScenarioFailure(f"{step}: {what} not rising: series {series} (per-second {steps})")
    return steps


async def wait_for(predicate, timeout, interval=0.5):
    """Polls `predicate` (async, returns a value or None) until it returns a value; None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(interval)


def find_layer_status(value, path="$"):
    """Every list named `layers` in the node JSON whose entries look like simulcast layers (have a rid),
    with its JSON path: the per-track layer status the forwarding core reports."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "layers" and isinstance(child, list) and any(isinstance(e, dict) and "rid" in e for e in child):
                found.append((f"{path}.{key}", child))
            else:
                found.extend(find_layer_status(child, f"{path}.{key}"))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(find_layer_status(child, f"{path}[{index}]"))
    return found


def layer_counter(layer):
    for key in ("packets", "packets_received", "bitrate_bps"):
        if isinstance(layer.get(key), (int, float)):
            return key, layer[key]
    return None, None


def session_id_of_resource(resource):
    """The dashboard's id of the session whose secret resource (the Location's last component) is `resource`:
    the first 128 bits of HMAC-SHA256 under the node's fixed label (WebRTCSessions.sessionID(ofResource:))."""
    return hmac.new(b"braid session id", resource.encode(), hashlib.sha256).digest()[:16].hex()


def session_id_from(location, step):
    if not location or "/" not in location:
        raise ScenarioFailure(f"{step}: no usable Location header (got {location!r})")
    return session_id_of_resource(location.rstrip("/").rsplit("/", 1)[1])


# ---------------------------------------------------------------------------------------------------------
# Scenarios

class Suite:
    def __init__(self, node, pages_base, work_dir):
        self.node = node
        self.pages_base = pages_base
        self.work_dir = work_dir
        self.browsers = []
        self.processes = []
        self.publisher = None        # the Chromium simulcast publisher (a)
        self.subscriber = None       # the Chromium WHEP subscriber (b)
        self.subscriber_playing = False
        self.aiortc_publisher = None
        self.mesh_parts = []         # the aiortc-mesh scenario's nodes, then its etcd (stopped in that order)
        self.mesh_nodes = {}         # its nodes by name, and its aiortc publisher on mesh-a
        self.mesh_publisher = None

    async def browser(self, name, page, extra_flags=()):
        browser = Browser(name, os.path.join(self.work_dir, f"{name}-profile"),
                          os.path.join(self.work_dir, f"{name}.log"), extra_flags)
        self.browsers.append(browser)
        await browser.start(f"{self.pages_base}/{page}")
        return browser

    async def wait_page_connected(self, browser, timeout, step):
        async def connected():
            state = await browser.evaluate("window.braidState || null")
            if state and (state.get("error") or state.get("step") == "connected"):
                return state
            return None
        state = await wait_for(connected, timeout)
        if state is None:
            last = await browser.evaluate("window.braidState || null") or {}
            seen = f"page at step {last.get('step')!r}, connection {last.get('connectionState')!r}"
            if last.get("location"):
                # The node's side of the same session tells whether ICE or DTLS stalled.
                entry = await self.node.session(session_id_of_resource(last["location"].rstrip("/").rsplit("/", 1)[-1]))
                seen += "; node session absent" if entry is None else \
                    f"; node session ice_state {entry.get('ice_state')!r}, dtls_state {entry.get('dtls_state')!r}"
            raise ScenarioFailure(f"{step}: not connected after {timeout} s: {seen}")
        if state.get("error"):
            error = state["error"]
            if "Failed to fetch" in error:
                # The browser hides why a cross-origin request failed: ask the endpoint directly.
                error += f" ({await self.probe(state)})"
            raise ScenarioFailure(f"{step}: {error}")
        return state

    async def probe(self, state):
        """What the node answers to the CORS preflight and to a bodiless POST on the page's endpoint."""
        endpoint = state["step"].split(" ", 1)[1] if state["step"].startswith("POST ") else None
        if endpoint is None:
            return "no endpoint to probe"
        seen = []
        for method, payload, content_type in (("OPTIONS", None, None), ("POST", b"", "application/sdp")):
            try:
                status, reply = await asyncio.to_thread(http_request, method, endpoint, payload, content_type)
                seen.append(f"{method} -> HTTP {status} {reply.strip()[:80]!r}")
            except OSError as error:
                seen.append(f"{method} -> {error}")
        return "the node answers " + ", ".join(seen)

    async def wait_session_connected(self, session_id, step, timeout=15):
        async def connected():
            entry = await self.node.session(session_id)
            if entry and entry.get("ice_state") == "connected" and entry.get("dtls_state") == "connected":
                return entry
            return None
        entry = await wait_for(connected, timeout)
        if entry is None:
            entry = await self.node.session(session_id)
            seen = "absent from sessions.list" if entry is None else \
                f"ice_state {entry.get('ice_state')!r}, dtls_state {entry.get('dtls_state')!r}"
            raise ScenarioFailure(f"{step}: node session {session_id} not connected after {timeout} s: {seen}")
        return entry

    async def sample_node_rtp(self, session_id, step):
        packets, octets = [], []
        for second in range(SAMPLE_SECONDS + 1):
            entry = await self.node.session(session_id)
            if entry is None:
                raise ScenarioFailure(f"{step}: session {session_id} vanished from the node after {second} s")
            if entry.get("ice_state") != "connected":
                raise ScenarioFailure(f"{step}: session ice_state became {entry.get('ice_state')!r} at {second} s")
            counter = entry.get("counters", {}).get("rtp_received", {})
            packets.append(counter.get("packets", 0))
            octets.append(counter.get("bytes", 0))
            if second < SAMPLE_SECONDS:
                await asyncio.sleep(1)
        per_second = check_rising("counters.rtp_received.packets", packets, step)
        kbps = (octets[-1] - octets[0]) * 8 / SAMPLE_SECONDS / 1000
        return per_second, kbps, entry

    # (a) -------------------------------------------------------------------------------------------------
    async def chromium_whip_simulcast(self):
        step = "publish page"
        endpoint = f"{self.node.base}/whip/{PUBLISH_ROOM}"
        self.publisher = await self.browser("publisher", f"publish.html?whip={endpoint}")
        state = await self.wait_page_connected(self.publisher, 20, step)
        session_id = session_id_from(state.get("location"), "WHIP Location")
        answer = state.get("answer") or ""
        rids = [line for line in answer.splitlines() if line.startswith("a=simulcast")]
        entry = await self.wait_session_connected(session_id, "node session")
        per_second, kbps, entry = await self.sample_node_rtp(session_id, "rtp_received")
        sent = await self.publisher.evaluate("window.braidStats()")
        layers_sent = ", ".join(f"{rid} {l['width']}x{l['height']} {l['framesEncoded']}f {l['limitation']}"
                                for rid, l in sorted(sent["layers"].items()))
        figures = (f"session {session_id[:8]} from {entry.get('remote_address')} {entry.get('srtp_profile')}; "
                   f"rtp packets/s {per_second}; "
                   f"{kbps:.0f} kbit/s; answer {rids[0] if rids else 'has no a=simulcast'}; "
                   f"Chromium sends [{layers_sent}], its estimate {sent['availableOutgoingBitrate']} bit/s")
        # Per-track layer status, once the node reports it: all three layers must be receiving. Chromium
        # enables its upper layers only as its bandwidth estimate grows (it needs the node's transport-cc
        # feedback), so allow it some time.
        if not find_layer_status(await self.node.status()):
            return f"{figures}; node JSON has no per-track layer status yet (no `layers` with rids): layers not checked"
        deadline = time.monotonic() + 16
        while True:
            described, three_live = await self.layer_report()
            if three_live:
                return f"{figures}; layers {described}"
            if time.monotonic() > deadline:
                sent = await self.publisher.evaluate("window.braidStats()")
                raise ScenarioFailure(f"layer status: fewer than three layers receiving 26 s after connecting: "
                                      f"{described}; Chromium sends {sent['layers']}, its estimate "
                                      f"{sent['availableOutgoingBitrate']} bit/s")

    async def layer_report(self):
        """Two looks at the node's layer status 2 s apart: which layers grew. Returns (description, whether a
        track has at least three layers that all grew)."""
        first = find_layer_status(await self.node.status())
        await asyncio.sleep(2)
        second = dict(find_layer_status(await self.node.status()))
        report = []
        for path, layers in first:
            later = second.get(path, [])
            growing = []
            for before in layers:
                after = next((l for l in later if l.get("rid") == before.get("rid")), {})
                key, a = layer_counter(before)
                _, b = layer_counter(after)
                live = key is not None and b is not None and (b > a if key != "bitrate_bps" else b > 0)
                growing.append((before.get("rid"), live, key, b))
            report.append((path, growing))
        described = "; ".join(f"{path}: " + ", ".join(f"{rid}={'receiving' if live else 'idle'}({key} {value})"
                                                     for rid, live, key, value in growing)
                              for path, growing in report)
        return described, any(len(g) >= 3 and all(live for _, live, _, _ in g) for _, g in report)

    # (b) -------------------------------------------------------------------------------------------------
    async def chromium_whep(self):
        endpoint = f"{self.node.base}/whep/{PUBLISH_ROOM}"
        self.subscriber = await self.browser("subscriber", f"subscribe.html?whep={endpoint}&video=3")
        state = await self.wait_page_connected(self.subscriber, 20, "subscribe page (1 audio + 3 video recvonly)")
        session_id = session_id_from(state.get("location"), "WHEP Location")
        self.subscriber_session = session_id

        async def first_media():
            s = await self.subscriber.evaluate("window.braidStats()")
            return s if s["framesDecoded"] > 0 and s["audioSamplesReceived"] > 0 else None
        if await wait_for(first_media, 15) is None:
            s = await self.subscriber.evaluate("window.braidStats()")
            raise ScenarioFailure(
                f"first media: within 15 s of connecting: framesDecoded {s['framesDecoded']}, "
                f"totalSamplesReceived {s['audioSamplesReceived']}, video packets {s['videoPackets']}, "
                f"audio packets {s['audioPackets']}, per video mid {s['video']}")
        frames, samples, widths = [], [], []
        for second in range(SAMPLE_SECONDS + 1):
            s = await self.subscriber.evaluate("window.braidStats()")
            frames.append(s["framesDecoded"])
            samples.append(s["audioSamplesReceived"])
            widths.append(f"{s['frameWidth']}x{s['frameHeight']}")
            if second < SAMPLE_SECONDS:
                await asyncio.sleep(1)
        check_rising("inbound video framesDecoded", frames, "sampling")
        check_rising("inbound audio totalSamplesReceived", samples, "sampling")
        self.subscriber_playing = True
        return (f"session {session_id[:8]}; framesDecoded {frames}; totalSamplesReceived {samples}; "
                f"resolution {widths[0]} -> {widths[-1]}; per video mid {s['video']}")

    # (c) -------------------------------------------------------------------------------------------------
    async def chromium_layer_cap(self):
        if not self.subscriber_playing or self.publisher is None:
            raise ScenarioFailure("precondition: the chromium-whip-simulcast publisher and the chromium-whep "
                                  "subscriber must both be running (see their lines)")
        sent = await self.publisher.evaluate("window.braidStats()")
        lowest = min((l["width"] for l in sent["layers"].values() if l["width"] > 0), default=0)

        async def width():
            return (await self.subscriber.evaluate("window.braidStats()"))["frameWidth"]

        async def above_lowest():
            w = await width()
            return w if w > lowest else None
        before = await wait_for(above_lowest, 15, 1)
        if before is None:
            raise ScenarioFailure(f"before the cap: subscriber frameWidth stayed {await width()} (the lowest layer "
                                  f"is {lowest}) for 15 s, nothing to drop from; publisher sends {sent['layers']}")
        url = f"{self.node.base}/api/v1/sessions/{self.subscriber_session}/max-bitrate"
        status, body = await asyncio.to_thread(http_request, "POST", url, json.dumps({"bps": CAP_BPS}).encode(),
                                               "application/json")
        if status != 204:
            raise ScenarioFailure(f"POST max-bitrate {CAP_BPS}: HTTP {status} {body.strip()[:200]!r}, expected 204")
        capped_series = []

        async def dropped():
            w = await width()
            capped_series.append(w)
            return w if w < before else None
        start = time.monotonic()
        capped = await wait_for(dropped, 12, 1)
        if capped is None:
            raise ScenarioFailure(f"after POST max-bitrate {CAP_BPS}: frameWidth did not drop below {before} "
                                  f"within 12 s: {capped_series}")
        drop_seconds = time.monotonic() - start
        status, body = await asyncio.to_thread(http_request, "DELETE", url)
        if status != 204:
            raise ScenarioFailure(f"DELETE max-bitrate: HTTP {status} {body.strip()[:200]!r}, expected 204")
        lifted_series = []

        async def rose():
            w = await width()
            lifted_series.append(w)
            return w if w > capped else None
        start = time.monotonic()
        lifted = await wait_for(rose, 20, 1)
        if lifted is None:
            raise ScenarioFailure(f"after DELETE max-bitrate: frameWidth did not rise above {capped} within 20 s: "
                                  f"{lifted_series}")
        return (f"frameWidth {before} -> {capped} {drop_seconds:.1f} s after the {CAP_BPS} bit/s cap -> {lifted} "
                f"{time.monotonic() - start:.1f} s after lifting it")

    # aiortc ----------------------------------------------------------------------------------------------
    async def aiortc_process(self, role, url, seconds, log_name=None):
        log_name = log_name or f"aiortc-{role}"
        process = await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(HERE, "aiortc_peer.py"), role, url, "--seconds", str(seconds),
            stdout=asyncio.subprocess.PIPE, stderr=open(os.path.join(self.work_dir, f"{log_name}.log"), "ab"),
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    @staticmethod
    async def next_event(process, step, timeout):
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout)
        except asyncio.TimeoutError:
            raise ScenarioFailure(f"{step}: aiortc printed nothing for {timeout} s") from None
        if not line:
            raise ScenarioFailure(f"{step}: aiortc exited with status {await process.wait()} and no result")
        event = json.loads(line)
        if event.get("event") == "error":
            raise ScenarioFailure(f"{step}: {event['error']}")
        return event

    async def aiortc_publish(self):
        url = f"{self.node.base}/whip/{AIORTC_ROOM}"
        # Runs until stopped at the end of the suite, so that aiortc-subscribe has a publisher.
        self.aiortc_publisher = await self.aiortc_process("publish", url, 600)
        answered = await self.next_event(self.aiortc_publisher, "WHIP POST", 20)
        session_id = session_id_from(answered.get("location"), "WHIP Location")
        await self.next_event(self.aiortc_publisher, "connect", 20)
        entry = await self.wait_session_connected(session_id, "node session")
        per_second, kbps, entry = await self.sample_node_rtp(session_id, "rtp_received")
        return (f"session {session_id[:8]} from {entry.get('remote_address')} {entry.get('srtp_profile')}; "
                f"rtp packets/s {per_second}; {kbps:.0f} kbit/s")

    async def aiortc_subscribe(self):
        url = f"{self.node.base}/whep/{AIORTC_ROOM}"
        process = await self.aiortc_process("subscribe", url, SAMPLE_SECONDS)
        answered = await self.next_event(process, "WHEP POST (recvonly audio + video)", 20)
        session_id = session_id_from(answered.get("location"), "WHEP Location")
        await self.next_event(process, "connect", 20)
        audio, video, sizes = [], [], []
        while True:
            event = await self.next_event(process, "decoding", 25)
            if event["event"] == "done":
                break
            audio.append(event["audio_frames"])
            video.append(event["video_frames"])
            sizes = event["video_sizes"]
        check_rising("decoded audio frames", audio, "decoding")
        check_rising("decoded video frames", video, "decoding")
        publisher = "" if self.aiortc_publisher and self.aiortc_publisher.returncode is None else \
            " (the aiortc publisher is not running)"
        return (f"session {session_id[:8]}; decoded audio frames {audio}; video frames {video}; "
                f"video sizes {sizes}{publisher}")

    # (g) -------------------------------------------------------------------------------------------------
    async def aiortc_mesh(self):
        """etcd and two more braid-nodes in a cluster (A, B: relay links over loopback); aiortc publishes on A by
        WHIP, aiortc subscribes on B by WHEP and must decode what B relays from A. Everything started here is
        stopped at the end (also on timeout: cleanup() stops what is left)."""
        etcd = Etcd(self.work_dir)
        self.mesh_parts.append(etcd)
        await asyncio.to_thread(etcd.start)
        secret_file = os.path.join(self.work_dir, "cluster-secret")
        with open(os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(secrets.token_hex(24))
        nodes = {}
        for name in ("mesh-a", "mesh-b"):
            node = Node(self.node.binary, os.path.join(self.work_dir, f"braid-node-{name}.log"),
                        ["--node-id", name, "--event-loop-threads", "1", "--cluster-etcd", etcd.url,
                         "--cluster-secret-file", secret_file, "--cluster-mesh-address", "127.0.0.1",
                         "--cluster-mesh-port", "0", "--drain-timeout-seconds", "5"])
            self.mesh_parts.insert(0, node)
            await asyncio.to_thread(node.start)
            nodes[name] = node
        a, b = nodes["mesh-a"], nodes["mesh-b"]

        async def mesh_of(node):
            node.check_alive()
            status, body = await asyncio.to_thread(http_request, "GET", f"{node.base}/api/v1/mesh")
            if status != 200:
                raise ScenarioFailure(f"GET {node.base}/api/v1/mesh: HTTP {status} {body.strip()[:200]!r}")
            return json.loads(body)

        async def linked():
            for node, peer in ((a, "mesh-b"), (b, "mesh-a")):
                mesh = await mesh_of(node)
                if not any(l.get("peer_name") == peer and l.get("up") for l in mesh.get("links", [])):
                    return None
            return True
        if await wait_for(linked, 15) is None:
            raise ScenarioFailure(f"cluster: relay link A-B not up within 15 s: A sees {(await mesh_of(a)).get('links')}, "
                                  f"B sees {(await mesh_of(b)).get('links')}")
        publisher = await self.aiortc_process("publish", f"{a.base}/whip/{MESH_ROOM}", 60, "aiortc-mesh-publish")
        answered = await self.next_event(publisher, "WHIP POST on node A", 20)
        session_id = session_id_from(answered.get("location"), "WHIP Location (node A)")
        await self.next_event(publisher, "publisher connect (node A)", 20)
        subscriber = await self.aiortc_process("subscribe", f"{b.base}/whep/{MESH_ROOM}", SAMPLE_SECONDS,
                                               "aiortc-mesh-subscribe")
        answered = await self.next_event(subscriber, "WHEP POST on node B (recvonly audio + video)", 20)
        subscriber_id = session_id_from(answered.get("location"), "WHEP Location (node B)")
        await self.next_event(subscriber, "subscriber connect (node B)", 20)
        audio, video, sizes = [], [], []
        while True:
            event = await self.next_event(subscriber, "decoding on node B", 25)
            if event["event"] == "done":
                break
            audio.append(event["audio_frames"])
            video.append(event["video_frames"])
            sizes = event["video_sizes"]
        check_rising("decoded audio frames (node B)", audio, "decoding on node B")
        check_rising("decoded video frames (node B)", video, "decoding on node B")
        # B relays the room from A: its remote tracks are pulled from A, and A relays them on its link to B.
        remote = [t for t in (await mesh_of(b)).get("remote_tracks", []) if t.get("room") == MESH_ROOM]
        if len(remote) < 2 or any(t.get("pulled_from") != "mesh-a" for t in remote):
            raise ScenarioFailure(f"node B's mesh: expected the room's 2 tracks pulled from mesh-a, got {remote}")
        relayed = [l.get("relayed") for l in (await mesh_of(a)).get("links", []) if l.get("peer_name") == "mesh-b"]
        # The cluster and the publisher stay up for chromium-demo-failover; cleanup() stops them otherwise.
        self.mesh_nodes = nodes
        self.mesh_publisher = publisher
        return (f"publisher {session_id[:8]} on A, subscriber {subscriber_id[:8]} on B; decoded on B: audio frames "
                f"{audio}; video frames {video}; video sizes {sizes}; B pulls "
                f"{[(t.get('id'), t.get('path')) for t in remote]}; A relays to B {relayed}")

    # (h) -------------------------------------------------------------------------------------------------
    async def chromium_demo_drain(self):
        """The demo page of node B plays the aiortc-mesh room (publish=0); B is drained (POST /api/v1/drain): it
        tells the page goodbye (RTCP BYE, DTLS close_notify), the page's DTLS transport closes and it must move to
        node A and play again; B exits 0 by itself within its drain time (5 s). B is then started again (a new
        HTTP port) for chromium-demo-failover."""
        if not self.mesh_nodes or self.mesh_publisher is None or self.mesh_publisher.returncode is not None:
            raise ScenarioFailure("precondition: the aiortc-mesh cluster and publisher must be running "
                                  "(see its line)")
        a, b = self.mesh_nodes["mesh-a"], self.mesh_nodes["mesh-b"]
        url = f"{b.base}/demo/{MESH_ROOM}?publish=0"
        browser = Browser("demo-drain", os.path.join(self.work_dir, "demo-drain-profile"),
                          os.path.join(self.work_dir, "demo-drain.log"))
        self.browsers.append(browser)
        try:
            await browser.start(url)

            async def stats():
                return await browser.evaluate("window.braid ? window.braid.stats() : null")

            async def frames_above(count):
                s = await stats()
                return s if s and s.get("framesDecoded", 0) > count else None
            if await wait_for(lambda: frames_above(30), 20) is None:
                raise ScenarioFailure(f"demo page {url}: not playing within 20 s: stats {await stats()}")
            before = (await stats())["framesDecoded"]
            status, body = await asyncio.to_thread(http_request, "POST", f"{b.base}/api/v1/drain")
            if status != 202:
                raise ScenarioFailure(f"POST {b.base}/api/v1/drain: HTTP {status} {body.strip()!r}")
            drained = time.monotonic()

            async def moved():
                node = await browser.evaluate("window.braid.node()")
                s = await stats()
                return (node, s) if node == a.base and s["framesDecoded"] > before + 30 else None
            if await wait_for(moved, 15, 0.25) is None:
                status = await browser.evaluate("document.getElementById('status').textContent")
                raise ScenarioFailure(f"after draining B: the page did not play again from A within 15 s: node "
                                      f"{await browser.evaluate('window.braid.node()')}, status {status!r}, "
                                      f"stats {await stats()} (before {before})")
            again = time.monotonic() - drained
            moves = await browser.evaluate("window.braid.moves()")
            try:
                code = await asyncio.to_thread(b.process.wait, 10)
            except subprocess.TimeoutExpired:
                raise ScenarioFailure("B still runs 10 s after POST /api/v1/drain (drain timeout 5 s)") from None
            exited = time.monotonic() - drained
            if code != 0:
                raise ScenarioFailure(f"B exited with status {code} after the drain (log {b.log_path})")
        finally:
            await browser.stop()
            self.browsers.remove(browser)
        # B again, for chromium-demo-failover.
        await asyncio.to_thread(b.start)

        async def relinked():
            status, body = await asyncio.to_thread(http_request, "GET", f"{a.base}/api/v1/mesh")
            links = json.loads(body).get("links", []) if status == 200 else []
            return any(l.get("peer_name") == "mesh-b" and l.get("up") for l in links) or None
        if await wait_for(relinked, 15) is None:
            raise ScenarioFailure("B restarted but A's relay link to it is not up within 15 s")
        return (f"page on B drained at {before} frames: playing from A again {again:.1f} s later "
                f"(moves {moves}); B exited 0 after "
                f"{exited:.1f} s; B restarted")

    async def chromium_demo_failover(self):
        """The demo page of node B plays the aiortc-mesh room (publish=0); B is killed (SIGKILL); the page must
        move to node A by itself and play again: framesDecoded rising again within 15 s of the kill."""
        try:
            if not self.mesh_nodes or self.mesh_publisher is None or self.mesh_publisher.returncode is not None:
                raise ScenarioFailure("precondition: the aiortc-mesh cluster and publisher must be running "
                                      "(see its line)")
            a, b = self.mesh_nodes["mesh-a"], self.mesh_nodes["mesh-b"]
            url = f"{b.base}/demo/{MESH_ROOM}?publish=0"
            browser = Browser("demo-failover", os.path.join(self.work_dir, "demo-failover-profile"),
                              os.path.join(self.work_dir, "demo-failover.log"))
            self.browsers.append(browser)
            await browser.start(url)

            async def stats():
                return await browser.evaluate("window.braid ? window.braid.stats() : null")

            async def frames_above(count):
                s = await stats()
                return s if s and s.get("framesDecoded", 0) > count else None
            if await wait_for(lambda: frames_above(30), 20) is None:
                raise ScenarioFailure(f"demo page {url}: not playing within 20 s: stats {await stats()}")
            known = await browser.evaluate("window.braid.node()")
            before = (await stats())["framesDecoded"]
            b.process.kill()
            b.process.wait(5)
            killed = time.monotonic()

            async def moved():
                node = await browser.evaluate("window.braid.node()")
                s = await stats()
                return (node, s) if node == a.base and s["framesDecoded"] > before + 30 else None
            result = await wait_for(moved, 15, 0.25)
            if result is None:
                status = await browser.evaluate("document.getElementById('status').textContent")
                raise ScenarioFailure(f"after killing B: the page did not play again from A within 15 s: node "
                                      f"{await browser.evaluate('window.braid.node()')}, status {status!r}, "
                                      f"stats {await stats()} (before {before})")
            again = time.monotonic() - killed
            frames = []
            for second in range(SAMPLE_SECONDS + 1):
                frames.append((await stats())["framesDecoded"])
                if second < SAMPLE_SECONDS:
                    await asyncio.sleep(1)
            check_rising("demo page framesDecoded after the move", frames, "playing from A")
            return (f"page on B ({known}) killed at {before} frames; playing from A again {again:.1f} s later "
                    f"(moves {await browser.evaluate('window.braid.moves()')}); framesDecoded then {frames}")
        finally:
            await self.stop_mesh()

    async def stop_mesh(self):
        publisher, self.mesh_publisher, self.mesh_nodes = self.mesh_publisher, None, {}
        if publisher is not None and publisher.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(publisher.pid, signal.SIGTERM)
        parts, self.mesh_parts = self.mesh_parts, []
        for part in parts:
            await asyncio.to_thread(part.stop)

    # (c') ------------------------------------------------------------------------------------------------
    async def chromium_lossy_link(self):
        """Three Chromium subscribers to the simulcast room, each behind its own lossy link (lossy_link.py) that
        drops 20 %, then 50 %, of the RTP toward it: one offers what Chromium offers (RED for audio, FlexFEC
        and ULPFEC for video: the node sends FlexFEC), one offers no FlexFEC (`?protect=2`, as browsers other
        than Chromium: the node sends ULPFEC inside RED), the third offers none of it (`?protect=0`,
        setCodecPreferences). Chromium's own counters over the same window must show the protection working:
        concealed audio samples down by at least a factor of two; FlexFEC packets received and packets rebuilt
        from them (libwebrtc's own log line per rebuilt packet, over the whole session); ULPFEC, which Chromium
        neither counts in getStats nor logs when it rebuilds, sent by the node and, at 50 %, at least 15 % more
        frames decoded than the plain player; no FEC toward the plain player."""
        status = await self.node.status()
        node_address = ("127.0.0.1", status["media"]["listener"]["port"])
        endpoint = f"{self.node.base}/whep/{PUBLISH_ROOM}"
        variants = {1: "flexfec", 2: "ulpfec", 0: "plain"}
        rows = []

        async def room_subscribers():
            code, body = await asyncio.to_thread(http_request, "GET", f"{self.node.base}/api/v1/rooms/{PUBLISH_ROOM}")
            return json.loads(body).get("subscribers", []) if code == 200 else []
        for level in LOSSY_LEVELS:
            pages = {}
            links = {}
            # Subscribers of the last level may linger until their sessions time out.
            earlier = {s.get("id") for s in await room_subscribers()}
            try:
                for protect, variant in variants.items():
                    link = LossyLink(node_address, level, seed=7 + protect)
                    port = await link.start("127.0.0.1")
                    links[protect] = link
                    pages[protect] = await self.browser(
                        f"lossy-{int(level * 100)}-{variant}",
                        f"subscribe.html?whep={endpoint}&video=1&protect={protect}&via={port}",
                        # libwebrtc logs every packet its FEC receivers rebuild at this level.
                        ["--enable-logging=stderr", "--v=0",
                         "--vmodule=flexfec_receiver=1,ulpfec_receiver=1,forward_error_correction=1"])
                for protect, page in pages.items():
                    await self.wait_page_connected(page, 20, f"subscriber behind {level:.0%} loss ({variants[protect]})")

                async def playing():
                    stats = [await page.evaluate("window.braidLossStats()") for page in pages.values()]
                    return stats if all(s["video"]["framesDecoded"] > 0 and s["audio"]["totalSamplesReceived"] > 0
                                        for s in stats) else None
                if await wait_for(playing, 20) is None:
                    raise ScenarioFailure(f"{level:.0%} loss: a subscriber did not start playing within 20 s")
                # Let the node measure the link and plan its protection before the window opens.
                await asyncio.sleep(4)
                before = {p: await page.evaluate("window.braidLossStats()") for p, page in pages.items()}
                await asyncio.sleep(LOSSY_SECONDS)
                after = {p: await page.evaluate("window.braidLossStats()") for p, page in pages.items()}
                # The node's own view of what it protects this level's subscribers with.
                node_view = [{k: s.get("protection", {}).get(k) for k in (
                    "video_fec", "video_repairs_sent", "overhead", "measured_loss", "audio_redundancy_distance")}
                    | {k: s.get(k) for k in ("retransmissions", "nacks_received")}
                    for s in await room_subscribers() if s.get("id") not in earlier]
            finally:
                for page in pages.values():
                    await self.stop_browser(page)
                for link in links.values():
                    link.close()
            row = {"level": level, "node": node_view}
            for protect in variants:
                a, b = after[protect], before[protect]
                video = {k: a["video"][k] - b["video"][k] for k in a["video"] if k != "frameWidth"}
                audio = {k: a["audio"][k] - b["audio"][k] for k in a["audio"]}
                concealed = audio["concealedSamples"] / audio["totalSamplesReceived"] if audio["totalSamplesReceived"] else 1.0
                row[protect] = {"video": video, "audio": audio, "concealed": concealed,
                                "link_loss": links[protect].measured_loss(), "codecs": sorted(set(a["codecs"])),
                                "rebuilt": self.fec_recoveries(pages[protect])}
            rows.append(row)
        described = []
        for row in rows:
            for protect, variant in variants.items():
                r = row[protect]
                v = r["video"]
                described.append(
                    f"{row['level']:.0%} {variant} (link dropped {r['link_loss']:.1%}): "
                    f"audio concealed {r['concealed']:.1%}, video {v['framesDecoded']} frames decoded, "
                    f"{v['freezeCount']} freezes {v['totalFreezesDuration']:.1f} s, {v['fecPacketsReceived']} FEC "
                    f"packets received, {r['rebuilt']} packets rebuilt from them, {v['nackCount']} NACKs")
        figures = "; ".join(described) + "; node: " + "; ".join(
            f"{row['level']:.0%} {row['node']}" for row in rows)
        for row in rows:
            plain = row[0]
            if any(abs(row[p]["link_loss"] - row["level"]) > 0.06 for p in variants):
                raise ScenarioFailure(f"the links did not drop about {row['level']:.0%}: {figures}")
            for protect in (1, 2):
                protected = row[protect]
                if protected["concealed"] * 2 > plain["concealed"]:
                    raise ScenarioFailure(f"at {row['level']:.0%} loss audio protection ({variants[protect]}) did not "
                                          f"halve concealment: {figures}")
            flex, ulp = row[1], row[2]
            if flex["video"]["fecPacketsReceived"] == 0 or flex["rebuilt"] == 0:
                raise ScenarioFailure(f"at {row['level']:.0%} loss Chromium rebuilt no video packet from FlexFEC: {figures}")
            # Chromium counts no ULPFEC in getStats and logs no ULPFEC rebuild: the node's count of what it sent,
            # and at the highest loss what the player decodes, show it.
            if not any(n["video_fec"] == "ulpfec" and (n["video_repairs_sent"] or 0) > 0 for n in row["node"]):
                raise ScenarioFailure(f"at {row['level']:.0%} loss the node sent no ULPFEC: {figures}")
            if row["level"] == max(LOSSY_LEVELS) and ulp["video"]["framesDecoded"] < 1.15 * plain["video"]["framesDecoded"]:
                raise ScenarioFailure(f"at {row['level']:.0%} loss the ULPFEC player did not decode 15 % more frames "
                                      f"than the plain one: {figures}")
            if plain["video"]["fecPacketsReceived"] != 0:
                raise ScenarioFailure(f"FEC reached the subscriber that did not offer it: {figures}")
        return figures

    @staticmethod
    def fec_recoveries(browser):
        """Packets Chromium's FEC receivers rebuilt, from its log (getStats has no counter for them)."""
        with contextlib.suppress(OSError), open(browser.log_path, errors="replace") as log:
            return sum(1 for line in log if "Recovered media packet" in line)
        return 0

    async def stop_browser(self, browser):
        if browser is not None:
            await browser.stop()

    async def cleanup(self):
        for part in self.mesh_parts:
            with contextlib.suppress(Exception):
                part.stop()
        for browser in self.browsers:
            with contextlib.suppress(Exception):
                await browser.stop()
        for process in self.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 5)
                except asyncio.TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    await process.wait()


    # (f) -------------------------------------------------------------------------------------------------
    async def play_demo_page(self, name, url, what):
        """Opens `url` (a demo page) in a fresh browser, waits up to 25 s until it decodes video and audio,
        then samples window.braid.stats() every second for SAMPLE_SECONDS; returns (frames, samples, last)."""
        browser = Browser(name, os.path.join(self.work_dir, f"{name}-profile"),
                          os.path.join(self.work_dir, f"{name}.log"))
        self.browsers.append(browser)
        await browser.start(url)

        async def stats():
            return await browser.evaluate("window.braid ? window.braid.stats() : null")

        async def playing():
            s = await stats()
            return s if s and s.get("framesDecoded", 0) > 0 and s.get("audioSamplesReceived", 0) > 0 else None
        if await wait_for(playing, 25) is None:
            raise ScenarioFailure(f"demo page {url}: {what} within 25 s: stats {await stats()}")
        frames, samples = [], []
        for second in range(SAMPLE_SECONDS + 1):
            s = await stats()
            frames.append(s["framesDecoded"])
            samples.append(s["audioSamplesReceived"])
            if second < SAMPLE_SECONDS:
                await asyncio.sleep(1)
        return frames, samples, s

    async def chromium_demo_page(self):
        """The node's own demo page, as a newcomer opens it: it publishes the fake camera and microphone by
        WHIP and plays the room by WHEP (its own tracks come back through the node)."""
        url = f"{self.node.base}/demo/{DEMO_ROOM}"
        frames, samples, s = await self.play_demo_page("demo", url, "no media played back")
        check_rising("demo page framesDecoded", frames, "sampling")
        check_rising("demo page audioSamplesReceived", samples, "sampling")
        return (f"{url}: framesDecoded {frames}; audioSamplesReceived {samples}; "
                f"{s.get('frameWidth')}x{s.get('frameHeight')}")

    # (g) -------------------------------------------------------------------------------------------------
    async def chromium_demo_functions(self):
        """The demo page with ?view=mix,composite: it publishes the fake camera and microphone and plays only
        the room's audio-mix and composite edge functions, which it starts through the functions API. Chromium
        decodes the node's own VP8 encoding (the 640x360 grid) and Opus mix."""
        url = f"{self.node.base}/demo/{DEMO_ROOM}-functions?view=mix,composite"
        frames, samples, s = await self.play_demo_page(
            "demo-functions", url, "the functions' outputs did not play")
        check_rising("composite framesDecoded", frames, "sampling")
        check_rising("mix audioSamplesReceived", samples, "sampling")
        if (s.get("frameWidth"), s.get("frameHeight")) != (640, 360):
            raise ScenarioFailure(f"the composite plays at {s.get('frameWidth')}x{s.get('frameHeight')}, not 640x360")
        status, body = http_request("GET", f"{self.node.base}/api/v1/rooms/{DEMO_ROOM}-functions/functions")
        functions = json.loads(body) if status == 200 else []
        kinds = sorted(f["kind"] for f in functions)
        if kinds != ["audio-mix", "composite"]:
            raise ScenarioFailure(f"the room runs {kinds}, not one audio-mix and one composite ({status})")
        return (f"{url}: framesDecoded {frames}; audioSamplesReceived {samples}; 640x360; "
                + ", ".join(f"{f['kind']} delay p95 {f.get('delay_p95_ms')} ms" for f in functions))

SCENARIOS = [
    ("chromium-whip-simulcast", Suite.chromium_whip_simulcast, 60),
    ("chromium-whep", Suite.chromium_whep, 50),
    ("chromium-layer-cap", Suite.chromium_layer_cap, 55),
    ("chromium-lossy-link", Suite.chromium_lossy_link, 100),
    ("aiortc-publish", Suite.aiortc_publish, 40),
    ("aiortc-subscribe", Suite.aiortc_subscribe, 50),
    ("chromium-demo-page", Suite.chromium_demo_page, 50),
    ("chromium-demo-functions", Suite.chromium_demo_functions, 45),
    ("aiortc-mesh", Suite.aiortc_mesh, 58),
    ("chromium-demo-drain", Suite.chromium_demo_drain, 58),
    ("chromium-demo-failover", Suite.chromium_demo_failover, 58),
]


async def run(args):
    shutil.rmtree(args.work_dir, ignore_errors=True)
    os.makedirs(args.work_dir)
    node = Node(args.node, os.path.join(args.work_dir, "braid-node.log"))
    pages = start_page_server()
    pages_base = f"http://127.0.0.1:{pages.server_address[1]}"
    suite = Suite(node, pages_base, args.work_dir)
    failures = passes = 0
    started = time.monotonic()
    try:
        await asyncio.to_thread(node.start)
        print(f"interop: braid-node at {node.base}, pages at {pages_base}, logs in {args.work_dir}", flush=True)
        for name, scenario, timeout in SCENARIOS:
            if args.only and name not in args.only:
                continue
            began = time.monotonic()
            try:
                figures = await asyncio.wait_for(scenario(suite), timeout)
                node.check_alive()
                passes += 1
                print(f"PASS {name} ({time.monotonic() - began:.0f} s): {figures}", flush=True)
            except asyncio.TimeoutError:
                failures += 1
                print(f"FAIL {name}: timed out after {timeout} s", flush=True)
            except (ScenarioFailure, CDPError) as error:
                failures += 1
                print(f"FAIL {name} ({time.monotonic() - began:.0f} s): {error}", flush=True)
            except Exception as error:  # noqa: BLE001 (a harness or peer error fails this scenario only)
                failures += 1
                print(f"FAIL {name} ({time.monotonic() - began:.0f} s): {type(error).__name__}: {error}", flush=True)
            if name == "chromium-lossy-link":
                # The Chromium peers are done: free the CPU for aiortc.
                await suite.stop_browser(suite.subscriber)
                await suite.stop_browser(suite.publisher)
    finally:
        await suite.cleanup()
        pages.shutdown()
        await asyncio.to_thread(node.stop)
    if failures:
        # The node's own complaints, if any, usually say why a scenario failed.
        complaints = []
        with contextlib.suppress(OSError), open(node.log_path, errors="replace") as log:
            complaints = [line for line in log if re.search(r" (warning|error|critical) ", line)][-15:]
        print(f"interop: {len(complaints) or 'no'} warning/error lines at the end of {node.log_path}", flush=True)
        print("".join(f"  {line}" for line in complaints), end="", flush=True)
    print(f"interop: finished in {time.monotonic() - started:.0f} s", flush=True)
    print(f"interop: {passes} passed, {failures} failed", flush=True)
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("node", help="path of the braid-node binary")
    parser.add_argument("--work-dir", required=True, help="folder for logs and browser profiles (emptied)")
    parser.add_argument("--only", nargs="*", help="run only these scenarios")
    args = parser.parse_args()
    unknown = set(args.only or []) - {name for name, _, _ in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {[name for name, _, _ in SCENARIOS]}")

    async def guarded():
        # SIGTERM/SIGINT (e.g. from `timeout`) cancel the run so that the cleanup above still happens.
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        return await run(args)

    try:
        failures = asyncio.run(guarded())
    except asyncio.CancelledError:
        print("interop: interrupted", flush=True)
        sys.exit(2)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
