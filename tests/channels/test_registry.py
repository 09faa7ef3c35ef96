"""Channels plug in: built-ins by one registry line, an app's by ``Dispatcher(channels=)``
or an entry point, and a channel registered from outside the package delivers through a
real worker."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from dispatcher import DeliveryStatus, Dispatcher, Reason
from dispatcher.channels import ChannelRegistry, default_channels
from dispatcher.channels.email.channel import EmailChannel
from dispatcher.channels.memory import MemoryChannel
from dispatcher.errors import ConfigurationError
from dispatcher.policies import default_policies
from tests.channels.sms import SmsChannel, outbox_key
from tests.conftest import ROOT, StartWorker, runtime, wait_for

PLUGIN_DIST = ROOT / "tests" / "plugin_dist"
SMS_TEMPLATES = ROOT / "tests" / "channels" / "templates"


def test_the_builtin_channels_are_one_registry_line_each() -> None:
    registry = ChannelRegistry()
    assert registry.names[:3] == ["in_app", "web_push", "email"]
    assert registry.get("email") is EmailChannel


def test_an_unknown_channel_is_a_configuration_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown channel 'fax'; known channels: in_app"):
        ChannelRegistry().get("fax")


def test_a_registration_whose_class_has_another_name_is_refused() -> None:
    registry = ChannelRegistry({"text": SmsChannel})
    with pytest.raises(ConfigurationError, match="whose name is 'sms'"):
        registry.get("text")


def test_a_module_that_cannot_be_imported_says_which_channel_needs_it() -> None:
    registry = ChannelRegistry({"pager": "no_such_module.pager:PagerChannel"})
    with pytest.raises(ConfigurationError, match=r"channel 'pager' \(no_such_module"):
        registry.get("pager")


@pytest.fixture
def plugin_dist_on_path() -> Iterator[Path]:
    """What ``pip install`` of a package with entry points does to this process."""
    sys.path.insert(0, str(PLUGIN_DIST))
    yield PLUGIN_DIST
    sys.path.remove(str(PLUGIN_DIST))


def test_installed_packages_add_channels_through_entry_points(plugin_dist_on_path: Path) -> None:
    channels = default_channels()
    assert channels["sms"] == "tests.channels.sms:SmsChannel"
    assert ChannelRegistry().get("sms") is SmsChannel
    assert "sms" not in ChannelRegistry({"in_app": "dispatcher.channels.in_app:InAppChannel"})


def test_installed_packages_add_policies_through_entry_points(tmp_path: Path) -> None:
    dist = tmp_path / "weekend_policy-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: weekend-policy\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[dispatcher.policies]\nweekend = dispatcher.policies.collapse:CollapsePolicy\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        names = [type(p).__name__ for p in default_policies()]
    finally:
        sys.path.remove(str(tmp_path))
    assert names == [
        "PreferencePolicy",
        "QuietHoursPolicy",
        "CollapsePolicy",
        "DigestPolicy",
        "RateLimitPolicy",
        "CollapsePolicy",
    ]


def test_an_apps_channel_passed_to_the_dispatcher_delivers_in_process(
    dispatcher: Dispatcher,
) -> None:
    """``MemoryChannel`` standing in for email: what an app's own tests would do."""
    d = Dispatcher(
        dispatcher.settings,
        channels={**default_channels(), "email": MemoryChannel.standing_in_for(EmailChannel)},
    )
    try:
        d.subscribers.upsert("ana", email="ana@example.com")
        d.subscribers.upsert("bob")
        receipt = d.notify("ticket_created", to=["ana", "bob"], data=_ticket(d))
        runtime(d).fanout(receipt.id)
        pending = [r.id for r in d.deliveries.list(status="pending")]
        runtime(d).deliver(pending)
        memory = d.channels.get("email")
        assert isinstance(memory, MemoryChannel)
        [message] = memory.sent
        assert message.recipient.external_id == "ana"
        assert message.content["subject"].startswith("Ticket sold:")
        rows = {(r.subscriber_id, r.channel): r for r in d.deliveries.list()}
        assert rows[("ana", "email")].status is DeliveryStatus.SENT
        assert rows[("bob", "email")].reason == Reason.NO_ADDRESS
    finally:
        d.close()


def _ticket(d: Dispatcher) -> dict[str, object]:
    return dict(d.catalog.get("ticket_created").example)


def test_a_channel_registered_outside_the_package_delivers_through_a_real_worker(
    dispatcher: Dispatcher, start_worker: StartWorker
) -> None:
    """One module (tests/channels/sms.py) plus one entry-point line: no edit in
    ``dispatcher/``. The worker learns of the channel from the installed metadata."""
    d = Dispatcher(dispatcher.settings, channels={**default_channels(), "sms": SmsChannel})
    try:
        from tests.channels.sms import register_types

        register_types(d.catalog)
        client = redis.Redis.from_url(d.settings.redis_url)
        client.delete(outbox_key(d.settings.redis_prefix))
        start_worker(
            {
                "PYTHONPATH": str(PLUGIN_DIST),
                "DISPATCHER_TYPES_MODULES": '["tests.app_types","tests.channels.sms"]',
                "DISPATCHER_EXTRA_TEMPLATES_DIRS": json.dumps(
                    [str(ROOT / "tests" / "templates"), str(SMS_TEMPLATES)]
                ),
            }
        )
        d.subscribers.upsert("ana", phone="+34600000001")
        d.subscribers.upsert("bob")  # no phone
        d.notify("sms_code", to=["ana", "bob"], data={"code": "481516"})
        sent = wait_for(lambda: client.lrange(outbox_key(d.settings.redis_prefix), 0, -1))
        [text] = [json.loads(x) for x in sent]
        assert text["to"] == "+34600000001" and text["text"] == "Your code is 481516."
        rows = wait_for(
            lambda: (
                (rows := {r.subscriber_id: r for r in d.deliveries.list(channel="sms")})
                and len(rows) == 2
                and all(r.status.is_final for r in rows.values())
                and rows
            )
        )
        assert rows["ana"].status is DeliveryStatus.SENT
        assert rows["bob"].status is DeliveryStatus.SKIPPED
        assert rows["bob"].reason == Reason.NO_ADDRESS
        client.close()
    finally:
        d.close()
