#!/usr/bin/env bash
# A second real client against the real server: Debian's awscli (/usr/bin/aws, called by
# full path: another `aws` may come first on PATH) copies a 20 MiB file up and down over
# HTTPS, trusting the server's self-signed certificate, and drives a few s3api calls.
# Usage: scripts/awscli-smoke.sh   (needs `npm run compile` done; starts its own server)
set -euo pipefail
cd "$(dirname "$0")/.."

AWS=/usr/bin/aws
[ -x "$AWS" ] || { echo "awscli-smoke: $AWS not found (apt-get install -y awscli)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/s3sse-awscli.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export S3SSE_ACCESS_KEY=AWSCLISMOKEKEY000001
export S3SSE_SECRET_KEY=awscli-smoke-secret-0123456789
node bin/s3-sse.js serve --data-dir "$work/data" --host 127.0.0.1 --https-port auto --http-port 0 >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q 'listening on' "$work/server.log" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
endpoint=$(sed -n 's/.*listening on \(https:\/\/[^ ]*\).*/\1/p' "$work/server.log")
[ -n "$endpoint" ] || { cat "$work/server.log" >&2; exit 1; }

export AWS_ACCESS_KEY_ID=$S3SSE_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$S3SSE_SECRET_KEY
export AWS_DEFAULT_REGION=us-east-1
export AWS_CA_BUNDLE="$work/data/tls-cert.pem"
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
aws() { "$AWS" --endpoint-url "$endpoint" "$@"; }
step() { echo "awscli-smoke: $*"; }

step "mb"
aws s3 mb s3://smoke-bucket >/dev/null

step "cp 20 MiB up (multipart) and down"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$work/up.bin"
aws s3 cp "$work/up.bin" "s3://smoke-bucket/dir/file name.bin" --no-progress >/dev/null
aws s3 cp "s3://smoke-bucket/dir/file name.bin" "$work/down.bin" --no-progress >/dev/null
cmp "$work/up.bin" "$work/down.bin"

step "s3api head-object"
size=$(aws s3api head-object --bucket smoke-bucket --key "dir/file name.bin" --query ContentLength --output text)
[ "$size" = $((20 * 1024 * 1024)) ] || { echo "head-object size $size" >&2; exit 1; }

step "s3api put-object / copy-object / get-object"
printf 'small object' >"$work/small.txt"
aws s3api put-object --bucket smoke-bucket --key "small ü.txt" --body "$work/small.txt" --content-type text/plain --metadata k=v >/dev/null
aws s3api copy-object --bucket smoke-bucket --key copied.txt --copy-source "smoke-bucket/small ü.txt" >/dev/null
aws s3api get-object --bucket smoke-bucket --key copied.txt "$work/copied.txt" >/dev/null
cmp "$work/small.txt" "$work/copied.txt"
meta=$(aws s3api head-object --bucket smoke-bucket --key copied.txt --query Metadata.k --output text)
[ "$meta" = v ] || { echo "copied metadata: $meta" >&2; exit 1; }

step "s3api list-objects-v2 and s3 ls"
keys=$(aws s3api list-objects-v2 --bucket smoke-bucket --query 'Contents[].Key' --output text | tr '\t' '\n' | sort | tr '\n' '|')
[ "$keys" = "copied.txt|dir/file name.bin|small ü.txt|" ] || { echo "listed: $keys" >&2; exit 1; }
aws s3 ls s3://smoke-bucket/dir/ | grep -q 'file name.bin'

step "rm and rb"
aws s3 rm s3://smoke-bucket --recursive >/dev/null
aws s3 rb s3://smoke-bucket >/dev/null
if aws s3api head-bucket --bucket smoke-bucket 2>/dev/null; then echo "bucket still exists" >&2; exit 1; fi

step "ok"
