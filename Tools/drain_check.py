#!/usr/bin/env python3
"""Process-level drain check: a real braid-node with a real call open gets SIGTERM and must drain and exit 0.

  1. braid-node starts on loopback with --drain-timeout-seconds 3 and a fresh --state-directory;
  2. braid-load (a webinar: 1 publisher, 2 subscribers, no failover) connects and media flows;
  3. SIGTERM: /healthz answers 503 "draining", a new WHIP POST gets 503 with Retry-After, the node logs
     that it told the peers goodbye, waits out its drain time (the load peers have nowhere to go and stay)
     and exits with code 0 within drain time + 3 s;
  4. a second start with the same state directory keeps the DTLS certificate (same file, same bytes).

Usage: Tools/drain_check.py [braid-node] [braid-load]   (defaults: .build/debug/...). About 15 s.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

NODE = sys.argv[1] if len(sys.argv) > 1 else ".build/debug/braid-node"
LOAD = sys.argv[2] if len(sys.argv) > 2 else ".build/debug/braid-load"
DRAIN_SECONDS = 3
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""), file=sys.stderr)
    if not ok:
        failures.append(name)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=2):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def wait_for(predicate, seconds, interval=0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception:
            pass
        time.sleep(interval)
    return None


def start_node(port, state, log):
    argv = [NODE, "--http-port", str(port), "--media-port", "0", "--admin-port=-1",
            "--event-loop-threads", "1", "--drain-timeout-seconds", str(DRAIN_SECONDS),
            "--state-directory", state, "--log-format", "json"]
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def main():
    work = tempfile.mkdtemp(prefix="braid-drain-")
    state = os.path.join(work, "state")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = os.path.join(work, "node.log")
    node = start_node(port, state, open(log_path, "w"))
    load = None
    try:
        check("node answers /healthz", wait_for(lambda: http("GET", base + "/healthz")[0] == 200, 20) is not None)
        certificate = os.path.join(state, "dtls-certificate.pem")
        check("certificate saved with mode 0600",
              os.path.exists(certificate) and (os.stat(certificate).st_mode & 0o777) == 0o600)
        first_pem = open(certificate).read() if os.path.exists(certificate) else ""

        load = subprocess.Popen([LOAD, "webinar", "--subscribers", "2", "--node", base, "--duration", "30s",
                                 "--room-prefix", "drain"],
                                stdout=open(os.path.join(work, "load.txt"), "w"), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)

        def connected():
            status = json.loads(http("GET", base + "/api/v1/node")[2])
            forwarding = status.get("forwarding", {})
            return forwarding.get("publishers", 0) >= 1 and forwarding.get("subscribers", 0) >= 2
        check("a call is open (1 publisher, 2 subscribers)", wait_for(connected, 15) is not None)

        started = time.monotonic()
        node.send_signal(signal.SIGTERM)
        health = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(http("GET", base + "/healthz")), 2, 0.05)
        check("/healthz answers 503 draining", health is not None and health[2] == "draining\n", str(health))
        refused = http("POST", base + "/whip/drain-late", body=b"v=0\r\n",
                       headers={"Content-Type": "application/sdp"})
        check("a new WHIP session gets 503 with Retry-After",
              refused[0] == 503 and refused[1].get("Retry-After") == str(DRAIN_SECONDS), str(refused[:2]))
        try:
            code = node.wait(DRAIN_SECONDS + 5)
        except subprocess.TimeoutExpired:
            node.kill()
            code = "timeout"
        elapsed = time.monotonic() - started
        check("braid-node exits 0 after SIGTERM", code == 0, f"exit {code}")
        check(f"exit within drain time + 3 s ({DRAIN_SECONDS + 3} s)", elapsed < DRAIN_SECONDS + 3,
              f"{elapsed:.2f} s")
        print(f"drain: braid-node exited {elapsed:.2f} s after SIGTERM (drain timeout {DRAIN_SECONDS} s)",
              file=sys.stderr)
        lines = [json.loads(line) for line in open(log_path) if line.startswith("{")]
        finished = [line for line in lines if line.get("message") == "drain finished"]
        told = int(finished[0].get("metadata", finished[0]).get("peers_told", 0)) if finished else 0
        check("the node told every peer goodbye (RTCP BYE + close_notify)", told >= 3,
              f"peers_told {told}" if finished else "no 'drain finished' log line")

        # A restart with the same state directory keeps the certificate.
        node = start_node(port, state, open(os.path.join(work, "node2.log"), "w"))
        check("restarted node answers /healthz",
              wait_for(lambda: http("GET", base + "/healthz")[0] == 200, 20) is not None)
        check("the restarted node kept its DTLS certificate", open(certificate).read() == first_pem)
    finally:
        for process in (load, node):
            if process and process.poll() is None:
                process.kill()
                process.wait()
    if failures:
        print(f"drain check FAILED ({len(failures)}): logs in {work}", file=sys.stderr)
        for name in ["node.log", "load.txt"]:
            path = os.path.join(work, name)
            if os.path.exists(path):
                print(f"--- {name}\n" + open(path).read()[-4000:], file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("drain check passed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
