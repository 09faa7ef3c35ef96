"""A campaign's content is rendered once per (template, locale, data) unless the template
reads the recipient (Jinja2's ``meta.find_undeclared_variables`` tells); an email that
reads only its reader's links is rendered once with slots that each reader's links fill."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from dispatcher import Dispatcher, NotificationType, Settings
from dispatcher.channels.base import ChannelContext
from dispatcher.channels.email.channel import EmailChannel
from dispatcher.engine.compose import Composer, Row
from dispatcher.engine.render_once import RenderOnceComposer
from dispatcher.enums import Priority
from dispatcher.policies.base import Candidate
from dispatcher.settings import SmtpSettings
from dispatcher.subscribers.recipient import Recipient
from dispatcher.templating.renderer import Renderer
from tests.campaigns.support import PAYOUT, add_subscribers, run_all, use_campaign_templates
from tests.conftest import runtime


class Note(BaseModel):
    note: str


GREETING = NotificationType(
    name="campaign_greeting", payload=Note, example={"note": "hi"}, channels=("in_app",)
)


def composer(d: Dispatcher) -> RenderOnceComposer:
    c = runtime(d).bulk_deliverer.composer
    assert isinstance(c, RenderOnceComposer)
    return c


def test_content_that_reads_no_recipient_renders_once_per_locale(dispatcher: Dispatcher) -> None:
    d = dispatcher
    add_subscribers(d, 30, locale="en")
    add_subscribers(d, 20, start=30, locale="es")
    campaign = d.campaigns.create("p", type="payout_sent", data=PAYOUT, audience={"all": True})
    run = d.campaigns.start(campaign.id)
    before = composer(d).renders
    run_all(d, run.id)
    assert composer(d).renders - before == 2  # en and es
    assert [i.title for i in d.inbox("s000001")] == ["Payout 7 sent"]
    assert [i.title for i in d.inbox("s000031")] == ["Pago 7 enviado"]


def test_content_that_reads_the_recipient_renders_per_recipient(dispatcher: Dispatcher) -> None:
    d = dispatcher
    d.register(GREETING)
    use_campaign_templates(d)
    add_subscribers(d, 12, locale="en")
    campaign = d.campaigns.create(
        "g", type="campaign_greeting", data={"note": "n"}, audience={"all": True}
    )
    run = d.campaigns.start(campaign.id)
    before = composer(d).renders
    run_all(d, run.id)
    # The title for each, the body (which reads no one) once.
    assert composer(d).renders - before == 12 + 1
    assert [i.title for i in d.inbox("s000003")] == ["Hello s000003"]
    assert [i.title for i in d.inbox("s000004")] == ["Hello s000004"]


# -- Email: a slot for each reader's own links ------------------------------------------

LINKS_HTML = (
    '<p>{{ note }}</p><a href="{{ links.unsubscribe }}">Unsubscribe</a> '
    '<a href="{{ links.preferences }}">Preferences</a>'
)


def _email_rows(
    tmp_path: Path, parts: dict[str, str], people: int = 5
) -> tuple[Composer, RenderOnceComposer, EmailChannel, list[Row]]:
    folder = tmp_path / "campaign_note" / "en" / "email"
    folder.mkdir(parents=True)
    for part, source in parts.items():
        (folder / f"{part}.j2").write_text(source)
    settings = Settings(
        smtp=SmtpSettings(host="127.0.0.1", port=2525, security="none"),
        public_url="https://app.example.com/a&b",  # an & that HTML must escape
    )
    channel = EmailChannel(ChannelContext(settings, store=None))  # type: ignore[arg-type]
    plain = Composer(Renderer([tmp_path]))
    note = NotificationType(
        name="campaign_note", payload=Note, example={"note": "hi"}, channels=("email",)
    )
    created = datetime(2026, 12, 1, tzinfo=UTC)
    rows = [
        Row(
            Candidate(
                i,
                i,
                "email",
                note,
                Priority.LOW,
                Recipient(i, f"reader-{i}", "en", "UTC", {"email": f"r{i}@example.org"}),
                1,
            ),
            event_id=1,
            # A payload cannot forge a slot: the markers carry a per-process secret.
            data={"note": "slotx0y <b>&</b>"},
            created_at=created,
        )
        for i in range(1, people + 1)
    ]
    return plain, RenderOnceComposer(plain), channel, rows


def test_an_email_reading_its_readers_links_renders_once_and_fills_each_ones_links(
    tmp_path: Path,
) -> None:
    parts = {
        "subject": "Note: {{ note }}",
        "text": "{{ note }}\nUnsubscribe: {{ links.unsubscribe }}",
        "html": LINKS_HTML,
    }
    plain, composer, channel, rows = _email_rows(tmp_path, parts)
    sent = [composer.render(row, channel) for row in rows]
    assert sent == [plain.render(row, channel) for row in rows]
    # The subject once; the text and HTML once with slots, and the first reader's in full
    # to check the slots; then the subject and the slotted parts shared for the others.
    assert (composer.renders, composer.shared) == (3, 2 * (len(rows) - 1))
    links = {s["text"].rsplit("Unsubscribe: ", 1)[1] for s in sent}
    assert len(links) == len(rows)  # everyone's own
    assert all("&amp;" in s["html"] and "&amp;" not in s["text"] for s in sent)
    assert "slotx0y &lt;b&gt;&amp;&lt;/b&gt;" in sent[0]["html"]


def test_an_email_that_transforms_a_link_falls_back_to_rendering_per_recipient(
    tmp_path: Path,
) -> None:
    parts = {
        "subject": "Note",
        "text": "{{ links.unsubscribe|upper }}",
        "html": "<a href='{{ links.unsubscribe[:60] }}'>x</a>",
    }
    plain, composer, channel, rows = _email_rows(tmp_path, parts)
    sent = [composer.render(row, channel) for row in rows]
    assert sent == [plain.render(row, channel) for row in rows]
    # The subject once, the links' parts slotted and checked, then for each of the others.
    assert composer.renders == 3 + len(rows) - 1
    assert composer.varies(rows[0], channel)


def test_an_email_reading_the_recipient_renders_per_recipient(tmp_path: Path) -> None:
    parts = {"subject": "Hi {{ recipient.id }}", "text": "{{ links.unsubscribe }}", "html": "x"}
    plain, composer, channel, rows = _email_rows(tmp_path, parts)
    sent = [composer.render(row, channel) for row in rows]
    assert sent == [plain.render(row, channel) for row in rows]
    # The subject for each; the HTML once; the text slotted and checked once.
    assert (composer.renders, composer.shared) == (3 + len(rows), 2 * (len(rows) - 1))


def test_a_render_is_shared_only_with_the_data_it_was_made_from(tmp_path: Path) -> None:
    """Event ids start again in a database emptied or restored under a running worker:
    a shared render is kept with its event's data and actor, and another event with the
    same id gets its own (a worker once served an earlier test's title this way)."""
    from dataclasses import replace

    parts = {
        "subject": "Note: {{ note }}",
        "text": "{{ note }}\nUnsubscribe: {{ links.unsubscribe }}",
        "html": LINKS_HTML,
    }
    plain, composer, channel, rows = _email_rows(tmp_path, parts, people=2)
    first = [composer.render(row, channel) for row in rows]
    again = [replace(row, data={"note": "another event, same id"}) for row in rows]
    second = [composer.render(row, channel) for row in again]
    assert second == [plain.render(row, channel) for row in again]
    assert all(s["subject"] == "Note: another event, same id" for s in second)
    assert all("another event" not in f["text"] for f in first)
    # The same data in a new object (the next chunk of a campaign) shares the render.
    renders = composer.renders
    copies = [replace(row, data=dict(row.data)) for row in again]
    assert [composer.render(row, channel) for row in copies] == second
    assert composer.renders == renders
    # So does the actor: a render made for another actor is not served.
    by_actor = [replace(row, actor="seller-9") for row in copies]
    assert [composer.render(row, channel) for row in by_actor] == second
    assert composer.renders > renders
