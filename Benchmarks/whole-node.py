#!/usr/bin/env python3
"""Whole-node figures from one braid-load run against a release braid-node on loopback.

Starts `braid-node` (release) with the given number of event loops, records its idle resident memory,
runs a `braid-load webinar` against it, and over a window of steady state reads the node's CPU time
(utime + stime in /proc/PID/stat) and the RTP packets it sent (`forwarding.sent.rtp_sent` in
/api/v1/node). After the run's sessions have closed it reads the resident memory again.

Prints, and with --json writes: packets out per second, node CPU per packet out (µs), resident memory
idle / peak / after close, KB per subscriber ((peak - idle) / subscribers) and the load report's latency
percentiles. One run gives ratios on a busy shared machine; compare figures from the same run.

Usage:
  swift build -c release --product braid-node --product braid-load
  Benchmarks/whole-node.py --subscribers 100 --event-loops 1 [--duration 25] [--window 10] [--json out.json]
      [--load-args '--light-subscribers --shared-sockets 4 --video-noise 16']
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields after the command: state is [0], utime [11], stime [12] (proc(5) numbers 14 and 15).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_cpu_seconds(pid: int) -> dict:
    """CPU seconds per thread name (NIO names its event loop threads NIO-ELT-<group>-#<n>)."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        threads[f"{name}/{tid}"] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return threads


def resident_kb(pid: int) -> dict:
    """Resident memory from /proc/PID/status in KB: VmRSS (all), RssAnon (heap and stacks) and RssFile
    (pages of the binary and libraries, which stay resident once the code has run)."""
    fields = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name = line.split(":", 1)[0]
            if name in fields:
                fields[name] = int(line.split()[1])
    return fields


def resident_by_mapping(pid: int) -> tuple:
    """Resident KB per mapping from /proc/PID/smaps, keyed by what is mapped: a file path, [heap],
    [stack], or "anon at <start address>" for anonymous mappings (thread stacks, malloc arenas, mmapped
    blocks). An arena grows in place from its start address, so two snapshots compare it with itself.
    Also returns the mapped KB per key, which tells a malloc arena (64 MB apart) from a thread stack
    (8 MB) or one large block."""
    totals = {}
    sizes = {}
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if not head:
                continue
            if "-" in head[0] and not head[0].endswith(":"):
                name = head[5] if len(head) > 5 else f"anon at 0x{head[0].split('-')[0]}"
            elif head[0] == "Size:":
                sizes[name] = sizes.get(name, 0) + int(head[1])
            elif head[0] == "Rss:":
                totals[name] = totals.get(name, 0) + int(head[1])
    return totals, sizes


def limit_event_loops(pid: int, fraction: float) -> list:
    """Puts each of the node's event-loop threads (NIO-ELT-*) in a cgroup (v1 cpu controller) of its own
    that may use `fraction` of one CPU: "a core" of known size for every loop, so that one and two loops
    can be compared on a machine whose other cores run the load generator. Returns the cgroup folders."""
    # A short period: a throttled loop waits at most (1 - fraction) of it.
    period = 5_000
    folders = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if not f.read().startswith("NIO-ELT-"):
                continue
        folder = f"/sys/fs/cgroup/cpu/braid-loop-{pid}-{tid}"
        try:
            os.makedirs(folder, exist_ok=True)
            folders.append(folder)
            with open(f"{folder}/cpu.cfs_period_us", "w") as f:
                f.write(str(period))
            with open(f"{folder}/cpu.cfs_quota_us", "w") as f:
                f.write(str(int(period * fraction)))
            with open(f"{folder}/tasks", "w") as f:
                f.write(tid)
        except OSError as error:
            remove_cgroups(folders)
            raise SystemExit(f"--loop-cpu needs root and the cgroup v1 cpu controller at /sys/fs/cgroup/cpu: {error}")
    if not folders:
        raise SystemExit("--loop-cpu: no NIO-ELT-* threads found in the node")
    return folders


def remove_cgroups(folders: list) -> None:
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            pass


def node_status(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/v1/node", timeout=5) as response:
        return json.load(response)


def rtp_sent(status: dict) -> int:
    return status["forwarding"]["sent"]["rtp_sent"]["packets"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--event-loops", type=int, default=1)
    parser.add_argument("--duration", type=int, default=25, help="braid-load --duration, seconds")
    parser.add_argument("--window", type=int, default=10, help="steady-state measurement window, seconds")
    parser.add_argument("--bin", default=None, help="folder of the release binaries")
    parser.add_argument("--json", default=None, help="write the figures here")
    parser.add_argument("--load-args", default="",
                        help="more braid-load arguments, e.g. '--light-subscribers --shared-sockets 4 --video-noise 16'")
    parser.add_argument("--loop-cpu", type=float, default=None,
                        help="cap each event-loop thread at this fraction of one CPU (cgroup v1 cpu controller, "
                             "root): compares 1 and 2 loops with the load generator on the same machine")
    parser.add_argument("--node-args", default="",
                        help="extra braid-node arguments; write --node-args=--no-media-offload when they start "
                             "with a dash")
    parser.add_argument("--smaps", action="store_true",
                        help="also print which mappings (by /proc/PID/smaps) grew from idle to after close")
    parser.add_argument("--perf", default=None,
                        help="also record a call-graph profile of the node over the window (perf record -o FILE)")
    parser.add_argument("--node-cpus", default=None,
                        help="run the node on these CPUs only (taskset -c list, e.g. 0)")
    parser.add_argument("--load-cpus", default=None,
                        help="run braid-load on these CPUs only (taskset -c list, e.g. 1)")
    args = parser.parse_args()

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bin_dir = args.bin or subprocess.check_output(
        ["swift", "build", "-c", "release", "--show-bin-path"], cwd=root, text=True).strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pin_node = ["taskset", "-c", args.node_cpus] if args.node_cpus else []
    pin_load = ["taskset", "-c", args.load_cpus] if args.load_cpus else []
    node = subprocess.Popen(
        pin_node + [f"{bin_dir}/braid-node", "--admin-port", "0", "--http-port", str(port), "--media-port", "0",
         "--event-loop-threads", str(args.event_loops), "--log-level", "warning",
         # Every simulated peer comes from 127.0.0.1: lift the per-address session limit (256 by default).
         "--limits-sessions-per-address", "0"] + args.node_args.split(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cgroups = []
    try:
        for _ in range(100):
            try:
                node_status(url)
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        if args.loop_cpu:
            cgroups = limit_event_loops(node.pid, args.loop_cpu)
        idle = resident_kb(node.pid)
        idle_maps, idle_sizes = resident_by_mapping(node.pid) if args.smaps else ({}, {})
        report_path = tempfile.mktemp(suffix=".json")
        load = subprocess.Popen(
            pin_load + [f"{bin_dir}/braid-load", "webinar", "--subscribers", str(args.subscribers),
             "--duration", f"{args.duration}s", "--ramp-up", "100", "--timeout", "20s",
             "--node", url, "--json", report_path] + args.load_args.split(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Steady state: every subscriber joined, then two more seconds.
        deadline = time.time() + 60
        while time.time() < deadline:
            status = node_status(url)
            if status["forwarding"]["subscribers"] >= args.subscribers:
                break
            time.sleep(0.2)
        time.sleep(2)
        cpu0, sent0, t0 = cpu_seconds(node.pid), rtp_sent(node_status(url)), time.time()
        threads0 = thread_cpu_seconds(node.pid)
        profiler = subprocess.Popen(
            ["perf", "record", "-e", "cpu-clock", "-g", "-p", str(node.pid), "-o", args.perf,
             "--", "sleep", str(args.window)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if args.perf else None
        peak_kb = resident_kb(node.pid)["VmRSS"]
        while time.time() - t0 < args.window:
            time.sleep(0.5)
            peak_kb = max(peak_kb, resident_kb(node.pid)["VmRSS"])
        cpu1, sent1, t1 = cpu_seconds(node.pid), rtp_sent(node_status(url)), time.time()
        threads1 = thread_cpu_seconds(node.pid)
        if profiler:
            profiler.wait(timeout=30)
        load.wait(timeout=args.duration + 120)
        # Closed sessions are freed at once; the consent sweep (1 s) trims malloc afterwards.
        time.sleep(3)
        after = resident_kb(node.pid)
        after_maps, after_sizes = resident_by_mapping(node.pid) if args.smaps else ({}, {})
        with open(report_path) as f:
            report = json.load(f)
    finally:
        node.terminate()
        node.wait(timeout=10)
        remove_cgroups(cgroups)

    packets = sent1 - sent0
    seconds = t1 - t0
    cpu = cpu1 - cpu0
    figures = {
        "event_loops": args.event_loops,
        "node_cpus": args.node_cpus,
        "load_cpus": args.load_cpus,
        "loop_cpu_cap": args.loop_cpu,
        "subscribers": args.subscribers,
        "subscribers_joined": report["peersJoined"] - 1,
        "packets_out_per_second": round(packets / seconds),
        "node_cpu_cores": round(cpu / seconds, 3),
        "node_cpu_us_per_packet_out": round(cpu * 1e6 / packets, 2) if packets else None,
        # The busiest threads' share of a core over the window: with several event loops, each forwards.
        "busiest_threads_cores": dict(sorted(
            ((name, round((threads1[name] - threads0.get(name, 0)) / seconds, 3)) for name in threads1),
            key=lambda item: -item[1])[:4]),
        "rss_idle_mb": round(idle["VmRSS"] / 1024, 1),
        "rss_peak_mb": round(peak_kb / 1024, 1),
        "rss_after_close_mb": round(after["VmRSS"] / 1024, 1),
        "kb_per_subscriber": round((peak_kb - idle["VmRSS"]) / args.subscribers, 1),
        "rss_after_close_over_idle": round(after["VmRSS"] / idle["VmRSS"], 2),
        # The same split in heap (anonymous) and file-backed pages, idle -> after close, MB.
        "rss_anon_idle_after_mb": [round(idle["RssAnon"] / 1024, 1), round(after["RssAnon"] / 1024, 1)],
        "rss_file_idle_after_mb": [round(idle["RssFile"] / 1024, 1), round(after["RssFile"] / 1024, 1)],
        "latency_p50_ms": report["latency"].get("p50Ms"),
        "latency_p95_ms": report["latency"].get("p95Ms"),
        "latency_p99_ms": report["latency"].get("p99Ms"),
        "video_loss_after_repair": report["video"].get("residualLoss", report["video"].get("loss")),
        "audio_loss": report["audio"].get("loss"),
        "load_generator_cpu_seconds": report.get("processCPUSeconds"),
        "load_generator_us_per_packet_in": report.get("cpuMicrosecondsPerPacketReceived"),
        "load_generator_cpu_percent": report.get("windowCPUPercent"),
        "load_generator_kb_per_peer": report.get("residentKBPerPeer"),
        "publisher_video_kbps": report["parameters"].get("videoEncodedKbps"),
    }
    if args.smaps:
        growth = sorted(((after_maps.get(k, 0) - idle_maps.get(k, 0), k) for k in set(idle_maps) | set(after_maps)),
                        reverse=True)
        def label(key):
            if not key.startswith("anon at "):
                return key
            return f"{key} ({after_sizes.get(key, idle_sizes.get(key, 0))} KB mapped)"
        figures["rss_growth_by_mapping_kb"] = {label(k): d for d, k in growth if abs(d) >= 64}
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
