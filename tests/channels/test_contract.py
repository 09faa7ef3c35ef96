"""The contract every registered channel passes: ours, the test double, and those
registered from outside the package (tests/plugin_dist), as apprise tests every plugin."""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Iterator

import pytest

from dispatcher import Dispatcher
from dispatcher.channels import Channel, ChannelContext, ChannelRegistry, RetryPolicy
from dispatcher.channels.base import Outcome
from dispatcher.channels.memory import MemoryChannel
from dispatcher.subscribers.recipient import Recipient
from tests.conftest import ROOT

PLUGIN_DIST = str(ROOT / "tests" / "plugin_dist")


def _registry() -> ChannelRegistry:
    sys.path.insert(0, PLUGIN_DIST)
    try:
        from dispatcher.channels import default_channels

        return ChannelRegistry({**default_channels(), "memory": MemoryChannel})
    finally:
        sys.path.remove(PLUGIN_DIST)


REGISTRY = _registry()


@pytest.fixture(params=REGISTRY.names)
def channel(request: pytest.FixtureRequest, dispatcher: Dispatcher) -> Iterator[Channel]:
    instance = REGISTRY.get(request.param)(ChannelContext(dispatcher.settings, dispatcher.store))
    yield instance
    asyncio.run(instance.close())


def test_every_registered_channel_is_registered_under_its_own_name() -> None:
    assert {"in_app", "web_push", "email", "recorder", "sms", "memory"} <= set(REGISTRY)
    for name in REGISTRY:
        assert REGISTRY.get(name).name == name


def test_declares_template_parts(channel: Channel) -> None:
    assert channel.parts and all(isinstance(p, str) and p for p in channel.parts)
    assert set(channel.optional_parts) <= set(channel.parts)


def test_declares_what_it_needs_as_class_attributes(channel: Channel) -> None:
    assert channel.address_kind is None or isinstance(channel.address_kind, str)
    assert isinstance(channel.stores_silently, bool)
    assert isinstance(channel.stores_in_transaction, bool)
    if channel.stores_in_transaction:  # such a channel must be able to store
        assert type(channel).store is not Channel.store


def test_answers_configuration_and_retry_questions(channel: Channel) -> None:
    assert isinstance(channel.is_configured(), bool)
    assert isinstance(channel.retry_policy, RetryPolicy)
    assert channel.retry_policy.max_attempts >= 1


def test_sends_asynchronously(channel: Channel) -> None:
    assert inspect.iscoroutinefunction(type(channel).send)
    assert type(channel).send is not Channel.send


def test_knows_who_it_cannot_reach(channel: Channel, dispatcher: Dispatcher) -> None:
    nobody = Recipient(10**9, "nobody", "en", "UTC")
    with dispatcher.store.session() as session:
        missing = channel.missing_addresses([nobody], session)
    assert missing <= {nobody.id}
    if channel.address_kind is not None:
        assert missing == {nobody.id}
        reachable = Recipient(1, "x", "en", "UTC", {channel.address_kind: "someone"})
        assert not channel.address_missing(reachable)


def test_an_empty_batch_sends_nothing(channel: Channel) -> None:
    if channel.stores_in_transaction or not channel.is_configured():
        pytest.skip("stores in the deliverer's transaction, or has no provider configured")
    outcomes = asyncio.run(channel.send([]))
    assert list(outcomes) == []
    assert all(isinstance(o, Outcome) for o in outcomes)
