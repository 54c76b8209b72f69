"""Scale run (issue 16): two real nodes, N synthetic e-mail addresses each (half shared), one
overlap query; prints the import and query wall times, items/s and both parties' peak RSS.

Both parties log their progress every 5 s (records done, rate, ETA); the script prints the last
lines of each (the querier's from the `tandem query` process's stderr, the responder's from the
peer's log). The querier side of a CLI query runs in the `tandem query` process (its peak RSS is read from
`wait4`); the responder side runs in the peer's `tandem serve` (its `VmHWM` from /proc before it
stops). "base" is each process's peak with a 1,000 × 1,000 run before the N rows are imported, so
`(peak − base) / N` is the memory each party spends per item of its own.

Usage: scripts/scale.sh N [--bin target/release/tandem] [--keep] [--epsilon 1.0]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash_trials import HERE, Node, must, write_csv  # noqa: E402


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def db_bytes(node_dir):
    """Bytes of a node's store (database, WAL and shared-memory files)."""
    return sum(os.path.getsize(os.path.join(node_dir, f)) for f in os.listdir(node_dir)
               if f.startswith("tandem.sqlite"))


def query_with_rss(bin_, node_dir, agreement, epsilon, log):
    t = time.time()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND), 2)
        os.execv(bin_, [bin_, "query", "overlap", "--dir", node_dir, "--agreement", agreement,
                        "--epsilon", str(epsilon), "--fresh", "--json"])
    _, status, usage = os.wait4(pid, 0)
    wall = time.time() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"query failed with status {status}")
    return wall, usage.ru_maxrss  # KiB on Linux


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int)
    ap.add_argument("--bin", default=os.path.join(HERE, "target", "debug", "tandem"))
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--repeat", type=int, default=0,
                    help="queries after the first (hash cache: later runs decompress cached points)")
    ap.add_argument("--no-hash-cache", action="store_true", help="set [limits] hash_cache = false on both nodes")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} not found: cargo build --bin tandem (or pass --bin)")
    n = args.n
    work = tempfile.mkdtemp(prefix="tandem-scale-")
    port = args.port or 20000 + os.getpid() % 10000 * 2
    acme, shopx = Node(args.bin, work, "acme", port), Node(args.bin, work, "shopx", port + 1)
    b = args.bin
    try:
        for node in (acme, shopx):
            must(b, "init", "--dir", node.dir, "--name", node.name, "--listen", f"127.0.0.1:{node.port}")
            if args.no_hash_cache:
                cfg = os.path.join(node.dir, "config.toml")
                text = open(cfg).read().replace("hash_cache = true", "hash_cache = false", 1)
                open(cfg, "w").write(text)
        bands, regions, tiers = ["18-24", "25-34", "35-44", "45+"], ["north", "south", "east", "west"], ["bronze", "silver", "gold"]
        acme_csv, shopx_csv = os.path.join(work, "acme.csv"), os.path.join(work, "shopx.csv")
        small = os.path.join(work, "small.csv")
        write_csv(acme_csv, "email,age_band,region",
                  (f"user{i}@example.com,{bands[i % 4]},{regions[i % 4]}\n" for i in range(n)))
        write_csv(small, "email,age_band,region",
                  (f"user{i}@example.com,{bands[i % 4]},{regions[i % 4]}\n" for i in range(1000)))
        write_csv(shopx_csv, "email,tier", (f"user{i}@example.com,{tiers[i % 3]}\n" for i in range(n // 2, n + n // 2)))
        imports = {}
        # Both nodes start with 1,000 rows: the base run below then costs little even at 10^7.
        small_shopx = os.path.join(work, "small_shopx.csv")
        write_csv(small_shopx, "email,tier", (f"user{i}@example.com,{tiers[i % 3]}\n" for i in range(500, 1500)))
        for node, path, attrs in ((acme, small, "age_band,region"), (shopx, small_shopx, "tier")):
            must(b, "import", "--dir", node.dir, "--file", path, "--id-column", "email", "--id-kind", "email",
                 "--attributes", attrs)
        acme.start()
        shopx.start()
        card = must(b, "card", "--dir", shopx.dir)
        key = re.search(r'^signing_key = "(.*)"', card, re.M).group(1)
        tls = re.search(r'^tls_cert_sha256 = "(.*)"', card, re.M).group(1)
        toml = open(os.path.join(HERE, "examples", "agreement.toml")).read()
        toml = toml.replace("https://127.0.0.1:7401", f"https://127.0.0.1:{acme.port}")
        toml = toml.replace("https://127.0.0.1:7402", f"https://127.0.0.1:{shopx.port}")
        toml = toml.replace("epsilon_total = 10.0", "epsilon_total = 400.0")
        toml = toml.replace("delta_total = 1e-7", "delta_total = 1e-3")
        head, shopx_block = toml.split('name = "shopx"')
        zeros = "0" * 64
        shopx_block = shopx_block.replace(zeros, key, 1).replace(zeros, tls, 1)
        path = os.path.join(work, "agreement.toml")
        open(path, "w").write(head + 'name = "shopx"' + shopx_block)
        out = must(b, "agreement", "propose", "--dir", acme.dir, "--file", path)
        agreement = re.search(r"proposed agreement (\S+)", out).group(1)
        must(b, "agreement", "accept", "--dir", shopx.dir, agreement)

        # Base: each process's peak with a 1,000 × 1,000 run (the run's machinery, no data to
        # speak of); then both nodes import N rows (shopx while it serves) and run the real query.
        query_log = os.path.join(work, "query.log")
        small_wall, q_base = query_with_rss(b, acme.dir, agreement, args.epsilon, query_log)
        shopx_base = vm_hwm_kib(shopx.proc.pid)
        for node, path, attrs in ((shopx, shopx_csv, "tier"), (acme, acme_csv, "age_band,region")):
            t = time.time()
            must(b, "import", "--dir", node.dir, "--file", path, "--id-column", "email", "--id-kind", "email",
                 "--attributes", attrs, timeout=24 * 3600)
            imports[node.name] = time.time() - t
        sizes = [(db_bytes(acme.dir), db_bytes(shopx.dir))]
        wall, q_peak = query_with_rss(b, acme.dir, agreement, args.epsilon, query_log)
        s_peak = vm_hwm_kib(shopx.proc.pid)
        walls = []
        for _ in range(args.repeat):
            # The responder fills its cache in the background after the first run (the querier's
            # `tandem query` waits for its own fill): wait for its "hash cache filled" line.
            # The base run's fill logged the first such line, the first real run's the second.
            deadline = time.time() + max(60, n / 2000)
            while (not walls and not args.no_hash_cache and time.time() < deadline
                   and open(shopx.log, errors="replace").read().count("hash cache filled") < 2):
                time.sleep(1)
            sizes.append((db_bytes(acme.dir), db_bytes(shopx.dir)))
            walls.append(query_with_rss(b, acme.dir, agreement, args.epsilon, query_log)[0])
        per = lambda peak, base: (peak - base) * 1024 / n
        print(f"n = {n:,} per side (50% overlap), binary {b}")
        print(f"import: acme {imports['acme']:.1f} s, shopx {imports['shopx']:.1f} s")
        print(f"query: wall {wall:.1f} s, {2 * n / wall:,.0f} items/s (both sides' items); "
              f"1,000 × 1,000 base run {small_wall:.1f} s")
        for i, w in enumerate(walls):
            print(f"query {i + 2}: wall {w:.1f} s, {2 * n / w:,.0f} items/s")
        if walls:
            (a0, s0), (a1, s1) = sizes[0], sizes[1]
            print(f"store growth over the first run (hash cache): acme {(a1 - a0) / n:.0f} B per item, "
                  f"shopx {(s1 - s0) / n:.0f} B per item")
        print(f"querier (tandem query) peak RSS {q_peak / 1024:.1f} MB, base {q_base / 1024:.1f} MB, "
              f"{per(q_peak, q_base):.0f} B per item above base")
        print(f"responder (shopx serve) peak RSS {s_peak / 1024:.1f} MB, base {shopx_base / 1024:.1f} MB, "
              f"{per(s_peak, shopx_base):.0f} B per item above base")
        # The last progress lines of each party (logged every 5 s: records done, rate, ETA).
        for who, log in (("querier", query_log), ("responder", shopx.log)):
            lines = [l.rstrip() for l in open(log, errors="replace") if "streamed run progress" in l]
            print(f"{who} progress ({len(lines)} lines logged), last three:")
            for l in lines[-3:]:
                print("  " + l[-220:])
    finally:
        acme.stop()
        shopx.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
