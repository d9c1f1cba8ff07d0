"""Benchmarks in a throwaway portal, each a ratio or count against a baseline of the same run.

    .venv/bin/python bench/run.py [--only P2,P3,P5,pages] [--servers 1000] [--requests 50]

A fresh portal (a temporary PORTAL_VAR_DIR; on PostgreSQL + Redis in a new database and Redis db
when both answer on 127.0.0.1, else SQLite and the file broker), DEBUG off, seeded by
bench/seed.py: one owner of --organizations organizations, a project of --servers servers and one
of --baseline servers with --usage-days of history, and an empty project. Then:

  P2     SQL queries of the server list and a server's page at both sizes (bench/p2_queries.py)
  P3     launches completed/s over no-op tasks/s on one worker           (bench/p3_p5_worker.py)
  P5     p95 from commit to task start                                   (bench/p3_p5_worker.py)
  pages  median server time of the list, a server's page and the usage JSON at both sizes, and
         their ratio                                                      (bench/pages.py)

Results are printed and merged into bench/results/latest.json (metrics not measured are kept).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

# Run as a script, this file's folder comes first on the path; the repository root instead, so that
# `bench` is the package the worker imports too (and nothing here shadows an installed module).
sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench import common, p2_queries, p3_p5_worker, pages
from bench.seed import seed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(common.METRICS), help="comma-separated; default: all")
    parser.add_argument("--servers", type=int, default=1000, help="servers in the big project")
    parser.add_argument("--baseline", type=int, default=10, help="servers in the baseline project")
    parser.add_argument("--usage-days", type=int, default=45, help="days of usage history (>= 31)")
    parser.add_argument("--organizations", type=int, default=10, help="organizations the owner belongs to")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per page and size")
    parser.add_argument("--warmup", type=int, default=5, help="requests per page and size before timing")
    parser.add_argument(
        "--sqlite", action="store_true", help="SQLite and the file broker even if PostgreSQL answers"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and var dir (printed)")
    args = parser.parse_args()
    known = {name.lower(): name for name in common.METRICS}
    only = {known.get(name.strip().lower(), name.strip()) for name in args.only.split(",")}
    if not only <= set(common.METRICS) or args.usage_days < 31:
        parser.error(f"--only takes {', '.join(common.METRICS)}; --usage-days must cover 30 days and today")

    var_dir = tempfile.mkdtemp(prefix="bench-")
    env = common.environment(var_dir, sqlite=args.sqlite)
    try:
        results = measure(args, only, env)
    finally:
        if args.keep:
            print(f"kept: var dir {var_dir}, database {env.get('DATABASE_URL', 'SQLite in the var dir')}")
        else:
            common.drop_database(env)
            shutil.rmtree(var_dir, ignore_errors=True)
    common.write_results(results)
    common.print_summary(results)


def measure(args: argparse.Namespace, only: set[str], env: dict) -> dict:
    common.django_setup(env)
    print(f"seeding {args.servers} + {args.baseline} servers, {args.usage_days} days of usage …", flush=True)
    seeded = seed(
        servers=args.servers,
        baseline=args.baseline,
        usage_days=args.usage_days,
        organizations=args.organizations,
    )
    print(", ".join(f"{key} {value}" for key, value in seeded.counts.items()), flush=True)
    results = {}
    if "P2" in only:
        results["P2"] = p2_queries.measure(seeded)
    if "pages" in only:
        results["pages"] = pages.measure(seeded, requests=args.requests, warmup=args.warmup)
    if only & {"P3", "P5"}:
        results |= p3_p5_worker.measure(seeded, env, only)
    machine = common.machine()
    for entry in results.values():
        entry["detail"]["machine"] = machine
    return results


if __name__ == "__main__":
    main()
