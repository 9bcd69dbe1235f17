#!/usr/bin/env python3
"""braid-load across a local mesh: the publisher on one node, subscribers spread over all the others; compares
each subscriber node's end-to-end p95 latency with the emulated latency of the path its tracks took (read from
that node's /api/v1/mesh remote_tracks[].path during the run, summed one way from the topology file).

Usage: Tools/Mesh/latency_run.py TOPOLOGY PUBLISHER_NODE [--subscribers N] [--duration 25s]
                                 [--node-binary PATH] [--load-binary PATH] [--json FILE]
Starts the mesh with Tools/mesh-up.sh --background and stops it at the end. Exit 1 when a node's p95 exceeds
the emulated path latency + 30 ms (the issue's bound) or a subscriber failed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.dirname(__file__))
from meshup import load_topology  # noqa: E402


def mesh(url):
    with urllib.request.urlopen(url + "/api/v1/mesh", timeout=2) as response:
        return json.load(response)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("topology")
    parser.add_argument("publisher")
    parser.add_argument("--subscribers", type=int, default=8)
    parser.add_argument("--duration", default="25s")
    parser.add_argument("--node-binary", default=os.path.join(ROOT, ".build/debug/braid-node"))
    parser.add_argument("--load-binary", default=os.path.join(ROOT, ".build/debug/braid-load"))
    parser.add_argument("--json")
    parser.add_argument("--margin-ms", type=float, default=30)
    args = parser.parse_args()
    _, _, profiles = load_topology(args.topology)

    work = tempfile.mkdtemp(prefix="braid-latency-run.")
    state_dir = os.path.join(work, "mesh")
    report_path = args.json or os.path.join(work, "report.json")
    up = subprocess.run([os.path.join(ROOT, "Tools/mesh-up.sh"), args.topology, "--binary", args.node_binary,
                         "--background", "--state-dir", state_dir, "--log-level", "warning"])
    if up.returncode != 0:
        return 1
    try:
        with open(os.path.join(state_dir, "mesh.json")) as f:
            state = json.load(f)
        urls = {n["name"]: n["url"] for n in state["nodes"]}
        names = {n["url"]: n["name"] for n in state["nodes"]}
        subscribers = [name for name in urls if name != args.publisher]
        command = [args.load_binary, "webinar", "--publisher-node", urls[args.publisher],
                   "--subscribers", str(args.subscribers), "--duration", args.duration, "--ramp-up", "10",
                   "--timeout", "10s", "--json", report_path]
        for name in subscribers:
            command += ["--node", urls[name]]
        print("+ " + " ".join(command), file=sys.stderr, flush=True)
        paths = {}
        done = threading.Event()

        def watch():
            # The path each node's remote tracks take, as that node reports it (last seen wins).
            while not done.is_set():
                for name in subscribers:
                    try:
                        for track in mesh(urls[name]).get("remote_tracks", []):
                            if track.get("room") == "load-0":
                                paths.setdefault(name, set()).add(tuple(track["path"]))
                    except Exception:
                        pass
                time.sleep(1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        load = subprocess.run(command)
        done.set()
        watcher.join()
        with open(report_path) as f:
            report = json.load(f)
    finally:
        subprocess.run([os.path.join(ROOT, "Tools/mesh-up.sh"), "--down", state_dir])

    failed = load.returncode != 0
    print(f"\n{'node':<15}{'path (from /api/v1/mesh)':<42}{'emulated':>9}{'p50':>8}{'p95':>8}{'p95-emul':>9}  subs")
    for figures in report["perNode"]:
        name = names.get(figures["node"], figures["node"])
        routes = sorted(paths.get(name, []))
        emulated = [sum(profiles[p[i]].get(p[i + 1], {"latency_ms": 0})["latency_ms"] for i in range(len(p) - 1))
                    for p in routes]
        worst = max(emulated) if emulated else None
        p50, p95 = figures["latency"]["p50Ms"], figures["latency"]["p95Ms"]
        over = p95 - worst if (p95 is not None and worst is not None) else None
        if over is None or over > args.margin_ms:
            failed = True
        route_text = " | ".join("->".join(p) for p in routes) or "?"
        print(f"{name:<15}{route_text:<42}{(f'{worst:.1f}' if worst is not None else '-'):>9}"
              f"{(f'{p50:.0f}' if p50 is not None else '-'):>8}{(f'{p95:.0f}' if p95 is not None else '-'):>8}"
              f"{(f'{over:+.1f}' if over is not None else '-'):>9}  "
              f"{figures['subscribersJoined']}/{figures['subscribersPlanned']}")
    print(f"(ms, one way; bound: p95 <= emulated + {args.margin_ms:.0f} ms; braid-load exit {load.returncode}; "
          f"report {report_path})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
