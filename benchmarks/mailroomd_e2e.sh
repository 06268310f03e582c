#!/usr/bin/env bash
# mailroomd against Postfix, durable path, same machine and same smtp-source load:
#   accept rate (250 per second) and end-to-end rate (messages in the Maildir per second) at
#   SESSIONS (1 20 100) x SIZES (5 KB, 100 KB), plus mailroomd's memory with 1,000 idle SMTP sessions
#   (Postfix's idle figure needs its process limits raised: ../shared/peers/run-all.sh idle).
#   benchmarks/mailroomd_e2e.sh        (as root: installs Postfix through ../shared/peers)
# Both fsync every message before the 250 (Postfix: cleanup's queue file; mailroomd: its queue),
# both deliver into a Maildir (Postfix virtual(8); mailroomd's queue manager).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/peers}"
export SESSIONS="${SESSIONS:-1 20 100}" SIZES="${SIZES:-5120 102400}" RUNS="${RUNS:-3}"
export RESULTS_DIR="${RESULTS_DIR:-/var/tmp/peerbench/results/mailroomd-$(date +%Y%m%d-%H%M%S)}"
PORT=2600
DATA=/var/tmp/peerbench/mailroomd
mkdir -p "$RESULTS_DIR"
bash "$PEERS/install.sh"
"$ROOT/scripts/setup.sh" >/dev/null
BIN="${BUILD_DIR:-$ROOT/build}/bin"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; "$PEERS/postfix-down.sh" >/dev/null 2>&1 || true; rm -rf "$DATA"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

rm -rf "$DATA"; mkdir -p "$DATA/mail/u1"
cat > "$DATA/mailroomd.toml" <<CF
hostname = "mx.example.test"
data_dir = "$DATA"
local_domains = ["example.test"]
log_level = "warning"
[[listener]]
kind = "mx"
address = "127.0.0.1:$PORT"
CF
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
"$BIN/mailroomd" --config "$DATA/mailroomd.toml" >/dev/null & pid=$!
wait_port $PORT
MAILDIR="$DATA/mail/u1/Maildir" DELIVERY=maildir "$PEERS/smtp-bench.sh" $PORT
python3 "$PEERS/idle-conns.py" --proto smtp --port $PORT --pid "$pid" --n 1000 | tee "$RESULTS_DIR/idle-mailroomd.json"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""

"$PEERS/postfix-up.sh"
"$PEERS/smtp-bench.sh" postfix
"$PEERS/postfix-down.sh" >/dev/null

python3 - "$RESULTS_DIR" <<'PY'
import csv, json, os, statistics, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(d, "smtp.tsv")), delimiter="\t"))
def med(t, s, z, col):
    v = [float(r[col]) for r in rows if r["target"] == t and r["sessions"] == s and r["size"] == z and r[col] not in ("NA", "TIMEOUT")]
    return statistics.median(v) if v else None
f = lambda x: "NA" if x is None else f"{x:.0f}"
r = lambda a, b: "NA" if not (a and b) else f"{b / a:.2f}×"
print("| sessions | size | Postfix accept | mailroomd accept | ratio | Postfix e2e | mailroomd e2e | ratio |")
print("|---|---|---|---|---|---|---|---|")
for z in sorted({x["size"] for x in rows}, key=int):
    for s in sorted({x["sessions"] for x in rows}, key=int):
        pa, ma = med("postfix", s, z, "accept_msg_s"), med("port2600", s, z, "accept_msg_s")
        pe, me = med("postfix", s, z, "e2e_msg_s"), med("port2600", s, z, "e2e_msg_s")
        print(f"| {s} | {z} | {f(pa)} | {f(ma)} | {r(pa, ma)} | {f(pe)} | {f(me)} | {r(pe, me)} |")
for name in ("mailroomd",):
    p = os.path.join(d, f"idle-{name}.json")
    if os.path.exists(p):
        print(f"idle 1000 SMTP sessions, {name}: {open(p).read().strip()}")
PY
