#!/usr/bin/env bash
# The console's real-browser test: two Tandem nodes on loopback (as examples/walkthrough.sh sets
# them up, with smaller CSVs), an analyst and an auditor token, then console.test.mjs drives
# Debian's chromium through playwright-core against https://127.0.0.1:$ACME_PORT/console/.
# Needs: chromium (apt-get install -y chromium), node >= 18, npm. Screenshots go to $SHOT_DIR
# (default: a fresh temp dir, printed at the end).
# Usage: tests/browser/run.sh            (TANDEM=path/to/tandem to skip the cargo build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
acme_port=${ACME_PORT:-7461}
shopx_port=${SHOPX_PORT:-7462}
if [ -z "${TANDEM:-}" ]; then
  (cd "$root" && cargo build --locked -p tandem --bin tandem)
  TANDEM="$root/target/debug/tandem"
fi
[ -x /usr/bin/chromium ] || { echo "chromium is missing: apt-get install -y chromium" >&2; exit 1; }
[ -d "$here/node_modules/playwright-core" ] || (cd "$here" && npm ci --no-audit --no-fund)

work=$(mktemp -d)
export SHOT_DIR=${SHOT_DIR:-$(mktemp -d)}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"

"$TANDEM" init --dir ./acme  --name acme  --listen "127.0.0.1:$acme_port" >/dev/null
"$TANDEM" init --dir ./shopx --name shopx --listen "127.0.0.1:$shopx_port" >/dev/null
# 2,000 brand customers and 3,000 platform buyers, 1,000 of them shared (spelled differently).
# acme's campaign arm (even: test) and shopx's conversion flag (30% in the test arm, 20% else)
# give lift something to find.
awk 'BEGIN { srand(1); split("18-24 25-34 35-44 45+", a, " "); split("north south east west", r, " ");
  print "email,age_band,region,arm";
  for (i = 0; i < 2000; i++) printf "user%d@example.com,%s,%s,%s\n", i, a[int(rand()*4)+1], r[int(rand()*4)+1], (i % 2 ? "control" : "test") }' > acme.csv
awk 'BEGIN { srand(2); split("bronze silver gold", t, " "); print "email,tier,converted";
  for (i = 1000; i < 4000; i++) printf " User%d@Example.COM ,%s,%s\n", i, t[int(rand()*3)+1], (rand() < (i < 2000 && i % 2 == 0 ? 0.3 : 0.2) ? "yes" : "no") }' > shopx.csv
"$TANDEM" import --dir ./acme  --file acme.csv  --id-column email --id-kind email --attributes age_band,region,arm >/dev/null
"$TANDEM" import --dir ./shopx --file shopx.csv --id-column email --id-kind email --attributes tier,converted >/dev/null

"$TANDEM" serve --dir ./acme  2> acme.log &  pids+=($!)
"$TANDEM" serve --dir ./shopx 2> shopx.log & pids+=($!)
for _ in $(seq 50); do
  curl -sk "https://127.0.0.1:$acme_port/v1/health" >/dev/null 2>&1 &&
    curl -sk "https://127.0.0.1:$shopx_port/v1/health" >/dev/null 2>&1 && break
  sleep 0.2
done

card=$("$TANDEM" card --dir ./shopx)
key=$(sed -n 's/^signing_key = "\(.*\)"/\1/p' <<<"$card")
tls=$(sed -n 's/^tls_cert_sha256 = "\(.*\)"/\1/p' <<<"$card")
awk -v key="$key" -v tls="$tls" -v ap="$acme_port" -v sp="$shopx_port" '
  { gsub(/127\.0\.0\.1:7401/, "127.0.0.1:" ap); gsub(/127\.0\.0\.1:7402/, "127.0.0.1:" sp) }
  /^name = "shopx"/ { shopx = 1 }
  shopx && /^signing_key/ { sub(/"0+"/, "\"" key "\"") }
  shopx && /^tls_cert_sha256/ { sub(/"0+"/, "\"" tls "\"") } { print }
  /^region = \["north"/ { print "arm = [\"test\", \"control\"]" }
  /^tier = / { print "converted = [\"no\", \"yes\"]" }' "$root/examples/agreement.toml" > agreement.toml
id=$("$TANDEM" agreement propose --dir ./acme --file agreement.toml | sed -n 's/^proposed agreement //p')
"$TANDEM" agreement accept --dir ./shopx "$id" >/dev/null

token() { "$TANDEM" token create --dir ./acme --name "$1" --role "$2" | tail -n 1; }
export CONSOLE_URL="https://127.0.0.1:$acme_port/console/"
export ANALYST_TOKEN; ANALYST_TOKEN=$(token carol analyst)
export AUDITOR_TOKEN; AUDITOR_TOKEN=$(token dora auditor)
export TRUE_OVERLAP=1000

started=$(date +%s%N)
status=0
node --test --test-reporter=spec "$here/console.test.mjs" || status=$?
echo "browser test: $(( ($(date +%s%N) - started) / 1000000 )) ms; screenshots in $SHOT_DIR"
[ "$status" = 0 ] || { echo "--- acme.log"; tail -n 30 acme.log; echo "--- shopx.log"; tail -n 30 shopx.log; }
exit "$status"
