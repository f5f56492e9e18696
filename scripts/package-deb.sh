#!/usr/bin/env bash
# Builds the Debian package of Signet: the two binaries, the systemd units, sysusers.d and
# tmpfiles.d entries, the documented config (a conffile), man pages and shell completions
# generated from the binaries' own clap definitions.
#   scripts/package-deb.sh [OUT_DIR]     (default target/debian; prints the .deb's path)
# SIGNET_BIN_DIR names already built binaries (default: build target/release).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$(realpath -m "${1:-target/debian}")

BIN_DIR=${SIGNET_BIN_DIR:-}
if [ -z "$BIN_DIR" ]; then
  cargo build --release --locked --bins >&2
  BIN_DIR=target/release
fi
BIN_DIR=$(realpath "$BIN_DIR")

VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
ARCH=$(dpkg --print-architecture)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PKG=$WORK/debian/signet   # the layout dpkg-shlibdeps expects
mkdir -p "$PKG/DEBIAN"

put() { # MODE SOURCE DEST
  install -D -m "$1" "$2" "$PKG/$3"
}

for b in signetd signetctl; do
  put 0755 "$BIN_DIR/$b" "usr/bin/$b"
  strip --strip-unneeded "$PKG/usr/bin/$b"
done
put 0644 systemd/signetd.service usr/lib/systemd/system/signetd.service
put 0644 systemd/signetd.socket usr/lib/systemd/system/signetd.socket
put 0644 systemd/signet.sysusers usr/lib/sysusers.d/signet.conf
put 0644 systemd/signet.tmpfiles usr/lib/tmpfiles.d/signet.conf
put 0644 firmware-config/appliance.toml etc/signet/appliance.toml
put 0644 README.md usr/share/doc/signet/README.md
put 0644 firmware-config/dev.toml usr/share/doc/signet/examples/dev.toml

# Man pages and completions, from the binaries themselves.
DOCS=$WORK/docs
"$BIN_DIR/signetd" --generate-docs "$DOCS"
"$BIN_DIR/signetctl" generate-docs "$DOCS"
for page in "$DOCS"/man/*.8; do
  put 0644 "$page" "usr/share/man/man8/$(basename "$page")"
  gzip -9n "$PKG/usr/share/man/man8/$(basename "$page")"
done
for b in signetd signetctl; do
  put 0644 "$DOCS/completions/$b.bash" "usr/share/bash-completion/completions/$b"
  put 0644 "$DOCS/completions/_$b" "usr/share/zsh/vendor-completions/_$b"
  put 0644 "$DOCS/completions/$b.fish" "usr/share/fish/vendor_completions.d/$b.fish"
done

cat > "$PKG/usr/share/doc/signet/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: signet

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
EOF

# Dependencies of the binaries, as Debian resolves shared libraries.
printf 'Source: signet\n\nPackage: signet\nArchitecture: any\n' > "$WORK/debian/control"
DEPENDS=$(cd "$WORK" && dpkg-shlibdeps -O -edebian/signet/usr/bin/signetd -edebian/signet/usr/bin/signetctl 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)

cat > "$PKG/DEBIAN/control" <<EOF
Package: signet
Version: $VERSION
Architecture: $ARCH
Maintainer: Signet maintainers <signet@example.org>
Installed-Size: $SIZE
Depends: $DEPENDS, systemd
Recommends: tpm2-tools
Suggests: softhsm2
Section: admin
Priority: optional
Homepage: https://example.org/signet
Description: on-premise signing appliance (HSM keys, TSA, OCSP, CMS, PAdES)
 signetd serves keys held in a PKCS#11 HSM over mutual TLS: raw, CMS/CAdES and
 PAdES signatures, an RFC 3161 time-stamping authority, an RFC 6960 OCSP
 responder and CRLs. signetctl runs key ceremonies, issues and revokes.
 The service is installed but neither enabled nor started: its config must be
 sealed by the TPM first, so that no PIN is ever on disk in clear.
EOF
printf '/etc/signet/appliance.toml\n' > "$PKG/DEBIAN/conffiles"

for script in postinst prerm postrm; do
  install -m 0755 "scripts/deb/$script" "$PKG/DEBIAN/$script"
done
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$PKG/DEBIAN/md5sums"

mkdir -p "$OUT"
DEB=$OUT/signet_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >&2
echo "$DEB"
