#!/usr/bin/env bash
# The README's walk-through as a script: two nodes on loopback, synthetic CSVs, an agreement
# proposed and accepted over the nodes' HTTPS, one overlap query, the budget and the audit log.
# Usage: examples/walkthrough.sh [work-dir]   (needs a release build: cargo build --release)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tandem="$here/target/release/tandem"
work=${1:-$(mktemp -d)}
mkdir -p "$work" && cd "$work"
[ -x "$tandem" ] || (cd "$here" && cargo build --release)

"$tandem" init --dir ./acme  --name acme  --listen 127.0.0.1:7401 >/dev/null
"$tandem" init --dir ./shopx --name shopx --listen 127.0.0.1:7402 >/dev/null

# 20k brand customers and 30k platform buyers, 10k of them shared (spelled differently).
awk 'BEGIN { srand(1); split("18-24 25-34 35-44 45+", a, " "); split("north south east west", r, " ");
  print "email,age_band,region";
  for (i = 0; i < 20000; i++) printf "user%d@example.com,%s,%s\n", i, a[int(rand()*4)+1], r[int(rand()*4)+1] }' > acme_customers.csv
awk 'BEGIN { srand(2); split("bronze silver gold", t, " "); print "email,tier";
  for (i = 10000; i < 40000; i++) printf " User%d@Example.COM ,%s\n", i, t[int(rand()*3)+1] }' > shopx_buyers.csv
"$tandem" import --dir ./acme  --file acme_customers.csv --id-column email --id-kind email --attributes age_band,region
"$tandem" import --dir ./shopx --file shopx_buyers.csv  --id-column email --id-kind email --attributes tier

"$tandem" serve --dir ./acme  2> acme.log &  acme_pid=$!
"$tandem" serve --dir ./shopx 2> shopx.log & shopx_pid=$!
trap 'kill $acme_pid $shopx_pid 2>/dev/null || true' EXIT
sleep 1

# The agreement: examples/agreement.toml with shopx's block (from `tandem card`) pasted in;
# acme's own placeholders are filled by `propose`.
card=$("$tandem" card --dir ./shopx)
key=$(sed -n 's/^signing_key = "\(.*\)"/\1/p' <<<"$card")
tls=$(sed -n 's/^tls_cert_sha256 = "\(.*\)"/\1/p' <<<"$card")
awk -v key="$key" -v tls="$tls" '/^name = "shopx"/ { shopx = 1 }
  shopx && /^signing_key/ { sub(/"0+"/, "\"" key "\"") }
  shopx && /^tls_cert_sha256/ { sub(/"0+"/, "\"" tls "\"") } { print }' "$here/examples/agreement.toml" > agreement.toml

id=$("$tandem" agreement propose --dir ./acme --file agreement.toml | sed -n 's/^proposed agreement //p')
"$tandem" agreement accept --dir ./shopx "$id"
"$tandem" query overlap --dir ./acme --agreement "$id" --group-by age_band --peer-group-by tier --epsilon 1.0
"$tandem" budget --dir ./shopx
"$tandem" audit verify --dir ./shopx
"$tandem" report processing --dir ./acme
echo "nodes, CSVs and logs are in $work"
