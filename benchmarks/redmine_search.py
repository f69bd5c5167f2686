"""Redmine with the redmine_rag plugin (ragd answering) against the same Redmine
without it (Redmine's own SQL search), on the demo data (`make redmine`), side
by side and interleaved: in every round each scenario runs on one server then
the other (the order alternates), with queries no round repeats (neither ragd's
page cache nor SQLite's warm pages favour one side).

  .venv/bin/python benchmarks/redmine_search.py [--rounds 4] [--queries 10] [--int8]

--int8 adds a third arm, interleaved with the other two: the same plugin in a second
Puma process (instance demo-int8: a copy of the demo's database whose plugin setting
points elsewhere) answered by a second ragd with model.precision int8 (its data dir a
copy of the demo ragd's, so both daemons hold the same vectors; only the query
embedding differs). The demo's own ragd is then the fp32 arm: this script starts the
demo with DEMO_RAGD_PRECISION=fp32 and refuses a running demo whose ragd is not fp32.
The demo writes nothing while the benchmark runs (logins only), so a copy of its data
dir is consistent.

Scenarios, at 1 and 8 concurrent users (alice, bob, carol, dave: different roles):
  search_html   /search?q=...            (the search box: every type ticked)
  search_json   /search.json?q=...       (REST API, API key)
  issue_page    /issues/N, plus with the plugin the similar-issues panel the page
                then loads (/issues/N/similar): the time until the panel is there
and, with the plugin only, the duplicate-suggestion endpoint (target p95 < 150 ms)
and the resident memory a Puma worker gains from the plugin (every server warmed
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

    def timed(self, path: str, api: bool = False, body: bool = False):
        """(ms, status, headers), and the body when asked for."""
        headers = {"X-Redmine-API-Key": self.api_key} if api else {}
        t0 = time.perf_counter()
        resp, data = self.request("GET", path, headers=headers)
        ms = (time.perf_counter() - t0) * 1000
        if resp.status != 200:
            # Counted, not fatal: SQLite's one write lock ("database is locked" after its
            # timeout) can fail a request of either server on a loaded machine.
            ERRORS[f"{self.name} {path.split('?')[0].split('/')[1]}"] += 1
        return (ms, resp.status, dict(resp.getheaders())) + ((data,) if body else ())


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
    wait_login(proc, port, RM_VAR / "bare-server.log", "Redmine without the plugin")
    return proc


def wait_login(proc: subprocess.Popen, port: int, log: Path, name: str) -> None:
    """Until the server answers its login page (fails with the log's tail if it exits first)."""
    deadline = time.monotonic() + 600
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/login")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.5)


def start_int8_arm(demo: dict[str, str], port: int) -> tuple[subprocess.Popen, subprocess.Popen, str]:
    """A ragd with model.precision int8 on a copy of the demo ragd's data dir, and the
    plugin's Redmine on a copy of the demo's database pointed at it (instance demo-int8).
    Returns (ragd, redmine, url); both are process-group leaders (stopped with killpg)."""
    import shutil
    import sqlite3
    data = RM_VAR / "ragd-demo-int8"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(RM_VAR / "ragd-demo", data, symlinks=True,
                    ignore=shutil.ignore_patterns("port", "daemon.log", "*.lock"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUNDLE_", "RAGD_"))}
    ragd = subprocess.Popen(
        ["bash", "-c", 'source scripts/redmine/common.sh >/dev/null; RAGD_LOG_LEVEL=warning '
         'rm_start_ragd "$1" RAGD_MODEL_PRECISION=int8 && echo "$RAGD_ADDRESS" && wait', "-", str(data)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    address = ragd.stdout.readline().strip()
    if not address:
        raise RuntimeError(f"the int8 ragd did not start: {(data / 'daemon.log').read_text()[-2000:]}")
    sh("source scripts/redmine/common.sh >/dev/null; rm_instance demo-int8")
    inst = RM_VAR / "app" / "instances" / "demo-int8"
    db = inst / "db" / "production.sqlite3"
    db.unlink(missing_ok=True)
    src = sqlite3.connect(RM_VAR / "app" / "instances" / "demo" / "db" / "production.sqlite3")
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    old = demo["DEMO_RAGD_ADDRESS"]
    n = dst.execute("UPDATE settings SET value = replace(value, ?, ?) WHERE name = 'plugin_redmine_rag'",
                    (old, address)).rowcount
    dst.commit()
    value = dst.execute("SELECT value FROM settings WHERE name = 'plugin_redmine_rag'").fetchone()
    dst.close()
    if n != 1 or address not in value[0]:
        raise RuntimeError(f"could not point instance demo-int8 at {address}: {value}")
    log = open(RM_VAR / "int8-server.log", "wb")
    redmine = subprocess.Popen(
        ["bash", "-c", 'source scripts/redmine/common.sh >/dev/null; rm -f "$RM_APP/instances/demo-int8/tmp/pids/'
         'server.pid"; rm_run demo-int8 production bundle exec rails server -e production -b 127.0.0.1 -p "$1" '
         '-P "$RM_APP/instances/demo-int8/tmp/pids/server.pid"', "-", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_login(redmine, port, RM_VAR / "int8-server.log", "Redmine (int8 arm)")
    return ragd, redmine, f"http://127.0.0.1:{port}"


def plugin_setting(name: str) -> str | None:
    """One of the plugin's settings in the demo's database (what the plugin's arm ran with)."""
    import sqlite3
    db = sqlite3.connect(RM_VAR / "app" / "instances" / "demo" / "db" / "production.sqlite3")
    try:
        row = db.execute("SELECT value FROM settings WHERE name = 'plugin_redmine_rag'").fetchone()
    finally:
        db.close()
    m = re.search(rf"^{name}: '?([^'\n]*)'?$", row[0] if row else "", re.M)
    return m.group(1) if m else None


def keyword_queries() -> list[str]:
    """Two content words of each CISI query (words of 5+ letters, in order, pairs never
    repeated): what Redmine's own search, where every word must match, also answers."""
    text = (REPO / "tests" / "data" / "cisi" / "CISI.QRY").read_text(encoding="latin-1")
    seen: set[str] = set()
    variants: list[list[str]] = [[] for _ in range(12)]
    for rec in text.split(".I ")[1:]:
        words = [w for w in re.findall(r"[a-z]+", rec.split(".W", 1)[1].lower()) if len(w) >= 5]
        pairs = [f"{a} {b}" for a, b in zip(words, words[1:]) if a != b]
        i = 0
        for q in pairs:
            if q not in seen and i < len(variants):
                seen.add(q)
                variants[i].append(q)
                i += 1
    return [q for group in variants for q in group]


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
    ap.add_argument("--keywords", action="store_true",
                    help="two content words per query instead of 5-8-word questions (Redmine's own search, "
                         "which needs every word, then finds results too); writes redmine_search_keywords.*")
    ap.add_argument("--int8", action="store_true",
                    help="a third arm: the plugin with a ragd running model.precision int8 (see above)")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    load_before = os.getloadavg()

    started_demo = False
    if not DEMO_ENV.exists():
        print("starting the demo (make redmine, in the background)...", flush=True)
        # With --int8 the demo's own ragd is the fp32 arm, whatever DEMO_RAGD_PRECISION says.
        precision = {"DEMO_RAGD_PRECISION": "fp32"} if args.int8 else {}
        subprocess.run(["scripts/redmine/demo.sh"], cwd=REPO, check=True,
                       env={**os.environ, "DEMO_DETACH": "1", **precision}, stdout=subprocess.DEVNULL)
        started_demo = True
    demo = read_env()
    demo_precision = demo.get("DEMO_RAGD_PRECISION", "fp32")
    if args.int8 and demo_precision != "fp32":
        raise SystemExit(f"--int8 compares with an fp32 ragd, but the running demo's ragd is {demo_precision}: "
                         "stop it (scripts/redmine/demo.sh stop) and let this script start it, or start it "
                         "with DEMO_RAGD_PRECISION=fp32")
    plugin_url = demo["DEMO_URL"]
    max_results = plugin_setting("search_max_results")
    bare_port = free_port()
    print("starting the same Redmine without the plugin...", flush=True)
    bare = start_bare(bare_port)
    int8 = None
    try:
        servers = {"ragd": plugin_url, "redmine": f"http://127.0.0.1:{bare_port}"}
        if args.int8:
            print("starting a ragd with model.precision int8 and the plugin's Redmine pointed at it...", flush=True)
            int8 = start_int8_arm(demo, free_port())
            servers = {"ragd": plugin_url, "ragd_int8": int8[2], "redmine": servers["redmine"]}
        plugins = [name for name in servers if name != "redmine"]
        sessions = {name: [Session(url, u, name) for u in USERS * 2] for name, url in servers.items()}
        issue_ids = visible_to_all(sessions["ragd"][:len(USERS)])
        fresh = iter(keyword_queries() if args.keywords else queries())
        per_round = args.queries

        def take(n: int) -> list[str]:
            out = [q for _, q in zip(range(n), fresh)]
            if len(out) < n:
                raise SystemExit("not enough distinct queries: lower --rounds or --queries")
            return out
        results: dict = {}
        outcomes = {name: {"ragd": 0, "fallback": 0} for name in plugins}

        def search_html(q):
            def job(s):
                ms, _, headers = s.timed("/search?" + urllib.parse.urlencode({"q": q}))
                outcome = headers.get("X-Redmine-Rag")
                if outcome in outcomes.get(s.name, {}):
                    outcomes[s.name][outcome] += 1
                return ms
            return job

        found: dict[str, list[int]] = {name: [] for name in servers}  # /search.json's total_count

        def search_json(q):
            def job(s):
                ms, _, _, body = s.timed("/search.json?" + urllib.parse.urlencode({"q": q, "limit": 25}), api=True,
                                         body=True)
                try:
                    found[s.name].append(int(json.loads(body)["total_count"]))
                except (ValueError, KeyError):
                    pass
                return ms
            return job

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
                + [issue_page(n, name != "redmine") for n in (1, 2, 3, 4)], 4)

        for r in range(args.rounds):
            start = (r * per_round) % max(1, len(issue_ids) - per_round)
            issues = issue_ids[start:start + per_round]
            names = list(servers)  # who goes first rotates: ragd, redmine (, ragd_int8) ...
            order = (names[r % len(names):] + names[:r % len(names)]) if len(names) > 2 else \
                (names if r % 2 == 0 else names[::-1])
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
                            jobs = [issue_page(n, name != "redmine") for n in issues] * max(1, c // 2)
                        lat = run(sessions[name], jobs, c)
                        results.setdefault(f"{scenario}@{c}", {}).setdefault(name, []).append(lat)
            print(f"round {r + 1}/{args.rounds} done", flush=True)

        # Duplicate suggestions (the plugin only): subjects typed so far, 1 user; each
        # subject to every plugin arm, the order alternating.
        dups: dict[str, list[float]] = {name: [] for name in plugins}
        subjects: list[str] = []  # typed so far: 3 words, then 5; none twice (ragd's cache never answers)
        while len(subjects) < 80:
            words = take(1)[0].split()
            subjects += [t for t in (" ".join(words[:3]), " ".join(words[:5])) if t not in subjects]
        for i, subj in enumerate(subjects):
            path = "/redmine_rag/duplicates?" + urllib.parse.urlencode({"project_id": "library", "subject": subj})
            for name in (plugins if i % 2 == 0 else plugins[::-1]):
                dups[name].append(sessions[name][1].timed(path)[0])  # bob

        rss = {"ragd": rss_mib(puma_pid(int(demo["DEMO_REDMINE_PID"]))), "redmine": rss_mib(puma_pid(bare.pid))}
        if int8:
            rss["ragd_int8"] = rss_mib(puma_pid(int8[1].pid))
    finally:
        for proc in [bare] + list(int8[:2] if int8 else []):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
        if started_demo:
            subprocess.run(["scripts/redmine/demo.sh", "stop"], cwd=REPO, check=False)

    summary = {}
    for key, by_name in results.items():
        row = {}
        for name, rounds in by_name.items():
            flat = [x for lat in rounds for x in lat]
            row[name] = {"p50_ms": round(pct(flat, 0.5), 1), "p95_ms": round(pct(flat, 0.95), 1), "n": len(flat)}
        pairs = [(name, "redmine") for name in plugins] + ([("ragd_int8", "ragd")] if int8 else [])
        for a_name, b_name in pairs:
            ratios = [pct(a, 0.95) / pct(b, 0.95) for a, b in zip(by_name[a_name], by_name[b_name])]
            row[f"p95_ratio_{a_name}_over_{b_name}"] = {"median": round(statistics.median(ratios), 2),
                                                        "min": round(min(ratios), 2), "max": round(max(ratios), 2)}
        summary[key] = row

    def dup_row(dup: list[float]) -> dict:
        return {"p50_ms": round(pct(dup, 0.5), 1), "p95_ms": round(pct(dup, 0.95), 1), "n": len(dup),
                "target_p95_ms": 150}
    dup_summary = dup_row(dups["ragd"]) | ({"ragd_int8": dup_row(dups["ragd_int8"])} if int8 else {})
    data = {"errors": dict(ERRORS), "settings": {"rounds": args.rounds, "queries_per_round": per_round,
                                                 "concurrency": levels,
                         "users": USERS, "load_before": load_before, "load_after": os.getloadavg(),
                         "search_answered_by": outcomes if int8 else outcomes["ragd"],
                         "queries": "two content words" if args.keywords else "5-8 words of a CISI question",
                         "search_json_results_median": {k: statistics.median(v) if v else None
                                                        for k, v in found.items()},
                         "search_json_empty_share": {k: round(sum(1 for x in v if x == 0) / len(v), 2) if v else None
                                                     for k, v in found.items()},
                         "plugin_search_max_results": max_results,
                         "arms": {"ragd": f"the plugin, the demo's ragd (model.precision {demo_precision})",
                                  "redmine": "Redmine alone (its own SQL search)"}
                         | ({"ragd_int8": "the plugin, ragd model.precision int8"} if int8 else {})},
            "scenarios": summary, "duplicates": dup_summary,
            "puma_rss_mib": {k: round(v, 1) for k, v in rss.items()}
            | {"plugin_adds": round(rss["ragd"] - rss["redmine"], 1)}}
    print(json.dumps({k: data[k] for k in ("scenarios", "duplicates", "puma_rss_mib", "errors")}, indent=2))
    write("redmine_search_keywords" if args.keywords else "redmine_search", data,
          figure(summary, dups, demo_precision))


def figure(summary: dict, dups: dict[str, list[float]], demo_precision: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [3, 1]})
    keys = list(summary)
    x = range(len(keys))
    arms = [("ragd", f"with redmine_rag (ragd {demo_precision})", ("#4a7fb0", "#9cc0e0")),
            ("ragd_int8", "with redmine_rag (ragd int8)", ("#3a9a5a", "#a0d8b0")),
            ("redmine", "Redmine alone", ("#c0703a", "#eab48c"))]
    arms = [a for a in arms if a[0] in summary[keys[0]]]
    bars = [(name, stat, label, colors[i]) for name, label, colors in arms
            for i, stat in enumerate(("p50_ms", "p95_ms"))]
    w = 0.8 / len(bars)
    for i, (name, stat, label, color) in enumerate(bars):
        ax.bar([k + (i - (len(bars) - 1) / 2) * w for k in x], [summary[k][name][stat] for k in keys], w,
               label=f"{label} {stat[:3]}", color=color)
    ax.set_xticks(list(x))
    ax.set_xticklabels([k + "\n" + "\n".join(f"{r[len('p95_ratio_'):].replace('_over_', '/')} {v['median']}"
                                              for r, v in summary[k].items() if r.startswith("p95_ratio_"))
                        for k in keys], fontsize=7)
    ax.set_ylabel("ms")
    ax.set_title("Redmine 5 with ragd vs Redmine's own search (demo data, interleaved rounds)")
    ax.legend(fontsize=7)
    for name, _label, colors in arms:
        if name in dups:
            ax2.hist(dups[name], bins=20, color=colors[0], alpha=0.6,
                     label=f"{name} p95 {pct(dups[name], 0.95):.0f} ms")
    ax2.axvline(150, color="red", linestyle="--", label="target p95 150 ms")
    ax2.set_title("duplicate suggestions (1 user)")
    ax2.set_xlabel("ms")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
