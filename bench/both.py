"""Run a bench once per database: SQLite, then PostgreSQL (a fresh database each run).

A bench given no ``--database-url`` re-runs itself with one for each of ``--databases``
(default ``sqlite,postgres``). PostgreSQL runs in a database created for the run on the
server at ``--postgres-admin-url`` (default ``$DISPATCHER_BENCH_PG_ADMIN``, else
``$DISPATCHER_TEST_PG_ADMIN``, else ``postgresql://postgres@127.0.0.1:5432/test``) and
dropped after it, so that no earlier run's rows weigh on it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

DEFAULT_ADMIN = os.environ.get(
    "DISPATCHER_BENCH_PG_ADMIN",
    os.environ.get("DISPATCHER_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--databases",
        default="sqlite,postgres",
        help="without --database-url: the databases to run on, in order",
    )
    parser.add_argument("--postgres-admin-url", default=DEFAULT_ADMIN)


def run_each(module: str, args: argparse.Namespace) -> None:
    """Run ``python -m module`` with this process's arguments plus a database URL, once
    per database of ``args.databases``."""
    import psycopg

    for backend in [b.strip() for b in args.databases.split(",") if b.strip()]:
        print(f"=== {module} on {backend} ===", flush=True)
        if backend == "sqlite":
            url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='dispatcher-bench-')) / 'bench.db'}"
            subprocess.run([sys.executable, "-m", module, *sys.argv[1:], "--database-url", url])
            continue
        if backend != "postgres":
            raise SystemExit(f"unknown database {backend!r}: use sqlite or postgres")
        name = f"dispatcher_bench_{uuid.uuid4().hex[:8]}"
        admin = psycopg.connect(args.postgres_admin_url, autocommit=True)
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = args.postgres_admin_url.rsplit("/", 1)[0]
            url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
            subprocess.run([sys.executable, "-m", module, *sys.argv[1:], "--database-url", url])
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
