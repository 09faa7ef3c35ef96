"""``dispatcher templates ...`` through click's CliRunner on a real SQLite database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from dispatcher import Dispatcher
from dispatcher.cli import main
from dispatcher.db.models import TemplateVersion
from tests.conftest import ROOT, make_settings


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with Dispatcher(make_settings(url)) as d:
        d.migrate()
    return {
        "DISPATCHER_DATABASE_URL": url,
        "DISPATCHER_TYPES_MODULES": '["tests.app_types"]',
        "DISPATCHER_EXTRA_TEMPLATES_DIRS": f'["{ROOT / "tests" / "templates"}"]',
    }


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_preview_prints_every_part_in_the_locale(env: dict[str, str]) -> None:
    code, out, _ = run(env, "templates", "preview", "ticket_created", "--locale", "es")
    assert code == 0
    assert out.splitlines() == [
        "── title ──",
        "Entrada vendida: Copa del Rey Final",
        "── body ──",
        "Luis vendió 2 entradas #123 por 45,00\xa0€ (evento el 25 abr 2027, 20:00).",
        "── url ──",
        "/tickets/123",
    ]


def test_preview_with_data_and_errors(env: dict[str, str]) -> None:
    code, out, _ = run(
        env, "templates", "preview", "payout_sent", "--data", '{"payout_id": 5, "amount": "1"}'
    )
    assert (code, out.splitlines()[1]) == (0, "Payout 5 sent")
    code, _, err = run(env, "templates", "preview", "nope")
    assert code == 2 and "unknown notification type 'nope'" in err
    code, _, err = run(env, "templates", "preview", "payout_sent", "--data", "{")
    assert code == 2 and "not JSON" in err
    code, _, err = run(env, "templates", "preview", "payout_sent", "--data", '{"payout_id": "x"}')
    assert code == 2 and "invalid payload for 'payout_sent'" in err


def test_validate_passes_on_the_shipped_templates(env: dict[str, str], tmp_path: Path) -> None:
    # tests/templates also holds other tests' types (and a deliberately broken one):
    # validate the shipped folder plus only the app type this env registers.
    import shutil

    own = tmp_path / "app-templates"
    shutil.copytree(ROOT / "tests" / "templates" / "payout_sent", own / "payout_sent")
    env = {**env, "DISPATCHER_EXTRA_TEMPLATES_DIRS": f'["{own}"]'}
    code, out, err = run(env, "templates", "validate")
    assert (code, err) == (0, "")
    assert re.fullmatch(r"\d+ template file\(s\) and 0 database version\(s\) OK\n", out)


def test_validate_fails_with_file_line_and_reason(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "tpl"
    broken = {
        "ticket_created/es/in_app/title.j2": "Hola\n{{ selr }}",
        "ticket_created/en/in_app/body.j2": "{% for x in changes %}",
        "ticket_created/en/in_app/extra.j2": "x",
        "ticket_created/en/sms/title.j2": "x",
        "nope/en/in_app/title.j2": "x",
        "stray.j2": "x",
        "_layouts/base.html.j2": "{% block body %}",
    }
    for name, text in broken.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    env = {**env, "DISPATCHER_TEMPLATES_DIR": str(folder), "DISPATCHER_EXTRA_TEMPLATES_DIRS": "[]"}
    code, out, err = run(env, "templates", "validate")
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert f"{folder}/ticket_created/es/in_app/title.j2:2: missing variable 'selr'" in lines
    assert any(
        line.startswith(f"{folder}/ticket_created/en/in_app/body.j2:1: Unexpected end of template")
        for line in lines
    )
    assert f"{folder}/ticket_created/en/in_app/extra.j2: in_app has no part 'extra'; " in err
    assert f"{folder}/ticket_created/en/sms/title.j2: unknown channel 'sms'" in err
    assert f"{folder}/nope/en/in_app/title.j2: unknown notification type 'nope'" in err
    assert f"{folder}/stray.j2: not in the <type>/<locale>/<channel>/<part>.j2 layout" in lines
    assert any(line.startswith(f"{folder}/_layouts/base.html.j2:1: ") for line in lines)
    # Types with no template at all in the default locale are reported too.
    assert (
        "report_generated/en/in_app/title.j2: missing: no template in the default locale" in lines
    )
    assert lines[-1].endswith("problem(s)")


def test_save_history_restore_deactivate(env: dict[str, str], tmp_path: Path) -> None:
    good = tmp_path / "good.j2"
    good.write_text("¡{{ event_name }}!")
    bad = tmp_path / "bad.j2"
    bad.write_text("¡{{ event_name }}!\n{{ venue }}")
    key = ("ticket_created", "in_app", "es", "title")

    code, out, _ = run(env, "templates", "save", *key, str(good), "--by", "ana")
    assert (code, out.strip()) == (0, "saved ticket_created/es/in_app/title v1")
    code, _, err = run(env, "templates", "save", *key, str(bad))
    assert code == 2 and f"{bad}:2: missing variable 'venue'" in err
    code, out, _ = run(env, "templates", "preview", "ticket_created", "--locale", "es")
    assert out.splitlines()[1] == "¡Copa del Rey Final!"

    good.write_text("v2 {{ seller }}")
    assert run(env, "templates", "save", *key, str(good))[0] == 0
    code, out, _ = run(env, "templates", "history", *key)
    assert [line.split()[:2] for line in out.splitlines()] == [["*", "v2"], ["*", "v1"]]
    code, out, _ = run(env, "templates", "list")
    assert out.split()[:2] == ["ticket_created/es/in_app/title", "v2"]

    code, out, _ = run(env, "templates", "restore", *key, "--by", "ana")
    assert (code, out.strip()) == (0, "restored ticket_created/es/in_app/title as v3")
    code, out, _ = run(env, "templates", "preview", "ticket_created", "--locale", "es")
    assert out.splitlines()[1] == "¡Copa del Rey Final!"

    code, out, _ = run(env, "templates", "deactivate", *key)
    assert (code, out.strip()) == (0, "deactivated 3 version(s)")
    code, out, _ = run(env, "templates", "preview", "ticket_created", "--locale", "es")
    assert out.splitlines()[1] == "Entrada vendida: Copa del Rey Final"
    code, _, err = run(env, "templates", "restore", *key, "--version", "9")
    assert code == 2 and "no version 9" in err
    with Dispatcher(make_settings(env["DISPATCHER_DATABASE_URL"])) as d, d.store.session() as s:
        rows = s.scalars(select(TemplateVersion).order_by(TemplateVersion.version)).all()
        assert [(r.version, r.active, r.created_by) for r in rows] == [
            (1, False, "ana"),
            (2, False, None),
            (3, False, "ana"),
        ]
