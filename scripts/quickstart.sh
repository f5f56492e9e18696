#!/usr/bin/env bash
# The README's first command: install what is missing, build, make the dev PKI (a SoftHSM
# token, a root CA, TSA and TLS keys in it, a demo client) under .signet/, print how to get
# a timestamp, and run signetd on 127.0.0.1:8443 until Ctrl-C.
#   SIGNET_STATE_DIR  where the state lives   (default: ./.signet)
#   SIGNET_LISTEN     the API address         (default: 127.0.0.1:8443; port 0 picks one)
#   SIGNET_PUBLIC_LISTEN  OCSP and CRLs over plain HTTP (default: 127.0.0.1:8080)
#   SIGNET_METRICS_LISTEN Prometheus /metrics (default: 127.0.0.1:9464)
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${SIGNET_STATE_DIR:-$PWD/.signet}
LISTEN=${SIGNET_LISTEN:-127.0.0.1:8443}
PUBLIC_LISTEN=${SIGNET_PUBLIC_LISTEN:-127.0.0.1:8080}
METRICS_LISTEN=${SIGNET_METRICS_LISTEN:-127.0.0.1:9464}
CONFIG=firmware-config/dev.toml

scripts/install-deps.sh
cargo build --release --locked --bins
BIN=target/release
if [ ! -f "$STATE/pki/root-ca.pem" ]; then
  "$BIN/signetctl" init --config "$CONFIG" --state-dir "$STATE"
fi

cat <<HOWTO

Signet is starting on https://$LISTEN (mutual TLS; the demo client's credentials are in $STATE/demo).
Get a timestamp and verify it, from another terminal:

# --- try it ---
echo 'hello, signet' > /tmp/signet-data.txt
openssl ts -query -data /tmp/signet-data.txt -sha256 -cert -out /tmp/signet-req.tsq
curl -sS --cacert $STATE/pki/root-ca.pem --cert $STATE/demo/client.pem --key $STATE/demo/client.key -H 'Content-Type: application/timestamp-query' --data-binary @/tmp/signet-req.tsq -o /tmp/signet-resp.tsr https://$LISTEN/v1/tsa
openssl ts -reply -in /tmp/signet-resp.tsr -text
openssl ts -verify -data /tmp/signet-data.txt -in /tmp/signet-resp.tsr -CAfile $STATE/pki/root-ca.pem
# ---

HOWTO
exec "$BIN/signetd" --config "$CONFIG" --state-dir "$STATE" --listen "$LISTEN" \
  --public-listen "$PUBLIC_LISTEN" --metrics-listen "$METRICS_LISTEN"
