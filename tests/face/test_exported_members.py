"""``dispatcher.__all__`` is the public API: complete, and changed only on purpose."""

from __future__ import annotations

import types

import dispatcher

#: The public API. Adding or removing a name is an API change: edit this list with it.
EXPECTED = {
    "Dispatcher",
    "Settings",
    "Catalog",
    "EventReceipt",
    "Explanation",
    "InboxItem",
    "NotificationType",
    "PushSubscriptionInfo",
    "QuietWindow",
    "RateLimit",
    "EffectiveTemplate",
    "TemplateProblem",
    "TemplateVersionInfo",
    "DeliveryStatus",
    "EventStatus",
    "Priority",
    "Reason",
    "Channel",
    "MemoryChannel",
    "Message",
    "Outcome",
    "Recipient",
    "RetryPolicy",
    "default_channels",
    "Candidate",
    "Decision",
    "Policy",
    "default_policies",
    "CampaignInfo",
    "CampaignStatus",
    "Preview",
    "RunInfo",
    "SegmentInfo",
}


def test_every_exported_name_exists() -> None:
    missing = [name for name in dispatcher.__all__ if not hasattr(dispatcher, name)]
    assert missing == []


def test_every_public_name_of_the_package_is_exported() -> None:
    public = {
        name
        for name, value in vars(dispatcher).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(dispatcher.__all__)


def test_the_api_is_what_we_meant_it_to_be() -> None:
    errors = {
        name
        for name in dispatcher.__all__
        if isinstance(getattr(dispatcher, name), type)
        and issubclass(getattr(dispatcher, name), dispatcher.DispatcherError)
    }
    assert set(dispatcher.__all__) - errors == EXPECTED
    # Every error of the hierarchy an app can catch is exported.
    from dispatcher import errors as errors_module

    defined = {
        name
        for name, value in vars(errors_module).items()
        if isinstance(value, type) and issubclass(value, dispatcher.DispatcherError)
    }
    assert errors == defined


def test_worker_internals_are_not_on_the_face() -> None:
    d = dispatcher.Dispatcher
    for internal in ("run_fanout", "run_drain", "run_deliver", "deliverer", "rate_limiter"):
        assert not hasattr(d, internal), internal
    assert not any(name.startswith("run_") for name in dir(d))
