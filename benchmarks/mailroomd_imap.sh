#!/usr/bin/env bash
# mailroomd's IMAP and POP3 servers against Dovecot, same machine, same load, same run:
#   IMAP ops/s with 8 and 32 clients (../shared/peers/imap-load.py), POP3 ops/s with 8 clients
#   (pop3-load.py), and the memory of 1,000 and 10,000 idle IMAP sessions in IDLE (idle-conns.py).
#   benchmarks/mailroomd_imap.sh               (as root: installs Dovecot through ../shared/peers)
#   benchmarks/mailroomd_imap.sh --idle-only   (or IDLE_ONLY=1: only the idle-session memory)
# Env: MAILROOMD=/path/to/mailroomd uses that binary and skips scripts/setup.sh (no build);
#   otherwise setup.sh builds into BUILD_DIR (build) and $BUILD_DIR/bin/mailroomd is used.
#   IDLE_COUNTS ("1000 10000") sessions per idle measurement; DV_IDLE_MODES ("default perf hibernate")
#   Dovecot configurations for the idle measurement (see below); RUNS, LOAD_SECS for the loads;
#   KEEP_MAIL=1 keeps Dovecot's mailboxes under /var/tmp/peerbench/mail (deleted on exit otherwise).
# Both serve users u1..uN (password benchpass, {PLAIN} in a passwd file; N = max(1000, IDLE_COUNTS))
# from Maildirs; u1..u100 get 50 messages of 5 KB in INBOX (prefilled over IMAP APPEND, untimed).
# Plaintext LOGIN on loopback for both (the load scripts do not speak TLS). Dovecot keeps its
# defaults for the loads.
#
# Idle sessions: every count is measured on a freshly started server (mailroomd, then Dovecot in
# each of DV_IDLE_MODES), so each baseline is a clean process tree. idle-conns.py opens N
# connections (LOGIN uK, SELECT INBOX, IDLE), holds them 10 s, and sums RSS and PSS over the
# server's whole process tree (master pid and all descendants) before (base) and after (loaded);
# per session = (loaded - base) / established. Dovecot modes:
#   default    ../shared/peers DV_MODE=default: a login process and an imap process per connection
#   perf       DV_MODE=perf: long-lived login processes (service_count=0), imap service_count=100;
#              imap client_limit stays 1, so each concurrent session still has its own imap process
#   hibernate  default + imap_hibernate_timeout=2s: a session in IDLE for 2 s is handed to the one
#              imap-hibernate process and its imap process exits (Dovecot's own idle-memory feature)
# Limits raised for the benchmark only (none outlives it): ulimit -n 65536 in this shell (the
# servers and the client inherit it), fs.inotify.max_user_instances (Dovecot's IDLE takes one inotify
# instance per imap process; restored on exit), and in the generated Dovecot config (under
# /var/tmp/peerbench) imap process_limit and the client limits, appended after dovecot-up.sh's.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/peers}"
RUNS="${RUNS:-3}" LOAD_SECS="${LOAD_SECS:-20}"
IDLE_ONLY="${IDLE_ONLY:-0}"
[ "${1:-}" = --idle-only ] && IDLE_ONLY=1
IDLE_COUNTS="${IDLE_COUNTS:-1000 10000}"
DV_IDLE_MODES="${DV_IDLE_MODES:-default perf hibernate}"
export RESULTS_DIR="${RESULTS_DIR:-/var/tmp/peerbench/results/mailroomd-imap-$(date +%Y%m%d-%H%M%S)}"
IMAP=1443 POP3=1510
DATA=/var/tmp/peerbench/mailroomd-imap
DV_DIR="${BENCH_ROOT:-/var/tmp/peerbench}/dovecot"
MAXN=1000
for n in $IDLE_COUNTS; do if [ "$n" -gt "$MAXN" ]; then MAXN=$n; fi; done
export NUSERS=$(( MAXN > 5100 ? MAXN : 5100 ))   # Dovecot's passwd-file users (dovecot-up.sh)
mkdir -p "$RESULTS_DIR"
bash "$PEERS/install.sh"
if [ -n "${MAILROOMD:-}" ]; then
  MAILROOMD_BIN="$MAILROOMD"
else
  "$ROOT/scripts/setup.sh" >/dev/null
  MAILROOMD_BIN="${BUILD_DIR:-$ROOT/build}/bin/mailroomd"
fi
[ -x "$MAILROOMD_BIN" ] || { echo "no mailroomd binary at $MAILROOMD_BIN" >&2; exit 2; }
INO=/proc/sys/fs/inotify/max_user_instances
INO_OLD="$(cat $INO)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  "$PEERS/dovecot-down.sh" >/dev/null 2>&1 || true
  echo "$INO_OLD" > $INO 2>/dev/null || true
  rm -rf "$DATA"
  # Dovecot's mailboxes (about 400 MB after 10,000 sessions), as run-all.sh does; KEEP_MAIL=1 keeps them
  [ "${KEEP_MAIL:-0}" = 1 ] || rm -rf "${BENCH_ROOT:-/var/tmp/peerbench}/mail"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
{ echo "host: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
  echo "mailroomd: $MAILROOMD_BIN ($(stat -c '%y' "$MAILROOMD_BIN")); git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)"
  dpkg-query -W -f='${Package}=${Version}\n' dovecot-core 2>/dev/null || true; } > "$RESULTS_DIR/env.txt"

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
rm -rf "$DATA"; mkdir -p "$DATA/mail"
for i in $(seq "$MAXN"); do mkdir "$DATA/mail/u$i"; echo "u$i:{PLAIN}benchpass"; done > "$DATA/passwd"
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
mailroomd_start() {
  "$MAILROOMD_BIN" --config "$DATA/mailroomd.toml" >/dev/null 2>>"$RESULTS_DIR/mailroomd.log" & pid=$!
  wait_port $IMAP
}
mailroomd_stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; }
# dovecot-down.sh waits 10 s at most; with thousands of imap processes exiting, wait for the master.
dovecot_stop() {
  local mp; mp="$(cat "$DV_DIR/run/master.pid" 2>/dev/null || true)"
  "$PEERS/dovecot-down.sh"
  for _ in $(seq 300); do { [ -n "$mp" ] && kill -0 "$mp" 2>/dev/null; } || return 0; sleep 0.2; done
  echo "dovecot master $mp still running" >&2; return 1
}
# dovecot_start MODE [N]: dovecot-up.sh, then (for N > 5000 or MODE=hibernate) the extra settings
# appended to its generated config (a repeated section overrides the earlier values) and a restart.
dovecot_start() {
  local mode=$1 n=${2:-0} base=default
  [ "$mode" = perf ] && base=perf
  DV_MODE=$base "$PEERS/dovecot-up.sh"
  local procs=$(( n + 500 > 6000 ? n + 500 : 6000 )) clients=$(( n + 2000 > 12000 ? n + 2000 : 12000 ))
  if [ "$procs" -gt 6000 ] || [ "$mode" = hibernate ]; then
    dovecot_stop
    { echo "# appended by benchmarks/mailroomd_imap.sh (mode $mode, $n sessions)"
      echo "default_client_limit = $clients"
      printf 'service imap {\n  process_limit = %s\n}\n' "$procs"
      for s in anvil stats auth; do printf 'service %s {\n  client_limit = %s\n}\n' "$s" "$clients"; done
      if [ "$mode" = hibernate ]; then
        echo "imap_hibernate_timeout = 2s"
        printf 'service imap {\n  unix_listener imap-master {\n    user = $default_internal_user\n  }\n}\n'
        printf 'service imap-hibernate {\n  unix_listener imap-hibernate {\n    mode = 0660\n    group = $default_internal_group\n  }\n}\n'
      fi; } >> "$DV_DIR/dovecot.conf"
    dovecot -c "$DV_DIR/dovecot.conf"
    wait_port 1143
  fi
}

# Untimed prefill of u1..u100 (50 messages of 5 KB), once per server.
mailroomd_start
if [ "$IDLE_ONLY" = 1 ]; then rm -rf "${BENCH_ROOT:-/var/tmp/peerbench}/mail"; fi   # equal start: only the prefill
dovecot_start default
for name_port in "dovecot 1143 1110" "mailroomd $IMAP $POP3"; do
  set -- $name_port
  python3 "$PEERS/imap-load.py" --port "$2" --clients 1 --secs 1 --max-sessions 1 --prefill 50 >/dev/null
done
if [ "$IDLE_ONLY" != 1 ]; then
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
fi
mailroomd_stop
dovecot_stop

# Sessions in IDLE, each count on fresh servers.
ino_new=$(( MAXN + 1000 > 16384 ? MAXN + 1000 : 16384 ))
echo "$ino_new" > $INO || echo "could not raise $INO: Dovecot's IDLE falls back to polling" >&2
for n in $IDLE_COUNTS; do
  mailroomd_start; sleep 2
  python3 "$PEERS/idle-conns.py" --proto imap --port "$IMAP" --pid "$pid" --n "$n" --hold 10 --timeout 1800 \
    | sed 's/^{/{"server": "mailroomd", /' | tee -a "$RESULTS_DIR/idle.jsonl" || true
  mailroomd_stop
  for mode in $DV_IDLE_MODES; do
    dovecot_start "$mode" "$n"; sleep 2
    python3 "$PEERS/idle-conns.py" --proto imap --port 1143 --pid "$(cat "$DV_DIR/run/master.pid")" --n "$n" --hold 10 --timeout 1800 \
      | sed "s/^{/{\"server\": \"dovecot-$mode\", /" | tee -a "$RESULTS_DIR/idle.jsonl" || true
    dovecot_stop
  done
done
echo "$INO_OLD" > $INO

python3 - "$RESULTS_DIR" <<'PY' | tee "$RESULTS_DIR/summary.md"
import json, statistics, sys, os
d = sys.argv[1]
def load(name):
    p = os.path.join(d, name)
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
rows = {n: load(n) for n in ("imap.jsonl", "pop3.jsonl")}
if rows["imap.jsonl"] or rows["pop3.jsonl"]:
    print("| load | clients | Dovecot ops/s | mailroomd ops/s | ratio |\n|---|---|---|---|---|")
    for name, label in (("imap.jsonl", "IMAP (imap-load.py)"), ("pop3.jsonl", "POP3 (pop3-load.py)")):
        for clients in sorted({r["clients"] for r in rows[name]}):
            med = {s: statistics.median([r["ops_per_s"] for r in rows[name] if r["server"] == s and r["clients"] == clients])
                   for s in ("dovecot", "mailroomd")}
            print(f"| {label} | {clients} | {med['dovecot']:.0f} | {med['mailroomd']:.0f} | {med['mailroomd'] / med['dovecot']:.2f}× |")
    print()
idle = load("idle.jsonl")
print("| sessions | server | established | processes | PSS total MiB | PSS KiB/session | RSS KiB/session | ÷ mailroomd (PSS) |")
print("|---|---|---|---|---|---|---|---|")
for n in sorted({r["requested"] for r in idle}):
    ours = next((r for r in idle if r["requested"] == n and r["server"] == "mailroomd"), None)
    for r in (r for r in idle if r["requested"] == n):
        per = r.get("pss_per_conn_kib")
        ratio = f"{per / ours['pss_per_conn_kib']:.1f}×" if per and ours and ours.get("pss_per_conn_kib") else "–"
        err = f" ({r['errors']} errors: {r['first_error'][0][:60]})" if r.get("errors") else ""
        print(f"| {n} | {r['server']} | {r['established']}{err} | {r['loaded']['procs']} | {r['loaded']['pss_kib'] / 1024:.1f} "
              f"| {per} | {r.get('rss_per_conn_kib')} | {ratio} |")
PY
