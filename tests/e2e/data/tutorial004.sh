#!/usr/bin/env bash
# The PKI tutorial from seed 004 (a bank's "create your own CA with OpenSSL" guide), as written,
# with the interactive prompts answered by -subj and the passphrase given with -passout/-passin.
# Usage: tutorial004.sh DIR PASSPHRASE
set -euo pipefail
dir=$1 pass=$2
mkdir -p "$dir"/{certs,crl,newcerts,private}
chmod 700 "$dir/private"
touch "$dir/index.txt"
echo 1000 > "$dir/serial"
cat > "$dir/openssl.cnf" <<CNF
[ ca ]
default_ca = CA_default

[ CA_default ]
dir = $dir
certs = \$dir/certs
crl_dir = \$dir/crl
new_certs_dir = \$dir/newcerts
database = \$dir/index.txt
serial = \$dir/serial
private_key = \$dir/private/ca.key.pem
certificate = \$dir/certs/ca.cert.pem
crlnumber = \$dir/crlnumber
crl = \$dir/crl.pem
default_crl_days = 30
default_md = sha256
name_opt = ca_default
cert_opt = ca_default
default_days = 375
preserve = no
policy = policy_strict

[ policy_strict ]
countryName = match
stateOrProvinceName = match
organizationName = match
organizationalUnitName = optional
commonName = supplied
emailAddress = optional

[ req ]
default_bits = 2048
distinguished_name = req_distinguished_name
string_mask = utf8only

[ req_distinguished_name ]
countryName = Country Name (2 letter code)
stateOrProvinceName = State or Province Name
localityName = Locality Name
0.organizationName = Organization Name
commonName = Common Name
emailAddress = Email Address

[ v3_ca ]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, cRLSign, keyCertSign

[ usr_cert ]
basicConstraints = CA:FALSE
nsCertType = client, email
nsComment = "OpenSSL Generated Client Certificate"
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
keyUsage = critical, nonRepudiation, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth, emailProtection
CNF
subj="/C=BR/ST=Sao Paulo/O=Example Payments Ltda"
openssl genrsa -aes256 -passout "pass:$pass" -out "$dir/private/ca.key.pem" 4096 2>/dev/null
openssl req -config "$dir/openssl.cnf" -key "$dir/private/ca.key.pem" -passin "pass:$pass" \
  -new -x509 -days 7300 -sha256 -extensions v3_ca -subj "$subj/CN=Example Payments Root CA" \
  -out "$dir/certs/ca.cert.pem"
openssl genrsa -out "$dir/private/client.key.pem" 2048 2>/dev/null
openssl req -config "$dir/openssl.cnf" -key "$dir/private/client.key.pem" -new -sha256 \
  -subj "$subj/CN=api-client.example.com" -out "$dir/client.csr.pem"
openssl ca -batch -config "$dir/openssl.cnf" -extensions usr_cert -days 375 -notext -md sha256 \
  -passin "pass:$pass" -in "$dir/client.csr.pem" -out "$dir/certs/client.cert.pem" 2>/dev/null
openssl pkcs12 -export -out "$dir/certs/client.pfx" -inkey "$dir/private/client.key.pem" \
  -in "$dir/certs/client.cert.pem" -certfile "$dir/certs/ca.cert.pem" -passout "pass:$pass"
