#!/usr/bin/env bash
# The aws CLI v2 (/usr/bin/aws, by full path) against a real `s3-sse kms serve`: the AWS KMS
# commands an operator types, over HTTPS with the server's self-signed certificate.
# Usage: scripts/kms-smoke.sh   (needs `npm run compile` done; starts its own KMS server)
set -euo pipefail
cd "$(dirname "$0")/.."

AWS=/usr/bin/aws
[ -x "$AWS" ] || { echo "kms-smoke: $AWS not found (apt-get install -y awscli)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/s3sse-kms-smoke.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export S3SSE_ACCESS_KEY=KMSSMOKEKEY000000001
export S3SSE_SECRET_KEY=kms-smoke-secret-0123456789
node bin/s3-sse.js kms serve --data-dir "$work/data" --host 127.0.0.1 --port auto >"$work/kms.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q 'listening on' "$work/kms.log" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/kms.log" >&2; exit 1; }
  sleep 0.1
done
endpoint=$(sed -n 's/.*listening on \(https:\/\/[^ ]*\).*/\1/p' "$work/kms.log")
[ -n "$endpoint" ] || { cat "$work/kms.log" >&2; exit 1; }

export AWS_ACCESS_KEY_ID=$S3SSE_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3SSE_SECRET_KEY AWS_DEFAULT_REGION=us-east-1
export AWS_CA_BUNDLE="$work/data/tls-cert.pem"
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
kms() { "$AWS" --endpoint-url "$endpoint" --output text kms "$@"; }
step() { echo "kms-smoke: $*"; }
fail() { echo "kms-smoke: FAILED: $*" >&2; exit 1; }

step "create-key, create-alias"
key=$(kms create-key --description smoke --query KeyMetadata.KeyId)
kms create-alias --alias-name alias/smoke --target-key-id "$key"
step "list-keys, describe-key"
kms list-keys --query 'Keys[].KeyId' | grep -q "$key" || fail "list-keys does not list $key"
[ "$(kms describe-key --key-id alias/smoke --query KeyMetadata.KeyId)" = "$key" ] || fail "describe-key by alias"
step "generate-data-key, decrypt with the same context"
kms generate-data-key --key-id alias/smoke --key-spec AES_256 --encryption-context bucket=b,key=k \
  --query '[CiphertextBlob,Plaintext]' >"$work/dk.txt"
read -r blob plain <"$work/dk.txt"
echo "$blob" | base64 -d >"$work/blob.bin"
[ "$(kms decrypt --ciphertext-blob "fileb://$work/blob.bin" --encryption-context bucket=b,key=k --query Plaintext)" = "$plain" ] || fail "decrypt"
if kms decrypt --ciphertext-blob "fileb://$work/blob.bin" --encryption-context bucket=b,key=other >/dev/null 2>"$work/err.txt"; then fail "decrypt under another context succeeded"; fi
grep -q InvalidCiphertextException "$work/err.txt" || fail "wrong context: $(cat "$work/err.txt")"
step "encrypt, re-encrypt, decrypt"
printf 'smoke secret' >"$work/secret.txt"
kms encrypt --key-id "$key" --plaintext "fileb://$work/secret.txt" --query CiphertextBlob | base64 -d >"$work/enc.bin"
kms re-encrypt --ciphertext-blob "fileb://$work/enc.bin" --destination-key-id alias/smoke --destination-encryption-context to=new \
  --query CiphertextBlob | base64 -d >"$work/re.bin"
[ "$(kms decrypt --ciphertext-blob "fileb://$work/re.bin" --encryption-context to=new --query Plaintext | base64 -d)" = "smoke secret" ] || fail "re-encrypted secret"
step "disable-key"
kms disable-key --key-id "$key"
[ "$(kms describe-key --key-id "$key" --query KeyMetadata.KeyState)" = Disabled ] || fail "key not disabled"
if kms generate-data-key --key-id "$key" --key-spec AES_256 >/dev/null 2>"$work/err.txt"; then fail "a disabled key made a data key"; fi
grep -q DisabledException "$work/err.txt" || fail "disabled: $(cat "$work/err.txt")"
step "ok"
