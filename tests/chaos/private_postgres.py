"""A PostgreSQL cluster of the test's own (initdb into a temporary folder, its own free
port, trust authentication on loopback), so a scenario can stop and restart it without
touching the shared server other runs use."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.conftest import wait_for


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise AssertionError(f"no {name} under /usr/lib/postgresql/*/bin: install PostgreSQL")
    return found[-1]


def _as_owner() -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    """``initdb`` + ``pg_ctl``: :meth:`start`, :meth:`stop`, :meth:`restart`."""

    def __init__(self) -> None:
        # Not under pytest's basetemp: its folders are private to us, not to ``postgres``.
        self.root = Path(tempfile.mkdtemp(prefix="dispatcher-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.sockets.mkdir()
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in (self.root, self.sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self.port = _free_port()
        initdb = [_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]
        subprocess.run(
            [*_as_owner(), *initdb, "--encoding=UTF8", "--locale=C.UTF-8"],
            check=True,
            capture_output=True,
        )
        self.start()
        with psycopg.connect(self._admin_dsn, autocommit=True) as conn:
            conn.execute('CREATE DATABASE "dispatcher"')

    @property
    def _admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/dispatcher"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*_as_owner(), _bin("pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.sockets} "
            "-c fsync=off -c max_connections=100"
        )
        self._ctl("-l", str(self.root / "server.log"), "-o", options, "start")
        wait_for(self.answering, timeout=60, interval=0.2)

    def stop(self) -> None:
        """Fast shutdown: every connection is cut, as in a restart or a failover."""
        self._ctl("-m", "fast", "stop")

    def answering(self) -> bool:
        try:
            with psycopg.connect(self._admin_dsn, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*_as_owner(), _bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                capture_output=True,
            )
        shutil.rmtree(self.root, ignore_errors=True)
