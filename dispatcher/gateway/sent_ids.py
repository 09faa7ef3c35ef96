"""What a socket remembers of the notifications it sent, to drop a duplicate.

A duplicate reaches a socket when a ``resume`` replay races the live messages, or when a
worker publishes a ping again (a delivery re-rung after a crash). Both happen within
moments of the first copy, so a socket remembers the ids it sent in the last
:data:`REMEMBER_SECONDS` (and never more than :data:`REMEMBER_AT_MOST`): what it holds
follows the recent traffic, not the socket's lifetime. A socket open for hours with a
steady stream would otherwise fill up to the cap (4,096 ids a socket, about 400 MB for a
gateway holding 1,000 such sockets).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

#: How long an id sent is remembered.
REMEMBER_SECONDS = 120.0
#: At most this many ids a socket (a resume replays up to ``resume_limit``, 1,000).
REMEMBER_AT_MOST = 4096


class SentIds:
    """The notification ids one socket sent recently."""

    def __init__(
        self,
        seconds: float = REMEMBER_SECONDS,
        at_most: int = REMEMBER_AT_MOST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.at_most = at_most
        self._clock = clock
        self._sent: OrderedDict[int, float] = OrderedDict()

    def first_time(self, notification_id: int) -> bool:
        """True if ``notification_id`` was not sent recently (and remember it now)."""
        now = self._clock()
        sent = self._sent
        cutoff = now - self.seconds
        while sent and (len(sent) >= self.at_most or next(iter(sent.values())) < cutoff):
            sent.popitem(last=False)
        if notification_id in sent:
            return False
        sent[notification_id] = now
        return True

    def __len__(self) -> int:
        return len(self._sent)
