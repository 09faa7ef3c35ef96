"""Templates made for a campaign: checked at create like operators' templates (a broken
one is refused precisely and writes nothing), stored with the campaign, rendered once per
locale with the usual fallback (``de-AT`` -> ``de`` -> ``en``), in the dry run, in-process
and through a real worker to in-app and a real SMTP server."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from dispatcher import Dispatcher, InvalidCampaignError, TemplateError
from dispatcher.db.models import Campaign, CampaignTemplate, Delivery
from tests.campaigns.support import add_subscribers, run_all
from tests.conftest import StartWorker, runtime, wait_for
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)

IN_APP = {
    "en": {"title": "[C] {{ report_name }} is out", "body": "{{ tickets_sold }} tickets sold"},
    "de": {"title": "[C] {{ report_name }} ist da"},  # the body falls back to en
}
EMAIL = {
    "en": {
        "subject": "[C] Report {{ report_name }}",
        "text": "Sold: {{ tickets_sold }}",
        "html": "<p>Sold: <b>{{ tickets_sold }}</b> &mdash; {{ report_name }}</p>",
    },
    "de": {"subject": "[C] Bericht {{ report_name }}"},
}


def report(d: Dispatcher) -> dict[str, Any]:
    return dict(d.catalog.get("report_generated").example)


def count(d: Dispatcher, model: type) -> int:
    with d.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def people(d: Dispatcher) -> None:
    add_subscribers(d, 2, locale="en")  # s000000, s000001
    add_subscribers(d, 2, start=2, locale="de")  # s000002, s000003
    add_subscribers(d, 1, start=4, locale="de-AT")  # s000004 -> de
    add_subscribers(d, 1, start=5, locale="fr")  # s000005 -> en


@pytest.mark.parametrize(
    ("templates", "error", "words"),
    [
        (
            {"in_app": {"en": {"title": "{{ report_name ", "body": "b"}}},
            TemplateError,
            "templates.in_app.en.title:1: unexpected end of template",
        ),
        (
            {"in_app": {"en": {"title": "t", "body": "{{ sellr }}"}}},
            TemplateError,
            "templates.in_app.en.body:1: missing variable 'sellr'",
        ),
        (
            {"in_app": {"en": {"title": "{{ report_name.__class__ }}", "body": "b"}}},
            TemplateError,
            "templates.in_app.en.title:1: unsafe",
        ),
        (
            {"in_app": {"en": {"title": "t", "body": "b"}, "de": {"title": "{{ nope }}"}}},
            TemplateError,
            "templates.in_app.de.title:1: missing variable 'nope'",
        ),
        ({"in_app": {"de": {"title": "t", "body": "b"}}}, "templates.in_app", "default locale"),
        ({"in_app": {"en": {"title": "t"}}}, "templates.in_app.en", "missing part(s) ['body']"),
        (
            {"in_app": {"en": {"title": "t", "body": "b", "footer": "f"}}},
            "templates.in_app.en",
            "in_app has no part 'footer'",
        ),
        ({"in_app": {"xx-QQ": {"title": "t"}}}, "templates.in_app", "xx-QQ"),
        ({"in_app": {"en": {"title": " ", "body": "b"}}}, "templates.in_app.en.title", "empty"),
        ({"email": {"en": {"subject": "s"}}}, "templates", "not among this campaign's channels"),
        ({}, "templates", "non-empty object"),
    ],
)
def test_a_broken_campaign_template_is_refused_at_create_and_writes_nothing(
    dispatcher: Dispatcher, templates: dict[str, Any], error: Any, words: str
) -> None:
    d = dispatcher
    kind = error if isinstance(error, type) else InvalidCampaignError
    with pytest.raises(kind) as caught:
        d.campaigns.create(
            "broken",
            type="report_generated",
            data=report(d),
            channels=["in_app"],
            audience={"all": True},
            templates=templates,
        )
    assert words in str(caught.value), str(caught.value)
    if kind is InvalidCampaignError:
        assert caught.value.field == error  # type: ignore[attr-defined]
    assert (count(d, Campaign), count(d, CampaignTemplate)) == (0, 0)


def test_every_channel_sent_on_needs_templates(dispatcher: Dispatcher) -> None:
    d = dispatcher
    with pytest.raises(InvalidCampaignError) as caught:
        d.campaigns.create(
            "half",
            type="report_generated",
            data=report(d),
            audience={"all": True},
            templates={"in_app": IN_APP},
        )
    assert caught.value.field == "templates"
    assert "no templates for channel(s) ['email']" in str(caught.value)
    assert (count(d, Campaign), count(d, CampaignTemplate)) == (0, 0)


def test_they_are_stored_shown_previewed_and_rendered_once_per_locale(
    dispatcher: Dispatcher,
) -> None:
    d = dispatcher
    people(d)
    data = report(d)
    campaign = d.campaigns.create(
        "own",
        type="report_generated",
        data=data,
        channels=["in_app"],
        audience={"all": True},
        templates={"in_app": IN_APP},
    )
    assert d.campaigns.get(campaign.id).templates == {"in_app": IN_APP}
    assert "content" not in campaign.to_dict()
    samples = d.campaigns.preview(campaign.id).samples
    name = data["report_name"]
    assert samples["de"]["in_app"] == {"title": f"[C] {name} ist da", "body": "1204 tickets sold"}
    assert samples["de-AT"]["in_app"]["title"] == f"[C] {name} ist da"
    assert samples["fr"]["in_app"]["title"] == f"[C] {name} is out"
    run = d.campaigns.start(campaign.id)
    run_all(d, run.id)
    titles = {who: [i.title for i in d.inbox(who)] for who in (f"s00000{n}" for n in range(6))}
    assert titles == {
        "s000000": [f"[C] {name} is out"],
        "s000001": [f"[C] {name} is out"],
        "s000002": [f"[C] {name} ist da"],
        "s000003": [f"[C] {name} ist da"],
        "s000004": [f"[C] {name} ist da"],
        "s000005": [f"[C] {name} is out"],
    }
    assert [i.body for i in d.inbox("s000002")] == ["1204 tickets sold"]
    # The type's own templates are untouched: a plain campaign of the type uses them.
    plain = d.campaigns.create(
        "plain", type="report_generated", data=data, channels=["in_app"], audience={"all": True}
    )
    assert not d.campaigns.preview(plain.id).samples["en"]["in_app"]["title"].startswith("[C]")
    # Rendered once per locale (en, de, de-AT, fr), not per recipient.
    stats = runtime(d).bulk_deliverer.composer.stats()  # type: ignore[attr-defined]
    assert stats["renders"] <= 4


#: The campaign worker tests' environment (tests/campaigns/test_worker.py): one worker per
#: backend serves both files.
CHUNKED = {
    "DISPATCHER_CAMPAIGN_CHUNK_SIZE": "10",
    "DISPATCHER_LEASE_SECONDS": "3",
    "DISPATCHER_SMTP_BACKOFF_BASE_SECONDS": "0.2",
    "DISPATCHER_SMTP_BACKOFF_CAP_SECONDS": "0.4",
}


def test_a_campaign_with_its_own_templates_delivers_in_app_and_email_through_a_worker(
    dispatcher: Dispatcher, start_worker: StartWorker, smtp_server: SmtpServer
) -> None:
    d = dispatcher
    start_worker(smtp_server.env(**CHUNKED))
    people(d)
    data = report(d)
    name = data["report_name"]
    campaign = d.campaigns.create(
        "own",
        type="report_generated",
        data=data,
        audience={"all": True},
        templates={"in_app": IN_APP, "email": EMAIL},
    )
    d.campaigns.start(campaign.id)

    def settled() -> bool:
        with d.store.session() as s:
            rows = s.execute(select(Delivery.status)).scalars().all()
        return len(rows) == 12 and all(r.is_final for r in rows)

    wait_for(settled, timeout=60)
    with d.store.session() as s:
        statuses = s.execute(select(Delivery.channel, Delivery.status)).all()
    assert sorted({(c, str(st)) for c, st in statuses}) == [("email", "sent"), ("in_app", "sent")]
    german = {"s000002", "s000003", "s000004"}
    for n in range(6):
        who = f"s00000{n}"
        title = f"[C] {name} ist da" if who in german else f"[C] {name} is out"
        assert [(i.title, i.body) for i in d.inbox(who)] == [(title, "1204 tickets sold")]
        [mail] = smtp_server.to(f"s{n}@example.org")
        message = mail.parse()
        subject = f"[C] Bericht {name}" if who in german else f"[C] Report {name}"
        assert message["Subject"] == subject
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None and html is not None
        assert text.get_content().strip() == "Sold: 1204"  # de falls back to en
        assert f"<b>1204</b> &mdash; {name}</p>" in html.get_content()


def test_a_campaign_template_that_reads_the_recipient_renders_per_recipient(
    dispatcher: Dispatcher,
) -> None:
    d = dispatcher
    people(d)
    campaign = d.campaigns.create(
        "personal",
        type="report_generated",
        data=report(d),
        channels=["in_app"],
        audience={"all": True},
        templates={"in_app": {"en": {"title": "Hi {{ recipient.id }}", "body": "b"}}},
    )
    run = d.campaigns.start(campaign.id)
    run_all(d, run.id)
    for n in range(6):
        assert [i.title for i in d.inbox(f"s00000{n}")] == [f"Hi s00000{n}"]
