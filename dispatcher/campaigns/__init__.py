"""Campaigns: bulk and scheduled sends to an audience, run chunk by chunk on the bulk queue.

* :mod:`~dispatcher.campaigns.definition`: what a campaign is, checked before it is stored.
* :mod:`~dispatcher.campaigns.audience`: audiences evaluated in the database, recorded per run.
* :mod:`~dispatcher.campaigns.segments`: named, reusable segments (``d.campaigns.segments``).
* :mod:`~dispatcher.campaigns.content`: templates made for a campaign, checked and stored.
* :mod:`~dispatcher.campaigns.runs`: a run's chunks, set-based (``INSERT … SELECT``), and
  its progress.
* :mod:`~dispatcher.campaigns.schedule`: cron expressions in an IANA zone, across DST.
* :mod:`~dispatcher.campaigns.tick`: beat starts due runs by claiming them.
* :mod:`~dispatcher.campaigns.preview`: the dry run.
* :mod:`~dispatcher.campaigns.api`: ``d.campaigns``.

This room sits between the face and the engine: it uses the engine's deliverer and
doorbell, so campaign notifications are ordinary notifications and deliveries, and the
engine's set-based in-app path (:mod:`~dispatcher.engine.bulk_inbox`, content rendered
once by :mod:`~dispatcher.engine.render_once`), which large direct events share.
"""

from dispatcher.campaigns.api import Campaigns
from dispatcher.campaigns.info import CampaignInfo, RunInfo
from dispatcher.campaigns.preview import ChannelPreview, Preview
from dispatcher.campaigns.segments import SegmentInfo, Segments

__all__ = [
    "CampaignInfo",
    "Campaigns",
    "ChannelPreview",
    "Preview",
    "RunInfo",
    "SegmentInfo",
    "Segments",
]
