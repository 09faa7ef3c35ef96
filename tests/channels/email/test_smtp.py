"""How SMTP replies are classified (pure function)."""

from __future__ import annotations

import pytest

from dispatcher.channels.email.smtp import Envelope, classify_reply
from dispatcher.enums import Reason
from dispatcher.errors import PermanentDeliveryError, TransientDeliveryError


@pytest.mark.parametrize(
    ("code", "kind", "reason"),
    [
        (421, TransientDeliveryError, "smtp_421"),
        (450, TransientDeliveryError, "smtp_450"),
        (451, TransientDeliveryError, "smtp_451"),
        (452, TransientDeliveryError, "smtp_452"),
        (530, TransientDeliveryError, "smtp_auth_required"),
        (535, TransientDeliveryError, "smtp_auth_required"),
        (550, PermanentDeliveryError, Reason.REJECTED),
        (552, PermanentDeliveryError, Reason.REJECTED),
        (553, PermanentDeliveryError, Reason.REJECTED),
        (554, PermanentDeliveryError, Reason.REJECTED),
        (-1, TransientDeliveryError, "smtp_error"),
    ],
)
def test_reply_classification(code: int, kind: type, reason: str) -> None:
    error = classify_reply(code, "5.1.1 text", stage="RCPT")
    assert type(error) is kind
    assert error.reason == reason
    assert str(error) == f"SMTP {code} 5.1.1 text (at RCPT)"


@pytest.mark.parametrize(
    "address", ["a b@example.com", "<a@example.com>", "ñ@example.com", "a@x\r\n"]
)
def test_envelope_refuses_addresses_that_could_break_the_command(address: str) -> None:
    with pytest.raises(ValueError, match="plain ASCII address"):
        Envelope("noreply@example.com", address, b"")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DISPATCHER_SMTP_SECURITY", "ssl"),
        ("DISPATCHER_SMTP_POOL_SIZE", "0"),
        ("DISPATCHER_SMTP_TIMEOUT", "-1"),
    ],
)
def test_bad_smtp_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    from dispatcher import ConfigurationError, Settings

    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env()
