#!/usr/bin/env bash
# Retrieval throughput: examples/fetch_mail (mailroom's MRA) and Debian's fetchmail each pull the
# same Dovecot mailbox (MSGS messages of SIZE bytes in u1's INBOX, kept on the server) over IMAP
# and over POP3, and both hand every message to the same mailroomd over LMTP, which writes it
# into a Maildir. Messages/s = MSGS ÷ wall time of the fetch command (all delivered, checked).
#   benchmarks/mailroomd_fetch.sh          (as root: installs Dovecot through ../shared/peers)
# Env: RUNS=3 MSGS=2000 SIZE=5120
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/peers}"
RUNS="${RUNS:-3}" MSGS="${MSGS:-2000}" SIZE="${SIZE:-5120}"
RESULTS_DIR="${RESULTS_DIR:-/var/tmp/peerbench/results/mailroomd-fetch-$(date +%Y%m%d-%H%M%S)}"
LMTP=2424
DATA=/var/tmp/peerbench/mailroomd-fetch
mkdir -p "$RESULTS_DIR"
bash "$PEERS/install.sh" >/dev/null
[ -n "${BIN:-}" ] || { "$ROOT/scripts/setup.sh" >/dev/null; BIN="${BUILD_DIR:-$ROOT/build}/bin"; }
export NUSERS=10
. "$PEERS/lib.sh"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; "$PEERS/dovecot-down.sh" >/dev/null 2>&1 || true; rm -rf "$DATA"; }
trap cleanup EXIT

"$PEERS/dovecot-up.sh" >/dev/null
# u1's INBOX: MSGS messages written straight into its Maildir (untimed).
MD="$MAIL_DIR/u1/Maildir"
rm -rf "$MD"; mkdir -p "$MD/new" "$MD/cur" "$MD/tmp"
python3 - "$MD/new" "$MSGS" "$SIZE" <<'PY'
import sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    head = b"From: far@remote.example\r\nSubject: bench %d\r\nX-Seq: %d\r\n\r\n" % (i, i)
    body = (b"x" * 74 + b"\r\n") * max(1, (size - len(head)) // 76)
    open("%s/%d.M%dP1.bench" % (d, 1700000000 + i, i), "wb").write(head + body)
PY
chown -R "$BENCH_USER:" "$MAIL_DIR/u1"

rm -rf "$DATA"; mkdir -p "$DATA/mail/demo"
cat > "$DATA/mailroomd.toml" <<CF
hostname = "mx.example.test"
data_dir = "$DATA"
local_domains = ["example.test"]
log_level = "warning"
[outbound]
enabled = false
[[listener]]
kind = "lmtp"
address = "127.0.0.1:$LMTP"
CF
"$BIN/mailroomd" --config "$DATA/mailroomd.toml" >/dev/null 2>"$RESULTS_DIR/mailroomd.log" & pid=$!
wait_port $LMTP
delivered() { find "$DATA/mail/demo/Maildir/new" "$DATA/mail/demo/Maildir/cur" -type f 2>/dev/null | wc -l; }

run_one() {  # agent proto -> seconds
  local agent=$1 proto=$2 port t0 t1 before
  port=$([ "$proto" = imap ] && echo "$IMAP_PORT" || echo "$POP3_PORT")
  before=$(delivered)
  rm -rf "$DATA/state" "$DATA/fetchmail"; mkdir -p "$DATA/fetchmail"
  t0=$(now)
  if [ "$agent" = mailroom ]; then
    "$BIN/fetch_mail" --"$proto" "127.0.0.1:$port" --tls none --user u1 --password "$BENCH_PASS" \
      --to demo@example.test --state "$DATA/state" --lmtp "127.0.0.1:$LMTP" >/dev/null 2>>"$RESULTS_DIR/fetch_mail.log"
  else
    printf 'poll 127.0.0.1 protocol %s port %s user "u1" password "%s" is "demo@example.test" here\n  sslproto "" keep fetchall smtphost 127.0.0.1/%s lmtp\n' \
      "$proto" "$port" "$BENCH_PASS" "$LMTP" > "$DATA/fetchmail/rc"
    chmod 600 "$DATA/fetchmail/rc"
    HOME="$DATA/fetchmail" FETCHMAILHOME="$DATA/fetchmail" fetchmail -f "$DATA/fetchmail/rc" --nosyslog --nodetach \
      --idfile "$DATA/fetchmail/ids" >/dev/null 2>>"$RESULTS_DIR/fetchmail.log" || true
  fi
  t1=$(now)
  local got=$(( $(delivered) - before ))
  [ "$got" -eq "$MSGS" ] || { echo "$agent/$proto: $got of $MSGS delivered" >&2; return 1; }
  echo "$t1 - $t0" | bc -l
}

printf 'run\tproto\tagent\tmsgs\tsize\tseconds\tmsg_per_s\n' > "$RESULTS_DIR/fetch.tsv"
for r in $(seq "$RUNS"); do
  for proto in imap pop3; do
    for agent in fetchmail mailroom; do
      sync; sleep 1
      s=$(run_one "$agent" "$proto")
      printf '%s\t%s\t%s\t%s\t%s\t%.2f\t%.1f\n' "$r" "$proto" "$agent" "$MSGS" "$SIZE" "$s" "$(echo "$MSGS / $s" | bc -l)" \
        | tee -a "$RESULTS_DIR/fetch.tsv"
    done
  done
done
for proto in imap pop3; do
  for agent in fetchmail mailroom; do
    printf '%s %s median %.1f msg/s\n' "$proto" "$agent" \
      "$(awk -v p=$proto -v a=$agent '$2==p && $3==a {print $7}' "$RESULTS_DIR/fetch.tsv" | median)"
  done
done | tee "$RESULTS_DIR/summary.txt"
