"""Click tokens and link rewriting (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.channels.clicks import LinkTracker, issue_click_token, verify_click_token
from dispatcher.errors import InvalidClickTokenError

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
SECRET = "s3cret"


def test_token_round_trip_and_expiry() -> None:
    token = issue_click_token(SECRET, 42, "https://a.example/x?y=1", ttl=timedelta(days=2), now=NOW)
    target = verify_click_token(token, SECRET, now=NOW)
    assert (target.delivery_id, target.url) == (42, "https://a.example/x?y=1")
    assert target.expires_at == datetime(2026, 12, 3, tzinfo=UTC)
    with pytest.raises(InvalidClickTokenError) as caught:
        verify_click_token(token, SECRET, now=target.expires_at)
    assert caught.value.expired
    with pytest.raises(InvalidClickTokenError) as forged:
        verify_click_token(token, "other", now=NOW)
    assert not forged.value.expired


def test_only_web_urls_are_signed_targets() -> None:
    token = issue_click_token(SECRET, 1, "javascript:alert(1)", now=NOW)
    with pytest.raises(InvalidClickTokenError, match="malformed"):
        verify_click_token(token, SECRET, now=NOW)


def test_rewrites_html_text_and_url_parts_but_not_our_own_links() -> None:
    tracker = LinkTracker(SECRET, "https://gw.example", now=NOW)
    content = {
        "subject": "See https://shop.example/a",
        "html": '<a href="https://shop.example/a?x=1&amp;y=2">A</a>'
        '<a href="https://gw.example/unsubscribe?token=t">U</a><a href="mailto:x@y">M</a>',
        "text": "Open https://shop.example/a. Or https://gw.example/preferences",
        "url": "https://gw.example/tickets/9",
    }
    out = tracker.rewrite(7, content, {"html": "html", "text": "text", "url": "url"})
    assert out["subject"] == content["subject"]
    assert out["html"].count('href="https://gw.example/c/') == 1
    assert 'href="https://gw.example/unsubscribe?token=t"' in out["html"]
    assert 'href="mailto:x@y"' in out["html"]
    token = out["html"].split("/c/")[1].split('"')[0]
    assert verify_click_token(token, SECRET, now=NOW).url == "https://shop.example/a?x=1&y=2"
    assert out["text"].startswith("Open https://gw.example/c/") and out["text"].count(". Or ") == 1
    assert out["text"].endswith("https://gw.example/preferences")
    assert verify_click_token(out["url"].rsplit("/", 1)[1], SECRET, now=NOW).delivery_id == 7
