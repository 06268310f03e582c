#!/usr/bin/env bash
# The cost of the inbound filter chain: mailroomd's accept rate with [filters] mx = ["spf", "dkim",
# "dmarc"] (dmarc_enforce) against the same mailroomd without filters. The load is smtp_blast
# (benchmarks/smtp_blast): one DKIM-signed 5 KB message from a@good.test to demo@example.test,
# sent MSGS times over SESSIONS connections from 127.0.0.1. A local dnsmasq publishes good.test's
# SPF record (ip4:127.0.0.1), its DKIM key and DMARC p=reject; it answers on loopback only and
# forwards nothing. Both variants fsync each message into the queue before the 250; example.test
# is routed to a "discard" transport so delivery stays out of the way of what is measured.
# Before timing, one run checks that the chain really passes (spf=pass dkim=pass dmarc=pass in
# the delivered message's Authentication-Results) and really verifies (a tampered copy gets
# dkim=fail). Then an untimed round and RUNS rounds of both variants, the order alternating
# between rounds. Besides msg/s it reports mailroomd's CPU time (all threads) per message.
#   benchmarks/mailroomd_filters.sh     (as root; about 3 minutes with the defaults)
# Env: RUNS=5 MSGS=5000 SESSIONS=20 SIZE=5120 DATA=/var/tmp/peerbench/mailroomd-filters; MAILROOMD, MAILROOMCTL, SMTP_BLAST: prebuilt
# binaries (otherwise scripts/setup.sh builds the project and BUILD_DIR/bin is used).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS:-5}" MSGS="${MSGS:-5000}" SESSIONS="${SESSIONS:-20}" SIZE="${SIZE:-5120}"
RESULTS_DIR="${RESULTS_DIR:-/var/tmp/peerbench/results/mailroomd-filters-$(date +%Y%m%d-%H%M%S)}"
DNS_PORT="${DNS_PORT:-2653}" MR_PORT="${MR_PORT:-2612}"
DATA="${DATA:-/var/tmp/peerbench/mailroomd-filters}"  # its file system is the queue's
command -v dnsmasq >/dev/null || { echo "dnsmasq is needed (apt-get install dnsmasq-base)" >&2; exit 1; }
if [ -z "${MAILROOMD:-}" ] || [ -z "${MAILROOMCTL:-}" ] || [ -z "${SMTP_BLAST:-}" ]; then
  "$ROOT/scripts/setup.sh" >/dev/null
fi
BIN="${BUILD_DIR:-$ROOT/build}/bin"
MAILROOMD="${MAILROOMD:-$BIN/mailroomd}" MAILROOMCTL="${MAILROOMCTL:-$BIN/mailroomctl}"
SMTP_BLAST="${SMTP_BLAST:-$BIN/smtp_blast}"

now() { date +%s.%N; }
median() { sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
wait_tcp() {  # PORT: until something listens on 127.0.0.1:PORT (10 s)
  local i
  for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

dns_pid="" mr_pid=""
stop_mailroomd() {
  if [ -n "$mr_pid" ]; then
    kill "$mr_pid" 2>/dev/null || true
    wait "$mr_pid" 2>/dev/null || true
    mr_pid=""
  fi
}
cleanup() {
  stop_mailroomd
  [ -n "$dns_pid" ] && kill "$dns_pid" 2>/dev/null
  rm -rf "$DATA"
}
trap cleanup EXIT
rm -rf "$DATA"
mkdir -p "$DATA" "$RESULTS_DIR"

# The sender's domain: a DKIM key, its record, and a message of SIZE bytes signed with it.
"$MAILROOMCTL" dkim keygen --domain good.test --selector sel --out "$DATA/dkim.pem" > "$DATA/dkim.txt"
# 'sel._domainkey.good.test. IN TXT "part1" "part2"' -> dnsmasq's txt-record=NAME,part1,part2
# (on dnsmasq's command line a comma separates the strings; quotes would be taken literally)
dkim_strings=$(sed -e 's/^[^"]*"//' -e 's/" "/,/g' -e 's/"$//' "$DATA/dkim.txt")
line="The quick brown fox jumps over the lazy dog, and the filter chain looks at every line."
body=""
while [ ${#body} -lt "$SIZE" ]; do body+="$line"$'\n'; done
{
  printf 'From: A <a@good.test>\nTo: demo@example.test\nSubject: filter chain benchmark\n'
  printf 'Date: Thu, 03 Dec 2026 12:00:00 +0000\nMessage-ID: <bench@good.test>\nMIME-Version: 1.0\n'
  printf 'Content-Type: text/plain; charset=us-ascii\n\n%s' "$body"
} > "$DATA/message.eml"
"$MAILROOMCTL" dkim sign --domain good.test --selector sel --key "$DATA/dkim.pem" < "$DATA/message.eml" > "$DATA/signed.eml"
sed 's/^Subject: filter chain benchmark$/Subject: filter chain benchmark, altered/' "$DATA/signed.eml" > "$DATA/tampered.eml"
cmp -s "$DATA/signed.eml" "$DATA/tampered.eml" && { echo "could not alter the signed message" >&2; exit 1; }

dnsmasq --no-daemon --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
  --conf-file=/dev/null --log-facility=- --user=root \
  '--txt-record=good.test,v=spf1 ip4:127.0.0.1 -all' \
  "--txt-record=sel._domainkey.good.test,$dkim_strings" \
  '--txt-record=_dmarc.good.test,v=DMARC1; p=reject' > "$RESULTS_DIR/dnsmasq.log" 2>&1 & dns_pid=$!
wait_tcp "$DNS_PORT"

# config VARIANT DELIVERY -> the config file; VARIANT plain or chained, DELIVERY discard or local
config() {
  local f="$DATA/$1-$2.toml"
  cat > "$f" <<CF
hostname = "mx.example.test"
data_dir = "$DATA/spool"
local_domains = ["example.test"]
log_level = "warning"
[outbound]
enabled = false
dns_servers = ["127.0.0.1:$DNS_PORT"]
[[listener]]
kind = "mx"
address = "127.0.0.1:$MR_PORT"
CF
  [ "$2" = discard ] && printf '[[transport]]\ndomain = "example.test"\nto = "discard"\n' >> "$f"
  [ "$1" = chained ] && printf '[filters]\nmx = ["spf", "dkim", "dmarc"]\ndmarc_enforce = true\n' >> "$f"
  echo "$f"
}
start_mailroomd() {  # CONFIG
  rm -rf "$DATA/spool"
  mkdir -p "$DATA/spool/mail/demo"  # the RCPT check wants the account to exist
  "$MAILROOMD" --config "$1" > /dev/null 2>> "$RESULTS_DIR/mailroomd.log" & mr_pid=$!
  wait_tcp "$MR_PORT"
}
blast() {  # FILE COUNT SESSIONS -> smtp_blast's line
  "$SMTP_BLAST" "127.0.0.1:$MR_PORT" "$1" "$2" "$3" a@good.test demo@example.test
}

# The check: the chain passes the signed message and fails the DKIM signature of the altered one.
start_mailroomd "$(config chained local)"
blast "$DATA/signed.eml" 1 1 > /dev/null
blast "$DATA/tampered.eml" 1 1 > /dev/null
delivered() {  # SUBJECT -> the Authentication-Results of the message delivered with it
  local f i
  for i in $(seq 100); do
    f=$(grep -rlx -e "Subject: $1" -e "Subject: $1"$'\r' "$DATA/spool/mail/demo" 2>/dev/null | head -1 || true)
    [ -n "$f" ] && { sed -n '/^Authentication-Results:/,/^[^ \t]/p' "$f" | sed '$d' | tr -d '\r\n\t'; echo; return 0; }
    sleep 0.1
  done
  echo "no message with Subject: $1 was delivered" >&2
  return 1
}
good=$(delivered "filter chain benchmark") bad=$(delivered "filter chain benchmark, altered")
stop_mailroomd
echo "signed:  $good" | tee "$RESULTS_DIR/check.txt"
echo "altered: $bad" | tee -a "$RESULTS_DIR/check.txt"
for want in spf=pass dkim=pass dmarc=pass; do
  grep -q "$want" <<<"$good" || { echo "the chain did not give $want for the signed message" >&2; exit 1; }
done
grep -q "dkim=fail" <<<"$bad" || { echo "the chain did not give dkim=fail for the altered message" >&2; exit 1; }

ulimit -n 20000 2>/dev/null || true
cpu_ms() {  # PID -> user+system CPU time of the whole process so far, in ms
  awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); print ($12 + $13) * 1000 / hz}' "/proc/$1/stat"
}
one_run() {  # VARIANT -> "msg/s cpu_ms_per_msg"
  local out rate cpu
  start_mailroomd "$(config "$1" discard)"
  sync; sleep 1
  cpu=$(cpu_ms "$mr_pid")
  out=$(blast "$DATA/signed.eml" "$MSGS" "$SESSIONS") || { echo "$1: $out" >&2; return 1; }
  cpu=$(awk -v a="$cpu" -v b="$(cpu_ms "$mr_pid")" -v n="$MSGS" 'BEGIN {printf "%.3f", (b - a) / n}')
  stop_mailroomd
  rate=$(sed -n 's/.*msg_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
  echo "$rate $cpu"
}
# One untimed round first: the first runs on a quiet file system are faster (ext4 has no
# recently deleted inodes to skip yet when it allocates the queue files' inodes).
one_run plain > /dev/null
one_run chained > /dev/null
printf 'round\tvariant\tmsgs\tsize\tsessions\tmsg_per_s\tcpu_ms_per_msg\n' > "$RESULTS_DIR/filters.tsv"
for r in $(seq "$RUNS"); do
  order="plain chained"
  [ $((r % 2)) -eq 0 ] && order="chained plain"
  for v in $order; do
    read -r rate cpu < <(one_run "$v")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$MSGS" "$(wc -c < "$DATA/signed.eml")" "$SESSIONS" "$rate" "$cpu" \
      | tee -a "$RESULTS_DIR/filters.tsv"
  done
done

col() { awk -v v="$1" -v c="${2:-6}" '$2 == v {print $c}' "$RESULTS_DIR/filters.tsv"; }
plain=$(col plain | median) chained=$(col chained | median)
{
  printf '%-8s %10s %20s %18s\n' variant 'msg/s' '(min-max)' 'CPU ms/msg'
  for v in plain chained; do
    printf '%-8s %10.1f %20s %18.3f\n' "$v" "$(col $v | median)" "($(col $v | sort -g | head -1)-$(col $v | sort -g | tail -1))" \
      "$(col $v 7 | median)"
  done
  awk -v p="$plain" -v c="$chained" 'BEGIN {printf "ratio chained/plain %.3f, cost %.1f %%\n", c / p, 100 * (1 - c / p)}'
  # The same per round (each round's two runs are neighbours in time).
  awk '$2 == "plain" {p[$1] = $6} $2 == "chained" {c[$1] = $6}
       END {for (r in p) print c[r] / p[r]}' "$RESULTS_DIR/filters.tsv" | median \
    | awk '{printf "median of the per-round ratios %.3f\n", $1}'
} | tee "$RESULTS_DIR/summary.txt"
