"""``explain``: the trail per recipient and channel, in Python and on the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from dispatcher import Dispatcher, NotFoundError, ValidationError
from dispatcher.cli import main
from dispatcher.engine.explain import parse_ref
from tests.conftest import settings_env
from tests.policies.support import at, deliveries, release, send

NIGHT = datetime(2026, 11, 27, 22, 30, tzinfo=UTC)  # 23:30 in Madrid


def _scenario(d: Dispatcher) -> int:
    """One event, four recipients, every kind of outcome."""
    d.subscribers.upsert("sent-user")
    d.subscribers.upsert("opted-out", timezone="Europe/Madrid")
    d.subscribers.upsert("sleeping", timezone="Europe/Madrid")
    d.preferences.set("opted-out", type="policy_ping", channel="recorder", enabled=False)
    d.quiet_hours.set("sleeping", [("22:00", "07:00")])
    with at(NIGHT):
        return send(
            d, "policy_ping", ["sent-user", "opted-out", "sleeping"], {"n": 1}, idempotency_key="k1"
        )


def test_explain_event_lists_every_recipient_and_channel(inproc: Dispatcher) -> None:
    d = inproc
    event = _scenario(d)
    e = d.explain(event)
    assert [r.subscriber_id for r in e.recipients] == ["opted-out", "sent-user", "sleeping"]
    summaries = {
        (r.subscriber_id, x.channel): x.summary for r in e.recipients for x in r.deliveries
    }
    assert summaries == {
        ("sent-user", "in_app"): "sent",
        ("sent-user", "recorder"): "sent",
        ("opted-out", "in_app"): "sent",
        ("opted-out", "recorder"): "skipped: opted_out (rule: type=policy_ping channel=recorder)",
        ("sleeping", "in_app"): "sent",
        ("sleeping", "recorder"): "scheduled: quiet_hours until 07:00 Europe/Madrid (06:00 UTC)",
    }
    held = e.recipients[2].deliveries[1]
    assert [(s.at, s.summary) for s in held.steps] == [
        (NIGHT, "created"),
        (NIGHT, "scheduled: quiet_hours until 07:00 Europe/Madrid (06:00 UTC)"),
    ]
    text = "\n".join(e.lines())
    assert f"event {event}  policy_ping  priority medium  fanned_out" in text
    assert "idempotency key k1" in text
    assert "    recorder  skipped: opted_out (rule: type=policy_ping channel=recorder)" in text
    assert "2026-11-27 22:30:00 UTC  scheduled: quiet_hours until 07:00" in text


def test_explain_shows_the_release_and_a_notification_alone(inproc: Dispatcher) -> None:
    d = inproc
    event = _scenario(d)
    with at(datetime(2026, 11, 28, 6, 0, tzinfo=UTC)):
        release(d)
    sleeping = deliveries(d, event)[("sleeping", "recorder")]
    e = d.explain(f"n{sleeping.notification_id}")
    assert [r.subscriber_id for r in e.recipients] == ["sleeping"]
    steps = [(s.at.hour, s.summary) for s in e.recipients[0].deliveries[1].steps]
    assert steps[-1] == (6, "sent") and steps[-2][1].startswith("scheduled: quiet_hours")
    assert d.explain("key:k1").event_id == event == d.explain(f"e{event}").event_id


def test_explain_rate_limited_and_template_error(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1")
    t0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    with at(t0):
        events = [send(d, "policy_limited", "u1", {"n": n}) for n in range(4)]
        broken = send(d, "broken_ping", "u1", {"n": 1})
    limited = d.explain(events[3]).recipients[0].deliveries[1]
    assert limited.summary.startswith("scheduled: rate_limited over 3 per minute on recorder")
    assert limited.scheduled_for == t0 + timedelta(seconds=60)
    failed = d.explain(broken).recipients[0].deliveries[0]
    assert failed.summary == "failed: template_error missing variable 'seller'"


def test_explain_collapsed(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1", timezone="Europe/Madrid")
    d.quiet_hours.set("u1", [("22:00", "07:00")])
    with at(NIGHT):
        first = send(d, "policy_ping", "u1", {"n": 1})
        second = send(d, "policy_ping", "u1", {"n": 2})
    with at(datetime(2026, 11, 28, 6, 0, tzinfo=UTC)):
        release(d)
    survivor = deliveries(d, second)[("u1", "recorder")].id
    folded = d.explain(first).recipients[0].deliveries[1]
    assert folded.summary == f"skipped: collapsed folded into delivery {survivor}"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("12", ("event", "12")),
        (12, ("event", "12")),
        ("e12", ("event", "12")),
        ("N7", ("notification", "7")),
        ("key:order-1:paid", ("key", "order-1:paid")),
    ],
)
def test_reference_forms(ref: str | int, expected: tuple[str, str]) -> None:
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "x12", "e", "12a", "key:", "-1"])
def test_bad_references_are_refused(ref: str) -> None:
    with pytest.raises(ValidationError, match="cannot explain"):
        parse_ref(ref)


def test_unknown_ids_are_not_found(inproc: Dispatcher) -> None:
    for ref in ("999", "n999", "key:nope"):
        with pytest.raises(NotFoundError):
            inproc.explain(ref)


def test_cli_prints_the_trail_and_json(inproc: Dispatcher) -> None:
    d = inproc
    event = _scenario(d)
    env = settings_env(d.settings)
    runner = CliRunner()
    result = runner.invoke(main, ["explain", f"e{event}"], env=env)
    assert result.exit_code == 0, result.output
    assert "skipped: opted_out (rule: type=policy_ping channel=recorder)" in result.output
    assert "scheduled: quiet_hours until 07:00 Europe/Madrid (06:00 UTC)" in result.output
    as_json = runner.invoke(main, ["explain", str(event), "--json"], env=env)
    data = json.loads(as_json.output)
    assert data["event_id"] == event
    assert data["recipients"][0]["deliveries"][1]["reason"] == "opted_out"
    assert data["recipients"][1]["deliveries"][0]["summary"] == "sent"
    missing = runner.invoke(main, ["explain", "n424242"], env=env)
    assert missing.exit_code == 2 and "no notification 424242" in missing.output
    bad = runner.invoke(main, ["explain", "zz"], env=env)
    assert bad.exit_code == 2 and "cannot explain 'zz'" in bad.output


def test_explain_before_fanout_says_so(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1")
    later = datetime(2030, 1, 1, tzinfo=UTC)
    receipt = d.notify("policy_ping", to="u1", data={"n": 1}, send_at=later)
    text = "\n".join(d.explain(receipt.id).lines())
    assert "pending" in text
    assert "send at 2030-01-01 00:00:00 UTC" in text
    assert "no notifications yet" in text
