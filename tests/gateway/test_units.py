"""Pure parts of the gateway: token checks, log redaction, pub/sub message parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr

from dispatcher.errors import AuthenticationError, ConfigurationError
from dispatcher.gateway.auth import TokenVerifier, bearer_token, subprotocol_token
from dispatcher.gateway.hub import parse
from dispatcher.gateway.redaction import TokenRedactingFilter, redact
from dispatcher.settings import GatewaySettings


def _claims(**extra: object) -> dict[str, object]:
    # Parameters are built at collection time: leave room for a long test run.
    return {"sub": "ana", "exp": int(time.time()) + 3 * 3600, **extra}


def _pem_public(private: object) -> str:
    return (
        private.public_key()  # type: ignore[attr-defined]
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize(
    ("algorithm", "make_key"),
    [
        ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
    ],
)
def test_asymmetric_tokens_verify_with_the_public_key_only(algorithm, make_key) -> None:
    private = make_key()
    public = _pem_public(private)
    verifier = TokenVerifier(GatewaySettings(jwt_algorithm=algorithm, jwt_public_key=public))
    good = jwt.encode(_claims(), private, algorithm=algorithm)
    assert verifier.verify(good).subscriber_id == "ana"
    # Algorithm confusion: an HS256 token "signed" with the public key is refused.
    # PyJWT refuses to HMAC with a PEM key, so the forgery is built by hand.

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(_claims()).encode())
    sig = b64(hmac.new(public.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    forged = f"{head}.{body}.{sig}"
    with pytest.raises(AuthenticationError):
        verifier.verify(forged)
    other = make_key()
    with pytest.raises(AuthenticationError):
        verifier.verify(jwt.encode(_claims(), other, algorithm=algorithm))


@pytest.mark.parametrize(
    ("settings", "variable"),
    [
        (GatewaySettings(), "DISPATCHER_GATEWAY_JWT_SECRET"),
        (GatewaySettings(jwt_secret=SecretStr("")), "DISPATCHER_GATEWAY_JWT_SECRET"),
        (GatewaySettings(jwt_algorithm="RS256"), "DISPATCHER_GATEWAY_JWT_PUBLIC_KEY"),
        (GatewaySettings(jwt_algorithm="none", jwt_secret=SecretStr("s")), "JWT_ALGORITHM"),
    ],
)
def test_missing_or_unsupported_key_settings_fail_at_start(settings, variable) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        TokenVerifier(settings)


@pytest.mark.parametrize(
    ("claims", "ok"),
    [
        (_claims(), True),
        ({"sub": "ana"}, False),  # no exp
        ({"exp": int(time.time()) + 60}, False),  # no sub
        (_claims(sub=""), False),
        (_claims(sub="a\x00b"), False),
        (_claims(exp=int(time.time()) - 1), False),
        (_claims(sub=42), False),
    ],
)
def test_required_claims(claims, ok) -> None:
    secret = "s" * 32
    verifier = TokenVerifier(GatewaySettings(jwt_secret=SecretStr(secret)))
    tok = jwt.encode(claims, secret, algorithm="HS256")
    if ok:
        assert verifier.verify(tok).subscriber_id == "ana"
    else:
        with pytest.raises(AuthenticationError, match=r"^invalid token$"):
            verifier.verify(tok)


def test_token_sources() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None
    assert subprotocol_token(["bearer", "t.o.k"]) == "t.o.k"
    assert subprotocol_token(["t.o.k"]) is None
    assert subprotocol_token(["bearer", "a", "b"]) is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('1.2.3.4 - "WebSocket /ws/notifications/eyJ.a.b/" [accepted]',
         '1.2.3.4 - "WebSocket /ws/notifications/***/" [accepted]'),
        ("GET /ws/notifications/eyJ.a.b HTTP/1.1", "GET /ws/notifications/*** HTTP/1.1"),
        ("GET /demo?token=eyJ.a.b&x=1 HTTP/1.1", "GET /demo?token=***&x=1 HTTP/1.1"),
        ("GET /ws/notifications?access_token=abc", "GET /ws/notifications?access_token=***"),
        ("Authorization: Bearer eyJ.a.b", "Authorization: Bearer ***"),
        ("GET /api/notifications HTTP/1.1", "GET /api/notifications HTTP/1.1"),
        ("POST /unsubscribe/abc.def HTTP/1.1", "POST /unsubscribe/*** HTTP/1.1"),
    ],
)  # fmt: skip
def test_redaction(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_redacting_filter_rewrites_uvicorn_style_records() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5", "/ws/notifications/secret.token.sig/"), None,
    )  # fmt: skip
    assert TokenRedactingFilter().filter(record)
    assert "secret" not in record.getMessage()


def test_parse_pubsub_messages() -> None:
    live = parse(json.dumps({"type": "notification", "subscriber": "a", "notification": {"id": 3}}))
    assert live is not None and live.notification_id == 3
    assert json.loads(live.text or "") == {"type": "notification", "notification": {"id": 3}}
    count = parse(b'{"type": "unread_count", "subscriber": "a", "count": 4}')
    assert count is not None and count.count == 4
    junk = [
        b"not json",
        b"[]",
        b'{"type": "notification"}',
        b'{"type": "notification", "notification": {"id": "x"}}',
        b'{"type": "other"}',
        b'{"type": "unread_count", "count": "4"}',
        b"\xff",
    ]
    for data in junk:
        assert parse(data) is None
