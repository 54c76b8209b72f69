#!/usr/bin/env bash
# Property-based API test against the node's own OpenAPI document (GET /api/openapi.json):
# schemathesis (from PyPI, in a venv) generates requests for every operation and checks that no
# answer is a 5xx, that every answer matches its documented schema and that its status is one
# the document lists. Two nodes on loopback HTTPS (self-signed: TLS not verified) with a signed
# agreement; one token per role, each role on its operations, bounded by --max-examples, with a
# fixed seed. Fuzzing cannot guess the agreement id, so its queries end in 4xx; real_answers.py
# then checks one real preview and run and the reads after them against the document.
# Needs: python3 with venv (apt-get install -y python3-venv), PyPI reachable the first time.
# Usage: tests/api-schema/run.sh        (TANDEM=path/to/tandem to skip the cargo build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
port=${API_SCHEMA_PORT:-7481}
peer_port=${API_SCHEMA_PEER_PORT:-7482}
max_examples=${MAX_EXAMPLES:-20}
if [ -z "${TANDEM:-}" ]; then
  (cd "$root" && cargo build --locked -p tandem --bin tandem)
  TANDEM="$root/target/debug/tandem"
fi
venv="$root/target/api-schema-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
# Two nodes and a signed agreement (as tests/browser/run.sh, smaller), for real_answers.py.
"$TANDEM" init --dir ./node --name acme --listen "127.0.0.1:$port" >/dev/null
"$TANDEM" init --dir ./peer --name shopx --listen "127.0.0.1:$peer_port" >/dev/null
awk 'BEGIN { srand(1); split("18-24 25-34 35-44 45+", a, " "); print "email,age_band";
  for (i = 0; i < 400; i++) printf "user%d@example.com,%s\n", i, a[int(rand()*4)+1] }' > acme.csv
awk 'BEGIN { srand(2); split("bronze silver gold", t, " "); print "email,tier";
  for (i = 200; i < 800; i++) printf "user%d@example.com,%s\n", i, t[int(rand()*3)+1] }' > shopx.csv
"$TANDEM" import --dir ./node --file acme.csv --id-column email --id-kind email --attributes age_band >/dev/null
"$TANDEM" import --dir ./peer --file shopx.csv --id-column email --id-kind email --attributes tier >/dev/null
"$TANDEM" serve --dir ./node 2> node.log & pids+=($!)
"$TANDEM" serve --dir ./peer 2> peer.log & pids+=($!)
for _ in $(seq 50); do
  curl -sk "https://127.0.0.1:$port/v1/health" >/dev/null 2>&1 &&
    curl -sk "https://127.0.0.1:$peer_port/v1/health" >/dev/null 2>&1 && break
  sleep 0.2
done
card=$("$TANDEM" card --dir ./peer)
key=$(sed -n 's/^signing_key = "\(.*\)"/\1/p' <<<"$card")
tls=$(sed -n 's/^tls_cert_sha256 = "\(.*\)"/\1/p' <<<"$card")
awk -v key="$key" -v tls="$tls" -v ap="$port" -v sp="$peer_port" '
  { gsub(/127\.0\.0\.1:7401/, "127.0.0.1:" ap); gsub(/127\.0\.0\.1:7402/, "127.0.0.1:" sp) }
  /^name = "shopx"/ { shopx = 1 }
  shopx && /^signing_key/ { sub(/"0+"/, "\"" key "\"") }
  shopx && /^tls_cert_sha256/ { sub(/"0+"/, "\"" tls "\"") } { print }' "$root/examples/agreement.toml" > agreement.toml
agreement=$("$TANDEM" agreement propose --dir ./node --file agreement.toml | sed -n 's/^proposed agreement //p')
"$TANDEM" agreement accept --dir ./peer "$agreement" >/dev/null
token() { "$TANDEM" token create --dir ./node --name "$1" --role "$2" | tail -n 1; }

started=$(date +%s%N)
status=0
# Each role on the operations it may call (by tag); the shared readers once, as the auditor.
for run in "analyst:--include-tag queries" \
           "auditor:--include-tag compliance --include-tag agreements --include-tag session" \
           "admin:--include-tag admin"; do
  role=${run%%:*}
  secret=$(token "schema-$role" "$role")
  echo "--- schemathesis as $role"
  # shellcheck disable=SC2086 # the tag options are meant to split
  "$venv/bin/schemathesis" --no-color run "https://127.0.0.1:$port/api/openapi.json" \
    --tls-verify false --header "Authorization: Bearer $secret" ${run#*:} \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-examples "$max_examples" --seed 15 || status=$?
done
echo "--- real answers (an overlap preview and run, the reads after them)"
"$venv/bin/python" "$here/real_answers.py" "https://127.0.0.1:$port" "$agreement" \
  "$(token schema-real-analyst analyst)" "$(token schema-real-auditor auditor)" || status=$?
echo "api schema test: $(( ($(date +%s%N) - started) / 1000000 )) ms"
[ "$status" = 0 ] || { echo "--- node.log"; tail -n 40 node.log; echo "--- peer.log"; tail -n 20 peer.log; }
exit "$status"
