"""Which Celery queue carries which work: one per priority, plus bulk and maintenance.

Separate queues (rather than broker priorities) keep urgent work from waiting behind a
backlog of low-priority messages, and let operators run dedicated workers per queue.
"""

from __future__ import annotations

from dispatcher.enums import Priority

PREFIX = "dispatcher"

#: Campaign traffic, so a million-recipient send never delays transactional mail.
BULK = f"{PREFIX}.bulk"
#: Beat's periodic work (sweep, release, purge).
MAINTENANCE = f"{PREFIX}.maintenance"

#: Queues in the order a worker should prefer them.
ALL: tuple[str, ...] = (
    f"{PREFIX}.urgent",
    f"{PREFIX}.high",
    MAINTENANCE,
    f"{PREFIX}.medium",
    f"{PREFIX}.low",
    BULK,
)


def for_priority(priority: Priority | str, *, bulk: bool = False) -> str:
    """The queue for work of ``priority``; campaign work goes to :data:`BULK`
    unless it is urgent."""
    priority = Priority(priority)
    if bulk and priority is not Priority.URGENT:
        return BULK
    return f"{PREFIX}.{priority.value}"
