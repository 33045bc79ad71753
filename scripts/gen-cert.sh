#!/usr/bin/env bash
# Makes a private CA and a server certificate for 127.0.0.1 / ::1 / localhost in DIR,
# for the demo's and the tests' TLS listeners. Does nothing when they already exist.
#   DIR/ca.pem      the CA certificate (give it to clients: curl --cacert DIR/ca.pem)
#   DIR/ca.key      the CA's private key
#   DIR/cert.pem    the server certificate (signed by the CA)
#   DIR/key.pem     the server's private key
# Usage: scripts/gen-cert.sh DIR
set -euo pipefail
dir=${1:?usage: $0 DIR}
mkdir -p "$dir"
cd "$dir"
if [ -s ca.pem ] && [ -s ca.key ] && [ -s cert.pem ] && [ -s key.pem ]; then
  exit 0
fi
command -v openssl >/dev/null || { echo "gen-cert: openssl is not installed" >&2; exit 1; }
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ca.key"
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 825 -subj "/CN=cutover demo CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$tmp/ca.pem" 2>/dev/null

openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/key.pem"
openssl req -new -key "$tmp/key.pem" -subj "/CN=localhost" -out "$tmp/server.csr" 2>/dev/null
cat > "$tmp/ext.cnf" <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
EXT
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
  -CAcreateserial -days 825 -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/cert.pem" 2>/dev/null

# keys stay private; certificates are public
chmod 600 "$tmp/ca.key" "$tmp/key.pem"
chmod 644 "$tmp/ca.pem" "$tmp/cert.pem"
mv "$tmp/ca.key" "$tmp/ca.pem" "$tmp/key.pem" "$tmp/cert.pem" .
echo "gen-cert: wrote a CA and a certificate for 127.0.0.1, ::1, localhost in $(pwd)" >&2
