"""Pure parts of web push: subscription checks, payload limits, headers, VAPID signing."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from dispatcher import ConfigurationError, InvalidSubscriptionError, Priority
from dispatcher.channels.web_push.channel import parse_retry_after
from dispatcher.channels.web_push.payload import MAX_PLAINTEXT_BYTES, build_payload, topic, urgency
from dispatcher.channels.web_push.subscriptions import parse_subscription
from dispatcher.channels.web_push.vapid import VapidKey, VapidSigner, b64url_encode
from dispatcher.cli import main
from dispatcher.seed_types import SEED_TYPES
from dispatcher.settings import PushSettings
from tests.push_service import Device, verify_jwt


def _sub(endpoint: str = "https://fcm.googleapis.com/fcm/send/abc", **keys: object) -> dict:
    device = Device.new("https://push.example")
    base = device.subscription()["keys"]
    return {"endpoint": endpoint, "keys": {**base, **keys}}


def _not_on_curve() -> str:
    return b64url_encode(b"\x04" + (1).to_bytes(32, "big") + (1).to_bytes(32, "big"))


class TestParseSubscription:
    def test_accepts_browser_json_and_normalises_padding(self) -> None:
        sub = _sub()
        padded = dict(sub, keys={k: v + "=" * (-len(v) % 4) for k, v in sub["keys"].items()})
        parsed = parse_subscription(json.dumps(padded))
        assert parsed.endpoint == sub["endpoint"]
        assert parsed.p256dh == sub["keys"]["p256dh"] and "=" not in parsed.p256dh
        assert parsed.auth == sub["keys"]["auth"]

    @pytest.mark.parametrize(
        ("subscription", "message"),
        [
            ("{not json", "not valid JSON"),
            ([1, 2], "must be a JSON object"),
            ({"keys": {}}, "endpoint must be a non-empty string"),
            (_sub("http://push.example/x"), "must be an https:// URL"),
            (_sub("ftp://push.example/x"), "must be an https:// URL"),
            (_sub("https:///nohost"), "has no host"),
            (_sub("https://user:pw@push.example/x"), "must not carry credentials"),
            (_sub("https://push.example/" + "a" * 2100), "longer than 2048"),
            ({"endpoint": "https://push.example/x"}, "keys must be an object"),
            (_sub(p256dh="abc+/def"), "p256dh is not base64url"),
            (_sub(p256dh=b64url_encode(b"\x04" + b"\x01" * 40)), "65 bytes"),
            (_sub(p256dh=_not_on_curve()), "not a point on the P-256 curve"),
            (_sub(auth=b64url_encode(os.urandom(15))), "16-byte secret, got 15"),
            (_sub(auth=""), "auth must be a non-empty string"),
            (_sub(auth="a"), "auth is not base64url"),
        ],
    )
    def test_refuses_malformed(self, subscription: object, message: str) -> None:
        with pytest.raises(InvalidSubscriptionError, match=message.replace("+", r"\+")):
            parse_subscription(subscription)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("endpoint", "allowed"),
        [
            ("http://127.0.0.1:8080/push/a", True),
            ("http://localhost:8080/push/a", True),
            ("http://[::1]:8080/push/a", True),
            ("http://10.0.0.1/push/a", False),
            ("http://127.0.0.1.example.com/push/a", False),
        ],
    )
    def test_loopback_http_only_with_the_setting(self, endpoint: str, allowed: bool) -> None:
        with pytest.raises(InvalidSubscriptionError, match="https://"):
            parse_subscription(_sub(endpoint))
        if allowed:
            assert parse_subscription(_sub(endpoint), allow_insecure_loopback=True)
        else:
            with pytest.raises(InvalidSubscriptionError, match=r"only on 127\.0\.0\.1/localhost"):
                parse_subscription(_sub(endpoint), allow_insecure_loopback=True)


class TestPayload:
    def _build(self, **content: str) -> dict:
        raw = build_payload(
            {"title": "T", "body": "B", "url": "/x", **content},
            notification_id=77,
            type_name="ticket_created",
            priority=Priority.HIGH,
        )
        return json.loads(raw)

    def test_fields_a_service_worker_shows(self) -> None:
        assert self._build() == {
            "title": "T",
            "body": "B",
            "url": "/x",
            "tag": "notification-77",
            "notification_id": 77,
            "type": "ticket_created",
            "priority": "high",
        }
        assert self._build(icon="/i.png", tag="t1")["icon"] == "/i.png"
        assert self._build(tag="t1")["tag"] == "t1"

    def test_long_body_is_cut_on_a_character_boundary(self) -> None:
        body = "ñandú 🎟️ " * 1000
        raw = build_payload(
            {"title": "T", "body": body, "url": "/x"},
            notification_id=1,
            type_name="t",
            priority=Priority.LOW,
        )
        assert MAX_PLAINTEXT_BYTES - 8 <= len(raw) <= MAX_PLAINTEXT_BYTES
        shortened = json.loads(raw.decode("utf-8"))["body"]  # strict decoding: no half chars
        assert shortened.endswith("…")
        assert body.startswith(shortened[:-1])

    @settings(max_examples=60, deadline=None)
    @given(
        body=st.text(min_size=0, max_size=6000),
        title=st.text(max_size=3000),
    )
    def test_any_text_fits_and_stays_valid_utf8(self, body: str, title: str) -> None:
        raw = build_payload(
            {"title": title, "body": body, "url": "/x"},
            notification_id=1,
            type_name="t",
            priority=Priority.LOW,
        )
        assert len(raw) <= MAX_PLAINTEXT_BYTES
        doc = json.loads(raw.decode("utf-8"))
        assert doc["url"] == "/x"
        if len(json.dumps({"title": title, "body": body}, ensure_ascii=False)) < 3500:
            assert (doc["title"], doc["body"]) == (title, body)

    def test_enormous_url_is_a_permanent_failure(self) -> None:
        from dispatcher import PermanentDeliveryError

        with pytest.raises(PermanentDeliveryError) as info:
            self._build(url="/" + "x" * 5000)
        assert info.value.reason == "payload_too_large"


@pytest.mark.parametrize(
    ("priority", "realtime", "expected"),
    [
        (Priority.LOW, True, "low"),
        (Priority.MEDIUM, True, "normal"),
        (Priority.HIGH, True, "high"),
        (Priority.URGENT, True, "high"),
        (Priority.HIGH, False, "very-low"),
    ],
)
def test_urgency(priority: Priority, realtime: bool, expected: str) -> None:
    assert urgency(priority, realtime=realtime) == expected


def test_topic_is_stable_short_and_url_safe() -> None:
    value = topic(2**63 - 1)
    assert value == topic(2**63 - 1) and len(value) <= 32
    assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", timedelta(seconds=120)),
        ("0", timedelta(0)),
        ("9999999", timedelta(days=1)),
        ("Fri, 27 Nov 2026 12:05:00 GMT", timedelta(minutes=5)),
        ("Fri, 27 Nov 2026 11:00:00 GMT", timedelta(0)),
        ("soon", None),
        (None, None),
    ],
)
@freeze_time("2026-11-27 12:00:00")
def test_retry_after(value: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(value) == expected


class TestVapid:
    def test_key_round_trips_through_raw_pem_and_der(self) -> None:
        key = VapidKey.generate()
        for text in (key.private_key_b64, key.private_pem()):
            assert VapidKey.from_text(text).public_key_b64 == key.public_key_b64
        assert len(base64.urlsafe_b64decode(key.public_key_b64 + "=")) == 65

    def test_settings_read_the_variable_or_the_file(self, tmp_path: Path) -> None:
        key = VapidKey.generate()
        assert not PushSettings().is_configured()
        from_env = PushSettings(vapid_private_key=SecretStr(key.private_key_b64))
        assert from_env.is_configured()
        assert VapidKey.from_settings(from_env).public_key_b64 == key.public_key_b64
        path = tmp_path / "vapid.pem"
        path.write_text(key.private_pem())
        from_file = PushSettings(vapid_private_key_file=path)
        assert VapidKey.from_settings(from_file).public_key_b64 == key.public_key_b64
        missing = PushSettings(vapid_private_key_file=tmp_path / "nope.pem")
        with pytest.raises(ConfigurationError, match="VAPID_PRIVATE_KEY_FILE: cannot read"):
            VapidKey.from_settings(missing)

    @pytest.mark.parametrize("variable", ["DEFAULT_TTL_SECONDS", "TIMEOUT", "CONCURRENCY"])
    def test_zero_ttl_timeout_or_concurrency_is_refused(
        self, variable: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from dispatcher import Settings

        monkeypatch.setenv(f"DISPATCHER_PUSH_{variable}", "0")
        with pytest.raises(ConfigurationError, match=f"DISPATCHER_PUSH_{variable}"):
            Settings.from_env()

    def test_bad_or_mismatched_keys_are_configuration_errors(self) -> None:
        with pytest.raises(ConfigurationError, match="not a VAPID private key") as info:
            VapidKey.from_text("c2VjcmV0LXNlY3JldA")
        assert "c2VjcmV0" not in str(info.value)  # never echo the secret
        other = VapidKey.generate().public_key_b64
        settings_ = PushSettings(
            vapid_private_key=SecretStr(VapidKey.generate().private_key_b64),
            vapid_public_key=other,
        )
        with pytest.raises(ConfigurationError, match="does not belong"):
            VapidKey.from_settings(settings_)
        with pytest.raises(ConfigurationError, match="VAPID_SUBJECT"):
            VapidSigner(VapidKey.generate(), "admin@example.com")

    def test_signs_once_per_origin_with_fresh_claims(self) -> None:
        key = VapidKey.generate()
        signer = VapidSigner(key, "mailto:ops@example.com")
        a1 = signer.authorization("https://fcm.googleapis.com/fcm/send/1")
        a2 = signer.authorization("https://fcm.googleapis.com/fcm/send/2")
        b = signer.authorization("https://updates.push.services.mozilla.com/wpush/v2/x")
        assert a1 == a2 and a1 != b and signer.signatures == 2

        def claims(header: str) -> dict:
            params = dict(p.split("=", 1) for p in header.split(" ", 1)[1].split(","))
            assert params["k"] == key.public_key_b64
            return verify_jwt(params["t"], params["k"])

        assert claims(a1)["aud"] == "https://fcm.googleapis.com"
        assert claims(b)["aud"] == "https://updates.push.services.mozilla.com"
        assert claims(b)["sub"] == "mailto:ops@example.com"
        # A claims dict is built per signature: mutating one cannot leak into the next.
        first = signer.claims_for("https://a.example", datetime.now(UTC))
        first["aud"] = "https://evil.example"
        assert signer.claims_for("https://b.example", datetime.now(UTC))["aud"] == (
            "https://b.example"
        )

    def test_renews_before_expiry_across_a_dst_change(self) -> None:
        signer = VapidSigner(VapidKey.generate(), "mailto:ops@example.com")
        endpoint = "https://fcm.googleapis.com/fcm/send/1"
        # Europe/Madrid leaves summer time at 01:00 UTC on 2026-10-25; UTC math ignores it.
        with freeze_time("2026-10-24 20:00:00") as clock:
            first = signer.authorization(endpoint)
            clock.tick(timedelta(hours=10, minutes=59))
            assert signer.authorization(endpoint) == first
            clock.tick(timedelta(minutes=2))  # under an hour left: sign again
            renewed = signer.authorization(endpoint)
        assert renewed != first and signer.signatures == 2
        exp = verify_jwt(renewed.split("t=")[1].split(",")[0], signer.key.public_key_b64)["exp"]
        assert exp == int(datetime(2026, 10, 25, 19, 1, tzinfo=UTC).timestamp())


def test_cli_generate_prints_settings_that_load(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["vapid", "generate", "--subject", "mailto:a@b.example"])
    assert result.exit_code == 0, result.output
    values = dict(
        line.split("=", 1) for line in result.output.splitlines() if not line.startswith("#")
    )
    settings_ = PushSettings(
        vapid_private_key=SecretStr(values["DISPATCHER_PUSH_VAPID_PRIVATE_KEY"]),
        vapid_public_key=values["DISPATCHER_PUSH_VAPID_PUBLIC_KEY"],
    )
    key = VapidKey.from_settings(settings_)
    point = base64.urlsafe_b64decode(values["DISPATCHER_PUSH_VAPID_PUBLIC_KEY"] + "=")
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    assert key.public_key_b64 == values["DISPATCHER_PUSH_VAPID_PUBLIC_KEY"]
    assert values["DISPATCHER_PUSH_VAPID_SUBJECT"] == "mailto:a@b.example"

    pem = tmp_path / "vapid.pem"
    result = CliRunner().invoke(main, ["vapid", "generate", "--private-key-file", str(pem)])
    assert result.exit_code == 0 and pem.stat().st_mode & 0o777 == 0o600
    assert "PRIVATE_KEY=" not in result.output.replace("PRIVATE_KEY_FILE=", "")
    again = CliRunner().invoke(main, ["vapid", "generate", "--private-key-file", str(pem)])
    assert again.exit_code != 0 and "cannot create" in again.output
    bad = CliRunner().invoke(main, ["vapid", "generate", "--subject", "ops"])
    assert bad.exit_code != 0 and "mailto:" in bad.output


@pytest.mark.parametrize("locale", ["en", "es"])
@pytest.mark.parametrize(
    "seed",
    [t for t in SEED_TYPES if "web_push" in t.channels],
    ids=lambda t: t.name,
)
def test_seed_push_templates_render_in_both_locales(seed, locale: str) -> None:
    from dispatcher.channels.web_push.channel import WebPushChannel
    from dispatcher.settings import DEFAULT_TEMPLATES_DIR
    from dispatcher.templating.renderer import Renderer

    renderer = Renderer([DEFAULT_TEMPLATES_DIR])
    for part in ("title", "body", "url"):  # the locale's own file, not the fallback
        assert renderer.find(seed.name, "web_push", part, locale) == (
            f"{seed.name}/{locale}/web_push/{part}.j2"
        )
    data = seed.validate(seed.example)
    context = {
        **data,
        "data": data,
        "recipient": {"id": "u", "email": None, "locale": locale, "timezone": "UTC"},
        "notification": {"id": 5, "type": seed.name, "category": seed.category},
    }
    content = renderer.render(
        seed.name,
        "web_push",
        WebPushChannel.parts,
        locale,
        context,
        optional=WebPushChannel.optional_parts,
    )
    assert content["title"] and content["body"] and content["url"].startswith("/")
    doc = json.loads(
        build_payload(content, notification_id=5, type_name=seed.name, priority=seed.priority)
    )
    assert doc["title"] == content["title"] and doc["body"] == content["body"]
