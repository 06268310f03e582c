#!/usr/bin/env bash
# Installs what is missing, builds, and starts the receiving server on an embedded default:
# SMTP on 127.0.0.1:2525 (STARTTLS) and 127.0.0.1:4650 (implicit TLS) with a self-signed
# certificate, user "demo" / password "demo", mail stored in var/Maildir. Ctrl-C stops it.
# Extra arguments are passed to the server.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
mkdir -p "$ROOT/var"
echo "mailroom: SMTP on 127.0.0.1:2525 (STARTTLS) and 127.0.0.1:4650 (TLS), user demo/demo, Maildir $ROOT/var/Maildir" >&2
exec "${BUILD_DIR:-$ROOT/build}/bin/smtp_sink" --listen 127.0.0.1:2525 --listen-tls 127.0.0.1:4650 \
  --maildir "$ROOT/var/Maildir" --self-signed --hostname localhost --user demo:demo "$@"
