#!/usr/bin/env bash
# Relaying throughput: mailroomd and Postfix each take the same smtp-source load (20 sessions,
# 5 KB messages to a remote domain from a trusted network), queue it durably and relay it to the
# same Postfix smtp-sink over loopback (no TLS, the sink discards). Messages/s = messages ÷ time
# from the first connection until the sink has counted the last one, in one run per server, RUNS
# times, alternating.
#   benchmarks/mailroomd_relay.sh          (as root: installs Postfix through ../shared/peers)
# Env: RUNS=3 MSGS=5000 SESSIONS=20 SIZE=5120
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/peers}"
RUNS="${RUNS:-3}" MSGS="${MSGS:-5000}" SESSIONS="${SESSIONS:-20}" SIZE="${SIZE:-5120}"
RESULTS_DIR="${RESULTS_DIR:-/var/tmp/peerbench/results/mailroomd-relay-$(date +%Y%m%d-%H%M%S)}"
MR_PORT=2610 SINK=2626
DATA=/var/tmp/peerbench/mailroomd-relay
mkdir -p "$RESULTS_DIR"
bash "$PEERS/install.sh" >/dev/null
[ -n "${MAILROOMD:-}" ] || "$ROOT/scripts/setup.sh" >/dev/null
BIN="${BUILD_DIR:-$ROOT/build}/bin"
MAILROOMD="${MAILROOMD:-$BIN/mailroomd}"
. "$PEERS/lib.sh"
pid="" sink_pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null
  "$PEERS/postfix-down.sh" >/dev/null 2>&1 || true
  rm -rf "$DATA"
}
trap cleanup EXIT

# The sink counts what arrives: "sess=.. quit=.. mesg=N" lines separated by CR.
smtp-sink -c -u postfix 127.0.0.1:$SINK 1000 > "$RESULTS_DIR/sink.out" 2>&1 & sink_pid=$!
wait_port $SINK
sunk() { tr '\r' '\n' < "$RESULTS_DIR/sink.out" | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2 || echo 0; }

# Postfix: ../shared/peers' instance on 127.0.0.1:2525, relaying everything to the sink.
"$PEERS/postfix-up.sh" >/dev/null
postconf -c "$PF_DIR/etc" -e "relayhost = [127.0.0.1]:$SINK" "smtp_tls_security_level = none" \
  "default_destination_concurrency_limit = 20" >/dev/null
postfix -c "$PF_DIR/etc" reload >/dev/null 2>&1
sleep 1

rm -rf "$DATA"; mkdir -p "$DATA/mail"
cat > "$DATA/mailroomd.toml" <<CF
hostname = "relay.example.test"
data_dir = "$DATA"
local_domains = ["example.test"]
log_level = "warning"
[outbound]
relayhost = "127.0.0.1:$SINK"
relay_tls = "none"
trusted_networks = ["127.0.0.0/8"]
[[listener]]
kind = "mx"
address = "127.0.0.1:$MR_PORT"
CF
ulimit -n 20000 2>/dev/null || true
"$MAILROOMD" --config "$DATA/mailroomd.toml" >/dev/null 2>"$RESULTS_DIR/mailroomd.log" & pid=$!
wait_port $MR_PORT

run_one() {  # name port -> prints msgs/s
  local name=$1 port=$2 base t0 t1 n
  base=$(sunk)
  t0=$(now)
  smtp-source -s "$SESSIONS" -m "$MSGS" -l "$SIZE" -f scanner@lan.example.test -t someone@remote.example \
    127.0.0.1:"$port" >/dev/null 2>&1
  for _ in $(seq 6000); do
    n=$(sunk)
    [ $((n - base)) -ge "$MSGS" ] && break
    sleep 0.05
  done
  t1=$(now)
  n=$(( $(sunk) - base ))
  [ "$n" -ge "$MSGS" ] || { echo "$name: only $n of $MSGS arrived" >&2; return 1; }
  echo "$name $(echo "$MSGS / ($t1 - $t0)" | bc -l)"
}

printf 'run\tserver\tmsgs\tsize\tsessions\tmsg_per_s\n' > "$RESULTS_DIR/relay.tsv"
for r in $(seq "$RUNS"); do
  for s in postfix:$PF_PORT mailroomd:$MR_PORT; do
    sync; sleep 1
    read -r name rate < <(run_one "${s%%:*}" "${s##*:}")
    printf '%s\t%s\t%s\t%s\t%s\t%.1f\n' "$r" "$name" "$MSGS" "$SIZE" "$SESSIONS" "$rate" | tee -a "$RESULTS_DIR/relay.tsv"
  done
done
for s in postfix mailroomd; do
  printf '%s median %.1f msg/s\n' "$s" "$(awk -v s=$s '$2==s {print $6}' "$RESULTS_DIR/relay.tsv" | median)"
done | tee "$RESULTS_DIR/summary.txt"
