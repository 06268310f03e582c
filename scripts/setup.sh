#!/usr/bin/env bash
# Shared set-up for scripts/test.sh and scripts/run.sh: installs missing Debian packages (only when
# root and only what is missing), then configures and builds into build/.
# Env: BUILD_DIR (build), BUILD_TYPE (RelWithDebInfo), JOBS (nproc), CMAKE_ARGS (extra).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}"
JOBS="${JOBS:-$(nproc)}"

# Build tools and libraries, then the real peers the interop tests drive.
PACKAGES=(cmake make g++ pkg-config libasio-dev libmbedtls-dev libc-ares-dev libcrypt-dev doctest-dev
          libtomlplusplus-dev python3 openssl ca-certificates swaks curl dnsmasq-base gsasl whois
          dovecot-core dovecot-imapd dovecot-pop3d libargon2-dev argon2 fetchmail getmail6 postfix
          opendkim opendkim-tools python3-dkim dovecot-sieve libyaml-cpp-dev publicsuffix
          clamav-daemon spamassassin spamd rspamd python3-authres)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Postfix is a test peer (a private instance per test, smtp-sink): no system mail service.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
  fi
fi

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DMAILROOM_WERROR=ON ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
