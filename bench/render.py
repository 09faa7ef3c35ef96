"""Renders per second of a realistic email: subject + text + HTML extending a layout,
with a loop over 20 seats and money/date filters in the recipient's locale and zone.

Three figures from the same run:

* ``cached``: one :class:`~dispatcher.templating.renderer.Renderer` (compiled templates
  cached), as a
  worker renders.
* ``cold``: the naive baseline, a new Renderer (a cold Jinja environment) per render, so
  every part and the layout are parsed and compiled each time.
* ``plain jinja``: a cached, unsandboxed ``jinja2.Environment`` with the same filters,
  to show what the sandbox and the render budget cost.

Run: ``python -m bench.render [seconds-per-figure]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2

from dispatcher.templating import filters
from dispatcher.templating.renderer import Renderer

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
PARTS = ("subject", "text", "html")

CONTEXT: dict[str, Any] = {
    "order_id": 98123,
    "buyer": "Marta <Ruiz> & Co",
    "event_name": "Copa del Rey Final",
    "event_date": "2027-04-25T18:00:00Z",
    "currency": "EUR",
    "items": [
        {"section": f"Tribuna {i % 4}", "row": 10 + i // 4, "seat": i, "price": "45.00"}
        for i in range(20)
    ],
    "total": str(Decimal("45.00") * 20),
    "url": "https://tickets.example.com/orders/98123",
    "reason": "compraste entradas en Tickets Example",
    "links": {
        "preferences": "https://tickets.example.com/preferences",
        "unsubscribe": "https://tickets.example.com/u/abc",
    },
    "recipient": {
        "id": "u1",
        "email": "m@example.com",
        "locale": "es",
        "timezone": "Europe/Madrid",
    },
}


def rate(render_once: Callable[[], dict[str, str]], seconds: float) -> float:
    render_once()  # warm up (and fail early if a template is broken)
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        render_once()
        count += 1
    return count / (time.perf_counter() - started)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    cached = Renderer([TEMPLATES])

    def render_cached() -> dict[str, str]:
        return cached.render("order_summary", "email", PARTS, "es", CONTEXT)

    def render_cold() -> dict[str, str]:
        return Renderer([TEMPLATES]).render("order_summary", "email", PARTS, "es", CONTEXT)

    plain_text = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False)
    plain_html = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    for env in (plain_text, plain_html):
        filters.install(env)

    def render_plain() -> dict[str, str]:
        return {
            part: (plain_html if part == "html" else plain_text)
            .get_template(f"order_summary/es/email/{part}.j2")
            .render(CONTEXT)
            .strip()
            for part in PARTS
        }

    out = render_cached()
    assert out == render_cold() == render_plain(), "the three ways must render the same email"
    assert "Marta &lt;Ruiz&gt; &amp; Co" in out["html"] and "45,00\xa0€" in out["text"]
    size = sum(len(v) for v in out.values())
    print(f"email: subject + text + html, {size} characters, 20-seat loop, layout, es/Madrid")
    r_cached = rate(render_cached, seconds)
    r_cold = rate(render_cold, seconds)
    r_plain = rate(render_plain, seconds)
    print(f"cached renderer (sandbox + budget): {r_cached:10.0f} emails/s")
    print(f"cold environment per render:        {r_cold:10.0f} emails/s   (baseline)")
    print(f"plain jinja2, cached, no sandbox:   {r_plain:10.0f} emails/s   (reference)")
    print(f"cached / cold = {r_cached / r_cold:.1f}x; cached / plain = {r_cached / r_plain:.2f}")


if __name__ == "__main__":
    main()
