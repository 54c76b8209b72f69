#!/usr/bin/env bash
# Property-based API test against the node's own OpenAPI document (GET /api/openapi.json):
# schemathesis (from PyPI, in a venv) generates requests for every operation and checks that no
# answer is a 5xx, that every answer matches its documented schema and that its status is one
# the document lists. One node on loopback HTTPS (self-signed: TLS not verified), one token per
# role, each role on its operations, bounded by --max-examples, with a fixed seed. The node has
# no agreement, so queries end in 404/422 (their error answers are what is checked there; the
# successful answers' schemas are checked by the browser test's real runs and the unit tests).
# Needs: python3 with venv (apt-get install -y python3-venv), PyPI reachable the first time.
# Usage: tests/api-schema/run.sh        (TANDEM=path/to/tandem to skip the cargo build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
port=${API_SCHEMA_PORT:-7481}
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
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
"$TANDEM" init --dir ./node --name acme --listen "127.0.0.1:$port" >/dev/null
"$TANDEM" serve --dir ./node 2> node.log & pid=$!
for _ in $(seq 50); do
  curl -sk "https://127.0.0.1:$port/v1/health" >/dev/null 2>&1 && break
  sleep 0.2
done
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
echo "api schema test: $(( ($(date +%s%N) - started) / 1000000 )) ms"
[ "$status" = 0 ] || { echo "--- node.log"; tail -n 40 node.log; }
exit "$status"
