#!/usr/bin/env bash
# Janus side by side: the same braid-load webinar against Janus 1.1.x (VideoRoom, HTTP API) and against a
# release braid-node, one after the other on this machine, and one table of what each served.
#
# Both servers and braid-load run inside a private network namespace with a veth pair (10.200.0.1 = the
# load generator, 10.200.0.2 = the server, no route out): Janus's ICE skips loopback interfaces, so
# 127.0.0.1 cannot be used, and the namespace gives both servers the same path. Each load step starts its
# server fresh, waits until it answers, runs braid-load and stops the server.
#
# Per server and subscriber count the table shows:
#   joined   subscribers that connected (ICE + DTLS) out of those asked for;
#   served   subscribers whose video p95 capture-to-receive latency < 100 ms and whose residual loss
#            (lost − recovered, audio and video) < 1 %. Video latency only, for both servers: Janus forwards
#            no abs-capture-time, so braid-load matches Janus's video frames by VP8 picture ID;
#   p95 ms   the median over subscribers of each one's video p95 latency;
#   cpu%     server CPU over the steady window (all joined + 3 s, --window seconds), % of one core;
#   top thr% the server's busiest thread over that window, % of one core (--json names it);
#   µs/pkt   server CPU time over the whole load run (joins included) ÷ RTP packets the subscribers
#            received (braid-load's counters; neither server's own): both servers are measured the same way;
#   KB/sub   (peak − idle) server RSS ÷ subscribers asked for.
# The load generator shares the machine's cores with the server: its CPU is in the table too.
#
# Usage: Tools/compare-janus.sh [--ladder "50 100 200"] [--duration S] [--window S] [--ramp-up R]
#                               [--servers "janus braid"] [--bin DIR] [--json FILE]
# Needs root (network namespace) and apt-get when janus is not installed. Exit codes: 0 the table was
# printed; 1 setup failed (no janus, no namespace, no build); 2 a server never answered.
set -euo pipefail
cd "$(dirname "$0")/.."

ladder="50 100 200"
duration=20
window=10
ramp=50
servers="janus braid"
bin=""
json=""
while [ $# -gt 0 ]; do
    case "$1" in
        --ladder) ladder="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --window) window="$2"; shift 2 ;;
        --ramp-up) ramp="$2"; shift 2 ;;
        --servers) servers="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --json) json="$2"; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "compare-janus: unknown option $1 (see --help)" >&2; exit 1 ;;
    esac
done
if [ "$window" -ge "$duration" ]; then
    echo "compare-janus: --window ($window) must be shorter than --duration ($duration)" >&2
    exit 1
fi
[ "$(id -u)" = 0 ] || { echo "compare-janus: needs root (ip netns)" >&2; exit 1; }
command -v ip > /dev/null || { echo "compare-janus: needs ip (iproute2)" >&2; exit 1; }

if ! command -v janus > /dev/null; then
    echo "== compare-janus: installing janus (apt-get)" >&2
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y janus > /dev/null; then
        echo "compare-janus: janus is not installed and apt-get install janus failed" >&2
        exit 1
    fi
fi
janus_version="$( (janus --version 2>/dev/null || true) | sed -n 's/^Janus version: .*(\(.*\))/\1/p')"
janus_files="$(dpkg -L janus 2>/dev/null || true)"
plugins_dir="$(dirname "$(grep 'libjanus_videoroom.so$' <<< "$janus_files" || echo /nonexistent/x)")"
transports_dir="$(dirname "$(grep 'libjanus_http.so$' <<< "$janus_files" || echo /nonexistent/x)")"
if [ ! -f "$plugins_dir/libjanus_videoroom.so" ] || [ ! -f "$transports_dir/libjanus_http.so" ]; then
    echo "compare-janus: cannot find Janus's VideoRoom plugin or HTTP transport (dpkg -L janus)" >&2
    exit 1
fi

if [ -z "$bin" ]; then
    echo "== compare-janus: release build" >&2
    swift build -c release --product braid-node > /dev/null
    swift build -c release --product braid-load > /dev/null
    bin="$(swift build -c release --show-bin-path)"
fi
for tool in braid-node braid-load; do
    [ -x "$bin/$tool" ] || { echo "compare-janus: $bin/$tool is missing" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/compare-janus.XXXXXX")"
ns="braidjns$$"
cleanup() {
    # The measuring script stops what it started; this removes anything left and the namespace.
    if [ -n "${measure_pid:-}" ]; then kill "$measure_pid" 2>/dev/null || true; wait "$measure_pid" 2>/dev/null || true; fi
    ip netns pids "$ns" 2>/dev/null | while read -r pid; do kill "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    echo "== compare-janus: logs and reports in $work" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add jv0 type veth peer name jv1
ip -n "$ns" addr add 10.200.0.1/24 dev jv0
ip -n "$ns" addr add 10.200.0.2/24 dev jv1
ip -n "$ns" link set jv0 up
ip -n "$ns" link set jv1 up
# libnice sends out of the interface of its candidate (jv1), so its datagrams to 10.200.0.1 arrive on jv0
# with a source address of this namespace: accept those instead of dropping them as martians.
ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.accept_local=1 net.ipv4.conf.jv0.accept_local=1 \
    net.ipv4.conf.jv1.accept_local=1

cores="$(nproc)"
conf="$work/janus-conf"
mkdir -p "$conf"
disable_list() {  # every .so of a folder but the one kept, comma-separated
    find "$1" -maxdepth 1 -name '*.so' ! -name "$2" -printf '%f\n' | sort | paste -sd, -
}
events_dir="$(dirname "$plugins_dir")/events"
loggers_dir="$(dirname "$plugins_dir")/loggers"
cat > "$conf/janus.jcfg" <<EOF
general: {
	configs_folder = "$conf"
	plugins_folder = "$plugins_dir"
	transports_folder = "$transports_dir"
	events_folder = "$events_dir"
	loggers_folder = "$loggers_dir"
	debug_level = 3
	# The address Janus writes in its SDP (it finds none by itself on the veth pair).
	interface = "10.200.0.2"
	admin_secret = "compare-janus"
	session_timeout = 60
	# One loop per core instead of one thread per handle (the default, 0).
	event_loops = $cores
}
certificates: {
}
media: {
	rtp_port_range = "20000-40000"
}
nat: {
	nice_debug = false
	ice_lite = false
	# Connectivity checks as keepalives keep the subscribers' (ICE-lite) consent fresh.
	ice_keepalive_conncheck = true
	ice_enforce_list = "jv1"
}
plugins: {
	disable = "$(disable_list "$plugins_dir" libjanus_videoroom.so)"
}
transports: {
	disable = "$(disable_list "$transports_dir" libjanus_http.so)"
}
events: {
	broadcast = false
	disable = "$( [ -d "$events_dir" ] && disable_list "$events_dir" none.so )"
}
loggers: {
	disable = "$( [ -d "$loggers_dir" ] && disable_list "$loggers_dir" none.so )"
}
EOF
cat > "$conf/janus.transport.http.jcfg" <<EOF
general: {
	json = "compact"
	base_path = "/janus"
	http = true
	ip = "10.200.0.2"
	port = 8088
	https = false
	mhd_connection_limit = 1020
}
admin: {
	admin_http = false
	admin_https = false
}
EOF
cat > "$conf/janus.plugin.videoroom.jcfg" <<EOF
general: {
}
EOF

args=(--ladder "$ladder" --duration "$duration" --window "$window" --ramp-up "$ramp" --servers "$servers"
      --bin "$bin" --work "$work" --ns "$ns" --cores "$cores" --janus-conf "$conf"
      --janus-version "${janus_version:-unknown}")
[ -n "$json" ] && args+=(--json "$json")
python3 Tools/compare-janus.py "${args[@]}" &
measure_pid=$!
wait "$measure_pid"
status=$?
measure_pid=""
exit "$status"
