#!/usr/bin/env bash
# Installs what Signet needs on Debian 12 to build, run and test: system packages and the
# Python judges (pyHanko, rfc3161ng, schemathesis) in a venv under .venv/judges. Idempotent; quiet when done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential pkg-config libssl-dev libsqlite3-dev
  softhsm2 opensc p11-kit p11-kit-modules
  swtpm swtpm-tools tpm2-tools libtss2-dev libtpm2-pkcs11-1
  tpm2-abrmd libtss2-tcti-tabrmd0 dbus
  libsystemd-dev
  openssl curl gnutls-bin poppler-utils qpdf ghostscript libnss3-tools
  golang-cfssl iproute2 util-linux bsdutils
  prometheus
  osslsigncode openjdk-17-jdk-headless
  postgresql haproxy
  systemd dpkg-dev man-db
  python3 python3-venv
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Only its binaries are wanted (the tests start their own on a port they pick): the
  # packaged service, started where systemd runs, is stopped again.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  # The same for PostgreSQL (tests run their own server, initdb in a temp dir) and
  # HAProxy (tests start it with deploy/haproxy/haproxy.cfg on ports they pick).
  for service in postgresql haproxy; do
    if [[ " ${missing[*]} " == *" $service "* ]] && [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
  done
fi

# The Python judges: nobody on this project wrote them, which is the point.
VENV=.venv/judges
# schemathesis checks the live API against appliance/openapi.json (tests/tests/openapi.rs); this
# version installs beside pyHanko and cryptography>=48 without changing either.
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import pyhanko, rfc3161ng, schemathesis' 2>/dev/null \
  || [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" != 4.32.5 ]; then
  echo "installing python judges into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q 'pyhanko==0.38.0' 'pyhanko-cli==0.6.0' 'rfc3161ng==2.1.3' 'cryptography>=48' \
    'schemathesis==4.32.5'
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (rustup) first" >&2
  exit 1
fi
