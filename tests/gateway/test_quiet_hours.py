"""Quiet hours over REST against a real uvicorn gateway, on both backends: the caller's
own windows and time zone, the same rules and messages as Python, nothing half-saved."""

from __future__ import annotations

from datetime import time

import pytest

from dispatcher import Dispatcher, ValidationError
from tests.gateway_server import *  # noqa: F403  (fixtures)
from tests.gateway_server import GatewayServer


def python_error(d: Dispatcher, windows: list[tuple[object, ...]]) -> str:
    """What ``d.quiet_hours.set`` says about ``windows``."""
    with pytest.raises(ValidationError) as info:
        d.quiet_hours.set("ana", windows)  # type: ignore[arg-type]
    return str(info.value)


def test_get_put_delete_my_quiet_hours(dispatcher: Dispatcher, gateway: GatewayServer) -> None:
    dispatcher.subscribers.upsert("ana", timezone="UTC")
    dispatcher.subscribers.upsert("bo")
    with gateway.client("ana") as http:
        assert http.get("/api/quiet-hours").json() == {"timezone": "UTC", "windows": []}
        put = http.put(
            "/api/quiet-hours",
            json={
                "timezone": "Europe/Madrid",
                "windows": [
                    {"start": "22:00", "end": "07:00", "days": "weekdays"},
                    {"start": "13:00", "end": "16:00", "days": ["sat", 6]},
                ],
            },
        )
        assert put.status_code == 200, put.text
        expected = {
            "timezone": "Europe/Madrid",
            "windows": [
                {"start": "22:00", "end": "07:00", "days": ["mon", "tue", "wed", "thu", "fri"]},
                {"start": "13:00", "end": "16:00", "days": ["sat", "sun"]},
            ],
        }
        assert put.json() == expected
        assert http.get("/api/quiet-hours").json() == expected
    # Stored for ana only, as Python reads them.
    windows = dispatcher.quiet_hours.list("ana")
    assert [(w.start, w.end, w.days) for w in windows] == [
        (time(22), time(7), "01234"),
        (time(13), time(16), "56"),
    ]
    assert dispatcher.subscribers.get("ana").timezone == "Europe/Madrid"
    assert dispatcher.quiet_hours.list("bo") == []
    with gateway.client("ana") as http:
        gone = http.delete("/api/quiet-hours")
        assert gone.json() == {"changed": 2}
        assert http.get("/api/quiet-hours").json()["windows"] == []


@pytest.mark.parametrize(
    ("body", "python"),
    [
        ({"windows": [{"start": "25:00", "end": "07:00"}]}, [("25:00", "07:00")]),
        ({"windows": [{"start": "22:00", "end": "22:00"}]}, [("22:00", "22:00")]),
        (
            {"windows": [{"start": "22:00", "end": "07:00", "days": ["someday"]}]},
            [("22:00", "07:00", ["someday"])],
        ),
        (
            {"windows": [{"start": "00:00", "end": "23:59"}, {"start": "23:59", "end": "00:00"}]},
            None,
        ),
        ({"timezone": "Mars/Olympus", "windows": []}, None),
    ],
)
def test_bad_quiet_hours_get_pythons_message_and_save_nothing(
    dispatcher: Dispatcher, gateway: GatewayServer, body: dict[str, object], python: object
) -> None:
    dispatcher.subscribers.upsert("ana", timezone="UTC")
    dispatcher.quiet_hours.set("ana", [("01:00", "02:00")])
    with gateway.client("ana") as http:
        bad = http.put(
            "/api/quiet-hours", json={**body, "timezone": body.get("timezone", "Asia/Tokyo")}
        )
    assert bad.status_code == 400, bad.text
    detail = bad.json()["detail"]
    if python is not None:
        assert detail == python_error(dispatcher, python)  # type: ignore[arg-type]
    elif "timezone" in body:
        assert detail.startswith("unknown time zone 'Mars/Olympus'")
    else:
        assert detail.startswith("quiet hours cover the whole week")
    assert [(w.start, w.end) for w in dispatcher.quiet_hours.list("ana")] == [(time(1), time(2))]
    assert dispatcher.subscribers.get("ana").timezone == "UTC"


def test_shape_errors_and_unknown_subscribers(
    dispatcher: Dispatcher, gateway: GatewayServer
) -> None:
    dispatcher.subscribers.upsert("ana")
    with gateway.client("ana") as http:
        assert http.put("/api/quiet-hours", json={"windows": "all"}).status_code == 422
        assert http.put("/api/quiet-hours", json={"windows": [], "colour": 1}).status_code == 422
    with gateway.client("nobody") as http:
        assert http.get("/api/quiet-hours").status_code == 404
        assert http.put("/api/quiet-hours", json={"windows": []}).status_code == 404
        assert http.delete("/api/quiet-hours").status_code == 404
