#!/usr/bin/env python3
"""Starts etcd and one braid-node per topology node on 127.0.0.1, and stops them all again.

Tools/mesh-up.sh is the entry point (it documents the topology schema and the options); this file does the
work with the standard library only. Every child process gets PR_SET_PDEATHSIG(SIGKILL), so even a supervisor
killed with -9 leaves no etcd or node behind.
"""

import argparse
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

PR_SET_PDEATHSIG = 1


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when the supervisor dies, whatever the way."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


_reserved = set()


def free_port(kind=socket.SOCK_STREAM):
    """A port free for TCP (HTTP, etcd) or UDP (media, relay) on 127.0.0.1, never handed out twice."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _reserved:
            _reserved.add(port)
            return port


def load_topology(path):
    """Nodes and the one-way profile of every direction (name -> {peer -> profile})."""
    with open(path) as f:
        topology = json.load(f)
    nodes = topology.get("nodes") or []
    if not nodes:
        raise ValueError(f"{path}: no nodes")
    names = [n["name"] for n in nodes]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate node names")
    profiles = {name: {} for name in names}
    explicit = set()
    links = topology.get("links") or []
    for link in links:
        a, b = link["a"], link["b"]
        for end in (a, b):
            if end not in profiles:
                raise ValueError(f"{path}: link {a}-{b} names unknown node {end}")
        explicit.add((a, b))

    def profile(link):
        return {
            "latency_ms": float(link.get("rtt_ms", 0)) / 2,
            "jitter_ms": float(link.get("jitter_ms", 0)),
            "loss": float(link.get("loss", 0)),
            "bandwidth_kbps": float(link.get("bandwidth_kbps", 0)),
        }

    for link in links:
        a, b = link["a"], link["b"]
        profiles[a][b] = profile(link)
        # Symmetric unless the other direction has its own entry.
        if (b, a) not in explicit:
            profiles[b][a] = profile(link)
    return topology, nodes, profiles


def http_json(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def http_ok(url, timeout=1):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except Exception:
        return False


class Mesh:
    def __init__(self, topology_path, binary, work, log_level):
        self.topology, self.nodes, self.profiles = load_topology(topology_path)
        self.binary = binary
        self.work = work
        self.log_level = log_level
        self.etcd = None
        self.etcd_url = None
        self.children = {}  # name -> Popen

    def log(self, text):
        print(f"mesh-up: {text}", file=sys.stderr, flush=True)

    def start_etcd(self):
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        log = open(os.path.join(self.work, "etcd.log"), "ab")
        self.etcd = subprocess.Popen(
            ["etcd", "--name", "braid-mesh", "--data-dir", os.path.join(self.work, "etcd-data"),
             "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
             "--initial-cluster", f"braid-mesh={peer_url}", "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.etcd.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.etcd.returncode} (log: {self.work}/etcd.log)")
            if http_ok(f"{self.etcd_url}/health"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"etcd not healthy after 20 s (log: {self.work}/etcd.log)")

    def start_nodes(self):
        secret_file = os.path.join(self.work, "cluster-secret")
        with open(os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(secrets.token_hex(24))
        self.info = []
        for node in self.nodes:
            name = node["name"]
            http_port = int(node.get("http_port") or free_port())
            media_port = int(node.get("media_port") or free_port(socket.SOCK_DGRAM))
            mesh_port = int(node.get("mesh_port") or free_port(socket.SOCK_DGRAM))
            emulation = os.path.join(self.work, f"links-{name}.json")
            with open(emulation, "w") as f:
                json.dump(self.profiles[name], f, indent=1)
            log_path = os.path.join(self.work, f"node-{name}.log")
            log = open(log_path, "ab")
            argv = [self.binary, "--node-id", name, "--admin-port", "0", "--drain-timeout-seconds", "2", "--http-port", str(http_port), "--media-port", str(media_port),
                    "--event-loop-threads", "1", "--log-level", self.log_level,
                    "--cluster-etcd", self.etcd_url, "--cluster-secret-file", secret_file,
                    "--cluster-region", node.get("region", "default"), "--cluster-mesh-address", "127.0.0.1",
                    "--cluster-mesh-port", str(mesh_port), "--cluster-link-emulation", emulation]
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       preexec_fn=die_with_parent)
            self.children[name] = process
            self.info.append({
                "name": name, "region": node.get("region", "default"), "url": f"http://127.0.0.1:{http_port}",
                "http_port": http_port, "media_port": media_port, "mesh_port": mesh_port, "pid": process.pid,
                "log": log_path, "link_emulation": emulation, "argv": argv,
            })

    def wait_ready(self, timeout):
        """Every node healthy, every node's /api/v1/mesh shows a link up to every other node, and every
        node's scheduler routes on every measured link (its `graph` holds all of them: the other nodes'
        links reach it through etcd about a second after they are measured)."""
        names = [n["name"] for n in self.info]
        deadline = time.monotonic() + timeout
        missing = {}
        while time.monotonic() < deadline:
            for info in self.info:
                process = self.children[info["name"]]
                if process.poll() is not None:
                    tail = open(info["log"], errors="replace").read()[-2000:]
                    raise RuntimeError(f"node {info['name']} exited with {process.returncode}:\n{tail}")
            missing = {}
            measured = set()  # (from, to) of every link some node measured
            graphs = {}
            for info in self.info:
                try:
                    mesh = http_json(info["url"] + "/api/v1/mesh")
                    up = {link.get("peer_name") for link in mesh.get("links", []) if link.get("up")}
                except Exception as error:
                    missing[info["name"]] = f"not answering ({error.__class__.__name__})"
                    continue
                measured |= {(info["name"], link.get("peer_name")) for link in mesh.get("links", [])
                             if link.get("up") and link.get("rtt_ms") is not None}
                graphs[info["name"]] = {(edge.get("from"), edge.get("to")) for edge in mesh.get("graph", [])}
                down = [peer for peer in names if peer != info["name"] and peer not in up]
                if down:
                    missing[info["name"]] = "links down to " + ", ".join(down)
            if not missing:
                for name, graph in graphs.items():
                    unknown = sorted(measured - graph)
                    if unknown:
                        missing[name] = "scheduler lacks " + ", ".join(f"{a}->{b}" for a, b in unknown)
            if not missing:
                return
            time.sleep(0.25)
        raise RuntimeError("mesh not up after %d s: %s" % (timeout, "; ".join(f"{k}: {v}" for k, v in missing.items())))

    def stop(self):
        for process in self.children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.children.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.etcd is not None and self.etcd.poll() is None:
            self.etcd.terminate()
            try:
                self.etcd.wait(5)
            except subprocess.TimeoutExpired:
                self.etcd.kill()
                self.etcd.wait()

    def state(self):
        return {
            "topology": self.topology.get("name"), "supervisor_pid": os.getpid(), "etcd": self.etcd_url,
            "etcd_pid": self.etcd.pid if self.etcd else None, "work_dir": self.work,
            "secret_file": os.path.join(self.work, "cluster-secret"), "nodes": self.info,
        }



def table(state):
    rows = [("node", "region", "HTTP URL", "relay (UDP)")]
    rows += [(n["name"], n["region"], n["url"], f"127.0.0.1:{n['mesh_port']}") for n in state["nodes"]]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    return "\n".join(lines) + f"\netcd: {state['etcd']}   logs: {state['work_dir']}"


def sweep_stale():
    """Removes the temporary directories of supervisors that were killed with -9 (their children died with
    them, but nobody removed their files)."""
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if not name.startswith("braid-mesh.") or not os.path.isdir(path):
            continue
        try:
            with open(os.path.join(path, "supervisor.pid")) as f:
                pid = int(f.read())
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    continue
            shutil.rmtree(path, ignore_errors=True)  # a zombie nobody reaped yet
        except (ProcessLookupError, FileNotFoundError):
            shutil.rmtree(path, ignore_errors=True)
        except (OSError, ValueError):
            pass


def supervise(args, ready_fd=None):
    """Starts the mesh, reports readiness, waits for SIGINT/SIGTERM, stops everything and cleans up."""
    stop_requested = []

    def on_signal(signum, frame):
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    sweep_stale()
    work = tempfile.mkdtemp(prefix="braid-mesh.")
    with open(os.path.join(work, "supervisor.pid"), "w") as f:
        f.write(str(os.getpid()))
    mesh = None
    status = 0
    try:
        mesh = Mesh(args.topology, args.binary, work, args.log_level)
        mesh.start_etcd()
        if stop_requested:
            return 130
        mesh.start_nodes()
        mesh.wait_ready(args.timeout)
        state = mesh.state()
        if args.state_dir:
            os.makedirs(args.state_dir, exist_ok=True)
            path = os.path.join(args.state_dir, "mesh.json")
            with open(path + ".tmp", "w") as f:
                json.dump(state, f, indent=2)
            os.replace(path + ".tmp", path)
        if ready_fd is not None:
            os.write(ready_fd, b"ok\n")
            os.close(ready_fd)
            ready_fd = None
        else:
            print(table(state), flush=True)
            print("mesh-up: running; Ctrl-C stops every node and etcd", file=sys.stderr, flush=True)
        while not stop_requested:
            time.sleep(0.2)
    except Exception as error:
        print(f"mesh-up: {error}", file=sys.stderr, flush=True)
        status = 1
        if ready_fd is not None:
            os.write(ready_fd, f"error: {error}\n".encode())
    finally:
        if mesh is not None:
            mesh.stop()
        if args.keep_logs and mesh is not None:
            os.makedirs(args.keep_logs, exist_ok=True)
            for name in os.listdir(work):
                if name.endswith(".log"):
                    shutil.copy(os.path.join(work, name), args.keep_logs)
        shutil.rmtree(work, ignore_errors=True)
        if args.state_dir:
            try:
                os.remove(os.path.join(args.state_dir, "mesh.json"))
            except FileNotFoundError:
                pass
    return status


def down(state_dir):
    path = os.path.join(state_dir, "mesh.json")
    try:
        with open(path) as f:
            state = json.load(f)
    except FileNotFoundError:
        print(f"mesh-up: no mesh running from {state_dir}", file=sys.stderr)
        return 0
    pid = state["supervisor_pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 0
        time.sleep(0.1)
    # Its children die with it (PR_SET_PDEATHSIG).
    os.kill(pid, signal.SIGKILL)
    return 0


def main():
    parser = argparse.ArgumentParser(prog="mesh-up.sh")
    parser.add_argument("topology", nargs="?")
    parser.add_argument("--binary", required=False)
    parser.add_argument("--state-dir")
    parser.add_argument("--background", action="store_true")
    parser.add_argument("--down", metavar="STATE_DIR")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--keep-logs", metavar="DIR")
    args = parser.parse_args()
    if args.down:
        return down(args.down)
    if not args.topology or not args.binary:
        parser.error("TOPOLOGY and --binary are required")
    args.topology = os.path.abspath(args.topology)
    if args.state_dir:
        args.state_dir = os.path.abspath(args.state_dir)
    if not args.background:
        return supervise(args)
    if not args.state_dir:
        parser.error("--background needs --state-dir")
    os.makedirs(args.state_dir, exist_ok=True)
    # The supervisor runs on in its own session; this process returns once the mesh is up (or failed).
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.close(read_end)
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        # Nothing of the caller's stdout or stderr stays open here (a caller reading them through a pipe
        # would never see them close).
        log = os.open(os.path.join(args.state_dir, "supervisor.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        code = 1
        try:
            code = supervise(args, ready_fd=write_end)
        finally:
            os._exit(code)
    os.close(write_end)
    answer = b""
    while True:
        chunk = os.read(read_end, 4096)
        if not chunk:
            break
        answer += chunk
    if answer.startswith(b"ok"):
        with open(os.path.join(args.state_dir, "mesh.json")) as f:
            print(table(json.load(f)), flush=True)
        print(f"mesh-up: running in the background; stop it with Tools/mesh-up.sh --down {args.state_dir}",
              file=sys.stderr, flush=True)
        return 0
    message = answer.decode(errors="replace").strip() or "the supervisor died"
    print(f"mesh-up: {message} (see {args.state_dir}/supervisor.log)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
