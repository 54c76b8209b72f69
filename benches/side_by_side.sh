#!/usr/bin/env bash
# Side by side on this machine: the same n × n workload (n fresh random 32-byte digests per side,
# overlap n/4) through openmined-psi 2.0.6 (C++ ECDH-PSI on P-256, cardinality mode, installed
# from PyPI into a virtual environment) and through Tandem's PSI engine (`tandem bench psi`,
# release build: both roles in one process, noise from opendp), each on one core.
#
# Prints, for both: items/s per core (2n items over the seconds of the whole protocol, one
# thread: the querier's request, the responder's reply, the querier's count), µs per item, wire
# bytes per item (all messages of a run over 2n); Tandem's figure once from fresh digests and
# once from cached points (a later run on the same member sets, spec §3.1); then the ratio
# tandem / openmined-psi by wall time (one thread each) and against openmined-psi's CPU time
# (which is at most its wall time: the stricter figure for Tandem).
#
# Usage: benches/side_by_side.sh [N]          (default 100000)
# Env:   TANDEM  path of the tandem binary (default target/release/tandem, built if missing)
#        VENV    virtual environment (default target/side-by-side-venv)
#        DS      openmined-psi's setup encoding: RAW (default: every responder item sent, as in
#                Tandem), GCS or BLOOM_FILTER (smaller setup message, same curve work)
set -euo pipefail

n="${1:-100000}"
root="$(cd "$(dirname "$0")/.." && pwd)"
tandem="${TANDEM:-$root/target/release/tandem}"
venv="${VENV:-$root/target/side-by-side-venv}"

if [ ! -x "$tandem" ]; then
    (cd "$root" && cargo build --release --bin tandem)
fi
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check openmined-psi==2.0.6

"$venv/bin/python" - "$n" "${DS:-RAW}" "$tandem" <<'PY'
import json
import os
import resource
import subprocess
import sys
import time

import private_set_intersection.python as psi

n, ds_name, binary = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ds = psi.DataStructure[ds_name]

# One rayon thread: per-core throughput, comparable with openmined-psi's single-threaded C++.
before = resource.getrusage(resource.RUSAGE_CHILDREN)
out = subprocess.run(
    [binary, "bench", "psi", "--n", str(n)],
    env={**os.environ, "RAYON_NUM_THREADS": "1"},
    check=True,
    capture_output=True,
    text=True,
).stdout
after = resource.getrusage(resource.RUSAGE_CHILDREN)
tandem = json.loads(out.strip().splitlines()[-1])
t_process_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
overlap = n // 4
client_items = [os.urandom(32).hex() for _ in range(n)]
server_items = client_items[:overlap] + [os.urandom(32).hex() for _ in range(n - overlap)]

client = psi.client.CreateWithNewKey(False)  # False: cardinality only
server = psi.server.CreateWithNewKey(False)
cpu0, wall0 = time.process_time(), time.perf_counter()
setup = server.CreateSetupMessage(1e-9, n, server_items, ds)
request = client.CreateRequest(client_items)
response = server.ProcessRequest(request)
size = client.GetIntersectionSize(setup, response)
cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
wire = sum(len(m.SerializeToString()) for m in (setup, request, response))

om_rate, om_wall_rate = 2 * n / cpu, 2 * n / wall
t_rate = 2 * n / tandem["wall_s"]
t_cached_rate = 2 * n / tandem["wall_cached_s"]
t_wire = tandem["query_bytes"] + tandem["reply_bytes"]

print(f"n = {n} per side, overlap {overlap}, one core each")
print(
    f"openmined-psi 2.0.6 (P-256, {ds_name}): {om_wall_rate:8.0f} items/s per core (wall), "
    f"{om_rate:8.0f} (cpu), {1e6 * cpu / (2 * n):6.1f} µs cpu/item, "
    f"{wire / (2 * n):5.1f} wire B/item; cpu {cpu:.2f} s, wall {wall:.2f} s, intersection {size}"
)
print(
    f"tandem ({tandem['backend']}, 1 thread): {t_rate:8.0f} items/s per core (wall), "
    f"{1e6 * tandem['wall_s'] / (2 * n):6.1f} µs/item, "
    f"{t_wire / (2 * n):5.1f} wire B/item; wall {tandem['wall_s']:.2f} s, floor_ratio "
    f"{tandem['floor_ratio']:.2f}, t_hash {tandem['t_hash_us']:.1f} µs, t_mul "
    f"{tandem['t_mul_us']:.1f} µs, t_decompress {tandem['t_decompress_us']:.1f} µs, estimate "
    f"{tandem['overlap_estimate']}"
)
print(
    f"tandem from cached points (a run after the first on the same member sets, spec §3.1): "
    f"{t_cached_rate:8.0f} items/s per core (wall), {1e6 * tandem['wall_cached_s'] / (2 * n):6.1f} "
    f"µs/item, floor_ratio {tandem['floor_ratio_cached']:.2f}"
)
print(
    f"ratio tandem / openmined-psi (items/s per core), fresh inputs: {t_rate / om_wall_rate:.2f} "
    f"(both by wall), {t_rate / om_rate:.2f} (tandem wall against openmined-psi cpu); cached: "
    f"{t_cached_rate / om_wall_rate:.2f} / {t_cached_rate / om_rate:.2f}"
)
print(f"(tandem's process cpu, {t_process_cpu:.1f} s, covers its four timed runs, the cache fill and "
      f"the floor's micro-benchmarks)")
PY
