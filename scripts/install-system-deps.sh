#!/usr/bin/env bash
# Installs the Debian packages the test suite runs for real: prometheus (the server and
# promtool), postgresql, chromium (the HTML report rendered in a real browser) and openssl.
# Idempotent; does nothing when they are already there.
# Locally without root the tests that need them skip with a reason; under CI=true a missing
# component is an error, never a skip.
set -euo pipefail

need=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)  # the HTML report in a real browser
command -v openssl >/dev/null 2>&1 || need+=(openssl)  # a certificate for the HTTPS source test

if [ ${#need[@]} -eq 0 ]; then
    echo "system deps: prometheus, postgresql, chromium and openssl present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    msg="system deps: missing ${need[*]} and cannot apt-get install them (need root on Debian)"
    if [ "${CI:-}" = "true" ]; then
        echo "$msg" >&2
        exit 1
    fi
    echo "$msg; the tests that need them will skip" >&2
    exit 0
fi

echo "system deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
echo "system deps: installed ${need[*]}"
