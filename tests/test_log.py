"""Structured log lines."""

from __future__ import annotations

import logging

import pytest

from dispatcher import log as dlog


def test_kv_log_lines_quote_and_skip_none(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dispatcher")
    dlog.info("delivery.sent", delivery_id=7, reason=None, detail='a "b" c')
    assert caplog.records[-1].getMessage() == 'delivery.sent delivery_id=7 detail="a \\"b\\" c"'
    assert caplog.records[-1].fields == {"delivery_id": 7, "reason": None, "detail": 'a "b" c'}  # type: ignore[attr-defined]
