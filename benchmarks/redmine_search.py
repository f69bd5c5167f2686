"""Redmine with the redmine_rag plugin (ragd answering) against the same Redmine
without it (Redmine's own SQL search), on the demo data (`make redmine`), side
by side and interleaved: in every round each scenario runs on one server then
the other (the order alternates), with queries no round repeats (neither ragd's
page cache nor SQLite's warm pages favour one side).

  .venv/bin/python benchmarks/redmine_search.py [--rounds 4] [--queries 10]

Scenarios, at 1 and 8 concurrent users (alice, bob, carol, dave: different roles):
  search_html   /search?q=...            (the search box: every type ticked)
  search_json   /search.json?q=...       (REST API, API key)
  issue_page    /issues/N, plus with the plugin the similar-issues panel the page
                then loads (/issues/N/similar): the time until the panel is there
and, with the plugin only, the duplicate-suggestion endpoint (target p95 < 150 ms)
and the resident memory a Puma worker gains from the plugin (both servers warmed
by the same requests).

The demo is started in the background when it is not running, and stopped
again at the end if this script started it. Writes results/redmine_search.json
and .png.
"""
from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, write  # noqa: E402

RM_VAR = REPO / "var" / "redmine"
DEMO_ENV = RM_VAR / "demo.env"
USERS = ["alice", "bob", "carol", "dave"]
ERRORS: collections.Counter = collections.Counter()  # non-200 answers by first path segment
PASSWORD = os.environ.get("DEMO_PASSWORD", "ragd-demo")


def sh(cmd: str) -> str:
    return subprocess.run(["bash", "-c", cmd], cwd=REPO, check=True, capture_output=True, text=True).stdout


def read_env() -> dict[str, str]:
    return dict(line.split("=", 1) for line in DEMO_ENV.read_text().splitlines() if "=" in line)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    """Resident memory of the Puma server process (single mode: it is the worker)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def puma_pid(root_pid: int) -> int:
    """The ruby process serving (bundle exec replaces itself; setsid may leave a wrapper)."""
    out = subprocess.run(["ps", "-o", "pid=,ppid=,comm=", "-e"], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    comm = {}
    for line in out.splitlines():
        pid, ppid, name = line.split(None, 2)
        children.setdefault(int(ppid), []).append(int(pid))
        comm[int(pid)] = name.strip()
    todo, found = [root_pid], []
    while todo:
        pid = todo.pop()
        if comm.get(pid, "").startswith(("ruby", "puma", "bundle", "rails")):
            found.append(pid)
        todo.extend(children.get(pid, []))
    return max(found, key=rss_mib) if found else root_pid


class Session:
    """One user's keep-alive connection to one server, logged in (cookie) and with an API key."""

    def __init__(self, base: str, login: str, name: str):
        self.name = name
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.cookie = ""
        self.api_key = ""
        self._login(login)

    def request(self, method: str, path: str, body: str | None = None, headers: dict | None = None):
        h = {"Cookie": self.cookie, **(headers or {})}
        if body is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=h)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt:
                    raise
        for name, value in resp.getheaders():
            if name.lower() == "set-cookie":
                self.cookie = value.split(";", 1)[0]
        return resp, data

    def _login(self, login: str) -> None:
        _, page = self.request("GET", "/login")
        token = re.search(rb'name="authenticity_token" value="([^"]+)"', page).group(1).decode()
        body = urllib.parse.urlencode({"authenticity_token": token, "username": login, "password": PASSWORD})
        resp, _ = self.request("POST", "/login", body)
        if resp.status != 302:
            raise RuntimeError(f"login {login} failed: {resp.status}")
        _, page = self.request("GET", "/my/api_key")
        m = re.search(rb"<pre[^>]*>\s*([0-9a-f]{40})\s*</pre>", page)
        self.api_key = m.group(1).decode() if m else ""

    def timed(self, path: str, api: bool = False) -> tuple[float, int, dict]:
        headers = {"X-Redmine-API-Key": self.api_key} if api else {}
        t0 = time.perf_counter()
        resp, _ = self.request("GET", path, headers=headers)
        ms = (time.perf_counter() - t0) * 1000
        if resp.status != 200:
            # Counted, not fatal: SQLite's one write lock ("database is locked" after its
            # timeout) can fail a request of either server on a loaded machine.
            ERRORS[f"{self.name} {path.split('?')[0].split('/')[1]}"] += 1
        return ms, resp.status, dict(resp.getheaders())


def visible_to_all(sessions: list[Session]) -> list[int]:
    """Issue ids every benchmark user may open (the REST API's list, per user)."""
    common = None
    for s in sessions:
        ids, offset = set(), 0
        while True:
            resp, body = s.request("GET", f"/issues.json?status_id=*&limit=100&offset={offset}",
                                   headers={"X-Redmine-API-Key": s.api_key})
            data = json.loads(body)
            ids |= {i["id"] for i in data["issues"]}
            offset += 100
            if offset >= data["total_count"]:
                break
        common = ids if common is None else common & ids
    if not common:
        raise RuntimeError("no issue is visible to every benchmark user")
    return sorted(common)


def run(sessions: list[Session], jobs: list, concurrency: int) -> list[float]:
    """jobs: callables(session) -> latency ms; spread over `concurrency` workers (each its own session)."""
    out: list[float] = []
    lock = threading.Lock()
    queue = list(jobs)

    def worker(i: int):
        s = sessions[i % len(sessions)]
        while True:
            with lock:
                if not queue:
                    return
                job = queue.pop()
            ms = job(s)
            with lock:
                out.append(ms)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def start_bare(port: int) -> subprocess.Popen:
    bare = sh("source scripts/redmine/common.sh >/dev/null; rm_bare_app").strip().splitlines()[-1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUNDLE_", "RAGD_"))}
    env.update(REDMINE_INSTANCE="demo", RAILS_ENV="production", BUNDLE_GEMFILE=f"{bare}/Gemfile")
    log = open(RM_VAR / "bare-server.log", "wb")
    proc = subprocess.Popen(["bundle", "exec", "rails", "server", "-e", "production", "-b", "127.0.0.1",
                             "-p", str(port), "-P", str(RM_VAR / "bare-server.pid")],
                            cwd=bare, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/login")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log = (RM_VAR / 'bare-server.log').read_text()[-2000:]
            raise RuntimeError(f"Redmine without the plugin did not start: {log}")
        time.sleep(0.5)


def queries() -> list[str]:
    """CISI's queries as a user would type them into the search box, a few words of each.

    Every request of a run gets a query no other request had (windows of 5 to 8 words
    of each CISI query): ragd's query cache never answers, each query is embedded, as
    when many users type their own words. Both servers get the same queries."""
    text = (REPO / "tests" / "data" / "cisi" / "CISI.QRY").read_text(encoding="latin-1")
    seen: set[str] = set()
    variants: list[list[str]] = [[] for _ in range(12)]
    for rec in text.split(".I ")[1:]:
        words = " ".join(rec.split(".W", 1)[1].split()).rstrip("?.").split()
        i = 0
        for start in (0, 2, 4):
            for n in (8, 6, 7, 5):
                q = " ".join(words[start:start + n])
                if len(words) - start >= n and q not in seen:
                    seen.add(q)
                    variants[i].append(q)
                    i += 1
    return [q for group in variants for q in group]  # whole first queries first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--queries", type=int, default=10, help="requests per scenario and round at 1 user (x4 at 8)")
    ap.add_argument("--concurrency", default="1,8")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    load_before = os.getloadavg()

    started_demo = False
    if not DEMO_ENV.exists():
        print("starting the demo (make redmine, in the background)...", flush=True)
        subprocess.run(["scripts/redmine/demo.sh"], cwd=REPO, check=True, env={**os.environ, "DEMO_DETACH": "1"},
                       stdout=subprocess.DEVNULL)
        started_demo = True
    demo = read_env()
    plugin_url = demo["DEMO_URL"]
    bare_port = free_port()
    print("starting the same Redmine without the plugin...", flush=True)
    bare = start_bare(bare_port)
    try:
        servers = {"ragd": plugin_url, "redmine": f"http://127.0.0.1:{bare_port}"}
        sessions = {name: [Session(url, u, name) for u in USERS * 2] for name, url in servers.items()}
        issue_ids = visible_to_all(sessions["ragd"][:len(USERS)])
        fresh = iter(queries())
        per_round = args.queries

        def take(n: int) -> list[str]:
            out = [q for _, q in zip(range(n), fresh)]
            if len(out) < n:
                raise SystemExit("not enough distinct queries: lower --rounds or --queries")
            return out
        results: dict = {}
        outcomes = {"ragd": 0, "fallback": 0}

        def search_html(q):
            def job(s):
                ms, _, headers = s.timed("/search?" + urllib.parse.urlencode({"q": q}))
                outcome = headers.get("X-Redmine-Rag")
                if outcome in outcomes:
                    outcomes[outcome] += 1
                return ms
            return job

        def search_json(q):
            return lambda s: s.timed("/search.json?" + urllib.parse.urlencode({"q": q, "limit": 25}), api=True)[0]

        def issue_page(n, with_panel):
            def job(s):
                ms, _, _ = s.timed(f"/issues/{n}")
                if with_panel:
                    ms += s.timed(f"/issues/{n}/similar")[0]
                return ms
            return job

        # Warm both servers the same way (first requests load code and caches).
        for name in servers:
            run(sessions[name], [search_html("library catalogue"), search_json("library catalogue")] * 4
                + [issue_page(n, name == "ragd") for n in (1, 2, 3, 4)], 4)

        for r in range(args.rounds):
            start = (r * per_round) % max(1, len(issue_ids) - per_round)
            issues = issue_ids[start:start + per_round]
            order = ["ragd", "redmine"] if r % 2 == 0 else ["redmine", "ragd"]
            for c in levels:
                for scenario in ("search_html", "search_json", "issue_page"):
                    n_jobs = per_round * max(1, c // 2)  # enough requests to keep c users busy
                    batch = take(n_jobs) if scenario != "issue_page" else []  # the same for both servers
                    for name in order:
                        if scenario == "search_html":
                            jobs = [search_html(q) for q in batch]
                        elif scenario == "search_json":
                            jobs = [search_json(q) for q in batch]
                        else:
                            jobs = [issue_page(n, name == "ragd") for n in issues] * max(1, c // 2)
                        lat = run(sessions[name], jobs, c)
                        results.setdefault(f"{scenario}@{c}", {}).setdefault(name, []).append(lat)
            print(f"round {r + 1}/{args.rounds} done", flush=True)

        # Duplicate suggestions (the plugin only): subjects typed so far, 1 user.
        dup = []
        subjects: list[str] = []  # typed so far: 3 words, then 5; none twice (ragd's cache never answers)
        while len(subjects) < 80:
            words = take(1)[0].split()
            subjects += [t for t in (" ".join(words[:3]), " ".join(words[:5])) if t not in subjects]
        s = sessions["ragd"][1]  # bob
        for subj in subjects:
            path = "/redmine_rag/duplicates?" + urllib.parse.urlencode({"project_id": "library", "subject": subj})
            dup.append(s.timed(path)[0])

        rss = {"ragd": rss_mib(puma_pid(int(demo["DEMO_REDMINE_PID"]))), "redmine": rss_mib(puma_pid(bare.pid))}
    finally:
        os.killpg(bare.pid, signal.SIGTERM)
        bare.wait(60)
        if started_demo:
            subprocess.run(["scripts/redmine/demo.sh", "stop"], cwd=REPO, check=False)

    summary = {}
    for key, by_name in results.items():
        row = {}
        for name, rounds in by_name.items():
            flat = [x for lat in rounds for x in lat]
            row[name] = {"p50_ms": round(pct(flat, 0.5), 1), "p95_ms": round(pct(flat, 0.95), 1), "n": len(flat)}
        ratios = [pct(a, 0.95) / pct(b, 0.95) for a, b in zip(by_name["ragd"], by_name["redmine"])]
        row["p95_ratio_ragd_over_redmine"] = {"median": round(statistics.median(ratios), 2),
                                              "min": round(min(ratios), 2), "max": round(max(ratios), 2)}
        summary[key] = row
    dup_summary = {"p50_ms": round(pct(dup, 0.5), 1), "p95_ms": round(pct(dup, 0.95), 1), "n": len(dup),
                   "target_p95_ms": 150}
    data = {"errors": dict(ERRORS), "settings": {"rounds": args.rounds, "queries_per_round": per_round,
                                                 "concurrency": levels,
                         "users": USERS, "load_before": load_before, "load_after": os.getloadavg(),
                         "search_answered_by": outcomes},
            "scenarios": summary, "duplicates": dup_summary,
            "puma_rss_mib": {k: round(v, 1) for k, v in rss.items()}
            | {"plugin_adds": round(rss["ragd"] - rss["redmine"], 1)}}
    print(json.dumps({k: data[k] for k in ("scenarios", "duplicates", "puma_rss_mib", "errors")}, indent=2))
    write("redmine_search", data, figure(summary, dup))


def figure(summary: dict, dup: list[float]):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    keys = list(summary)
    x = range(len(keys))
    w = 0.2
    for i, (name, stat, color) in enumerate([("ragd", "p50_ms", "#4a7fb0"), ("ragd", "p95_ms", "#9cc0e0"),
                                             ("redmine", "p50_ms", "#c0703a"), ("redmine", "p95_ms", "#eab48c")]):
        ax.bar([k + (i - 1.5) * w for k in x], [summary[k][name][stat] for k in keys], w,
               label=f"{'with redmine_rag' if name == 'ragd' else 'Redmine alone'} {stat[:3]}", color=color)
    ax.set_xticks(list(x))
    ax.set_xticklabels([f"{k}\np95 ratio {summary[k]['p95_ratio_ragd_over_redmine']['median']}" for k in keys],
                       fontsize=8)
    ax.set_ylabel("ms")
    ax.set_title("Redmine 5 with ragd vs Redmine's own search (demo data, interleaved rounds)")
    ax.legend(fontsize=8)
    ax2.hist(dup, bins=20, color="#4a7fb0")
    ax2.axvline(150, color="red", linestyle="--", label="target p95 150 ms")
    ax2.axvline(pct(dup, 0.95), color="black", label=f"p95 {pct(dup, 0.95):.0f} ms")
    ax2.set_title("duplicate suggestions (1 user)")
    ax2.set_xlabel("ms")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
