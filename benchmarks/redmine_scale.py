"""Where the plugin overtakes Redmine's own search as a Redmine grows: the demo's
database with its issues repeated k times (copies of the 400 issues, same texts and
projects, so Redmine's own search reads k times as much text and finds k times as
many matches), `/search.json` and the search page at 1 user, Redmine alone against the
plugin on the same enlarged database, interleaved (A B, B A per round), a query no
request before it had.

  .venv/bin/python benchmarks/redmine_scale.py [--sizes 1,8,32,64] [--rounds 4] [--queries 8]

The plugin's Redmine runs on the same copy, answered by the demo's ragd, whose index
keeps the demo's 633 documents: ragd's hits are the original issues (their copies are
not indexed), so the plugin's Rails side (permission checks, records, the page) is
measured on the large database, ragd's side at the demo's size. ragd's own search hardly
grows with the index at these sizes (flat search over a few thousand to a hundred
thousand chunks; IVF-PQ beyond, index_scale.py: p99 5.4 ms at 1M vectors); its wait is
the query's embedding. Each size is a Redmine instance `demo-x<k>` (a copy of the demo's
database; the demo's own is never written); both servers are stopped after each size.
Writes results/redmine_scale.json and .png.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import redmine_search as rs  # noqa: E402
from common import REPO, write  # noqa: E402
from redmine_search import RM_VAR, Session  # noqa: E402

APP = RM_VAR / "app"


def enlarged_db(k: int) -> str:
    """Instance demo-x<k>: the demo's database with every issue repeated k times in all."""
    name = f"demo-x{k}"
    subprocess.run(["bash", "-c", f"source scripts/redmine/common.sh >/dev/null; rm_instance {name}"], cwd=REPO,
                   check=True, capture_output=True)
    db = APP / "instances" / name / "db" / "production.sqlite3"
    db.unlink(missing_ok=True)
    src = sqlite3.connect(APP / "instances" / "demo" / "db" / "production.sqlite3")
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    cols = [r[1] for r in dst.execute("PRAGMA table_info(issues)") if r[1] not in ("id", "root_id", "lft", "rgt",
                                                                                   "parent_id")]
    top = dst.execute("SELECT max(id) FROM issues").fetchone()[0]
    listed = ", ".join(cols)
    for _ in range(k - 1):  # copies are roots of their own tree, as new issues are
        dst.execute(f"INSERT INTO issues ({listed}, lft, rgt) SELECT {listed}, 1, 2 FROM issues WHERE id <= ?",
                    (top,))
    dst.execute("UPDATE issues SET root_id = id WHERE root_id IS NULL")
    dst.commit()
    dst.close()
    return name


def start(app: Path, instance: str, log_name: str, gemfile: Path) -> tuple[subprocess.Popen, str]:
    port = rs.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUNDLE_", "RAGD_"))}
    env.update(REDMINE_INSTANCE=instance, RAILS_ENV="production", BUNDLE_GEMFILE=str(gemfile))
    log = RM_VAR / log_name
    pidfile = RM_VAR / f"{log_name}.pid"
    pidfile.unlink(missing_ok=True)
    proc = subprocess.Popen(["bundle", "exec", "rails", "server", "-e", "production", "-b", "127.0.0.1",
                             "-p", str(port), "-P", str(pidfile)],
                            cwd=app, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    rs.wait_login(proc, port, log, f"Redmine ({instance}, {log_name})")
    return proc, f"http://127.0.0.1:{port}"


def job(kind: str, q: str, found: dict[str, list[int]]):
    """One request of `kind` (search_json: also notes its total_count) -> its latency, ms."""
    def go(s: Session) -> float:
        if kind == "search_json":
            ms, _, _, body = s.timed("/search.json?" + urllib.parse.urlencode({"q": q, "limit": 25}), api=True,
                                     body=True)
            found[s.name].append(int(json.loads(body).get("total_count", 0)))
            return ms
        return s.timed("/search?" + urllib.parse.urlencode({"q": q}))[0]
    return go


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,8,32,64", help="how many times the demo's issues are repeated")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--queries", type=int, default=8, help="requests per scenario, server and round")
    args = ap.parse_args()
    sizes = [int(k) for k in args.sizes.split(",")]
    load_before = os.getloadavg()
    started_demo = False
    if not rs.DEMO_ENV.exists():
        print("starting the demo (make redmine, in the background)...", flush=True)
        subprocess.run(["scripts/redmine/demo.sh"], cwd=REPO, check=True, env={**os.environ, "DEMO_DETACH": "1"},
                       stdout=subprocess.DEVNULL)
        started_demo = True
    rs.read_env()  # the demo's ragd serves the plugin's arm of every size
    bare_app = Path(subprocess.run(["bash", "-c", "source scripts/redmine/common.sh >/dev/null; rm_bare_app"],
                                   cwd=REPO, check=True, capture_output=True, text=True).stdout.split()[-1])
    fresh = iter(rs.queries()[200:])
    out: dict = {}
    try:
        for k in sizes:
            instance = enlarged_db(k)
            issues = 400 * k
            print(f"x{k}: {instance} with {issues} issues; starting both servers...", flush=True)
            procs = []
            try:
                plugin, plugin_url = start(APP, instance, f"scale-plugin-x{k}.log", APP / "Gemfile")
                procs.append(plugin)
                bare, bare_url = start(bare_app, instance, f"scale-bare-x{k}.log", bare_app / "Gemfile")
                procs.append(bare)
                servers = {"ragd": plugin_url, "redmine": bare_url}
                sessions = {n: [Session(u, login, n) for login in rs.USERS] for n, u in servers.items()}
                found: dict[str, list[int]] = {n: [] for n in servers}

                for n in servers:  # warm both the same way
                    warm = [job(kind, "library catalogue", found) for kind in ("search_json", "search_html")]
                    rs.run(sessions[n], warm * 3, 1)
                lat: dict = {}
                for r in range(args.rounds):
                    order = list(servers) if r % 2 == 0 else list(servers)[::-1]
                    for kind in ("search_html", "search_json"):
                        batch = [next(fresh) for _ in range(args.queries)]
                        for n in order:
                            lat.setdefault(kind, {}).setdefault(n, []).append(
                                rs.run(sessions[n], [job(kind, q, found) for q in batch], 1))
                    print(f"x{k}: round {r + 1}/{args.rounds} done", flush=True)
            finally:
                for p in procs:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(60)
            row: dict = {"issues": issues, "results_median": {n: statistics.median(v) for n, v in found.items()}}
            for kind, by_name in lat.items():
                cell = {}
                for n, rounds in by_name.items():
                    flat = [x for lat_ in rounds for x in lat_]
                    cell[n] = {"p50_ms": round(rs.pct(flat, 0.5), 1), "p95_ms": round(rs.pct(flat, 0.95), 1)}
                ratios = [rs.pct(a, 0.95) / rs.pct(b, 0.95) for a, b in zip(by_name["ragd"], by_name["redmine"])]
                cell["p95_ratio_ragd_over_redmine"] = {"median": round(statistics.median(ratios), 2),
                                                       "min": round(min(ratios), 2), "max": round(max(ratios), 2)}
                row[kind] = cell
            out[f"x{k}"] = row
            print(f"x{k}: {row}", flush=True)
    finally:
        if started_demo:
            subprocess.run(["scripts/redmine/demo.sh", "stop"], cwd=REPO, check=False)
    data = {"settings": {"sizes": sizes, "rounds": args.rounds, "queries": args.queries, "users": rs.USERS,
                         "load_before": load_before, "load_after": os.getloadavg(),
                         "ragd_index": "the demo's 633 documents at every size (see the docstring)"},
            "sizes": out}
    write("redmine_scale", data, figure(out))


def figure(out: dict):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    issues = [row["issues"] for row in out.values()]
    for ax, kind, title in zip(axes, ("search_html", "search_json"), ("search page", "/search.json")):
        for n, label, color in (("ragd", "with redmine_rag", "#4a7fb0"), ("redmine", "Redmine alone", "#c0703a")):
            ax.plot(issues, [row[kind][n]["p95_ms"] for row in out.values()], "o-", color=color, label=f"{label} p95")
            ax.plot(issues, [row[kind][n]["p50_ms"] for row in out.values()], "o--", color=color, alpha=0.6,
                    label=f"{label} p50")
        ax.set_xscale("log")
        ax.set_xlabel("issues in Redmine (demo's repeated)")
        ax.set_ylabel("ms")
        ax.set_title(f"{title}, 1 user, interleaved")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
