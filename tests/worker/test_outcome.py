"""What state a task ends in, for what its deliveries did (pure function)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from celery.exceptions import Retry

from dispatcher.engine.delivery import DeliverReport
from dispatcher.engine.doorbell import deliver_label, fanout_label
from dispatcher.engine.records import Record
from dispatcher.enums import DeliveryStatus, Reason
from dispatcher.errors import DeliveriesFailedError, DeliveriesRetryingError
from dispatcher.worker.outcome import verdict

DUE = datetime(2026, 11, 30, 14, 5, 3, tzinfo=UTC)


def report(*records: Record) -> DeliverReport:
    r = DeliverReport(claimed=len(records))
    for rec in records:
        r.note(rec)
    return r


def sent(i: int) -> Record:
    return Record(i, DeliveryStatus.SENT)


def retrying(i: int, due: datetime = DUE) -> Record:
    return Record(
        i, DeliveryStatus.SCHEDULED, Reason.RETRYING, "channel_error: to bob@x", scheduled_for=due
    )


def failed(i: int) -> Record:
    return Record(i, DeliveryStatus.FAILED, Reason.REJECTED, "550 bob@x unknown")


def test_success_quiet_hours_and_none_are_not_problems() -> None:
    quiet = Record(2, DeliveryStatus.SCHEDULED, Reason.QUIET_HOURS, scheduled_for=DUE)
    assert verdict(report(sent(1), quiet)) is None
    assert verdict(None) is None
    assert verdict(DeliverReport()) is None


def test_a_permanent_failure_fails_the_task_with_counts_and_reasons_only() -> None:
    problem = verdict(report(sent(1), failed(2), retrying(3)))
    assert isinstance(problem, DeliveriesFailedError)
    assert str(problem) == "1 of 3 failed for good (rejected=1); 1 retry at 2026-11-30T14:05:03Z"
    assert "bob" not in str(problem)


def test_every_delivery_failing_transiently_fails_the_task() -> None:
    later = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    problem = verdict(report(retrying(1, later), retrying(2)))
    assert isinstance(problem, DeliveriesFailedError)
    assert str(problem) == "all 2 failed (channel_error=2); retry at 2026-11-30T14:05:03Z"


def test_some_transient_failures_make_a_retry_with_its_due_time() -> None:
    problem = verdict(report(sent(1), retrying(2)))
    assert isinstance(problem, Retry)
    assert problem.when == DUE
    assert isinstance(problem.exc, DeliveriesRetryingError)
    assert str(problem.exc) == "1 of 2 retry at 2026-11-30T14:05:03Z (channel_error=1)"


def test_merged_reports_add_up_and_keep_the_earliest_retry() -> None:
    total = report(sent(1), retrying(2, datetime(2026, 12, 1, tzinfo=UTC)))
    total.merge(report(retrying(3), failed(4)))
    assert total.counts == {"sent": 1, "scheduled": 2, "failed": 1}
    assert total.next_retry == DUE
    assert total.claimed == 4


@pytest.mark.parametrize(
    ("args", "label"),
    [
        (("email", ["ticket_created"], 2, None), "deliver email ticket_created x2"),
        (("email", [], 3, "swept"), "deliver email x3 (swept)"),
        (("in_app", ["a", "b", "c"], 40, None), "deliver in_app a+2 x40"),
        ((None, [], 1, None), "deliver any x1"),
    ],
)
def test_deliver_labels(args: tuple, label: str) -> None:  # type: ignore[type-arg]
    assert deliver_label(*args) == label


def test_fanout_labels() -> None:
    assert fanout_label(12, "ticket_created", 3) == "fanout ticket_created → 3"
    assert fanout_label(12, via="swept") == "fanout event 12 (swept)"
    assert fanout_label(None) == "fanout due"
