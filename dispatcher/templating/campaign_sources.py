"""Campaigns' own templates, as the renderer loads them.

A campaign that carries its own templates has a ``content`` key, a random token written
with the campaign and never reused; its parts are rows of ``campaign_templates`` under
that key and are never changed afterwards. So a process may keep them for as long as it
likes: there is nothing to refresh, and a key it has not seen is loaded on first use (the
rows are committed with the campaign, before any run of it exists).

Their Jinja names are ``<key>/<locale>/<channel>/<part>.j2``; a key starts with ``@``,
which no notification type name can, so they never meet a file or an operator's override.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

from sqlalchemy import select

from dispatcher.db.engine import Store
from dispatcher.db.models import CampaignTemplate
from dispatcher.templating.overrides import template_name

#: What every content key starts with.
KEY_PREFIX = "@"
#: Campaigns whose templates one process keeps at most (least recently used go first).
MAX_CAMPAIGNS = 256


def is_content_key(name: str) -> bool:
    """Whether ``name`` (a type name or a template's first path segment) is a content key."""
    return name.startswith(KEY_PREFIX)


class CampaignSources:
    """Campaign templates by content key, loaded once per key.

    Parameters:
        store: The database.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_key: OrderedDict[str, Mapping[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def sources(self, key: str) -> Mapping[str, str]:
        """Template name -> source of campaign content ``key`` (empty when unknown)."""
        with self._lock:
            found = self._by_key.get(key)
            if found is not None:
                self._by_key.move_to_end(key)
                return found
        with self.store.session() as session:
            rows = session.execute(
                select(
                    CampaignTemplate.locale,
                    CampaignTemplate.channel,
                    CampaignTemplate.part,
                    CampaignTemplate.source,
                ).where(CampaignTemplate.content == key)
            ).all()
        loaded = {template_name(key, r.locale, r.channel, r.part): r.source for r in rows}
        if loaded:  # an unknown key is not kept: its rows may not be committed yet
            with self._lock:
                self._by_key[key] = loaded
                while len(self._by_key) > MAX_CAMPAIGNS:
                    self._by_key.popitem(last=False)
        return loaded

    def source(self, name: str) -> str | None:
        """The source of template ``name`` (``<key>/<locale>/<channel>/<part>.j2``)."""
        key = name.split("/", 1)[0]
        if not is_content_key(key):
            return None
        return self.sources(key).get(name)
