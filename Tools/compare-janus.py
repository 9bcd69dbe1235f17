#!/usr/bin/env python3
"""The measuring half of Tools/compare-janus.sh (which sets up the namespace and Janus's configuration and
documents the figures). For each server and subscriber count: start the server inside the namespace, wait
until it answers, read its idle RSS and CPU time (/proc/PID/stat utime + stime), run braid-load's webinar
against it, read CPU over the steady window and at the end, the peak RSS, stop the server, and score the
braid-load JSON report. Prints one table; --json writes every figure."""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

SERVER_IP = "10.200.0.2"
CLIENT_IP = "10.200.0.1"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def thread_cpu_seconds(pid):
    """CPU seconds of each thread, by thread id and name."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            threads[(tid, name)] = (int(fields[11]) + int(fields[12])) / TICKS
        except OSError:
            continue
    return threads


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def in_ns(ns, argv):
    return ["ip", "netns", "exec", ns] + argv


def answering(ns, url, body):
    """Whether `url` answers 200 inside the namespace (a POST when `body` is given)."""
    code = ("import sys, urllib.request as u\n"
            "d = sys.argv[2].encode() if len(sys.argv) > 2 else None\n"
            "r = u.urlopen(u.Request(sys.argv[1], data=d), timeout=2)\n"
            "sys.exit(0 if r.status == 200 else 1)\n")
    argv = ["python3", "-c", code, url] + ([body] if body else [])
    return subprocess.run(in_ns(ns, argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def start_server(kind, args, log):
    if kind == "janus":
        argv = ["janus", "-F", args.janus_conf, "-C", os.path.join(args.janus_conf, "janus.jcfg")]
        probe = (f"http://{SERVER_IP}:8088/janus", '{"janus":"info","transaction":"ready"}')
        url = f"http://{SERVER_IP}:8088/janus"
    else:
        argv = [f"{args.bin}/braid-node", "--http-address", SERVER_IP, "--http-port", "8080",
                "--media-address", SERVER_IP, "--media-port", "0", "--admin-port", "0",
                "--event-loop-threads", str(args.cores), "--log-level", "warning",
                "--limits-sessions-per-address", "0",
                # The namespace has no route out: nobody else can reach the node, and Janus runs without
                # tokens too.
                "--insecure-open"]
        probe = (f"http://{SERVER_IP}:8080/healthz", None)
        url = f"http://{SERVER_IP}:8080"
    # `ip netns exec` execs the server itself: the PID is the server's.
    process = subprocess.Popen(in_ns(args.ns, argv), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            return process, url, f"exited with status {process.returncode} before answering"
        if answering(args.ns, *probe):
            return process, url, None
        time.sleep(0.3)
    return process, url, "did not answer within 30 s"


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def score(report, threshold_ms=100.0, residual_limit=0.01):
    """Subscribers joined, and served: video p95 latency < 100 ms and residual loss < 1 %."""
    joined = served = 0
    p95s = []
    for peer in report.get("peers", []):
        if peer.get("role") != "subscriber" or peer.get("failure"):
            continue
        joined += 1
        tracks = peer.get("tracks", [])
        video = [t for t in tracks if t.get("kind") == "video"]
        expected = sum(t["packetsReceived"] + t["packetsLost"] for t in tracks)
        residual = sum(max(0, t["packetsLost"] - t["packetsRecovered"]) for t in tracks)
        p95 = max((t["latencyP95Ms"] for t in video if t.get("latencyP95Ms") is not None), default=None)
        if p95 is not None:
            p95s.append(p95)
        if video and p95 is not None and p95 < threshold_ms and expected > 0 and residual / expected < residual_limit:
            served += 1
    p95s.sort()
    median = p95s[len(p95s) // 2] if p95s else None
    return joined, served, median


def measure(kind, subscribers, args):
    log_path = os.path.join(args.work, f"{kind}-{subscribers}.log")
    report_path = os.path.join(args.work, f"{kind}-{subscribers}.json")
    row = {"server": kind, "subscribers": subscribers, "log": log_path, "report": report_path}
    with open(log_path, "w") as log:
        server, url, error = start_server(kind, args, log)
        try:
            if error:
                row["error"] = f"{kind} {error} (log: {log_path})"
                return row
            time.sleep(1)
            pid = server.pid
            idle_kb = rss_kb(pid)
            cpu0 = cpu_seconds(pid)
            target = ["--janus", url] if kind == "janus" else ["--node", url]
            load_argv = [f"{args.bin}/braid-load", "webinar", "--subscribers", str(subscribers)] + target + [
                "--local-host", CLIENT_IP, "--duration", f"{args.duration}s", "--ramp-up", str(args.ramp_up),
                "--timeout", "10s", "--threads", "1", "--json", report_path]
            started = time.time()
            load = subprocess.Popen(in_ns(args.ns, load_argv), stdout=log, stderr=subprocess.STDOUT)
            steady_start = started + subscribers / args.ramp_up + 3
            steady_end = steady_start + args.window
            peak_kb = idle_kb
            cpu_a = cpu_b = None
            while load.poll() is None:
                now = time.time()
                peak_kb = max(peak_kb, rss_kb(pid))
                if cpu_a is None and now >= steady_start:
                    cpu_a, t_a, threads_a = cpu_seconds(pid), now, thread_cpu_seconds(pid)
                elif cpu_a is not None and cpu_b is None and now >= steady_end:
                    cpu_b, t_b, threads_b = cpu_seconds(pid), now, thread_cpu_seconds(pid)
                time.sleep(0.25)
            cpu_end = cpu_seconds(pid)
            row["load_exit_code"] = load.returncode
        finally:
            stop(server)
    try:
        with open(report_path) as f:
            report = json.load(f)
    except (OSError, ValueError) as error:
        row["error"] = f"no braid-load report ({error}); braid-load exit {row.get('load_exit_code')} (log: {log_path})"
        return row
    joined, served, median_p95 = score(report)
    busiest = None
    if cpu_b is not None:
        deltas = [(threads_b[key] - threads_a.get(key, 0), key[1]) for key in threads_b]
        if deltas:
            seconds, name = max(deltas)
            busiest = {"thread": name, "cpu_percent": round(seconds / (t_b - t_a) * 100, 1)}
    packets = report.get("packetsReceived", 0)
    row.update({
        "joined": joined,
        "served": served,
        "failures": report.get("failures", {}),
        "median_subscriber_video_p95_ms": median_p95,
        "steady_cpu_percent": round((cpu_b - cpu_a) / (t_b - t_a) * 100, 1) if cpu_b is not None else None,
        "busiest_thread": busiest,
        "run_cpu_seconds": round(cpu_end - cpu0, 2),
        "subscriber_rtp_packets": packets,
        "cpu_us_per_packet": round((cpu_end - cpu0) * 1e6 / packets, 2) if packets else None,
        "rss_idle_kb": idle_kb,
        "rss_peak_kb": peak_kb,
        "rss_kb_per_subscriber": round((peak_kb - idle_kb) / subscribers, 1),
        "load_generator_cpu_seconds": round(report.get("processCPUSeconds", 0), 1),
    })
    return row


def cell(value, width, digits=None):
    if value is None:
        text = "-"
    elif digits is not None:
        text = f"{value:.{digits}f}"
    else:
        text = str(value)
    return text.rjust(width)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ladder", required=True)
    parser.add_argument("--duration", type=int, required=True)
    parser.add_argument("--window", type=int, required=True)
    parser.add_argument("--ramp-up", type=float, required=True)
    parser.add_argument("--servers", required=True)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--ns", required=True)
    parser.add_argument("--cores", type=int, required=True)
    parser.add_argument("--janus-conf", required=True)
    parser.add_argument("--janus-version", default="unknown")
    parser.add_argument("--json")
    args = parser.parse_args()
    ladder = [int(n) for n in args.ladder.split()]
    rows = []
    for kind in args.servers.split():
        if kind not in ("janus", "braid"):
            print(f"compare-janus: unknown server {kind} (janus, braid)", file=sys.stderr)
            return 1
        for subscribers in ladder:
            print(f"== compare-janus: {kind}, webinar with {subscribers} subscribers", file=sys.stderr)
            row = measure(kind, subscribers, args)
            if "error" in row:
                print(f"!! {row['error']}", file=sys.stderr)
            rows.append(row)
    title = (f"Webinar (1 publisher: Opus + VP8, synthetic media), {args.duration} s after the last join, "
             f"ramp-up {args.ramp_up:g}/s; Janus {args.janus_version} with event_loops={args.cores}, "
             f"braid-node with {args.cores} event loops; {os.cpu_count()} cores shared with braid-load")
    print(title)
    header = (f"{'server':<7}{'subs':>6}{'joined':>8}{'served':>8}{'p95 ms':>8}{'cpu%':>8}{'top thr%':>9}"
              f"{'µs/pkt':>9}{'KB/sub':>9}{'load cpu s':>11}  failures")
    print(header)
    for row in rows:
        if "error" in row:
            print(f"{row['server']:<7}{row['subscribers']:>6}  {row['error']}")
            continue
        failures = ", ".join(f"{k}×{v}" for k, v in sorted(row["failures"].items())) or "-"
        print(f"{row['server']:<7}{row['subscribers']:>6}{row['joined']:>8}{row['served']:>8}"
              f"{cell(row['median_subscriber_video_p95_ms'], 8, 0)}{cell(row['steady_cpu_percent'], 8, 1)}"
              f"{cell((row['busiest_thread'] or {}).get('cpu_percent'), 9, 1)}"
              f"{cell(row['cpu_us_per_packet'], 9, 2)}{cell(row['rss_kb_per_subscriber'], 9, 1)}"
              f"{cell(row['load_generator_cpu_seconds'], 11, 1)}  {failures}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"title": title, "rows": rows}, f, indent=2)
    return 2 if any("error" in row and "did not answer" in row["error"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
