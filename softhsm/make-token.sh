#!/usr/bin/env bash
# Make a fresh SoftHSM2 token in DIR, with nothing global touched.
#   softhsm/make-token.sh DIR [LABEL] [USER_PIN] [SO_PIN]
# Prints the SOFTHSM2_CONF line to export. Signet's `signetctl init` does the same through
# PKCS#11 for the dev profile; this script is for tests and hand work with pkcs11-tool.
set -euo pipefail
dir=${1:?usage: make-token.sh DIR [LABEL] [USER_PIN] [SO_PIN]}
label=${2:-signet-test}; pin=${3:-1234}; so_pin=${4:-12345678}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/tokens"
tokens=$(cd "$dir/tokens" && pwd)
sed "s|@TOKENDIR@|$tokens|" "$here/softhsm2.conf.in" > "$dir/softhsm2.conf"
export SOFTHSM2_CONF="$dir/softhsm2.conf"
softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$pin" >/dev/null
echo "export SOFTHSM2_CONF=$SOFTHSM2_CONF"
