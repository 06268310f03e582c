#!/usr/bin/env bash
# SMTP accept rate of mailroom side by side with Postfix, same machine, same smtp-source load.
#   benchmarks/smtp_accept.sh            (as root: installs Postfix through ../shared/peers)
# Targets, each driven by ../shared/peers/smtp-bench.sh (smtp-source, SESSIONS x SIZES x RUNS):
#   sink      Postfix smtp-sink: protocol only, stores nothing
#   discard   mailroom smtp_discard: protocol only, stores nothing   -> ratio against sink
#   maildir   mailroom smtp_sink: fsynced Maildir before every 250   -> ratio against postfix
#   postfix   Postfix smtpd+cleanup (queue file fsynced before 250) delivering to Maildir
# Prints a markdown table of medians and ratios; raw rows in $RESULTS_DIR/smtp.tsv.
# Env: STEPS (subset of "sink discard maildir postfix"), RUNS, SESSIONS, SIZES, THREADS.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/peers}"
export SESSIONS="${SESSIONS:-20 100}" SIZES="${SIZES:-5120}" RUNS="${RUNS:-3}"
export RESULTS_DIR="${RESULTS_DIR:-/var/tmp/peerbench/results/mailroom-$(date +%Y%m%d-%H%M%S)}"
THREADS="${THREADS:-1}"  # one I/O thread: smtp-source shares the 2 cores
DISCARD_PORT=2601 SINK_PORT=2600
mkdir -p "$RESULTS_DIR"

bash "$PEERS/install.sh"
"$ROOT/scripts/setup.sh" >/dev/null
BIN="${BUILD_DIR:-$ROOT/build}/bin"
MD=/var/tmp/peerbench/mailroom/Maildir
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; "$PEERS/postfix-down.sh" >/dev/null 2>&1 || true; rm -rf /var/tmp/peerbench/mailroom; }
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

STEPS="${STEPS:-sink discard maildir postfix}"
has() { case " $STEPS " in *" $1 "*) return 0;; *) return 1;; esac; }

# smtp-sink and smtp_discard runs alternate, one run each in turn, so drift on a shared VM
# (steal time, page cache) hits both alike; smtp_discard gets as many messages as smtp-sink.
if has discard; then
  "$BIN/smtp_discard" "127.0.0.1:$DISCARD_PORT" "$THREADS" & pids+=($!)
  wait_port $DISCARD_PORT
fi
for r in $(seq 1 "$RUNS"); do
  has sink && RUNS=1 "$PEERS/smtp-bench.sh" sink
  has discard && RUNS=1 MSGS="${DISCARD_MSGS:-30000}" DELIVERY=discard "$PEERS/smtp-bench.sh" $DISCARD_PORT
done

if has maildir; then
  mkdir -p "$(dirname "$MD")"
  "$BIN/smtp_sink" --listen "127.0.0.1:$SINK_PORT" --maildir "$MD" --threads "$THREADS" --log-level warning & pids+=($!)
  wait_port $SINK_PORT
  MAILDIR="$MD" DELIVERY=maildir "$PEERS/smtp-bench.sh" $SINK_PORT
fi

if has postfix; then
  "$PEERS/postfix-up.sh"
  "$PEERS/smtp-bench.sh" postfix
  "$PEERS/postfix-down.sh" >/dev/null
fi

python3 - "$RESULTS_DIR/smtp.tsv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(target, s, z, col="accept_msg_s"):  # median (min, max) over all runs in this directory
    v = [float(r[col]) for r in rows if r["target"] == target and r["sessions"] == s and r["size"] == z and r[col] not in ("NA", "TIMEOUT")]
    return (statistics.median(v), min(v), max(v)) if v else None
targets = sorted({r["target"] for r in rows})
disc = next((t for t in targets if t.endswith("2601")), "port2601")
sink = next((t for t in targets if t.endswith("2600")), "port2600")
print("| sessions | size | Postfix smtp-sink | mailroom smtp_discard | ratio | Postfix smtpd (fsync) | mailroom smtp_sink (fsync) | ratio |")
print("|---|---|---|---|---|---|---|---|")
for s in sorted({r["sessions"] for r in rows}, key=int):
    for z in sorted({r["size"] for r in rows}, key=int):
        a, b, c, d = med("sink", s, z), med(disc, s, z), med("postfix", s, z), med(sink, s, z)
        f = lambda m: "NA" if not m else f"{m[0]:.0f} ({m[1]:.0f}–{m[2]:.0f})"
        r = lambda x, y: "NA" if not (x and y) else f"{y[0]/x[0]:.2f}×"
        print(f"| {s} | {z} | {f(a)} | {f(b)} | {r(a, b)} | {f(c)} | {f(d)} | {r(c, d)} |")
PY
