"""The locales a template is looked up in, most specific first."""

from __future__ import annotations

import pytest

from dispatcher.templating.renderer import locale_chain


@pytest.mark.parametrize(
    ("locale", "chain"),
    [
        ("es-MX", ["es-MX", "es", "en"]),
        ("es", ["es", "en"]),
        (None, ["en"]),
        ("en-GB", ["en-GB", "en"]),
    ],
)
def test_locale_chain(locale: str | None, chain: list[str]) -> None:
    assert locale_chain(locale, "en") == chain
