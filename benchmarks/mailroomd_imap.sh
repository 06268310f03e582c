#!/usr/bin/env bash
# mailroomd's IMAP and POP3 servers against Dovecot, same machine, same load, same run:
#   IMAP ops/s with 8 and 32 clients (../shared/peers/imap-load.py), POP3 ops/s with 8 clients
#   (pop3-load.py), and the memory of 1,000 idle IMAP sessions in IDLE (idle-conns.py).
#   benchmarks/mailroomd_imap.sh      (as root: installs Dovecot through ../shared/peers)
# Both serve users u1..u1000 (password benchpass, {PLAIN} in a passwd file) from Maildirs with
# 50 messages of 5 KB each in INBOX (prefilled over IMAP APPEND, untimed). Plaintext LOGIN on
# loopback for both (the load scripts do not speak TLS). Dovecot keeps its defaults.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/peers}"
RUNS="${RUNS:-3}" LOAD_SECS="${LOAD_SECS:-20}"
export RESULTS_DIR="${RESULTS_DIR:-/var/tmp/peerbench/results/mailroomd-imap-$(date +%Y%m%d-%H%M%S)}"
IMAP=1443 POP3=1510
DATA=/var/tmp/peerbench/mailroomd-imap
mkdir -p "$RESULTS_DIR"
bash "$PEERS/install.sh"
"$ROOT/scripts/setup.sh" >/dev/null
BIN="${BUILD_DIR:-$ROOT/build}/bin"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; "$PEERS/dovecot-down.sh" >/dev/null 2>&1 || true; rm -rf "$DATA"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

rm -rf "$DATA"; mkdir -p "$DATA/mail"
for i in $(seq 1000); do mkdir "$DATA/mail/u$i"; echo "u$i:{PLAIN}benchpass"; done > "$DATA/passwd"
cat > "$DATA/mailroomd.toml" <<CF
data_dir = "$DATA"
local_domains = ["example.test"]
log_level = "warning"
[auth]
passwd_file = "$DATA/passwd"
[[listener]]
kind = "imap"
address = "127.0.0.1:$IMAP"
allow_plaintext_auth = true
[[listener]]
kind = "pop3"
address = "127.0.0.1:$POP3"
allow_plaintext_auth = true
CF
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
"$BIN/mailroomd" --config "$DATA/mailroomd.toml" >/dev/null & pid=$!
wait_port $IMAP
DV_MODE=default "$PEERS/dovecot-up.sh"
DV_PID="$(cat /var/tmp/peerbench/dovecot/run/master.pid)"

for name_port in "dovecot 1143 1110" "mailroomd $IMAP $POP3"; do
  set -- $name_port
  python3 "$PEERS/imap-load.py" --port "$2" --clients 1 --secs 1 --max-sessions 1 --prefill 50 >/dev/null
done
for run in $(seq "$RUNS"); do
  for clients in 8 32; do
    for name_port in "dovecot 1143" "mailroomd $IMAP"; do
      set -- $name_port
      python3 "$PEERS/imap-load.py" --port "$2" --clients "$clients" --secs "$LOAD_SECS" --prefill 50 \
        | sed "s/^{/{\"server\": \"$1\", \"clients\": $clients, /" | tee -a "$RESULTS_DIR/imap.jsonl"
    done
  done
  for name_port in "dovecot 1110" "mailroomd $POP3"; do
    set -- $name_port
    python3 "$PEERS/pop3-load.py" --port "$2" --clients 8 --secs "$LOAD_SECS" \
      | sed "s/^{/{\"server\": \"$1\", \"clients\": 8, /" | tee -a "$RESULTS_DIR/pop3.jsonl"
  done
done

# 1,000 sessions in IDLE. Dovecot's IDLE takes an inotify instance per imap process.
old_inotify="$(sysctl -n fs.inotify.max_user_instances)"
sysctl -qw fs.inotify.max_user_instances=16384
python3 "$PEERS/idle-conns.py" --proto imap --port 1143 --pid "$DV_PID" --n 1000 --hold 10 --timeout 600 \
  | sed 's/^{/{"server": "dovecot", /' | tee -a "$RESULTS_DIR/idle.jsonl" || true
sysctl -qw fs.inotify.max_user_instances="$old_inotify"
python3 "$PEERS/idle-conns.py" --proto imap --port "$IMAP" --pid "$pid" --n 1000 --hold 10 --timeout 600 \
  | sed 's/^{/{"server": "mailroomd", /' | tee -a "$RESULTS_DIR/idle.jsonl"

python3 - "$RESULTS_DIR" <<'PY'
import json, statistics, sys, os
d = sys.argv[1]
def load(name):
    p = os.path.join(d, name)
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
print("| load | clients | Dovecot ops/s | mailroomd ops/s | ratio |\n|---|---|---|---|---|")
for name, label in (("imap.jsonl", "IMAP (imap-load.py)"), ("pop3.jsonl", "POP3 (pop3-load.py)")):
    rows = load(name)
    for clients in sorted({r["clients"] for r in rows}):
        med = {s: statistics.median([r["ops_per_s"] for r in rows if r["server"] == s and r["clients"] == clients])
               for s in ("dovecot", "mailroomd")}
        print(f"| {label} | {clients} | {med['dovecot']:.0f} | {med['mailroomd']:.0f} | {med['mailroomd'] / med['dovecot']:.2f}× |")
for r in load("idle.jsonl"):
    per = r.get("pss_per_conn_kib") or r.get("rss_per_conn_kib")
    print(f"idle IMAP sessions, {r['server']}: {r.get('established')} established, {per} KiB PSS per session")
PY
