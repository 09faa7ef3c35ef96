"""docker-compose.yml, checked without a Docker engine: every service's command exists
with the options it is given, every variable is a real setting, health checks and start
order are in place, and the broker never evicts."""

from __future__ import annotations

import re
from typing import Any

import click
import pytest
import yaml
from celery.bin.celery import celery as celery_group

from dispatcher.cli import main as dispatcher_group
from dispatcher.cli.health import role_of
from tests.conftest import ROOT
from tests.deploy.scripts import load_script

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
#: Services that run our image (``build: .``), one role each.
ROLES = {name: s for name, s in SERVICES.items() if s.get("build") == "."}
#: Variables that are not dispatcher settings: the third-party images' own, Flower's,
#: and the compose file's own knobs.
OTHER_VARIABLES = {
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "FLOWER_BASIC_AUTH",
    "IMAGE",
}
SETTINGS = {v.name for v in load_script("settings_reference").variables()}


def _option_names(command: click.Command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


def _flower_options() -> set[str]:
    import flower.options  # noqa: F401  (defines Flower's tornado options)
    from tornado.options import options

    return {name.replace("_", "-") for name in options._options}


def _check_command(argv: list[str]) -> None:
    """Fail unless ``argv`` is a command of the image with options it knows."""
    if argv[0] == "celery":
        assert argv[1:3] == ["-A", "worker"], argv
        assert (ROOT / "worker.py").is_file()
        sub, args = argv[3], argv[4:]
        if sub == "flower":
            # Tornado options: only --name=value works (--port 5555 fails at start).
            known = _flower_options()
            for arg in args:
                assert re.fullmatch(r"--[a-z_-]+=\S+", arg), f"flower wants --name=value: {arg}"
                assert arg[2:].split("=")[0].replace("_", "-") in known, arg
            return
        known = _option_names(celery_group.commands[sub])
    else:
        assert argv[0] == "dispatcher", argv
        sub, args = argv[1], argv[2:]
        assert sub in dispatcher_group.commands, f"no command dispatcher {sub}"
        known = _option_names(dispatcher_group.commands[sub])
    for arg in args:
        if arg.startswith("-"):
            assert arg.split("=")[0] in known, f"{' '.join(argv[:4])}: unknown option {arg}"


def test_the_stack_has_every_role_and_its_services() -> None:
    assert set(SERVICES) == {
        "redis",
        "postgres",
        "mailpit",
        "migrate",
        "worker",
        "worker-bulk",
        "beat",
        "flower",
        "gateway",
    }
    roles = {name: role_of(s["command"])[0] for name, s in ROLES.items()}
    assert sorted(roles.values()) == ["beat", "flower", "gateway", "migrate", "worker", "worker"]


@pytest.mark.parametrize("name", sorted(ROLES))
def test_every_command_exists_with_its_options(name: str) -> None:
    _check_command(ROLES[name]["command"])


@pytest.mark.parametrize("name", sorted(ROLES))
def test_every_role_checks_its_own_health(name: str) -> None:
    service = ROLES[name]
    role, options = role_of(service["command"])
    check = service["healthcheck"]
    if role == "migrate":
        assert check == {"disable": True}  # it runs once; the others wait for it to finish
        return
    test = check["test"]
    assert test[:4] == ["CMD", "dispatcher", "health", role]
    _check_command(test[1:])
    if role == "beat":
        assert test[test.index("--schedule-file") + 1] == str(options.schedule_file)


@pytest.mark.parametrize("name", sorted(ROLES))
def test_roles_wait_for_healthy_services_and_the_migration(name: str) -> None:
    needs = ROLES[name]["depends_on"]
    assert needs["postgres"] == {"condition": "service_healthy"}
    if name != "migrate":
        assert needs["redis"] == {"condition": "service_healthy"}
        assert needs["migrate"] == {"condition": "service_completed_successfully"}


def test_every_other_service_has_a_health_check_and_a_pinned_image() -> None:
    for name, service in SERVICES.items():
        if name in ROLES:
            continue
        assert service["healthcheck"]["test"][0] == "CMD", name
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), image


def test_every_variable_is_a_real_setting() -> None:
    used: set[str] = set()
    for service in SERVICES.values():
        used |= set(service.get("environment", {}))
    used |= set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    dispatcher_vars = {v for v in used if v.startswith("DISPATCHER_")}
    assert dispatcher_vars - SETTINGS == set()
    assert used - dispatcher_vars - OTHER_VARIABLES == set()
    assert {"DISPATCHER_WORKER_QUEUES", "DISPATCHER_DATABASE_URL"} <= dispatcher_vars


def test_the_secrets_compose_requires_are_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required == {
        "DISPATCHER_SIGNING_SECRET",
        "DISPATCHER_GATEWAY_JWT_SECRET",
        "FLOWER_BASIC_AUTH",
    }
    example = (ROOT / ".env.example").read_text().splitlines()
    assert {f"{name}=" for name in required} <= set(example)


def test_workers_split_the_queues_between_them_and_one_beat_runs() -> None:
    from dispatcher import names

    queues = [
        q
        for s in ROLES.values()
        if role_of(s["command"])[0] == "worker"
        for q in s["environment"]["DISPATCHER_WORKER_QUEUES"].split(",")
    ]
    assert sorted(f"{names.PREFIX}.{q}" for q in queues) == sorted(names.ALL)
    beats = [s for s in ROLES.values() if role_of(s["command"])[0] == "beat"]
    assert len(beats) == 1
    assert "deploy" not in beats[0]
    # Task events are not forced: DISPATCHER_TASK_EVENTS decides.
    assert all("-E" not in s["command"] for s in ROLES.values())


def test_redis_never_evicts_and_flower_is_behind_auth_on_the_loopback() -> None:
    command = SERVICES["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    flower = SERVICES["flower"]
    assert "FLOWER_BASIC_AUTH" in flower["environment"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]


def test_a_bad_command_or_option_is_caught() -> None:
    with pytest.raises(AssertionError, match="no command dispatcher serve"):
        _check_command(["dispatcher", "serve"])
    with pytest.raises(AssertionError, match="unknown option --workers"):
        _check_command(["celery", "-A", "worker", "worker", "--workers", "4"])
    with pytest.raises(AssertionError, match="flower wants --name=value"):
        _check_command(["celery", "-A", "worker", "flower", "--port", "5555"])
