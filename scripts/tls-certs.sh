#!/usr/bin/env bash
# Makes a small private PKI with openssl, for the dev stack, the tests and
# trying TLS out (see README.md, "TLS"). EC P-256 keys, unencrypted, 0600.
#
#   scripts/tls-certs.sh ca     DIR NAME                 self-signed CA
#   scripts/tls-certs.sh server DIR NAME CA [SAN]        server certificate
#   scripts/tls-certs.sh client DIR NAME CA [CN]         client certificate
#
# Each writes DIR/NAME.crt and DIR/NAME.key; CA names DIR/CA.crt and
# DIR/CA.key of an earlier `ca`. SAN defaults to DNS:localhost,IP:127.0.0.1
# (openssl's subjectAltName syntax); CN defaults to NAME. Certificates are
# valid for 825 days; WARREN_CERT_DAYS sets the days of server and client
# certificates (tests of expiry warnings).
set -euo pipefail

die() { echo "tls-certs.sh: $*" >&2; exit 1; }
[ $# -ge 3 ] || die "usage: $0 ca|server|client DIR NAME [CA] [SAN|CN]"
kind="$1" dir="$2" name="$3"
mkdir -p "$dir"
crt="$dir/$name.crt" key="$dir/$name.key"
umask 077

new_key_and_request() {  # CN -> $dir/$name.csr
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$key" -subj "/CN=$1" -out "$dir/$name.csr" 2>/dev/null
}

sign() {  # CA extensions-file
  local ca="$1" ext="$2"
  [ -f "$dir/$ca.crt" ] && [ -f "$dir/$ca.key" ] || die "no CA $dir/$ca.crt/.key (run: $0 ca $dir $ca)"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
    -CAcreateserial -days "${WARREN_CERT_DAYS:-825}" -sha256 -extfile "$ext" -out "$crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext"
}

case "$kind" in
  ca)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$key" -subj "/CN=$name" -days 825 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$crt" 2>/dev/null
    ;;
  server)
    [ $# -ge 4 ] || die "server needs a CA name"
    new_key_and_request "$name"
    ext="$(mktemp)"
    printf '%s\n' "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=${5:-DNS:localhost,IP:127.0.0.1}" >"$ext"
    sign "$4" "$ext"
    ;;
  client)
    [ $# -ge 4 ] || die "client needs a CA name"
    new_key_and_request "${5:-$name}"
    ext="$(mktemp)"
    printf '%s\n' "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" >"$ext"
    sign "$4" "$ext"
    ;;
  *) die "unknown kind '$kind' (ca, server or client)" ;;
esac
chmod 0644 "$crt"
echo "$crt"
