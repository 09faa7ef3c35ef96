"""The send-time policies, one module each, and the order they run in.

Preferences first (an opted-out delivery is never deferred), then quiet hours (a
delivery held for the night does not use up a rate-limit slot), then collapse (only
the survivor of a released group is counted), then digests (an item held for a digest
uses no slot; the digest uses one), then rate limits.

An app passes its own list to ``Dispatcher(policies=...)`` (usually
``[*default_policies(), MyPolicy()]``); an installed package adds one with an entry
point in the ``dispatcher.policies`` group (a :class:`Policy` subclass built without
arguments), which :func:`default_policies` appends.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from dispatcher.errors import ConfigurationError
from dispatcher.policies.base import Candidate, Decision, Policy, PolicyChain
from dispatcher.policies.collapse import CollapsePolicy
from dispatcher.policies.digest import DigestPolicy
from dispatcher.policies.preference import PreferencePolicy
from dispatcher.policies.quiet_hours import QuietHoursPolicy
from dispatcher.policies.rate_limit import RateLimitPolicy

#: Entry-point group through which installed packages add policies.
ENTRY_POINT_GROUP = "dispatcher.policies"


def default_policies() -> list[Policy]:
    """Preference, quiet hours, collapse, digest and rate limit, in that order, then the
    policies installed packages register as entry points."""
    policies: list[Policy] = [
        PreferencePolicy(),
        QuietHoursPolicy(),
        CollapsePolicy(),
        DigestPolicy(),
        RateLimitPolicy(),
    ]
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = point.load()
        except ImportError as exc:
            raise ConfigurationError(f"policy {point.name!r} ({point.value}): {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Policy)):
            raise ConfigurationError(f"policy {point.name!r} ({point.value}) is not a Policy")
        policies.append(cls())
    return policies


__all__ = [
    "Candidate",
    "CollapsePolicy",
    "Decision",
    "DigestPolicy",
    "Policy",
    "PolicyChain",
    "PreferencePolicy",
    "QuietHoursPolicy",
    "RateLimitPolicy",
    "default_policies",
]
