#!/usr/bin/env bash
# A cluster of N `node` processes (examples/node.rs), each on a host of its own: a
# network namespace with its own IP on a bridge, the peers known by name (node-1,
# node-2... from a hosts file the script writes for every namespace), like pods or VMs
# on one machine. All send to all; one node is killed with SIGKILL in the middle of
# the run and started again on a new IP under the same name, as an orchestrator
# reschedules a pod: the others find it again through the name at their next retry.
# It prints the summaries and checks them and the nodes' records across incarnations,
# with the rules of local_cluster.sh's KILL_EVERY (examples/cluster_check.py).
#
#   sudo examples/netns_cluster.sh                               # 3 hosts, 10 s, node-3 moves
#   DURATION=4 examples/netns_cluster.sh                         # the CI run
#   RATE_LIMIT=100mbit DELAY_MS=20 N=4 examples/netns_cluster.sh # 100 Mbit/s per host, 20 ms each way
#   MOVE=0 FRAMING=lz4 SIZE=4096 examples/netns_cluster.sh       # no kill
#   BENCH_LZ4=1 examples/netns_cluster.sh                        # LZ4 against CRC under 100 Mbit/s
#
# Needs root: it creates network namespaces, veth pairs, a bridge, tc qdiscs and
# /etc/netns/<namespace>/hosts (`ip netns exec` mounts that file over /etc/hosts for
# the processes it starts). Everything it creates is named with PREFIX (`inode-`):
# namespaces PREFIXn1..PREFIXnN, the bridge PREFIXbr, the host ends of the veth pairs
# PREFIXv1..PREFIXvN (the namespace end is eth0). It removes all of it on exit, also
# when interrupted (INT, TERM), and at start what an interrupted run left (killing
# the processes left in those namespaces). Runs with the same PREFIX wait for each
# other (a lock in /run).
#
# Network: host ID is SUBNET.ID/24 (SUBNET 10.77.0); the moved node comes back as
# SUBNET.(100+ID). Every node listens on 0.0.0.0:PORT (23001) in its namespace and
# reaches peer P as node-P:PORT, a name it resolves at every connect attempt (the
# library never caches it). Nodes run without --advertise by default: a node bound to
# 0.0.0.0 announces only its port, and a peer that learns its address from a
# connection (one not given it by name) takes the connection's source IP, which is
# the node's own here (no NAT between namespaces). Here every node has every peer by
# name, and names given by configuration win over addresses learned from handshakes;
# ADVERTISE=1 gives each node `--advertise ITS_IP:PORT` instead (a moved node then
# advertises its new IP).
#
# Environment: N (hosts, 3; at most 50), DURATION (s, 10), RATE (msgs/s per peer, 0 =
# as fast as accepted), SIZE (payload bytes, 100), PAYLOAD (pattern|random|half:
# node.rs's --payload), FRAMING (crc|lz4|unprotected), PORT (23001, in 20000-31899),
# OUT (logs, summaries, records and hosts files; a temporary directory by default),
# CARGO_FLAGS (e.g. --release), HEARTBEAT_TIMEOUT (s; the library's 5 s by default),
# NODE_FLAGS (more flags for every node), UNHANDLED_WINDOW_MS (2000; see
# local_cluster.sh), PREFIX (inode-), SUBNET (10.77.0), and:
#
# MOVE=ID (default N; 0: none) and MOVE_AT=SECS (default DURATION/2; at least 1 s of
#   DURATION must remain): at MOVE_AT, node ID is killed with SIGKILL; 0.2 s later
#   (what its kernel sends for its sockets has gone out) node-ID leaves every
#   namespace's hosts file (it no longer resolves, as a rescheduled pod's DNS record
#   goes while it has none: the peers' attempts fail at once instead of waiting for
#   a dead IP), its namespace is deleted and created again with the new IP, node-ID
#   comes back in the hosts files (rewritten in place) with the new IP, and the node
#   starts again with the same flags, except `--duration` (what remains of DURATION)
#   and its own files (node-ID.INC.log, .json, .rec, INC = 0, 1: its incarnations).
#   Its peers' connections to the old IP end and they keep retrying node-ID:PORT. The
#   check then requires, besides local_cluster.sh's rules across incarnations (every
#   acknowledged message received once, in order; the others failed peer_restarted,
#   or are excused as unhandled at the kill), that the new incarnation accepted
#   connections from every peer and got every peer's final done (only the name leads
#   there).
# RATE_LIMIT=RATE (none; e.g. 100mbit, as tc writes rates): a token bucket (`tc qdisc
#   ... tbf`, burst RATE_BURST, default 64kb, queue up to 50 ms) on both ends of every
#   host's veth pair, each limiting what leaves through it: what the host sends and
#   what it receives, each at RATE (this kernel has no netem; tbf shapes egress only,
#   so each direction gets its own). The veths' byte counters are printed at the end.
# DELAY_MS=N (none): every host runs examples/fault_proxy.rs --delay-ms N in its
#   namespace on 0.0.0.0:PORT+100 in front of its node, and its peers connect to
#   node-ID:PORT+100: N ms more each way, 2N per round trip (a proxy is moved with its
#   node).
# BENCH_LZ4=1: instead of the above, LZ4 framing against CRC framing under a bandwidth
#   limit: for each of BENCH_RUNS (3) rounds, a cluster (no move, no records) per
#   framing (crc, lz4) and payload (pattern, half, random: node.rs's --payload), each
#   for DURATION (10) s; then a table, medians over the rounds, of the payload MB/s
#   (10^6 bytes) a host's node received while the traffic ran (from the nodes'
#   per-second status lines, from 1 s to DURATION: the queues' drain after DURATION
#   is left out), the payload over the bytes the hosts' veths carried towards them
#   (the wire) and the nodes' CPU time per MB of payload (from /proc), and the check
#   of every summary: nothing lost, duplicated or out of order, every done delivered.
#   Defaults in this mode: RATE_LIMIT=100mbit, SIZE=1024, CARGO_FLAGS=--release.
#
# Exit status: 0 when every check passed, 1 when one failed, 2 on bad settings or
# without root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "netns_cluster.sh: needs root (network namespaces, veth pairs, a bridge, tc, /etc/netns);" \
    "try: sudo $0" >&2
  exit 2
fi
for tool in ip tc flock python3; do
  command -v "$tool" >/dev/null || { echo "netns_cluster.sh: needs $tool" >&2; exit 2; }
done

BENCH_LZ4=${BENCH_LZ4:-}
if [ -n "$BENCH_LZ4" ]; then
  SIZE=${SIZE:-1024} RATE_LIMIT=${RATE_LIMIT:-100mbit} CARGO_FLAGS=${CARGO_FLAGS:---release}
fi
N=${N:-3}
DURATION=${DURATION:-10}
RATE=${RATE:-0}
SIZE=${SIZE:-100}
PAYLOAD=${PAYLOAD:-pattern}
FRAMING=${FRAMING:-crc}
PORT=${PORT:-23001}
MOVE=${MOVE:-$N}
MOVE_AT=${MOVE_AT:-$(awk -v d="$DURATION" 'BEGIN { printf "%.3f", d / 2 }')}
RATE_LIMIT=${RATE_LIMIT:-}
RATE_BURST=${RATE_BURST:-64kb}
DELAY_MS=${DELAY_MS:-}
ADVERTISE=${ADVERTISE:-}
BENCH_RUNS=${BENCH_RUNS:-3}
PREFIX=${PREFIX:-inode-}
SUBNET=${SUBNET:-10.77.0}
UNHANDLED_WINDOW_MS=${UNHANDLED_WINDOW_MS:-2000}
CARGO_FLAGS=${CARGO_FLAGS:-}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/internode-netns.XXXXXX")}
mkdir -p "$OUT"

# Seconds (maybe fractional) to milliseconds.
ms() { awk -v s="$1" 'BEGIN { if (s !~ /^[0-9]*\.?[0-9]+$/) exit 1; printf "%d", s * 1000 }'; }
secs() { awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }'; }
now_ms() { date +%s%3N; }
bad() { echo "netns_cluster.sh: $*" >&2; exit 2; }
# in_range VALUE MIN MAX: whether VALUE is a whole number from MIN to MAX.
in_range() { [[ "$1" =~ ^[0-9]{1,6}$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
duration_ms=$(ms "$DURATION") || bad "DURATION must be a number of seconds"
in_range "$N" 2 50 || bad "N must be 2 to 50"
in_range "$PORT" 20000 31899 || bad "PORT must be in 20000-31899 (proxies use PORT+100)"
[[ "$PREFIX" =~ ^[a-z][a-z0-9-]{0,7}$ ]] || bad "PREFIX: a lower-case letter, then up to 7 of [a-z0-9-]"
[[ "$SUBNET" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || bad "SUBNET: three numbers, like 10.77.0"
in_range "$MOVE" 0 "$N" || bad "MOVE must be a node id (1-$N) or 0"
[ -z "$DELAY_MS" ] || in_range "$DELAY_MS" 0 60000 || bad "DELAY_MS must be a number of ms"
in_range "$BENCH_RUNS" 1 99 || bad "BENCH_RUNS must be 1 to 99"
if [ -n "$BENCH_LZ4" ]; then
  MOVE=0
elif [ "$MOVE" != 0 ]; then
  move_ms=$(ms "$MOVE_AT") || bad "MOVE_AT must be a number of seconds"
  [ $((duration_ms - move_ms)) -ge 1000 ] || bad "MOVE_AT must leave at least 1 s of DURATION"
fi

bridge=${PREFIX}br
ns() { echo "${PREFIX}n$1"; }
veth() { echo "${PREFIX}v$1"; }

# Only one run per PREFIX at a time: the lock is held until this shell exits.
exec 9>"/run/${PREFIX}netns_cluster.lock"
flock -w 600 9 || bad "another run with PREFIX=$PREFIX has held /run/${PREFIX}netns_cluster.lock for 10 min"

declare -A pid proxy_pid inc addr cpu_ticks # per node: processes, incarnation, IP, CPU

# Removes every namespace (with its processes), veth, bridge and hosts file of
# PREFIX: this run's, or what an interrupted one left.
teardown() {
  local n v p
  for n in $(ip netns list | awk '{ print $1 }' | grep -E "^${PREFIX}n[0-9]+$" || true); do
    for p in $(ip netns pids "$n" 2>/dev/null || true); do kill -9 "$p" 2>/dev/null || true; done
  done
  for v in $(ip -o link show | awk -F': ' '{ print $2 }' | cut -d@ -f1 | grep -E "^${PREFIX}v[0-9]+$" || true); do
    ip link del "$v" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  for n in $(ip netns list | awk '{ print $1 }' | grep -E "^${PREFIX}n[0-9]+$" || true); do
    ip netns del "$n" 2>/dev/null || true
  done
  rm -rf /etc/netns/"${PREFIX}"n*
  rmdir /etc/netns 2>/dev/null || true # only if nothing else is there
}

stop_all() {
  local p
  for p in "${pid[@]}" "${proxy_pid[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pid=() proxy_pid=()
}

cleanup() {
  stop_all
  teardown
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The hosts file of every namespace, rewritten in place: `ip netns exec` bind-mounts
# the file itself, so a new file renamed over it would not be seen by running nodes.
write_hosts() {
  local id n
  {
    echo "127.0.0.1 localhost"
    echo "::1 localhost"
    for id in $(seq "$N"); do [ -z "${addr[$id]}" ] || echo "${addr[$id]} node-$id"; done
  } >"$OUT/hosts"
  for id in $(seq "$N"); do
    n=$(ns "$id")
    mkdir -p "/etc/netns/$n"
    cat "$OUT/hosts" >"/etc/netns/$n/hosts"
  done
}

# add_host ID: namespace, veth pair on the bridge, address addr[ID], rate limits.
add_host() {
  local id=$1 n v
  n=$(ns "$id") v=$(veth "$id")
  ip netns add "$n"
  ip link add "$v" type veth peer name eth0 netns "$n"
  ip link set "$v" master "$bridge" up
  ip -n "$n" addr add "${addr[$id]}/24" dev eth0
  ip -n "$n" link set eth0 up
  ip -n "$n" link set lo up
  if [ -n "$RATE_LIMIT" ]; then
    # What the host receives (leaving the bridge's end) and what it sends.
    tc qdisc add dev "$v" root tbf rate "$RATE_LIMIT" burst "$RATE_BURST" latency 50ms
    tc -n "$n" qdisc add dev eth0 root tbf rate "$RATE_LIMIT" burst "$RATE_BURST" latency 50ms
  fi
}

# del_host ID: its processes must be gone. The host end first (that deletes the pair
# at once; a deleted namespace's devices go away in the background).
del_host() {
  ip link del "$(veth "$1")"
  ip netns del "$(ns "$1")"
}

# Bytes the host end of ID's veth sent towards it (what the host received).
veth_bytes() {
  ip -s -j link show dev "$(veth "$1")" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["stats64"]["tx"]["bytes"])'
}

build() {
  # shellcheck disable=SC2086 # CARGO_FLAGS is split into words on purpose
  cargo build --quiet $CARGO_FLAGS --example node --example fault_proxy
  local profile=debug target_dir
  case " $CARGO_FLAGS " in *" --release "*) profile=release ;; esac
  target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  bin="$target_dir/$profile/examples/node"
  proxy_bin="$target_dir/$profile/examples/fault_proxy"
}

peer_port() { if [ -n "$DELAY_MS" ]; then echo $((PORT + 100)); else echo "$PORT"; fi; }

# start_proxy ID: the delaying proxy in front of node ID, in its namespace.
start_proxy() {
  local id=$1 log="$OUT/proxy-$1.${inc[$1]}.log"
  ip netns exec "$(ns "$id")" "$proxy_bin" --listen "0.0.0.0:$((PORT + 100))" \
    --target "127.0.0.1:$PORT" --delay-ms "$DELAY_MS" 2>"$log" &
  proxy_pid[$id]=$!
  for _ in $(seq 100); do
    grep -q -- '->' "$log" 2>/dev/null && return
    sleep 0.05
  done
  echo "the proxy of node-$id did not start:"
  cat "$log"
  exit 1
}

# start_node ID DURATION_SECS: incarnation inc[ID] of node ID.
start_node() {
  local id=$1 secs=$2 n=${inc[$1]} peer
  local args=(--id "$id" --listen "0.0.0.0:$PORT" --size "$SIZE" --payload "$PAYLOAD"
    --rate "$RATE" --duration "$secs" --framing "$FRAMING" --summary-json "$OUT/node-$id.$n.json")
  # --record: what the check needs across incarnations (not measured in BENCH_LZ4).
  [ -n "$BENCH_LZ4" ] || args+=(--record "$OUT/node-$id.$n.rec")
  [ -z "$ADVERTISE" ] || args+=(--advertise "${addr[$id]}:$(peer_port)")
  [ -z "${HEARTBEAT_TIMEOUT:-}" ] || args+=(--heartbeat-timeout "$HEARTBEAT_TIMEOUT")
  # shellcheck disable=SC2206 # NODE_FLAGS is split into words on purpose
  [ -z "${NODE_FLAGS:-}" ] || args+=(${NODE_FLAGS})
  for peer in $(seq "$N"); do
    [ "$peer" = "$id" ] || args+=(--peer "$peer@node-$peer:$(peer_port)")
  done
  if [ -n "$DELAY_MS" ]; then start_proxy "$id"; fi
  # `ip netns exec` becomes the node (exec): $! is the node's process.
  ip netns exec "$(ns "$id")" "$bin" "${args[@]}" >"$OUT/node-$id.$n.log" 2>&1 &
  pid[$id]=$!
}

# start_cluster: fresh hosts and their nodes, incarnation 0.
start_cluster() {
  local id
  teardown
  ip link add "$bridge" type bridge
  ip link set "$bridge" up
  for id in $(seq "$N"); do
    addr[$id]=$SUBNET.$id
    inc[$id]=0
    add_host "$id"
  done
  write_hosts
  start=$(now_ms)
  for id in $(seq "$N"); do start_node "$id" "$DURATION"; done
}

# wait_nodes: every node's exit; a failure prints its log and fails the run. A node
# ends by itself at the latest after its --duration and --grace (10 s by default);
# one still running 60 s after DURATION is killed, and fails the run. Meanwhile,
# cpu_ticks[ID]: the CPU time node ID used (user and system, in clock ticks), as last
# seen in /proc.
wait_nodes() {
  local id status=0 deadline=$((start + duration_ms + 60000)) alive stat
  while :; do
    alive=0
    for id in $(seq "$N"); do
      if read -r -a stat 2>/dev/null <"/proc/${pid[$id]}/stat"; then
        alive=1
        cpu_ticks[$id]=$((stat[13] + stat[14]))
      fi
    done
    if [ "$alive" = 0 ] || [ "$(now_ms)" -ge "$deadline" ]; then break; fi
    sleep 0.1
  done
  for id in $(seq "$N"); do
    if kill -0 "${pid[$id]}" 2>/dev/null; then
      echo "node-$id (incarnation ${inc[$id]}) still runs 60 s after the traffic: killed"
      kill -9 "${pid[$id]}" 2>/dev/null || true
    fi
    if ! wait "${pid[$id]}"; then
      echo "node-$id (incarnation ${inc[$id]}) exited with an error; its log:"
      cat "$OUT/node-$id.${inc[$id]}.log"
      status=1
    fi
    unset "pid[$id]"
  done
  [ "$status" = 0 ] || exit 1
}

# move_node ID: SIGKILL, then a new namespace with a new IP under the same name.
move_node() {
  local id=$1 killed_at status=0 old=${addr[$1]} remaining
  killed_at=$(now_ms)
  kill -9 "${pid[$id]}" 2>/dev/null || true
  { wait "${pid[$id]}"; } 2>/dev/null || status=$?
  if [ "$status" != 137 ]; then
    echo "node-$id (incarnation ${inc[$id]}) had ended by itself (status $status); its log:"
    cat "$OUT/node-$id.${inc[$id]}.log"
    exit 1
  fi
  echo "$id ${inc[$id]} $killed_at $status" >>"$OUT/kills"
  sleep 0.2 # the kernel's FIN or RST for the killed node's connections go out first
  if [ -n "$DELAY_MS" ]; then
    kill "${proxy_pid[$id]}" 2>/dev/null || true
    wait "${proxy_pid[$id]}" 2>/dev/null || true
    unset "proxy_pid[$id]"
  fi
  # While it has no host, its name resolves to nothing (a rescheduled pod's DNS
  # record): its peers' attempts fail at once rather than wait for a dead IP.
  addr[$id]=""
  write_hosts
  del_host "$id"
  addr[$id]=$SUBNET.$((100 + id))
  add_host "$id"
  write_hosts
  inc[$id]=$((inc[$id] + 1))
  remaining=$(secs "$((start + duration_ms - $(now_ms)))")
  start_node "$id" "$remaining"
  echo "[$(secs "$((killed_at - start))")s] node-$id (incarnation $((inc[$id] - 1)), $old) killed with" \
    "SIGKILL (status $status); restarted as incarnation ${inc[$id]} on ${addr[$id]} for $remaining s" \
    "(node-$id names ${addr[$id]} in every hosts file now)"
}

build

if [ -n "$BENCH_LZ4" ]; then
  echo "LZ4 against CRC framing: $N hosts, $RATE_LIMIT per host each way${DELAY_MS:+, $DELAY_MS ms each way}," \
    "${SIZE} B messages as fast as accepted, $DURATION s per cluster, $BENCH_RUNS rounds;" \
    "logs and summaries in $OUT"
  : >"$OUT/bench.tsv"
  for round in $(seq "$BENCH_RUNS"); do
    for FRAMING in crc lz4; do
      for PAYLOAD in pattern half random; do
        dir="$OUT/$round-$FRAMING-$PAYLOAD"
        mkdir -p "$dir"
        run_out=$OUT OUT=$dir
        start_cluster
        wait_nodes
        stop_all
        wire=0 cpu=0
        for id in $(seq "$N"); do
          wire=$((wire + $(veth_bytes "$id")))
          cpu=$((cpu + ${cpu_ticks[$id]:-0}))
        done
        OUT=$run_out
        echo "$round $FRAMING $PAYLOAD $dir $wire $(awk -v t="$cpu" -v hz="$(getconf CLK_TCK)" \
          'BEGIN { printf "%.2f", t / hz }')" >>"$OUT/bench.tsv"
        echo "round $round: $FRAMING, $PAYLOAD payloads: done"
      done
    done
  done
  teardown
  python3 - "$OUT/bench.tsv" "$DURATION" "$N" "$SIZE" <<'EOF_BENCH'
import json, re, statistics, sys
tsv, duration, n, size = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
status = re.compile(r"^\[\s*([0-9.]+)s\] node-\d+ -> node-(\d+): .* from node-\d+: received (\d+) ")
problems = []
rows = {}  # (framing, payload) -> [(payload MB/s, payload/wire, CPU ms per MB) per round]
for line in open(tsv):
    round_, framing, payload, run_dir, wire, cpu = line.split()
    rate = total = 0
    for i in range(1, n + 1):
        # The payload rate while the traffic runs: the status lines' received counts
        # (one a second), from the first line after 1 s to the last one within DURATION.
        seen = {}  # sender -> [(s, received)]
        for l in open(f"{run_dir}/node-{i}.0.log"):
            m = status.match(l)
            if m and 1.0 <= float(m.group(1)) <= duration:
                seen.setdefault(m.group(2), []).append((float(m.group(1)), int(m.group(3))))
        for sender, points in seen.items():
            (t0, r0), (t1, r1) = points[0], points[-1]
            if t1 - t0 < 0.5:
                problems.append(f"{run_dir}: node-{i}: too few status lines (DURATION >= 3)")
                continue
            rate += (r1 - r0) * size / (t1 - t0)
        # The checks, and the totals, from the summaries.
        s = json.load(open(f"{run_dir}/node-{i}.0.json"))
        if s["finished"] != "all peers done":
            problems.append(f"{run_dir}: node-{i} finished by {s['finished']}")
        for sender, got in s["senders"].items():
            total += sum(r["bytes"] for r in got["runs"])
            sent = json.load(open(f"{run_dir}/node-{sender}.0.json"))["peers"][str(i)]
            link = f"{run_dir}: node-{sender} -> node-{i}"
            if got["duplicates"] or got["out_of_order"] or got["gaps"]:
                problems.append(f"{link}: {got['duplicates']} duplicates, {got['out_of_order']} "
                                f"out of order, {got['gaps']} gaps")
            if got["received"] != sent["acknowledged"] or sum(sent["failed"].values()):
                problems.append(f"{link}: {sent['acknowledged']} acknowledged, {got['received']} "
                                f"received, failed {sent['failed']}")
            if not got["done"]:
                problems.append(f"{link}: the final done did not arrive")
    rows.setdefault((framing, payload), []).append(
        (rate / n / 1e6, total / int(wire), float(cpu) * 1000 / (total / 1e6)))
runs = len(next(iter(rows.values())))
print()
print(f"per host, median of {runs} rounds (min-max):")
print(f"{'framing':<9}{'payload':<9}{'payload MB/s':>14}{'min-max':>14}{'payload/wire':>14}"
      f"{'CPU ms/MB':>11}")
for (framing, payload), v in rows.items():
    p, ratio, cpu = (statistics.median(x[i] for x in v) for i in range(3))
    spread = f"{min(x[0] for x in v):.1f}-{max(x[0] for x in v):.1f}"
    print(f"{framing:<9}{payload:<9}{p:>14.1f}{spread:>14}{ratio:>14.2f}{cpu:>11.1f}")
print("(MB = 10^6 bytes. payload MB/s: the data messages' payload a host's node received per "
      "second while the traffic ran; payload/wire: all the payload the hosts received over the "
      "bytes their veths carried towards them (frames, TCP/IP and Ethernet headers, "
      "acknowledgements and keepalives included); CPU ms/MB: the nodes' CPU time, sending and "
      "receiving, per MB of payload received)")
if problems:
    for p in problems[:20]:
        print("FAILED:", p)
    sys.exit(1)
print("ok: every message acknowledged was received once, in order, in every run")
EOF_BENCH
  exit
fi

echo "$N hosts ($(ns 1)..$(ns "$N") on $bridge, $SUBNET.1-$SUBNET.$N), ${DURATION} s, size ${SIZE} B" \
  "($PAYLOAD), rate ${RATE} (0 = as fast as accepted), ${FRAMING} framing," \
  "${RATE_LIMIT:-no} rate limit, ${DELAY_MS:-no} delay (ms)," \
  "$([ "$MOVE" = 0 ] && echo "no move" || echo "node-$MOVE killed and moved at $MOVE_AT s");" \
  "logs, summaries and records in $OUT"
: >"$OUT/kills"
start_cluster
if [ "$MOVE" != 0 ]; then
  wait_ms=$((start + move_ms - $(now_ms)))
  [ "$wait_ms" -le 0 ] || sleep "$(secs "$wait_ms")"
  move_node "$MOVE"
fi
wait_nodes
rate_counters=""
if [ -n "$RATE_LIMIT" ]; then
  for id in $(seq "$N"); do rate_counters+="node-$id received $(veth_bytes "$id") B on its veth; "; done
fi
stop_all

for id in $(seq "$N"); do
  echo "--- node-$id (incarnation ${inc[$id]}, ${addr[$id]}): last status lines"
  tail -n 4 "$OUT/node-$id.${inc[$id]}.log"
  echo "--- node-$id: summary ($OUT/node-$id.${inc[$id]}.json)"
  cat "$OUT/node-$id.${inc[$id]}.json"
done
[ -z "$rate_counters" ] || echo "$rate_counters"

mode="plain"
[ "$MOVE" = 0 ] || mode="kill"
# The records and summaries, across incarnations (local_cluster.sh's rules).
# shellcheck disable=SC2046 # one argument per node id
python3 examples/cluster_check.py "$OUT" "$mode" "$UNHANDLED_WINDOW_MS" "$SIZE" $(seq "$N")
if [ "$MOVE" != 0 ]; then
  # Only the name leads to the new incarnation: every peer must have reached it (its
  # final done, which it sends once its traffic is over).
  python3 - "$OUT/node-$MOVE.1.json" "$N" "$MOVE" "${addr[$MOVE]}" <<'EOF_MOVE'
import json, sys
summary, n, moved, ip = json.load(open(sys.argv[1])), int(sys.argv[2]), sys.argv[3], sys.argv[4]
connections = summary["inbound"]["connections"]
got = summary["senders"]
reached = [s for s in sorted(got) if got[s]["done"]]
print(f"node-{moved} on {ip} (its new IP): {connections} connections accepted; from its peers: "
      + ", ".join(f"node-{s} {got[s]['received']} messages{' and done' if got[s]['done'] else ''}"
                  for s in sorted(got)))
if connections < n - 1 or len(reached) != n - 1:
    print(f"FAILED: the peers of node-{moved} did not all find it at its new IP")
    sys.exit(1)
EOF_MOVE
fi
