#!/usr/bin/env bash
# Example DICOM TLS certificates for tests and the README (never for production):
#   ca.pem               the example CA (its key ca.key signs the others)
#   segnode.pem/.key     segnode's certificate (localhost, 127.0.0.1)
#   peer.pem/.key        a trusted peer (DCMTK, Orthanc), valid as client and server
#   expired.pem/.key     signed by the CA but expired in 2021
#   untrusted-ca.pem, untrusted.pem/.key   a peer from another CA
# Usage: scripts/certs.sh OUT_DIR. Idempotent: an existing complete set is kept.
set -euo pipefail

out=${1:?usage: certs.sh OUT_DIR}
mkdir -p "$out"
cd "$out"
[ -f .complete ] && exit 0

umask 077
ext=$(mktemp)
trap 'rm -f "$ext"' EXIT
cat > "$ext" <<'CNF'
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

make_ca() { # name subject
  openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
    -keyout "$1.key" -out "$1.pem" -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

make_leaf() { # name subject ca
  openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -sha256 \
    -days 825 -extfile "$ext" -extensions leaf -out "$1.pem" 2>/dev/null
  rm -f "$1.csr"
}

make_ca ca "/O=segnode example/CN=segnode example CA"
make_leaf segnode "/O=segnode example/CN=localhost" ca
make_leaf peer "/O=segnode example/CN=example peer" ca
make_ca untrusted-ca "/O=elsewhere/CN=untrusted CA"
make_leaf untrusted "/O=elsewhere/CN=untrusted peer" untrusted-ca

# An expired certificate: `openssl ca` is the tool that takes explicit dates.
mkdir -p expired-ca.d
: > expired-ca.d/index.txt
printf '1000\n' > expired-ca.d/serial
cat > expired-ca.d/ca.cnf <<CNF
[ca]
default_ca = example
[example]
dir = $PWD/expired-ca.d
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = $PWD/ca.pem
private_key = $PWD/ca.key
default_md = sha256
policy = anything
copy_extensions = none
[anything]
organizationName = optional
commonName = supplied
CNF
openssl req -new -newkey rsa:2048 -nodes -keyout expired.key -out expired.csr \
  -subj "/O=segnode example/CN=expired peer" 2>/dev/null
openssl ca -batch -config expired-ca.d/ca.cnf -extfile "$ext" -extensions leaf \
  -startdate 20200101000000Z -enddate 20210101000000Z -notext \
  -in expired.csr -out expired.pem 2>/dev/null
rm -rf expired.csr expired-ca.d ca.srl untrusted-ca.srl
# The keys stay readable by their owner only (umask); the certificates may be shared.
chmod 644 ./*.pem
touch .complete
