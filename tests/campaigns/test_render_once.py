"""A campaign's content is rendered once per (template, locale, data) unless the template
reads the recipient (Jinja2's ``meta.find_undeclared_variables`` tells)."""

from __future__ import annotations

from pydantic import BaseModel

from dispatcher import Dispatcher, NotificationType
from dispatcher.engine.render_once import RenderOnceComposer
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
