#!/usr/bin/env bash
# Writes the seed corpus of every fuzz target into DIR/TARGET/ (default: fuzz/corpus) from the
# repository's test vectors and a few hand-written requests. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
out="${1:-$here/corpus}"

put() { # put TARGET NAME CONTENT...
  local target=$1 name=$2
  shift 2
  mkdir -p "$out/$target"
  printf '%s' "$*" >"$out/$target/$name"
}
copy() { # copy TARGET FILE...
  local target=$1
  shift
  mkdir -p "$out/$target"
  cp "$@" "$out/$target/"
}

copy tsa_request "$root"/pki/tests/data/tsp/*.tsq
copy ocsp_request "$root"/pki/tests/data/ocsp/*.der
copy client_crl "$root"/pki/tests/data/crl/openssl.crl
for der in "$root"/pki/tests/data/ocsp/*.der; do
  name=$(basename "$der" .der)
  b64=$(base64 -w0 <"$der")
  put ocsp_get_path "$name.std" "$b64"
  put ocsp_get_path "$name.url" "$(printf '%s' "$b64" | tr '+/' '-_' | tr -d '=')"
  put ocsp_get_path "$name.pct" "$(printf '%s' "$b64" | sed 's|+|%2B|g; s|/|%2F|g; s|=|%3D|g')"
done

digest256=$(printf 'x%.0s' {1..32} | base64 -w0)
digest512=$(printf 'y%.0s' {1..64} | base64 -w0)
put api_json sign.json "{\"digest\":\"$digest256\",\"digest_algorithm\":\"sha256\",\"scheme\":\"ecdsa\"}"
put api_json sign-pss.json "{\"digest\":\"$digest512\",\"digest_algorithm\":\"sha512\",\"scheme\":\"pss\"}"
put api_json batch.json "{\"digests\":[\"$digest256\",\"$digest256\"],\"digest_algorithm\":\"sha256\",\"scheme\":\"pkcs1v15\"}"
put api_json cms.json "{\"digest\":\"$digest256\",\"digest_algorithm\":\"sha256\"}"
put api_json escapes.json '{"digest":"\u0041\ud83d\ude00","digest_algorithm":"sha384","scheme":"ecdsa","x":[1e999,-0.0]}'
put api_query cms 'level=B-T&profile=pades'
put api_query pdf 'level=B-LT&field=Sig1&reason=approved%20by%20me&location=here+there&name=%C3%A9'
put api_query odd 'level&=&&field=a.b&name=%ff%fe'

copy pdf_reader "$root"/pki/tests/vectors/pdf/*.pdf
copy config_text "$root"/firmware-config/dev.toml "$root"/firmware-config/appliance.toml

for line in '{"version":1,"command":"status"}' \
  '{"version":1,"command":"cert-revoke","serial":"0a1b","reason":"keyCompromise"}' \
  '{"version":1,"command":"key-generate","label":"k","algorithm":"ec-p256","issue_from":"root"}' \
  '{"version":1,"command":"audit","action":"export","from":1,"to":18446744073709551615}' \
  '{"version":2,"command":"status"}'; do
  put admin_request "$(printf '%s' "$line" | sha256sum | cut -c1-16)" "$line"
done

# A sealed config as the sealer writes it (format.rs), with and without its checksum.
python3 - "$out/sealed_file" <<'PY'
import hashlib, os, struct, sys
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
body = b"SIGNETSC" + struct.pack(">HHB", 1, 0x000B, 2)
for index in (0, 7):
    body += bytes([index]) + bytes(range(index, index + 32))
for blob in (b"\x00\x08public..", b"\x00\x10private........"):
    body += struct.pack(">H", len(blob)) + blob
body += bytes(12)  # nonce
ciphertext = b"\x5a" * 40
body += struct.pack(">I", len(ciphertext)) + ciphertext
open(os.path.join(out, "two-pcrs.sealed"), "wb").write(body + hashlib.sha256(body).digest())
open(os.path.join(out, "two-pcrs.unsummed"), "wb").write(body)
PY
