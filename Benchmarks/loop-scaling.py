#!/usr/bin/env python3
"""Does a second event loop double what the node forwards? Issue 8's check: with 2 event loops the node
forwards >= 1.7x the packets/s of 1 loop at the same p95 latency.

On a 2-core machine the load generator needs about as much CPU per packet as the node, so neither one nor
two loops can be driven to saturation by a generator on the same cores. This script gives every event-loop
thread "a core" of known size instead: a cgroup (v1 cpu controller) per loop thread capped at --loop-cpu of
one CPU, with a short CFS period so that throttling adds at most a few milliseconds. The generator and the
kernel use the rest. For 1 and then 2 loops it runs `whole-node.py` at growing subscriber counts and keeps,
per loop count, the highest packets/s whose p95 latency stays within --p95-ms and whose video loss after
repair stays under 1 %. Prints one table and the ratio.

Usage (root, release binaries built):
  Benchmarks/loop-scaling.py [--loop-cpu 0.35] [--p95-ms 50] [--one 200,280,340,400] [--two 400,560,680,800]
      [--load-args '--light-subscribers --shared-sockets 4 --video-noise 16 --ramp-up 300'] [--json out.json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def run(args, loops: int, subscribers: int) -> dict:
    here = os.path.dirname(os.path.abspath(__file__))
    out = tempfile.mktemp(suffix=".json")
    command = [sys.executable, f"{here}/whole-node.py", "--subscribers", str(subscribers),
               "--event-loops", str(loops), "--loop-cpu", str(args.loop_cpu), "--duration", str(args.duration),
               "--window", str(args.window), "--json", out, "--load-args", args.load_args]
    if args.bin:
        command += ["--bin", args.bin]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loop-cpu", type=float, default=0.35, help="each loop thread's share of one CPU")
    parser.add_argument("--p95-ms", type=float, default=50)
    parser.add_argument("--one", default="200,280,340,400", help="subscriber counts for 1 loop")
    parser.add_argument("--two", default="400,560,680,800", help="subscriber counts for 2 loops")
    parser.add_argument("--duration", type=int, default=25)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--bin", default=None)
    parser.add_argument("--load-args", default="--light-subscribers --shared-sockets 4 --video-noise 16 --ramp-up 300")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    rows = []
    best = {}
    for loops, counts in ((1, args.one), (2, args.two)):
        for subscribers in (int(c) for c in counts.split(",")):
            figures = run(args, loops, subscribers)
            loss = figures["video_loss_after_repair"] or 0
            ok = (figures["latency_p95_ms"] is not None and figures["latency_p95_ms"] <= args.p95_ms
                  and loss < 0.01 and figures["subscribers_joined"] >= subscribers)
            rows.append((loops, subscribers, figures, ok))
            print(f"{loops} loop(s), {subscribers} subscribers: {figures['packets_out_per_second']} packets/s, "
                  f"p95 {figures['latency_p95_ms']} ms, loss {loss:.4f}, "
                  f"{figures['node_cpu_us_per_packet_out']} µs/packet, loops {figures['busiest_threads_cores']}"
                  f"{'' if ok else '  (over the limit)'}", flush=True)
            if ok:
                best[loops] = max(best.get(loops, 0), figures["packets_out_per_second"])

    print()
    print(f"| event loops (each capped at {args.loop_cpu:.2f} CPU) | subscribers | packets out/s | node CPU per "
          f"packet | p50 / p95 ms | video loss | within p95 <= {args.p95_ms:g} ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for loops, subscribers, figures, ok in rows:
        print(f"| {loops} | {subscribers} | {figures['packets_out_per_second']:,} | "
              f"{figures['node_cpu_us_per_packet_out']} µs | {figures['latency_p50_ms']} / {figures['latency_p95_ms']} | "
              f"{(figures['video_loss_after_repair'] or 0) * 100:.2f} % | {'yes' if ok else 'no'} |")
    ratio = best[2] / best[1] if best.get(1) and best.get(2) else None
    print()
    print(f"most packets/s within the limit: 1 loop {best.get(1)}, 2 loops {best.get(2)}; "
          f"ratio {ratio:.2f}" if ratio else "ratio: a loop count had no run within the limit")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": [{"loops": l, "subscribers": s, "within": ok, **fig} for l, s, fig, ok in rows],
                       "best": best, "ratio": ratio}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
