#!/usr/bin/env python3
"""Real-process mesh test: a real etcd, three braid-node processes on the triangle topology
(Tools/topologies/triangle.json: A-C 150 ms RTT, A-B and B-C 20 ms), braid-load as publisher and subscribers.
Run by Tools/Mesh/run.sh; every check reads real node, etcd or braid-load output.

  a  webinar published on A, subscribers on C: plays, and C's /api/v1/mesh shows the path a -> b -> c
  b  one copy per link: B relays each track once to C (relayed list; B->C datagrams ~ A->B datagrams)
  c  kill -9 B while braid-load runs: C reroutes (a -> c), every subscriber's longest media gap < 3 s
  d  a node with a wrong cluster secret: its links never come up; the others count rejected datagrams
  e  etcd unreachable at start: braid-node exits non-zero within seconds with a clear message
  h  an audio-mix started through A's API for a room whose subscribers are on B runs on B (GET on A and B
     agree); kill -9 B: within seconds the function runs on A, the live node left; DELETE removes it
"""

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NODE = sys.argv[1]
LOAD = sys.argv[2]
MAX_GAP_MS = 3000
results = []
extra = []  # processes this script starts itself


def die_with_parent():
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL, 0, 0, 0)


def log(text):
    print(f"mesh-test: {text}", file=sys.stderr, flush=True)


def check(name, ok, detail):
    results.append((name, bool(ok), detail))
    log(("PASS " if ok else "FAIL ") + f"{name}: {detail}")
    return ok


def mesh(url):
    with urllib.request.urlopen(url + "/api/v1/mesh", timeout=2) as response:
        return json.load(response)


def link(state, peer):
    return next((l for l in state.get("links", []) if l.get("peer_name") == peer), None)


def wait_for(what, predicate, timeout, interval=0.1):
    """Polls predicate() (returns a value or None) until a value or the timeout."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:
            last_error = error
        time.sleep(interval)
    log(f"timed out waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))
    return None


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_load(work, name, args):
    report = os.path.join(work, f"{name}.json")
    out = open(os.path.join(work, f"{name}.txt"), "w")
    process = subprocess.Popen([LOAD, "webinar", "--json", report, "--room-prefix", name] + args, stdout=out,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    extra.append(process)
    return process, report, out.name


def finish_load(process, report, text, timeout):
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        code = "timeout"
    print(open(text).read(), file=sys.stderr)
    try:
        with open(report) as f:
            return code, json.load(f)
    except (FileNotFoundError, ValueError):
        return code, None


def post_json(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.load(response)


def functions(url, room):
    with urllib.request.urlopen(f"{url}/api/v1/rooms/{room}/functions", timeout=5) as response:
        return json.load(response)


def function_view(url, room, fid):
    return next((f for f in functions(url, room) if f.get("id") == fid), None)


def remote_tracks_on(url, room):
    tracks = [t for t in mesh(url).get("remote_tracks", []) if t.get("room") == room]
    return tracks if len(tracks) >= 2 and all(t.get("consumers", 0) > 0 for t in tracks) else None


def run(state, work):
    nodes = {n["name"]: n for n in state["nodes"]}
    a, b, c = nodes["a"]["url"], nodes["b"]["url"], nodes["c"]["url"]
    subscribers = 3

    # (a) + (b): publisher on A, subscribers on C.
    process, report_path, text = start_load(
        work, "route", ["--publisher-node", a, "--node", c, "--subscribers", str(subscribers), "--duration", "8s",
                        "--ramp-up", "20"])
    tracks = wait_for("C to pull the webinar's tracks", lambda: remote_tracks_on(c, "route-0"), 15)
    if tracks:
        paths = {t["id"]: t["path"] for t in tracks}
        check("a: path a->b->c", all(p == ["a", "b", "c"] for p in paths.values()), f"C's remote tracks {paths}")
        time.sleep(1.5)  # every subscriber attached, media flowing on the links
        b0, a0 = mesh(b), mesh(a)
        time.sleep(2.0)
        b1, a1 = mesh(b), mesh(a)
        relayed = link(b1, "c")["relayed"]
        ids = sorted(t["id"] for t in tracks)
        consumers = {t["id"]: t["consumers"] for t in remote_tracks_on(c, "route-0") or []}
        check("b: B relays each track once to C", sorted(relayed) == ids and len(set(relayed)) == len(relayed),
              f"B->C relayed {relayed}, C's consumers per track {consumers}")
        sent_bc = link(b1, "c")["datagrams_sent"] - link(b0, "c")["datagrams_sent"]
        sent_ab = link(a1, "b")["datagrams_sent"] - link(a0, "b")["datagrams_sent"]
        ratio = sent_bc / sent_ab if sent_ab else float("inf")
        check("b: one copy per link (datagram counters)", sent_ab > 50 and 0.75 <= ratio <= 1.33,
              f"in 2 s A->B sent {sent_ab} datagrams, B->C {sent_bc} (ratio {ratio:.2f}; "
              f"{subscribers} copies would be ~{subscribers})")
    else:
        check("a: C pulls the tracks", False, "no remote tracks with consumers on C within 15 s")
    code, report = finish_load(process, report_path, text, 60)
    if report:
        per_node = report.get("perNode", [])
        c_figures = next((n for n in per_node if n["node"] == c), None)
        p95 = c_figures and c_figures["latency"]["p95Ms"]
        # Emulated path a->b->c: 10 + 10 ms one way.
        check("a: webinar plays on C", code == 0 and c_figures and c_figures["subscribersJoined"] == subscribers
              and report["video"]["framesDecodable"] > 0 and p95 is not None and p95 <= 20 + 30,
              f"exit {code}, {c_figures and c_figures['subscribersJoined']}/{subscribers} joined on C, "
              f"{report['video']['framesDecodable']} video frames decodable, p95 {p95} ms (path 20 ms one way)")
    else:
        check("a: webinar plays on C", False, f"braid-load exit {code}, no report")

    # (c): kill -9 the relay B while subscribers on C play.
    process, report_path, text = start_load(
        work, "failover", ["--publisher-node", a, "--node", c, "--subscribers", str(subscribers),
                           "--duration", "14s", "--ramp-up", "20"])
    tracks = wait_for("C to pull the failover tracks", lambda: remote_tracks_on(c, "failover-0"), 15)
    rerouted_after = None
    if tracks and all(t["path"] == ["a", "b", "c"] for t in tracks):
        time.sleep(3)
        os.kill(nodes["b"]["pid"], signal.SIGKILL)
        killed = time.monotonic()
        log(f"killed B (pid {nodes['b']['pid']}) with SIGKILL")

        def rerouted():
            now = remote_tracks_on(c, "failover-0")
            return now if now and all(t["path"] == ["a", "c"] for t in now) else None

        after = wait_for("C to reroute a->c", rerouted, 10, interval=0.05)
        rerouted_after = time.monotonic() - killed if after else None
        check("c: C reroutes around B", after is not None,
              f"path a->c after {rerouted_after:.2f} s" if after else "still not a->c 10 s after the kill")
    else:
        check("c: C pulls the tracks via B before the kill", False, f"C's remote tracks: {tracks}")
    code, report = finish_load(process, report_path, text, 60)
    if report:
        gaps = [p.get("longestGapMs") for p in report["peers"] if p["role"] == "subscriber"]
        # A sampled gap undercounts the real one by less than two sample intervals (2 x 200 ms).
        ok = len(gaps) == subscribers and all(g is not None and g + 400 < MAX_GAP_MS for g in gaps)
        check("c: subscribers keep playing (gap < 3 s)", ok and code == 0,
              f"exit {code}; longest media gap per subscriber {gaps} ms (measured by each subscriber as media arrives; "
              f"trailing gap included); freezes {report['video']['freezeCount']} totalling "
              f"{report['video']['totalFreezesSeconds']:.2f} s; video frames decodable "
              f"{report['video']['framesDecodable']}")
    else:
        check("c: subscribers keep playing (gap < 3 s)", False, f"braid-load exit {code}, no report")

    # (f): the killed relay restarts under the same name and rejoins: A and C see it and link to it again.
    b_log = open(os.path.join(work, "node-b-restarted.log"), "w")
    restarted = subprocess.Popen(nodes["b"]["argv"], stdout=b_log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    extra.append(restarted)
    started = time.monotonic()

    def rejoined():
        views = [mesh(nodes[name]["url"]) for name in ("a", "c")]
        ok = all(any(n.get("name") == "b" for n in v.get("nodes", [])) and (link(v, "b") or {}).get("up")
                 for v in views)
        return ok or None

    back = wait_for("B to rejoin", rejoined, 20, interval=0.2)
    check("f: a restarted node rejoins", back is not None and restarted.poll() is None,
          f"A and C link to the restarted B again after {time.monotonic() - started:.1f} s" if back
          else "B not back in A's and C's views within 20 s")

    # (d): a node with the wrong secret.
    bad_secret = os.path.join(work, "wrong-secret")
    with open(bad_secret, "w") as f:
        f.write("this-is-not-the-cluster-secret")
    http_port = free_port(socket.SOCK_STREAM)
    d_url = f"http://127.0.0.1:{http_port}"
    before = {name: (link(mesh(nodes[name]["url"]), "d") or {}).get("rejected", 0) for name in ("a", "c")}
    d_log = open(os.path.join(work, "node-d.log"), "w")
    d = subprocess.Popen(
        [NODE, "--node-id", "d", "--admin-port", "0", "--drain-timeout-seconds", "2", "--http-port", str(http_port), "--media-port", str(free_port(socket.SOCK_DGRAM)),
         "--event-loop-threads", "1", "--log-level", "info", "--cluster-etcd", state["etcd"],
         "--cluster-secret-file", bad_secret, "--cluster-region", "region-d", "--cluster-mesh-address", "127.0.0.1",
         "--cluster-mesh-port", str(free_port(socket.SOCK_DGRAM))],
        stdout=d_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    extra.append(d)

    def rejected_counted():
        counts = {name: (link(mesh(nodes[name]["url"]), "d") or {}).get("rejected", 0) for name in ("a", "c")}
        return counts if all(counts[n] > before[n] for n in counts) else None

    counts = wait_for("A and C to count d's datagrams as rejected", rejected_counted, 10, interval=0.25)
    time.sleep(2)  # links would have come up by now (the good ones take < 1 s)
    d_links = mesh(d_url).get("links", []) if d.poll() is None else []
    a_to_d, c_to_d = link(mesh(a), "d"), link(mesh(c), "d")
    up = [l.get("peer_name") for l in d_links if l.get("up")]
    up += [name for name, l in (("a->d", a_to_d), ("c->d", c_to_d)) if l and l.get("up")]
    final = {name: (l or {}).get("rejected") for name, l in (("a", a_to_d), ("c", c_to_d))}
    check("d: wrong secret refused and counted", counts is not None and not up,
          f"rejected datagrams from d: {final} (before {before}); links up involving d: {up or 'none'}")
    d.send_signal(signal.SIGTERM)
    try:
        d.wait(10)
    except subprocess.TimeoutExpired:
        d.kill()

    # (g): kill -9 the subscribers' own node C: BraidClient subscribers with failover move to B and play on.
    process, report_path, text = start_load(
        work, "clientfailover", ["--publisher-node", a, "--node", c, "--failover-node", b,
                                 "--subscribers", str(subscribers), "--duration", "12s", "--ramp-up", "20"])
    pulled = wait_for("C to pull the client-failover tracks", lambda: remote_tracks_on(c, "clientfailover-0"), 15)
    if pulled:
        time.sleep(3)
        os.kill(nodes["c"]["pid"], signal.SIGKILL)
        log(f"killed C (pid {nodes['c']['pid']}) with SIGKILL")
    code, report = finish_load(process, report_path, text, 60)
    if report and pulled:
        subs = [p for p in report["peers"] if p["role"] == "subscriber"]
        gaps = [p.get("longestGapMs") for p in subs]
        moves = [p.get("reconnects") for p in subs]
        ok = (len(subs) == subscribers and all(m is not None and m >= 1 for m in moves)
              and all(g is not None and g + 400 < MAX_GAP_MS for g in gaps))
        check("g: subscribers of a killed node move to another (gap < 3 s)", ok and code == 0,
              f"exit {code}; reconnects per subscriber {moves}; longest media gap {gaps} ms "
              f"(measured by each subscriber as media arrives)")
    else:
        check("g: subscribers of a killed node move to another (gap < 3 s)", False,
              f"braid-load exit {code}; C pulled the tracks: {bool(pulled)}")

    # (h): an edge function runs near its subscribers and moves when its node is lost. A and the restarted
    # B are the live nodes now (C was killed in g).
    room = "function-0"
    process, report_path, text = start_load(
        work, "function", ["--publisher-node", a, "--node", b, "--subscribers", "2", "--duration", "20s",
                           "--ramp-up", "20"])
    pulled = wait_for("B to pull the function room's tracks", lambda: remote_tracks_on(b, room), 15)
    time.sleep(1.5)  # B reports its subscribers per room with its load, once a second
    try:
        status, started = post_json(f"{a}/api/v1/rooms/{room}/functions", {"kind": "audio-mix", "inputs": "all-audio"})
    except Exception as error:
        status, started = f"error {error}", {}
    fid = started.get("id")
    placed = wait_for("the function running on B, seen from A and B", lambda: (
        (va := function_view(a, room, fid)) and (vb := function_view(b, room, fid))
        and va.get("node") == "b" and vb.get("node") == "b" and va.get("state") == "running"
        and vb.get("state") == "running" and va.get("inputs") and (va, vb)), 5) if fid else None
    check("h: function placed on its subscribers' node", pulled and status == 201 and started.get("node") == "b"
          and placed is not None,
          f"POST to A -> {status}, node {started.get('node')}, id {fid}; GET on A/B: "
          + (f"node b, running, {len(placed[0]['inputs'])} inputs" if placed else "not running on b"))
    if placed:
        os.kill(restarted.pid, signal.SIGKILL)
        killed = time.monotonic()
        log(f"killed the restarted B (pid {restarted.pid}) with SIGKILL")
        moved = wait_for("the function to run on A", lambda: (
            (v := function_view(a, room, fid)) and v.get("node") == "a" and v.get("state") == "running" and v), 15,
            interval=0.1)
        after = time.monotonic() - killed
        check("h: function moves off a killed node", moved is not None and moved.get("moves") == 1,
              f"running on A {after:.2f} s after the kill (lease TTL 3 s), moves {moved.get('moves')}, "
              f"inputs {len(moved.get('inputs', []))}" if moved else f"not running on A {after:.1f} s after the kill: "
              f"{function_view(a, room, fid)}")
        request = urllib.request.Request(f"{a}/api/v1/rooms/{room}/functions/{fid}", method="DELETE")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                deleted = response.status
        except Exception as error:
            deleted = f"error {error}"
        left = functions(a, room)
        check("h: DELETE removes it", deleted == 200 and not left, f"DELETE -> {deleted}; GET on A then lists {left}")
    process.kill()
    process.wait()

    # (e): etcd unreachable at start.
    started = time.monotonic()
    e = subprocess.Popen(
        [NODE, "--node-id", "e", "--admin-port", "0", "--drain-timeout-seconds", "2", "--http-port", "0", "--media-port", "0", "--event-loop-threads", "1",
         "--cluster-etcd", "http://127.0.0.1:1", "--cluster-secret", "a-secret-of-enough-length",
         "--cluster-mesh-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    extra.append(e)
    try:
        output, _ = e.communicate(timeout=20)
        code = e.returncode
    except subprocess.TimeoutExpired:
        e.kill()
        output, _ = e.communicate()
        code = "still running after 20 s"
    elapsed = time.monotonic() - started
    text = output.decode(errors="replace")
    lines = text.strip().splitlines()
    # A clear message: a log line at error or critical level (or a plain line) naming etcd, before any crash.
    said = [l for l in lines if "etcd" in l.lower() and not l.lstrip()[:1].isdigit()
            and (" error " in l or " critical " in l or "error:" in l.lower())]
    crashed = "Fatal error" in text or "Program crashed" in text
    detail = f"exit {code} after {elapsed:.1f} s; message: {said[0].strip()!r}" if said else \
        f"exit {code} after {elapsed:.1f} s; no error line naming etcd"
    if crashed:
        fatal = next((l for l in lines if "Fatal error" in l), "crashed")
        detail += f"; the node crashed: {fatal.strip()!r}"
    check("e: etcd unreachable -> clear error, non-zero exit",
          isinstance(code, int) and 0 < code < 126 and elapsed < 10 and said and not crashed, detail)
    if said or crashed:
        with open(os.path.join(work, "node-e.log"), "w") as f:
            f.write(text)


def main():
    work = tempfile.mkdtemp(prefix="braid-mesh-test.")
    state_dir = os.path.join(work, "mesh")
    started = time.monotonic()
    state = None
    try:
        up = subprocess.run([os.path.join(ROOT, "Tools", "mesh-up.sh"), os.path.join(ROOT, "Tools", "topologies",
                             "triangle.json"), "--binary", NODE, "--background", "--state-dir", state_dir,
                             "--timeout", "30", "--keep-logs", os.path.join(work, "logs")])
        if up.returncode != 0:
            check("mesh up", False, f"mesh-up.sh exited {up.returncode}")
        else:
            with open(os.path.join(state_dir, "mesh.json")) as f:
                state = json.load(f)
            run(state, work)
    except Exception as error:
        check("test script", False, f"{error.__class__.__name__}: {error}")
    finally:
        for process in extra:
            if process.poll() is None:
                process.kill()
                process.wait()
        subprocess.run([os.path.join(ROOT, "Tools", "mesh-up.sh"), "--down", state_dir])
    # Nothing may be left running.
    if state:
        pids = [state["supervisor_pid"], state["etcd_pid"]] + [n["pid"] for n in state["nodes"]]
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split()[2] != "Z":
                        alive.append(pid)
            except (ProcessLookupError, FileNotFoundError):
                pass
        check("cleanup: no etcd or node left", not alive, f"still running: {alive}" if alive else "all gone")
    failed = [name for name, ok, _ in results if not ok]
    print(f"\nmesh test: {len(results) - len(failed)}/{len(results)} passed in {time.monotonic() - started:.0f} s",
          file=sys.stderr)
    for name, ok, detail in results:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}", file=sys.stderr)
    if failed:
        print(f"logs kept in {work}/logs", file=sys.stderr)
        return 1
    import shutil
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
