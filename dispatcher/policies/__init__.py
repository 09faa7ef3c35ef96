"""The send-time policies, one module each, and the order they run in.

Preferences first (an opted-out delivery is never deferred), then quiet hours (a
delivery held for the night does not use up a rate-limit slot), then collapse (only
the survivor of a released group is counted), then rate limits.
"""

from __future__ import annotations

from dispatcher.policies.base import Policy
from dispatcher.policies.collapse import CollapsePolicy
from dispatcher.policies.preference import PreferencePolicy
from dispatcher.policies.quiet_hours import QuietHoursPolicy
from dispatcher.policies.rate_limit import RateLimiter, RateLimitPolicy


def default_policies(limiter: RateLimiter) -> list[Policy]:
    """Preference, quiet hours, collapse and rate limit, in that order."""
    return [PreferencePolicy(), QuietHoursPolicy(), CollapsePolicy(), RateLimitPolicy(limiter)]


__all__ = [
    "CollapsePolicy",
    "PreferencePolicy",
    "QuietHoursPolicy",
    "RateLimitPolicy",
    "default_policies",
]
