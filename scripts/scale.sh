#!/usr/bin/env bash
# Scale run (issue 16): two real nodes, N identifiers each, one overlap query; wall, items/s,
# peak RSS of both parties. See scale.py.
#   scripts/scale.sh N [--bin target/debug/tandem] [--keep] [--repeat K]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[[ " $* " == *" --bin "* ]] || [ -x "$here/target/debug/tandem" ] || (cd "$here" && cargo build --bin tandem)
exec python3 "$here/scripts/scale.py" "$@"
