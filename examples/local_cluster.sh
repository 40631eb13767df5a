#!/usr/bin/env bash
# A local cluster of three `node` processes (examples/node.rs) on 127.0.0.1:23001-23003,
# all sending to all. Builds the examples once, starts the nodes, waits for them, prints
# the final summaries and checks them and the nodes' records (`--record`, kept for every
# incarnation of a node).
#
#   examples/local_cluster.sh                         # 10 s of traffic, as fast as accepted
#   DURATION=3 examples/local_cluster.sh              # the CI smoke run
#   DURATION=6 CUT_EVERY=1 examples/local_cluster.sh  # CI: connections cut about every second
#   DURATION=8 KILL_EVERY=3 examples/local_cluster.sh # CI: a node SIGKILLed every 3 s
#   DURATION=5 RATE=2000 SIZE=1024 FRAMING=lz4 PORT_BASE=23100 examples/local_cluster.sh
#
# Environment: DURATION (s, 10), RATE (msgs/s per peer, 0 = as fast as accepted),
# SIZE (payload bytes, 100), FRAMING (crc|lz4|unprotected), PORT_BASE (23000: nodes on
# PORT_BASE+1..3, proxies on PORT_BASE+100+10*sender+receiver), OUT (directory for
# logs, summaries and records; a temporary one by default), CARGO_FLAGS (e.g.
# --release), HEARTBEAT_TIMEOUT (s; the library's 5 s by default), NODE_FLAGS (more
# flags for every node, e.g. the limits:
#   NODE_FLAGS="--link-capacity 64k --endpoint-reserve 256k --global-reserve 512k --expire-after 200"),
# and the faults, none by default:
#
# CUT_EVERY=SECS: one examples/fault_proxy.rs per directed pair (node i reaches node j
#   through the proxy on PORT_BASE+100+10*i+j), each cutting all its connections after
#   a delay drawn in [SECS/2, SECS*3/2], again and again (SEED: the first proxy's
#   seed, printed; the others use SEED+10*i+j). Links are lossless: the check requires
#   no message lost, duplicated or out of order, and prints the proxies' cuts.
# SECURE=1: every node gets a fresh cluster secret (--cluster-secret-file) and TLS
#   (--tls-cert/--tls-key/--tls-ca: a fresh CA and node certificates written by
#   examples/gen_certs.rs into OUT), and two impostors try to reach node 1 all along:
#   node 9, with a certificate of the cluster's CA but another secret, and node 8,
#   with the cluster's secret but a certificate of another CA. Neither may deliver
#   anything, and node 1 must count both (auth_* and tls_untrusted_certificate).
# KILL_EVERY=SECS: every SECS, while at least 1 s of DURATION remains, one node, round
#   robin from node 3 (3, 1, 2, 3...), is killed with SIGKILL and started again at
#   once on the same port with the same flags, except `--duration` (what remains of
#   DURATION, so that the cluster ends together) and its own files: node-ID.INC.log,
#   .json (only a process that exits writes one) and .rec (INC = 0, 1... its
#   incarnations). The check counts across incarnations, from the records:
#   - every message whose sender saw it `acknowledged` was received exactly once by
#     some incarnation of its receiver;
#   - every other message either failed `peer_restarted` (received at most once, and
#     only by an incarnation that was then killed), or failed otherwise, or has no
#     outcome because its sender was killed first ("unknown": received at most once);
#   - in every receiver incarnation, each sender run's messages arrive in increasing
#     order, and later incarnations only get later messages (no duplicates, no
#     out-of-order messages across incarnations either).
#   The one exception, "unhandled@kill": an acknowledgement says that the receiver's
#   node took the message, not that its handler ran (src/outcome.rs), and the handler
#   records a message (one write per message, which survives SIGKILL) a moment after
#   the node acknowledged it. So an acknowledged message that no incarnation recorded
#   is accepted, and counted apart, only if all of this holds:
#   (a) it is in the tail of a killed incarnation's stream from that sender run: it
#       comes after the last message that incarnation recorded from the run (if any)
#       and before the first one a later incarnation recorded;
#   (b) no message between that last recorded one and it failed `peer_restarted`
#       (acknowledgements are cumulative: what a killed incarnation acknowledged
#       precedes what it left unacknowledged, and everything a later incarnation
#       took follows that);
#   (c) its sender saw the acknowledgement at most UNHANDLED_WINDOW_MS (default 2000)
#       before the kill (the record's outcome times against the kill time this script
#       took just before `kill -9`: the handler's lag behind the acknowledgements),
#       and not after its link for these messages found the receiver restarted (the
#       sender's first `event ... peer_restarted` after the kill: the handshake with
#       the next incarnation, which reads only after the killed one's last
#       acknowledgements; without such an event, at most UNHANDLED_WINDOW_MS after
#       the kill).
#   Their number per kill and the largest distance to the kill are printed.
#   The checks are for lossless links (the default): with `--link-policy lossy` in
#   NODE_FLAGS, CUT_EVERY and KILL_EVERY show the losses and fail.
#
# Without faults the check requires every acknowledged message received, no gaps but
# the messages that failed (overloaded, expired), no duplicates, no out-of-order
# messages, and every node got every peer's final `done`.
#
# Large messages in a debug build: a link's keepalive pong waits behind everything
# already written (loopback buffers hold tens of MB), and a slow debug receiver may take
# longer than the 5 s heartbeat timeout to get through it; the link then resets a
# healthy connection (and writes again what was not acknowledged). Use
# CARGO_FLAGS=--release or HEARTBEAT_TIMEOUT=30 for SIZE above ~10000.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
RATE=${RATE:-0}
SIZE=${SIZE:-100}
FRAMING=${FRAMING:-crc}
PORT_BASE=${PORT_BASE:-23000}
CUT_EVERY=${CUT_EVERY:-}
KILL_EVERY=${KILL_EVERY:-}
SEED=${SEED:-$(( $(date +%s) % 100000 ))}
UNHANDLED_WINDOW_MS=${UNHANDLED_WINDOW_MS:-2000}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/internode-cluster.XXXXXX")}
mkdir -p "$OUT"
SECURE=${SECURE:-}
secure_args=()
if [ -n "$SECURE" ]; then
  # A fresh cluster secret for the run (32 random bytes), and another for the impostor.
  head -c 32 /dev/urandom >"$OUT/cluster.secret"
  head -c 32 /dev/urandom >"$OUT/impostor.secret"
  chmod 600 "$OUT/cluster.secret" "$OUT/impostor.secret"
  secure_args=(--cluster-secret-file "$OUT/cluster.secret")
fi

# Seconds (maybe fractional) to milliseconds.
ms() { awk -v s="$1" 'BEGIN { if (s !~ /^[0-9]*\.?[0-9]+$/) exit 1; printf "%d", s * 1000 }'; }
now_ms() { date +%s%3N; }
duration_ms=$(ms "$DURATION") || { echo "DURATION must be a number of seconds"; exit 2; }
mode=plain
if [ -n "$CUT_EVERY" ]; then
  cut_ms=$(ms "$CUT_EVERY") && [ "$cut_ms" -ge 2 ] || { echo "CUT_EVERY must be seconds"; exit 2; }
  mode=cut
fi
if [ -n "$KILL_EVERY" ]; then
  kill_ms=$(ms "$KILL_EVERY") && [ "$kill_ms" -ge 100 ] ||
    { echo "KILL_EVERY must be at least 0.1 s"; exit 2; }
  mode=kill
fi
if [ -n "$CUT_EVERY" ] && [ -n "$KILL_EVERY" ]; then
  echo "CUT_EVERY and KILL_EVERY: one at a time"
  exit 2
fi
if [ "$PORT_BASE" -lt 20000 ] || [ $((PORT_BASE + 133)) -gt 32000 ]; then
  echo "PORT_BASE must be in 20000-31867 (nodes and proxies use PORT_BASE+1..PORT_BASE+133)"
  exit 2
fi

# shellcheck disable=SC2086
cargo build --quiet ${CARGO_FLAGS:-} --example node --example fault_proxy --example gen_certs
profile=debug
case " ${CARGO_FLAGS:-} " in *" --release "*) profile=release ;; esac
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/$profile/examples/node"
proxy_bin="$target_dir/$profile/examples/fault_proxy"
if [ -n "$SECURE" ]; then
  # A fresh CA, certificates for the nodes and for impostor 9 (all of the cluster's
  # CA), and for impostor 8 from another CA.
  "$target_dir/$profile/examples/gen_certs" "$OUT" 1 2 3 9 --other-ca 8
fi

ids=(1 2 3)
declare -A pid inc # per node: its running process and incarnation
proxy_pids=()
cleanup() {
  for p in "${pid[@]}" "${proxy_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

node_port() { echo $((PORT_BASE + $1)); }
proxy_port() { echo $((PORT_BASE + 100 + 10 * $1 + $2)); }

# tls_args ID: the TLS flags of node ID (its files in OUT are free of spaces).
tls_args() { echo "--tls-cert $OUT/node-$1.pem --tls-key $OUT/node-$1.key --tls-ca $OUT/ca.pem"; }

# start_node ID DURATION_SECS: starts incarnation ${inc[ID]} of node ID.
start_node() {
  local id=$1 n=${inc[$1]} peer addr
  local args=(--id "$id" --listen "127.0.0.1:$(node_port "$id")" --size "$SIZE" --rate "$RATE"
    --duration "$2" --framing "$FRAMING" --summary-json "$OUT/node-$id.$n.json"
    --record "$OUT/node-$id.$n.rec")
  [ -z "${HEARTBEAT_TIMEOUT:-}" ] || args+=(--heartbeat-timeout "$HEARTBEAT_TIMEOUT")
  args+=("${secure_args[@]}")
  [ -z "$SECURE" ] || args+=($(tls_args "$id"))
  # shellcheck disable=SC2206 # NODE_FLAGS is split into words on purpose
  [ -z "${NODE_FLAGS:-}" ] || args+=(${NODE_FLAGS})
  for peer in "${ids[@]}"; do
    [ "$peer" != "$id" ] || continue
    if [ "$mode" = cut ]; then addr=$(proxy_port "$id" "$peer"); else addr=$(node_port "$peer"); fi
    args+=(--peer "$peer@127.0.0.1:$addr")
  done
  "$bin" "${args[@]}" >"$OUT/node-$id.$n.log" 2>&1 &
  pid[$id]=$!
}

echo "3 nodes on 127.0.0.1:$((PORT_BASE + 1))-$((PORT_BASE + 3)), ${DURATION} s, size ${SIZE} B," \
  "rate ${RATE} (0 = as fast as accepted), ${FRAMING} framing, faults: $mode" \
  "${CUT_EVERY:+(cut every ~${CUT_EVERY} s, seed $SEED)}${KILL_EVERY:+(a node killed every ${KILL_EVERY} s)};" \
  "logs, summaries and records in $OUT"
: >"$OUT/kills"

if [ "$mode" = cut ]; then
  for s in "${ids[@]}"; do
    for r in "${ids[@]}"; do
      [ "$s" != "$r" ] || continue
      "$proxy_bin" --listen "127.0.0.1:$(proxy_port "$s" "$r")" --target "127.0.0.1:$(node_port "$r")" \
        --cut-every-ms "$((cut_ms / 2)):$((cut_ms * 3 / 2))" --seed "$((SEED + 10 * s + r))" \
        2>"$OUT/proxy-$s-$r.log" &
      proxy_pids+=($!)
    done
  done
  # Every proxy prints its address once it listens.
  for s in "${ids[@]}"; do
    for r in "${ids[@]}"; do
      [ "$s" != "$r" ] || continue
      for _ in $(seq 100); do
        grep -q -- '->' "$OUT/proxy-$s-$r.log" 2>/dev/null && break
        sleep 0.05
      done
      grep -q -- '->' "$OUT/proxy-$s-$r.log" || { echo "proxy $s -> $r did not start:"; cat "$OUT/proxy-$s-$r.log"; exit 1; }
    done
  done
fi

start=$(now_ms)
for id in "${ids[@]}"; do
  inc[$id]=0
  start_node "$id" "$DURATION"
done
if [ -n "$SECURE" ]; then
  # Two impostors keep trying to reach node 1: they must deliver nothing, and node 1
  # must count their refusals. Node 9: the cluster's CA, another secret.
  # shellcheck disable=SC2046 # tls_args is split into words on purpose
  "$bin" --id 9 --listen "127.0.0.1:$(node_port 9)" --peer "1@127.0.0.1:$(node_port 1)" \
    --duration "$DURATION" --grace 1 --summary-json "$OUT/impostor.json" $(tls_args 9) \
    --cluster-secret-file "$OUT/impostor.secret" >"$OUT/impostor.log" 2>&1 &
  impostor=$!
  # Node 8: the cluster's secret, a certificate of another CA; it trusts both CAs (so
  # that it starts, and accepts node 1's certificate): node 1 must refuse its own.
  cat "$OUT/ca.pem" "$OUT/other-ca.pem" >"$OUT/both-cas.pem"
  "$bin" --id 8 --listen "127.0.0.1:$(node_port 8)" --peer "1@127.0.0.1:$(node_port 1)" \
    --duration "$DURATION" --grace 1 --summary-json "$OUT/impostor-ca.json" \
    --tls-cert "$OUT/node-8.pem" --tls-key "$OUT/node-8.key" --tls-ca "$OUT/both-cas.pem" \
    "${secure_args[@]}" >"$OUT/impostor-ca.log" 2>&1 &
  impostor_ca=$!
fi

if [ "$mode" = kill ]; then
  order=(3 1 2)
  kills=0
  next=$((start + kill_ms))
  while [ $((start + duration_ms - next)) -ge 1000 ]; do
    wait_ms=$((next - $(now_ms)))
    [ "$wait_ms" -le 0 ] || sleep "$(awk -v m="$wait_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
    victim=${order[$((kills % 3))]}
    killed_at=$(now_ms)
    kill -9 "${pid[$victim]}" 2>/dev/null || true
    # Its exit status is 137 (128 + SIGKILL), or another if it had already ended.
    status=0
    { wait "${pid[$victim]}"; } 2>/dev/null || status=$?
    if [ "$status" != 137 ]; then
      echo "node-$victim (incarnation ${inc[$victim]}) had ended by itself (status $status); its log:"
      cat "$OUT/node-$victim.${inc[$victim]}.log"
      exit 1
    fi
    echo "$victim ${inc[$victim]} $killed_at $status" >>"$OUT/kills"
    remaining=$(awk -v m="$((start + duration_ms - $(now_ms)))" 'BEGIN { printf "%.3f", m / 1000 }')
    echo "[$(awk -v m="$((killed_at - start))" 'BEGIN { printf "%.1f", m / 1000 }')s] node-$victim" \
      "(incarnation ${inc[$victim]}) killed with SIGKILL (status $status); restarted for $remaining s"
    inc[$victim]=$((inc[$victim] + 1))
    start_node "$victim" "$remaining"
    kills=$((kills + 1))
    next=$((next + kill_ms))
  done
fi

status=0
for id in "${ids[@]}"; do
  if ! wait "${pid[$id]}"; then
    echo "node-$id (incarnation ${inc[$id]}) exited with an error; its log:"
    cat "$OUT/node-$id.${inc[$id]}.log"
    status=1
  fi
  unset "pid[$id]"
done
[ "$status" = 0 ] || exit 1
if [ -n "$SECURE" ]; then
  wait "$impostor" || true
  wait "$impostor_ca" || true
  python3 - "$OUT" <<'EOF_SECURE' || exit 1
import json, sys
out = sys.argv[1]
n1 = json.load(open(f"{out}/node-1.0.json"))
refused = n1["refused_connections"]
for file, what, prefix in (("impostor", "another secret", "auth"),
                           ("impostor-ca", "a certificate of another CA", "tls_untrusted")):
    imp = json.load(open(f"{out}/{file}.json"))
    delivered = sum(p["acknowledged"] + p["written"] for p in imp["peers"].values())
    counted = {k: v for k, v in refused.items() if k.startswith(prefix)}
    print(f"{file} ({what}): {delivered} delivered; node-1 refused {counted}")
    if delivered or not counted:
        print(f"FAIL: {file} got through, or node-1 did not count it")
        sys.exit(1)
for i in (1, 2, 3):
    s = json.load(open(f"{out}/node-{i}.0.json"))
    bad = {k: v for k, v in s["refused_connections"].items()
           if k.startswith(("auth", "tls")) and i != 1}
    if bad:
        print(f"FAIL: node-{i} refused cluster members: {bad}")
        sys.exit(1)
EOF_SECURE
fi
if [ "$mode" = cut ]; then
  sleep 1.1 # one more line of counters from every proxy
  for p in "${proxy_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait "${proxy_pids[@]}" 2>/dev/null || true
  proxy_pids=()
fi

for id in "${ids[@]}"; do
  echo "--- node-$id (incarnation ${inc[$id]}): last status lines"
  tail -n 4 "$OUT/node-$id.${inc[$id]}.log"
  echo "--- node-$id: summary ($OUT/node-$id.${inc[$id]}.json)"
  cat "$OUT/node-$id.${inc[$id]}.json"
done

# The records and summaries, across incarnations (the rules above).
python3 examples/cluster_check.py "$OUT" "$mode" "$UNHANDLED_WINDOW_MS" "$SIZE" "${ids[@]}"
