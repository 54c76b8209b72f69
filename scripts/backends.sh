#!/usr/bin/env bash
# The psi-ca-v1 test vectors (protocols/psi-ca-v1.md §9) checked on every curve25519-dalek backend
# this machine can run: the same bytes must come out of each one.
#
#   serial      RUSTFLAGS='--cfg curve25519_dalek_backend="serial"'   (portable 64-bit field code)
#   avx2        RUSTFLAGS='--cfg curve25519_dalek_backend="simd"'     (AVX2, selected at run time)
#   avx512ifma  the workspace default (.cargo/config.toml: "avx512"; AVX-512 IFMA selected at run
#               time when the CPU has avx512ifma and avx512vl, else AVX2, else serial)
#
# A backend whose instructions the CPU lacks is skipped (dalek would fall back to the next one,
# which another line already covers). RUSTFLAGS replaces the rustflags of .cargo/config.toml, so
# each forced backend builds into its own target directory (target/backends/NAME) and the
# workspace's target/ is left alone. Only tandem-psi's unit tests named `vectors` run.
#
# Usage: scripts/backends.sh [NAME ...]       (default: serial avx2 avx512ifma)
# Cost:  a cold build of tandem-psi and its dev-dependencies per forced backend (minutes on a
#        2-core machine), so it is not part of .ci/run; seconds once built.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
backends=("$@")
if [ ${#backends[@]} -eq 0 ]; then
    backends=(serial avx2 avx512ifma)
fi

cpu_has() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }

failed=0
for name in "${backends[@]}"; do
    case "$name" in
        serial) cfg='serial' ;;
        avx2) cfg='simd'; cpu_has avx2 || { echo "skip $name: CPU has no avx2"; continue; } ;;
        avx512ifma)
            cfg=''
            if ! cpu_has avx512ifma || ! cpu_has avx512vl; then
                echo "skip $name: CPU has no avx512ifma/avx512vl"
                continue
            fi
            ;;
        *) echo "unknown backend $name (serial, avx2, avx512ifma)" >&2; exit 2 ;;
    esac
    start=$(date +%s)
    if [ -n "$cfg" ]; then
        env RUSTFLAGS="--cfg curve25519_dalek_backend=\"$cfg\"" \
            CARGO_TARGET_DIR="$root/target/backends/$name" \
            cargo test -q -p tandem-psi --lib vectors >"/tmp/tandem-backend-$name.log" 2>&1 \
            && ok=1 || ok=0
    else
        cargo test -q -p tandem-psi --lib vectors >"/tmp/tandem-backend-$name.log" 2>&1 \
            && ok=1 || ok=0
    fi
    passed=$(grep -o '[0-9]* passed' "/tmp/tandem-backend-$name.log" | tail -1 || true)
    if [ "$ok" = 1 ]; then
        echo "ok   $name: ${passed:-?} ($(($(date +%s) - start)) s)"
    else
        echo "FAIL $name ($(($(date +%s) - start)) s): see /tmp/tandem-backend-$name.log"
        failed=1
    fi
done
exit $failed
