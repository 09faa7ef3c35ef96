"""How a task's outcome shows in Flower.

The database records every delivery's outcome, and nothing here changes it: the
sweep retries from ``scheduled_for``, never from the broker. But an operator watching
Flower sees task states, so a task ends in the state that says what its deliveries did:

* ``FAILURE`` when a delivery failed for good, or when every delivery it attempted
  failed (a provider outage looks like this, and it must not look green). The task
  raises :class:`~dispatcher.errors.DeliveriesFailedError` (declared in the task's
  ``throws``, so the worker logs one line, no traceback). A task state rather than a
  result value, because Flower filters and counts by state, and results are not
  stored (``ignore_result``).
* ``RETRY`` when some deliveries failed transiently: the task raises Celery's
  ``Retry`` carrying :class:`~dispatcher.errors.DeliveriesRetryingError`, whose
  message gives the time the first retry is due. Raising ``Retry`` without
  ``self.retry()`` acks the message and sends no new one: the retry lives in the
  database, where the sweep finds it (PITFALLS: no ETA messages).
* ``SUCCESS`` otherwise (sent, stored, skipped by a policy or deferred by one).

Messages hold counts, channel names and reason codes only, never an error's text (a
provider's message may quote an address).
"""

from __future__ import annotations

from datetime import datetime

from celery.exceptions import Retry

from dispatcher.engine.delivery import DeliverReport
from dispatcher.errors import DeliveriesFailedError, DeliveriesRetryingError


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason}={n}" for reason, n in sorted(counts.items()))


def _when(due: datetime | None) -> str:
    return due.strftime("%Y-%m-%dT%H:%M:%SZ") if due is not None else "soon"


def verdict(report: DeliverReport | None) -> Exception | None:
    """The exception a task raises for ``report``, or None when it succeeded."""
    if report is None:
        return None
    total = sum(report.counts.values())
    failed = sum(report.failed.values())
    retrying = sum(report.retrying.values())
    if failed:
        message = f"{failed} of {total} failed for good ({_reasons(report.failed)})"
        if retrying:
            message += f"; {retrying} retry at {_when(report.next_retry)}"
        return DeliveriesFailedError(message)
    if retrying and retrying == total:
        return DeliveriesFailedError(
            f"all {total} failed ({_reasons(report.retrying)}); retry at {_when(report.next_retry)}"
        )
    if retrying:
        error = DeliveriesRetryingError(
            f"{retrying} of {total} retry at {_when(report.next_retry)} "
            f"({_reasons(report.retrying)})"
        )
        retry: Exception = Retry(exc=error, when=report.next_retry)
        return retry
    return None
