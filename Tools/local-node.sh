# Sourced by the scripts that run a release braid-node on loopback for a measurement:
#   source Tools/local-node.sh; start_local_node "$bin" "$log"
# starts "$bin/braid-node" on a free HTTP port with ephemeral admin and media ports, logs to "$log", stops
# it when the calling script exits, waits until /healthz answers and sets `url` to the node's base URL.
start_local_node() {
    local bin="$1" log="$2" port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "$bin/braid-node" --admin-port 0 --http-port "$port" --media-port 0 --log-level warning > "$log" 2>&1 &
    local_node_pid=$!
    trap 'kill "$local_node_pid" 2>/dev/null || true; wait "$local_node_pid" 2>/dev/null || true' EXIT
    for _ in $(seq 50); do
        python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2> /dev/null \
            && break
        sleep 0.2
    done
    url="http://127.0.0.1:$port"
}
