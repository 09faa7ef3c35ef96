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


def test_json_lines_carry_the_event_and_its_ids() -> None:
    import io
    import json

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(dlog.JsonFormatter())
    dlog.logger.addHandler(handler)
    old = dlog.logger.level
    dlog.logger.setLevel(logging.INFO)
    try:
        dlog.info("delivery.skipped", delivery_id=7, reason="opted_out", until=None)
        logging.getLogger("dispatcher.other").warning("plain %s", "text")
        try:
            raise ValueError("boom")
        except ValueError:
            dlog.logger.exception("crashed")
    finally:
        dlog.logger.removeHandler(handler)
        dlog.logger.setLevel(old)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "delivery.skipped" and first["level"] == "info"
    assert (first["delivery_id"], first["reason"]) == (7, "opted_out")
    assert "until" not in first and first["ts"].endswith("+00:00")
    assert second == {**second, "message": "plain text", "logger": "dispatcher.other"}
    assert third["error"] == "ValueError" and "boom" in third["traceback"]
