"""Settings from the environment: every bad value names its variable."""

from __future__ import annotations

import pytest

from dispatcher import (
    ConfigurationError,
    Settings,
)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DISPATCHER_LEASE_SECONDS": "soon"}, "DISPATCHER_LEASE_SECONDS: Input should be a valid"),
        ({"DISPATCHER_SMTP_PORT": "smtp"}, "DISPATCHER_SMTP_PORT: Input should be a valid"),
        ({"DISPATCHER_PUSH_TIMEOUT": "x"}, "DISPATCHER_PUSH_TIMEOUT: Input should be a valid"),
        ({"DISPATCHER_GATEWAY_HEARTBEAT_SECONDS": "x"}, "DISPATCHER_GATEWAY_HEARTBEAT_SECONDS"),
    ],
)
def test_invalid_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env()


def test_settings_defaults_run_on_one_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("DISPATCHER_"):
            monkeypatch.delenv(key)
    s = Settings.from_env()
    assert s.database_url.startswith("sqlite:///")
    assert s.broker_url == "redis://127.0.0.1:6379/0"
    assert s.smtp.host is None and s.push.vapid_private_key is None
    assert (s.templates_dir / "ticket_created").is_dir()


def test_unparseable_database_url_is_a_configuration_error() -> None:
    from dispatcher.db.engine import Store

    with pytest.raises(ConfigurationError, match="DISPATCHER_DATABASE_URL: cannot parse"):
        Store("not a url")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/a,/b", ["/a", "/b"]),
        ("/a", ["/a"]),
        (" /a , /b ,", ["/a", "/b"]),
        ('["/a", "/b,c"]', ["/a", "/b,c"]),
        ("", []),
    ],
)
def test_list_settings_take_commas_or_json(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("DISPATCHER_EXTRA_TEMPLATES_DIRS", value)
    monkeypatch.setenv("DISPATCHER_TYPES_MODULES", value.replace("/", ""))
    settings = Settings.from_env()
    assert [str(p) for p in settings.extra_templates_dirs] == expected
    assert settings.types_modules == [e.replace("/", "") for e in expected]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DISPATCHER_EXTRA_TEMPLATES_DIRS", "[/a"),
        ("DISPATCHER_TYPES_MODULES", '["a", '),
        ("DISPATCHER_EXTRA_TEMPLATES_DIRS", "[1, [2]]"),
    ],
)
def test_a_bad_list_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"invalid configuration: {variable}: ")
