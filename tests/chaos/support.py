"""What the fault scenarios share: bulk subscribers, killing a process tree, and the
reconciliation of what was expected against what every side received."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import func, insert, select

from dispatcher import DeliveryStatus, Dispatcher
from dispatcher.db.models import Delivery, Notification, Subscriber

#: Long variants (10,000 recipients, minutes of slow relay) run only with this set.
LONG = os.environ.get("DISPATCHER_CHAOS_LONG") == "1"


def seed_subscribers(d: Dispatcher, count: int, prefix: str = "c") -> list[str]:
    """``count`` subscribers with email addresses, inserted in bulk."""
    ids = [f"{prefix}{i}" for i in range(count)]
    with d.store.session(write=True) as s:
        for start in range(0, count, 2000):
            s.execute(
                insert(Subscriber),
                [
                    {"external_id": i, "email": f"{i}@example.com", "attributes": {}}
                    for i in ids[start : start + 2000]
                ],
            )
    return ids


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may contain spaces, so split after ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a Celery worker and its pool children at once."""
    for child in children(pid):
        os.kill(child, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)


def deliveries(d: Dispatcher, channel: str | None = None) -> list[Delivery]:
    with d.store.session() as s:
        query = select(Delivery).order_by(Delivery.id)
        if channel is not None:
            query = query.where(Delivery.channel == channel)
        return list(s.scalars(query))


def settled(d: Dispatcher, expected: int) -> bool:
    with d.store.session() as s:
        total = s.scalar(select(func.count()).select_from(Delivery)) or 0
        open_ = (
            s.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(
                    Delivery.status.in_(
                        [DeliveryStatus.PENDING, DeliveryStatus.SCHEDULED, DeliveryStatus.SENDING]
                    )
                )
            )
            or 0
        )
    return total == expected and open_ == 0


@dataclass
class Reconciliation:
    """One scenario's table row."""

    scenario: str
    expected: int
    inbox: int
    #: What arrived at the other end: distinct Message-IDs, or decrypted pushes.
    emails: int
    duplicates: int
    lost: int
    settle_seconds: float
    backend: str = ""

    def row(self) -> str:
        return (
            f"{self.scenario:<34} {self.expected:>8} {self.inbox:>7} {self.emails:>7} "
            f"{self.duplicates:>5} {self.lost:>5} {self.settle_seconds:>8.1f}"
        )


HEADER = (
    f"{'scenario':<34} {'expected':>8} {'inbox':>7} {'remote':>7} {'dups':>5} {'lost':>5} "
    f"{'settle s':>8}"
)


def reconcile(
    d: Dispatcher, scenario: str, recipients: int, message_ids: list[str], started: float
) -> Reconciliation:
    """Count what arrived: inbox rows and Message-IDs, against one per recipient each."""
    with d.store.session() as s:
        inbox = (
            s.scalar(
                select(func.count())
                .select_from(Delivery)
                .join(Notification, Notification.id == Delivery.notification_id)
                .where(Delivery.channel == "in_app", Delivery.status == DeliveryStatus.SENT)
            )
            or 0
        )
    counts = Counter(message_ids)
    duplicates = sum(n - 1 for n in counts.values())
    email_ids = {r.provider_id for r in deliveries(d, "email") if r.status is DeliveryStatus.SENT}
    lost = (recipients - inbox) + (recipients - len(set(message_ids) & email_ids))
    return Reconciliation(
        scenario,
        recipients * 2,
        inbox,
        len(counts),
        duplicates,
        lost,
        time.monotonic() - started,
        "postgres" if d.store.is_postgres else "sqlite",
    )


def report(result: Reconciliation) -> None:
    """Print the row, and append it to ``DISPATCHER_CHAOS_REPORT`` (``bench.chaos``)."""
    print(f"\n{result.row()}")
    path = os.environ.get("DISPATCHER_CHAOS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(result)) + "\n")
