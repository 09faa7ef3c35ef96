"""A digest survives a flush rolled back half-way and a broken template without losing
or repeating an item (in this process, injected clock, real SMTP, both backends)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from dispatcher import DeliveryStatus, Dispatcher, Reason
from dispatcher.policies import Candidate, Decision, DigestPolicy, Policy, default_policies
from tests.conftest import close_runtime, runtime
from tests.digests.digest_types import register_types
from tests.digests.support import by_channel, flush, items, text_of, update, windows
from tests.policies.support import at
from tests.smtp_server import SmtpServer

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CLOSES = T0 + timedelta(minutes=15)


class Crash(Exception):
    pass


class CrashOnce(Policy):
    """Runs after the digest policy and fails the transaction once for ``victim``."""

    name = "crash_once"

    def __init__(self) -> None:
        self.victim: int | None = None

    def decide(
        self, session: Session, candidates: Sequence[Candidate], now: datetime
    ) -> dict[int, Decision]:
        if any(c.delivery_id == self.victim for c in candidates):
            self.victim = None
            raise Crash("the process died here")
        return {}


class CrashAfterDigest(DigestPolicy):
    """The digest policy, then a crash once for ``victim`` (after it joined a window)."""

    def __init__(self) -> None:
        self.victim: int | None = None

    def decide(
        self, session: Session, candidates: Sequence[Candidate], now: datetime
    ) -> dict[int, Decision]:
        decisions = super().decide(session, candidates, now)
        if any(c.delivery_id == self.victim for c in candidates):
            self.victim = None
            raise Crash("the process died here")
        return decisions


def _crashing(mailer: Dispatcher) -> tuple[Dispatcher, CrashOnce]:
    crash = CrashOnce()
    d = Dispatcher(mailer.settings, policies=[*default_policies(), crash])
    register_types(d.catalog)
    return d, crash


def test_a_flush_rolled_back_half_way_sends_every_item_once(
    mailer: Dispatcher, smtp_server: SmtpServer
) -> None:
    d, crash = _crashing(mailer)
    try:
        d.subscribers.upsert("ana", email="ana@example.com")
        for minute, by in ((0, "Luis"), (4, "Marta"), (9, "Pablo")):
            update(d, "ana", by, T0 + timedelta(minutes=minute))
        carrier = by_channel(d, "ana")["email"][0]
        crash.victim = carrier.id
        # The digest policy closed the window in the claim's transaction; the crash
        # after it rolls the claim and the closing back together.
        with pytest.raises(Crash):
            flush(d, CLOSES)
        [window] = windows(d)
        assert (window.status, window.item_count) == ("open", 3)
        assert by_channel(d, "ana")["email"][0].status is DeliveryStatus.SCHEDULED
        assert smtp_server.messages == []

        assert flush(d, CLOSES + timedelta(seconds=5))["sent"] == 1
        assert flush(d, CLOSES + timedelta(seconds=10))["due"] == 0
        [message] = smtp_server.to("ana@example.com")
        text = text_of(message)
        assert [text.count(f"{by} changed") for by in ("Luis", "Marta", "Pablo")] == [1, 1, 1]
    finally:
        close_runtime(d)
        d.close()


def test_an_item_rolled_back_while_joining_joins_on_the_next_try(
    mailer: Dispatcher, smtp_server: SmtpServer
) -> None:
    crash = CrashAfterDigest()
    policies = [crash if isinstance(p, DigestPolicy) else p for p in default_policies()]
    d = Dispatcher(mailer.settings, policies=policies)
    register_types(d.catalog)
    try:
        d.subscribers.upsert("ana", email="ana@example.com")
        update(d, "ana", "Luis", T0)
        # The next email delivery of ana will be this one's id + 2 (in-app, email).
        crash.victim = by_channel(d, "ana")["email"][0].id + 2
        with pytest.raises(Crash):
            update(d, "ana", "Marta", T0 + timedelta(minutes=1))
        [window] = windows(d)
        assert window.item_count == 1
        second = by_channel(d, "ana")["email"][1]
        assert second.status is DeliveryStatus.PENDING
        with at(T0 + timedelta(minutes=2)):
            runtime(d).deliver([second.id])
        assert windows(d)[0].item_count == 2 and len(items(d, window.id)) == 2
        assert flush(d, CLOSES)["sent"] == 1
        text = text_of(smtp_server.to("ana@example.com")[0])
        assert "Luis changed" in text and "Marta changed" in text
        assert len(smtp_server.messages) == 1
    finally:
        close_runtime(d)
        d.close()


def test_a_broken_digest_template_fails_precisely_and_loses_no_item(
    mailer: Dispatcher, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    folder = tmp_path / "ticket_updated" / "en" / "email_digest"
    folder.mkdir(parents=True)
    broken = folder / "subject.j2"
    broken.write_text("{{ digest.count }} updates for {{ nope }}")
    settings = mailer.settings
    settings.extra_templates_dirs.insert(0, tmp_path)
    d = Dispatcher(settings)
    register_types(d.catalog)
    try:
        d.subscribers.upsert("ana", email="ana@example.com")
        for minute, by in ((0, "Luis"), (4, "Marta")):
            update(d, "ana", by, T0 + timedelta(minutes=minute))
        assert flush(d, CLOSES).get("failed") == 1
        carrier = by_channel(d, "ana")["email"][0]
        assert (carrier.status, carrier.reason) == (DeliveryStatus.FAILED, Reason.TEMPLATE_ERROR)
        assert carrier.detail == "missing variable 'nope'"
        [window] = windows(d)
        assert window.status == "flushed" and len(items(d, window.id)) == 2
        assert smtp_server.messages == []

        # The operator fixes the template and retries the digest: every item is in it.
        broken.write_text("{{ digest.count }} updates")
        d.renderer.text_env.cache.clear()  # type: ignore[union-attr]
        with at(CLOSES + timedelta(minutes=1)):
            assert d.deliveries.retry([carrier.id]).requeued == [carrier.id]
            runtime(d).deliver([carrier.id])
        [message] = smtp_server.to("ana@example.com")
        assert message.parse()["subject"] == "2 updates"
        text = text_of(message)
        assert "Luis changed" in text and "Marta changed" in text
    finally:
        settings.extra_templates_dirs.remove(tmp_path)
        close_runtime(d)
        d.close()
