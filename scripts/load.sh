#!/usr/bin/env bash
# Load on one node's analyst API (issue 11), loopback only; see load.py.
#   scripts/load.sh [--clients 50] [--seconds 60] [--runners 3] [--bin target/debug/tandem]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[[ " $* " == *" --bin "* ]] || [ -x "$here/target/debug/tandem" ] || (cd "$here" && cargo build --bin tandem)
exec python3 "$here/scripts/load.py" "$@"
