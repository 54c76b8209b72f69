#!/usr/bin/env python3
"""Load on one node's analyst API (issue 11): C concurrent clients for S seconds on loopback.

Sets up two nodes like scripts/crash_trials.py (same setup code), then runs C client threads,
each on its own keep-alive HTTPS connection to acme's API, reading run lists, the budget and
10-second pages of the audit log, while R more threads start overlap queries back to back.
Reports throughput, p50/p99 latency per request kind, every non-2xx answer (429s counted apart)
and checks there is no overspend: ε spent within the cap and equal to the charged runs' sum.

Usage: scripts/load.sh [--clients 50] [--seconds 60] [--runners 3] [--bin target/debug/tandem]
Traffic goes to 127.0.0.1 only.
"""

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash_trials import HERE, Harness, must  # noqa: E402


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--runners", type=int, default=3, help="threads starting overlap queries")
    ap.add_argument("--bin", default=os.path.join(HERE, "target", "debug", "tandem"))
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--big-rows", type=int, default=8000)
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"{args.bin} not found: cargo build --bin tandem (or pass --bin)")
    work = tempfile.mkdtemp(prefix="tandem-load-")
    h = Harness(args, work)
    try:
        h.setup()
        out = must(h.bin, "token", "create", "--dir", h.acme.dir, "--name", "auditor", "--role", "auditor")
        auditor = out.split()[-1]
        run(h, args, auditor)
    finally:
        h.acme.stop()
        h.shopx.stop()
        import shutil
        shutil.rmtree(work, ignore_errors=True)


def run(h, args, auditor):
    lock = threading.Lock()
    lat = {}  # kind -> [seconds]
    statuses = {}  # (kind, status) -> count
    errors = []
    stop_at = time.time() + args.seconds

    def record(kind, status, dt):
        with lock:
            lat.setdefault(kind, []).append(dt)
            statuses[(kind, status)] = statuses.get((kind, status), 0) + 1

    def conn():
        return http.client.HTTPSConnection("127.0.0.1", h.acme.port, context=h.tls, timeout=120)

    def request(c, kind, method, path, token, body=None):
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["content-type"] = "application/json"
        t = time.time()
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            status = r.status
            if status >= 300 and status != 429:
                with lock:
                    errors.append(f"{kind} {status}: {data[:200]!r}")
        except (OSError, http.client.HTTPException) as e:
            status = f"error:{type(e).__name__}"
            with lock:
                errors.append(f"{kind}: {e}")
            c.close()
            c = conn()
        record(kind, status, time.time() - t)
        return c

    def reader(i):
        c = conn()
        n = 0
        while time.time() < stop_at:
            n += 1
            if n % 4 == 0:
                since = int(time.time() * 1000) - 10_000
                c = request(c, "audit_page", "GET", f"/api/v1/audit?from_ms={since}", auditor)
            elif n % 2 == 0:
                c = request(c, "budget", "GET", f"/api/v1/budget?agreement={h.agreement}", h.token)
            else:
                c = request(c, "runs", "GET", f"/api/v1/runs?agreement={h.agreement}", h.token)
        c.close()

    def runner(i):
        c = conn()
        body = json.dumps({"agreement_id": h.agreement, "group_by": "age_band", "peer_group_by": "tier",
                           "epsilon": 0.5, "fresh": True})
        while time.time() < stop_at:
            h.sent += 1
            c = request(c, "query", "POST", "/api/v1/queries/overlap", h.token, body)
        c.close()

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(args.clients)]
    threads += [threading.Thread(target=runner, args=(i,)) for i in range(args.runners)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0

    total = sum(len(v) for v in lat.values())
    print(f"\n{args.clients} readers + {args.runners} query runners for {wall:.1f} s on 127.0.0.1:{h.acme.port}")
    print(f"{'kind':<12} {'requests':>9} {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9}  statuses")
    for kind in sorted(lat):
        xs = lat[kind]
        st = ", ".join(f"{s}: {n}" for (k, s), n in sorted(statuses.items(), key=str) if k == kind)
        print(f"{kind:<12} {len(xs):>9} {len(xs) / wall:>8.1f} {percentile(xs, 50) * 1000:>9.1f} "
              f"{percentile(xs, 99) * 1000:>9.1f}  {st}")
    every = [x for v in lat.values() for x in v]
    print(f"{'all':<12} {total:>9} {total / wall:>8.1f} {percentile(every, 50) * 1000:>9.1f} "
          f"{percentile(every, 99) * 1000:>9.1f}")
    problems = h.check_budget(h.acme) + h.check_budget(h.shopx)
    for n in (h.acme, h.shopx):
        b = next(x for x in json.loads(must(h.bin, "budget", "--dir", n.dir, "--json"))
                 if x.get("agreement") == h.agreement)
        if b["epsilon_spent"] > b["epsilon_cap"] + 1e-9:
            problems.append(f"{n.name}: overspent: ε {b['epsilon_spent']} > cap {b['epsilon_cap']}")
        print(f"{n.name}: ε spent {b['epsilon_spent']:.4f} of {b['epsilon_cap']}")
    print(f"failures: {len(errors)}" + "".join(f"\n  {e}" for e in errors[:10]))
    print("budget: " + ("consistent, no overspend" if not problems else "; ".join(problems)))
    if errors or problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
