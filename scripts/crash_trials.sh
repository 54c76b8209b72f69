#!/usr/bin/env bash
# Crash trials (issue 11): scripts/crash_trials.sh N [--seed S] [--bin target/debug/tandem] [--keep]
# SIGKILLs either node (or the import / query CLI) at random points for N trials and checks the
# audit log, the budget ledger, the audience and a new run after each; see crash_trials.py.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 N [--seed S] [--bin PATH] [--keep]" >&2; exit 2; }
bin=$here/target/debug/tandem
[[ " $* " == *" --bin "* ]] || [ -x "$bin" ] || (cd "$here" && cargo build --bin tandem)
exec python3 "$here/scripts/crash_trials.py" "$@"
