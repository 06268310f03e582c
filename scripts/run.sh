#!/usr/bin/env bash
# Installs what is missing, builds, and starts mailroomd on its embedded demo configuration
# (created in var/demo on first run): SMTP 127.0.0.1:2525, submission 2587 (STARTTLS + AUTH),
# submissions 2465 (TLS + AUTH), LMTP 2424; user demo@example.test / password demo; mail lands in
# var/demo/mail/demo/Maildir. Ctrl-C stops it. DEMO_DIR overrides var/demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
exec "${BUILD_DIR:-$ROOT/build}/bin/mailroomd" --demo "${DEMO_DIR:-$ROOT/var/demo}"
