#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/) for SECONDS each (default 60) and prints the
# executions, new corpus entries and crashes of each. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`).
#   scripts/fuzz.sh [SECONDS] [--merge]
# New inputs go to fuzz/scratch/<target>/ (ignored by git); with --merge the checked-in corpus
# fuzz/corpus/<target>/ is replaced by the minimal set covering both (libFuzzer -merge=1), which
# crates/fuzzing/tests/corpus.rs then replays on stable. Crashes are saved in fuzz/artifacts/.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
merge=${2:-}
cd "$here/fuzz"
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^tandem-fuzz$')
cargo +nightly fuzz build -O
status=0
printf '%-16s %12s %10s %8s\n' target execs exec/s crashes
for t in $targets; do
    mkdir -p "scratch/$t" "corpus/$t"
    log=$(mktemp)
    if cargo +nightly fuzz run -O "$t" "scratch/$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        crashed=0
    else
        crashed=1
        status=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    printf '%-16s %12s %10s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "$crashed"
    if [ "$crashed" = 1 ]; then
        grep -E 'panicked|ERROR|Test unit written' "$log" | head -5 | sed 's/^/    /'
    fi
    if [ "$merge" = --merge ]; then
        mkdir -p "merged/$t"
        cargo +nightly fuzz run -O "$t" "merged/$t" "corpus/$t" "scratch/$t" -- -merge=1 >/dev/null 2>&1
        rm -rf "corpus/$t" && mv "merged/$t" "corpus/$t"
    fi
    rm -f "$log"
done
rm -rf merged
exit $status
