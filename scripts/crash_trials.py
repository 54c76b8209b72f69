#!/usr/bin/env python3
"""Crash trials (issue 11): SIGKILL a node at a random point, restart it, check nothing was lost.

Two nodes (acme, shopx) on loopback with synthetic audiences and an active agreement, driven only
through the `tandem` binary's CLI and the analyst HTTP API. Each trial picks one of

  import          kill `tandem import` on acme while it writes (old or new audience must show)
  querier_cli     kill `tandem query overlap` (the querier side of a run)
  querier_node    kill acme's `tandem serve` while it runs a query for an analyst (API)
  responder_node  kill shopx's `tandem serve` while it answers a query

at a random moment within the operation's measured duration, restarts what it killed and checks:
  - `tandem audit verify` passes on both nodes;
  - on both nodes the ε and δ that `tandem budget --json` reports as spent equal the sum over the
    runs holding a charge (`tandem runs --json`): nothing lost, nothing charged twice (a killed
    run's reservation counts as spent); no node holds more charged runs than queries were sent;
  - `tandem status` shows acme's audience at its old or its new size, never in between, and the
    store holds no staging rows after that open;
  - a new query succeeds.

Usage: scripts/crash_trials.sh N [--seed S] [--bin target/debug/tandem] [--keep]
Prints one line per trial and a summary; exits 1 if any check failed.
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(bin_, *args, timeout=300):
    return subprocess.run([bin_, *args], capture_output=True, text=True, timeout=timeout)


def must(bin_, *args, timeout=300):
    r = sh(bin_, *args, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"tandem {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def write_csv(path, header, rows):
    with open(path, "w") as f:
        f.write(header + "\n")
        f.writelines(rows)


class Node:
    def __init__(self, bin_, work, name, port):
        self.bin, self.name, self.port = bin_, name, port
        self.dir = os.path.join(work, name)
        self.log = os.path.join(work, f"{name}.log")
        self.proc = None

    def start(self):
        log = open(self.log, "a")
        self.proc = subprocess.Popen([self.bin, "serve", "--dir", self.dir], stdout=log, stderr=log)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start ({self.proc.returncode}); see {self.log}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on {self.port}")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


class Harness:
    def __init__(self, args, work):
        self.args, self.work, self.bin = args, work, args.bin
        self.rng = random.Random(args.seed)
        base = args.port or self.rng.randrange(20000, 40000, 2)
        self.acme = Node(self.bin, work, "acme", base)
        self.shopx = Node(self.bin, work, "shopx", base + 1)
        self.sent = 0  # queries sent (each may charge each node once)
        self.failures = []
        self.mid = 0  # trials whose kill hit a running operation

    # ---- setup ---------------------------------------------------------------------------
    def setup(self):
        b, w = self.bin, self.work
        for n in (self.acme, self.shopx):
            must(b, "init", "--dir", n.dir, "--name", n.name, "--listen", f"127.0.0.1:{n.port}")
        bands, regions, tiers = ["18-24", "25-34", "35-44", "45+"], ["north", "south", "east", "west"], ["bronze", "silver", "gold"]
        self.small = (os.path.join(w, "acme_small.csv"), 3000)
        self.big = (os.path.join(w, "acme_big.csv"), self.args.big_rows)
        for path, n in (self.small, self.big):
            write_csv(path, "email,age_band,region",
                      (f"user{i}@example.com,{bands[i % 4]},{regions[i % 3]}\n" for i in range(n)))
        shopx_csv = os.path.join(w, "shopx.csv")
        write_csv(shopx_csv, "email,tier", (f" User{i}@Example.COM ,{tiers[i % 3]}\n" for i in range(1500, 5500)))
        must(b, "import", "--dir", self.acme.dir, "--file", self.small[0], "--id-column", "email",
             "--id-kind", "email", "--attributes", "age_band,region")
        must(b, "import", "--dir", self.shopx.dir, "--file", shopx_csv, "--id-column", "email",
             "--id-kind", "email", "--attributes", "tier")
        self.members = self.small[1]
        self.acme.start()
        self.shopx.start()

        card = must(b, "card", "--dir", self.shopx.dir)
        key = re.search(r'^signing_key = "(.*)"', card, re.M).group(1)
        tls = re.search(r'^tls_cert_sha256 = "(.*)"', card, re.M).group(1)
        toml = open(os.path.join(HERE, "examples", "agreement.toml")).read()
        toml = toml.replace("https://127.0.0.1:7401", f"https://127.0.0.1:{self.acme.port}")
        toml = toml.replace("https://127.0.0.1:7402", f"https://127.0.0.1:{self.shopx.port}")
        toml = toml.replace("epsilon_total = 10.0", "epsilon_total = 400.0")
        toml = toml.replace("delta_total = 1e-7", "delta_total = 1e-3")
        head, shopx_block = toml.split('name = "shopx"')
        zeros = "0" * 64
        shopx_block = shopx_block.replace(zeros, key, 1).replace(zeros, tls, 1)
        path = os.path.join(w, "agreement.toml")
        open(path, "w").write(head + 'name = "shopx"' + shopx_block)
        out = must(b, "agreement", "propose", "--dir", self.acme.dir, "--file", path)
        self.agreement = re.search(r"proposed agreement (\S+)", out).group(1)
        must(b, "agreement", "accept", "--dir", self.shopx.dir, self.agreement)

        out = must(b, "token", "create", "--dir", self.acme.dir, "--name", "crash", "--role", "analyst")
        self.token = re.search(r"(tdm_\S+)", out).group(1)
        der = open(os.path.join(self.acme.dir, "tls", "cert.der"), "rb").read()
        self.tls = ssl.create_default_context(cadata=der)
        self.tls.check_hostname = False

        # Durations to aim the kills at.
        t = time.time()
        self.query_cli(check=True)
        self.t_query = time.time() - t
        t = time.time()
        must(b, "import", "--dir", self.acme.dir, "--file", self.big[0], "--id-column", "email",
             "--id-kind", "email", "--attributes", "age_band,region")
        self.t_import = time.time() - t
        self.members = self.big[1]
        print(f"setup: query {self.t_query:.2f} s, import of {self.big[1]} rows {self.t_import:.2f} s; "
              f"ports {self.acme.port}/{self.shopx.port}; work dir {w}", flush=True)

    # ---- operations ----------------------------------------------------------------------
    def query_args(self):
        return ["query", "overlap", "--dir", self.acme.dir, "--agreement", self.agreement,
                "--group-by", "age_band", "--peer-group-by", "tier", "--epsilon", "0.5", "--fresh", "--json"]

    def query_cli(self, check):
        self.sent += 1
        r = sh(self.bin, *self.query_args(), timeout=300)
        if check and r.returncode != 0:
            raise RuntimeError(f"query failed ({r.returncode}): {r.stderr.strip()[-400:]}")
        return r

    def query_api(self):
        self.sent += 1
        body = json.dumps({"agreement_id": self.agreement, "group_by": "age_band",
                           "peer_group_by": "tier", "epsilon": 0.5, "fresh": True}).encode()
        req = urllib.request.Request(f"https://127.0.0.1:{self.acme.port}/api/v1/queries/overlap", data=body,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "content-type": "application/json"})
        try:
            urllib.request.urlopen(req, context=self.tls, timeout=300).read()
        except Exception:
            pass  # the node was killed under it

    def delay(self, duration):
        time.sleep(self.rng.uniform(0.0, duration * 1.1))

    def trial(self, kind):
        expected = {self.members}
        if kind == "import":
            path, n = self.small if self.members == self.big[1] else self.big
            expected.add(n)
            p = subprocess.Popen([self.bin, "import", "--dir", self.acme.dir, "--file", path, "--id-column",
                                  "email", "--id-kind", "email", "--attributes", "age_band,region"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.delay(self.t_import * n / self.big[1])
            self.mid += p.poll() is None
            p.send_signal(signal.SIGKILL)
            p.wait()
        elif kind == "querier_cli":
            self.sent += 1
            p = subprocess.Popen([self.bin, *self.query_args()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.delay(self.t_query)
            self.mid += p.poll() is None
            p.send_signal(signal.SIGKILL)
            p.wait()
        elif kind == "querier_node":
            th = threading.Thread(target=self.query_api)
            th.start()
            self.delay(self.t_query)
            self.mid += th.is_alive()
            self.acme.kill()
            th.join()
            self.acme.start()
        elif kind == "responder_node":
            self.sent += 1
            p = subprocess.Popen([self.bin, *self.query_args()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.delay(self.t_query)
            self.mid += p.poll() is None
            self.shopx.kill()
            p.wait(timeout=300)
            self.shopx.start()
        return expected

    # ---- checks --------------------------------------------------------------------------
    def check(self, trial, expected):
        problems = []
        for n in (self.acme, self.shopx):
            r = sh(self.bin, "audit", "verify", "--dir", n.dir)
            if r.returncode != 0:
                problems.append(f"{n.name}: audit verify failed: {r.stderr.strip()[-300:]}")
            problems += self.check_budget(n)
        out = must(self.bin, "status", "--dir", self.acme.dir)
        m = re.search(r"audience default\s+email\s+(\d+) members", out)
        members = int(m.group(1)) if m else None
        if members not in expected:
            problems.append(f"acme: audience has {members} members, expected one of {sorted(expected)}")
        else:
            self.members = members
        problems += self.check_no_staging(self.acme)
        r = self.query_cli(check=False)
        if r.returncode != 0:
            problems.append(f"a new query failed ({r.returncode}): {r.stderr.strip()[-300:]}")
        for p in problems:
            self.failures.append((trial, p))
        return problems

    def check_budget(self, node):
        problems = []
        budget = json.loads(must(self.bin, "budget", "--dir", node.dir, "--json"))
        runs = json.loads(must(self.bin, "runs", "--dir", node.dir, "--json"))
        b = next((x for x in budget if x.get("agreement") == self.agreement), None)
        if b is None:
            return [f"{node.name}: no budget row for the agreement"]
        charged = [r for r in runs if r.get("charge") in ("reserved", "spent")]
        eps = sum(r["epsilon"] for r in charged)
        delta = sum(r["delta"] for r in charged)
        if abs(b["epsilon_spent"] - eps) > 1e-6:
            problems.append(f"{node.name}: budget says ε spent {b['epsilon_spent']}, charged runs sum to {eps}")
        if abs(b["delta_spent"] - delta) > 1e-15:
            problems.append(f"{node.name}: budget says δ spent {b['delta_spent']}, charged runs sum to {delta}")
        if len(charged) > self.sent:
            problems.append(f"{node.name}: {len(charged)} charged runs for {self.sent} queries sent")
        ids = [r["run_id"] for r in runs]
        if len(ids) != len(set(ids)):
            problems.append(f"{node.name}: a run id appears twice")
        return problems

    def check_no_staging(self, node):
        db = os.path.join(node.dir, "tandem.sqlite")
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "member_sets" not in tables:
                return []
            dead = con.execute("SELECT COUNT(*) FROM member_sets WHERE state != 'live'").fetchone()[0]
            rows = con.execute("SELECT COUNT(*) FROM audience_members").fetchone()[0]
            live = con.execute("SELECT coalesce(sum(members), 0) FROM member_sets WHERE state = 'live'").fetchone()[0]
            con.close()
        except sqlite3.Error as e:
            return [f"{node.name}: reading the store: {e}"]
        out = []
        if dead:
            out.append(f"{node.name}: {dead} staging/retired member sets left after an open")
        if rows != live:
            out.append(f"{node.name}: {rows} member rows stored, live sets count {live}")
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trials", type=int)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--bin", default=os.path.join(HERE, "target", "debug", "tandem"))
    ap.add_argument("--port", type=int, default=0, help="acme's port (shopx's is the next); default random")
    ap.add_argument("--big-rows", type=int, default=8000)
    ap.add_argument("--kinds", default="import,querier_cli,querier_node,responder_node")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"{args.bin} not found: cargo build --bin tandem (or pass --bin)")
    work = tempfile.mkdtemp(prefix="tandem-crash-")
    h = Harness(args, work)
    kinds = args.kinds.split(",")
    start = time.time()
    counts = {k: 0 for k in kinds}
    print(f"seed {args.seed}", flush=True)
    try:
        h.setup()
        for i in range(1, args.trials + 1):
            kind = h.rng.choice(kinds)
            counts[kind] += 1
            t = time.time()
            expected = h.trial(kind)
            problems = h.check(i, expected)
            print(f"trial {i:4} {kind:<15} {time.time() - t:6.2f} s  members {h.members:>6}  "
                  + ("ok" if not problems else "FAIL: " + "; ".join(problems)), flush=True)
    finally:
        h.acme.stop()
        h.shopx.stop()
        if not args.keep and not h.failures:
            import shutil
            shutil.rmtree(work, ignore_errors=True)
    wall = time.time() - start
    print(f"\n{args.trials} trials ({', '.join(f'{k} {n}' for k, n in counts.items())}), "
          f"{h.mid} killed mid-operation, {len({t for t, _ in h.failures})} failed, "
          f"{len(h.failures)} failed checks, wall {wall:.0f} s, seed {args.seed}")
    if h.failures:
        print(f"work dir kept: {work}")
        sys.exit(1)


if __name__ == "__main__":
    main()
