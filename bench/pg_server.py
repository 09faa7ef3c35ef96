"""What the PostgreSQL server spends on a bench phase: its backends' CPU, and the
statements it ran (``pg_stat_statements``, when the server loads it).

The backends' CPU is read from ``/proc/<pid>/stat`` of the server processes serving the
bench's database, so it counts only when the server runs on this machine (else it
prints as unknown). Statements and their execution time come from
``pg_stat_statements`` filtered on the bench's database; the extension needs
``shared_preload_libraries = 'pg_stat_statements'`` on the server and is created here
if it is loadable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

_BACKENDS = text(
    "SELECT pid FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
#: Top-level statements are what clients sent (each its own round trip, except those
#: of one ``executemany``, which psycopg pipelines); nested ones are run by the server
#: itself (foreign-key checks) when ``pg_stat_statements.track = all``.
#: Per statement (nested ones too), to tell which steps the calls and the time go to.
_EACH = text(
    "SELECT queryid, toplevel, calls, total_exec_time, query FROM pg_stat_statements "
    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND query NOT LIKE '%pg_stat%'"
)
_STATEMENTS = text(
    "SELECT coalesce(sum(calls) FILTER (WHERE toplevel), 0), "
    "coalesce(sum(calls) FILTER (WHERE NOT toplevel), 0), "
    "coalesce(sum(total_exec_time) FILTER (WHERE toplevel), 0) FROM pg_stat_statements "
    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND query NOT LIKE '%pg_stat%'"
)


@dataclass(frozen=True)
class ServerSample:
    #: CPU seconds of each backend of the bench's database (None: not on this machine).
    cpu: dict[int, float] | None
    #: Statements clients sent, statements the server ran for them (foreign-key checks),
    #: and the execution time of the first in ms (None: no pg_stat_statements).
    calls: int | None
    nested: int | None
    exec_ms: float | None
    #: (queryid, toplevel) → (calls, total ms, query text); empty without the extension.
    each: dict[tuple[int, bool], tuple[int, float, str]] = field(default_factory=dict)


class ServerCounter:
    """Samples a PostgreSQL server; ``per_event`` compares two samples."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.statements = False
        try:
            with self.engine.begin() as conn:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
                conn.execute(_STATEMENTS)
            self.statements = True
        except Exception:  # not preloaded, or no right to create it
            self.statements = False

    def sample(self) -> ServerSample:
        with self.engine.connect() as conn:
            pids = [int(p) for (p,) in conn.execute(_BACKENDS)]
            calls = nested = exec_ms = None
            each: dict[tuple[int, bool], tuple[int, float, str]] = {}
            if self.statements:
                calls, nested, exec_ms = conn.execute(_STATEMENTS).one()
                for queryid, toplevel, n, ms, query in conn.execute(_EACH):
                    each[(int(queryid), bool(toplevel))] = (int(n), float(ms), str(query))
        cpu: dict[int, float] | None = {}
        tick = os.sysconf("SC_CLK_TCK")
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if not fields[0:1] or "postgres" not in Path(f"/proc/{pid}/comm").read_text():
                continue
            assert cpu is not None
            cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
        if pids and not cpu:
            cpu = None
        return ServerSample(
            cpu,
            None if calls is None else int(calls),
            None if nested is None else int(nested),
            exec_ms,
            each,
        )

    @staticmethod
    def per_event(before: ServerSample, after: ServerSample, events: int) -> str:
        """One line: server CPU, statements and their execution time per event."""
        parts = []
        if before.cpu is None or after.cpu is None:
            parts.append("server CPU unknown (not on this machine)")
        else:
            spent = sum(t - before.cpu.get(pid, 0.0) for pid, t in after.cpu.items())
            parts.append(f"PostgreSQL server CPU {spent * 1000 / events:.2f} ms")
        if before.calls is not None and after.calls is not None:
            calls = (after.calls - before.calls) / events
            nested = ((after.nested or 0) - (before.nested or 0)) / events
            ms = ((after.exec_ms or 0.0) - (before.exec_ms or 0.0)) / events
            parts.append(
                f"{calls:.1f} statements sent ({ms:.2f} ms executing; BEGIN and COMMIT "
                f"included) and {nested:.1f} run inside them (foreign-key checks)"
            )
        else:
            parts.append("statements unknown (no pg_stat_statements)")
        return "per event: " + ", ".join(parts)

    @staticmethod
    def statement_table(
        before: ServerSample, after: ServerSample, events: int, *, least: float = 0.05
    ) -> list[str]:
        """Lines of a table: each statement run at least ``least`` times per event
        between the samples, with its calls per event and mean execution time."""
        rows = []
        for key, (calls, ms, query) in after.each.items():
            calls0, ms0, _ = before.each.get(key, (0, 0.0, ""))
            n = calls - calls0
            if n / events < least:
                continue
            rows.append((n / events, (ms - ms0) / n, key[1], " ".join(query.split())))
        rows.sort(key=lambda r: (not r[2], -r[0] * r[1]))
        lines = [f"  {'calls/event':>11} {'mean ms':>8} {'ms/event':>8}  statement"]
        for per, mean, toplevel, query in rows:
            where = "" if toplevel else "(nested) "
            lines.append(f"  {per:>11.2f} {mean:>8.3f} {per * mean:>8.3f}  {where}{query[:150]}")
        return lines
