"""How fast the email channel sends, against naive baselines measured in the same run.

Sends to a local aiosmtpd sink (its own process, so it does not share our CPU's GIL):

1. ``smtplib``, a new connection per message (pre-built bytes: no rendering at all);
2. raw ``aiosmtplib`` over one reused connection (pre-built bytes, no dispatcher);
3. raw ``aiosmtplib`` over N concurrent connections, N = the channel's pool size;
4. :class:`EmailChannel`: rendering subject, text and HTML (Jinja2, the shared layout),
   unsubscribe tokens, MIME building, and sending over its pool of N connections,
   in batches of ``delivery_batch_size`` like the worker does.

Run: ``.venv/bin/python -m bench.email [--messages 10000] [--pool 4]``
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is called email.py: keep its folder off the path, or it shadows the stdlib.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import smtplib  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402

from dispatcher.channels.base import ChannelContext, Message  # noqa: E402
from dispatcher.channels.email.channel import EmailChannel  # noqa: E402
from dispatcher.seed_types import default_catalog  # noqa: E402
from dispatcher.settings import Settings, SmtpSettings  # noqa: E402
from dispatcher.subscribers.recipient import Recipient  # noqa: E402
from dispatcher.templating.renderer import Renderer  # noqa: E402

SENDER = "noreply@example.com"


def run_sink(port: int) -> None:
    """The sink process: accept and count every message, print the count on exit."""
    from aiosmtpd.controller import Controller

    class Count:
        n = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            Count.n += 1
            return "250 OK"

    controller = Controller(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    # "cpu" asks for this process's CPU seconds so far, "count" for the messages so far;
    # an empty line stops the sink.
    while (command := sys.stdin.readline().strip()) in ("cpu", "count"):
        print(time.process_time() if command == "cpu" else Count.n, flush=True)
    controller.stop()
    print(Count.n, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sample_bytes(channel: EmailChannel, message: Message) -> bytes:
    return channel.compose(message)


def bench_smtplib(port: int, data: bytes, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail(SENDER, [f"user{i}@example.com"], data)
    return count / (time.perf_counter() - start)


async def _raw_lane(port: int, data: bytes, indexes: range) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await client.connect()
    for i in indexes:
        await client.sendmail(SENDER, [f"user{i}@example.com"], data)
    await client.quit()


async def bench_raw(port: int, data: bytes, count: int, connections: int) -> float:
    per = count // connections
    start = time.perf_counter()
    await asyncio.gather(
        *(_raw_lane(port, data, range(k * per, (k + 1) * per)) for k in range(connections))
    )
    return per * connections / (time.perf_counter() - start)


def make_channel(port: int, pool: int) -> EmailChannel:
    settings = Settings(
        smtp=SmtpSettings(
            host="127.0.0.1",
            port=port,
            security="none",
            pool_size=pool,
            from_address="Notificações Dispatcher <noreply@example.com>",
        ),
        public_url="https://app.example.com",
    )
    return EmailChannel(ChannelContext(settings, store=None))  # type: ignore[arg-type]


def bench_channel(port: int, count: int, pool: int, batch: int) -> tuple[float, EmailChannel]:
    catalog = default_catalog()
    ticket = catalog.get("ticket_created")
    channel = make_channel(port, pool)
    renderer = Renderer([channel.settings.templates_dir])
    created = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    base = dict(ticket.example)
    runner = asyncio.Runner()
    runner.run(channel.open())
    start = time.perf_counter()
    for first in range(0, count, batch):
        messages = []
        for i in range(first, min(first + batch, count)):
            locale = "es" if i % 2 else "en"
            recipient = Recipient(i, f"user-{i}", locale, "UTC", {"email": f"user{i}@example.com"})
            data = {**base, "ticket_id": 1000 + i, "seller": f"Vendedor {i} Muñoz"}
            context = {
                **data,
                "data": data,
                "recipient": {
                    "id": recipient.external_id,
                    "email": recipient.email,
                    "locale": locale,
                    "timezone": "UTC",
                },
                "notification": {
                    "id": i,
                    "type": ticket.name,
                    "category": ticket.category,
                    "priority": "high",
                    "created_at": created,
                },
                **channel.template_context(recipient, ticket, i),
            }
            content = renderer.render(ticket.name, "email", channel.parts, locale, context)
            messages.append(
                Message(
                    delivery_id=i + 1,
                    notification_id=i + 1,
                    event_id=1,
                    type=ticket,
                    priority=ticket.priority,
                    recipient=recipient,
                    content=content,
                    data=data,
                    attempt=1,
                    created_at=created,
                )
            )
        outcomes = runner.run(channel.send(messages))
        failed = [o for o in outcomes if not o.ok]
        if failed:
            raise SystemExit(f"channel failed {len(failed)} messages: {failed[0].error}")
    rate = count / (time.perf_counter() - start)
    runner.run(channel.close())
    runner.close()
    return rate, channel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--baseline-messages", type=int, default=3_000)
    parser.add_argument("--pool", type=int, default=SmtpSettings().pool_size)
    parser.add_argument("--batch", type=int, default=Settings().delivery_batch_size)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink(args.sink)
        return

    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, __file__, "--sink", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None and sink.stdin is not None
    assert sink.stdout.readline().strip() == "ready"
    try:
        channel = make_channel(port, args.pool)
        ticket = default_catalog().get("ticket_created")
        recipient = Recipient(1, "u", "en", "UTC", {"email": "user@example.com"})
        renderer = Renderer([channel.settings.templates_dir])
        sample_context = {
            **ticket.example,
            "data": ticket.example,
            "recipient": {
                "id": "u",
                "email": "user@example.com",
                "locale": "en",
                "timezone": "UTC",
            },
            "notification": {
                "id": 1,
                "type": ticket.name,
                "category": ticket.category,
                "priority": "high",
                "created_at": None,
            },
            **channel.template_context(recipient, ticket, 1),
        }
        content = renderer.render(ticket.name, "email", channel.parts, "en", sample_context)
        data = sample_bytes(
            channel,
            Message(
                1,
                1,
                1,
                ticket,
                ticket.priority,
                recipient,
                content,
                ticket.example,
                1,
                datetime.now(UTC),
            ),
        )
        n = args.baseline_messages
        print(
            f"message size {len(data)} bytes; channel pool {args.pool}, batch {args.batch}; "
            f"best of {args.rounds} interleaved rounds (other load on the machine varies)"
        )
        best: dict[str, float] = {}

        cpu: dict[str, tuple[float, float]] = {}

        def sink_cpu() -> float:
            assert sink.stdin is not None and sink.stdout is not None
            sink.stdin.write("cpu\n")
            sink.stdin.flush()
            return float(sink.stdout.readline())

        def measure(name: str, count: int, run: Any) -> None:
            ours, theirs = time.process_time(), sink_cpu()
            rate = run()
            ours, theirs = time.process_time() - ours, sink_cpu() - theirs
            best[name] = max(best.get(name, 0.0), rate)
            mine = (ours / count * 1e6, theirs / count * 1e6)
            cpu[name] = min(cpu.get(name, mine), mine)
            print(
                f"  {name:<44} {rate:8.0f} msg/s   CPU/msg: sender {mine[0]:5.0f} us, "
                f"sink {mine[1]:5.0f} us",
                flush=True,
            )

        smtplib_name = f"smtplib, new connection per message ({n})"
        raw1_name = f"raw aiosmtplib, 1 connection ({n})"
        rawn_name = f"raw aiosmtplib, {args.pool} connections ({n})"
        channel_name = f"EmailChannel, render+build+send ({args.messages})"
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_}")
            measure(smtplib_name, n, lambda: bench_smtplib(port, data, n))
            measure(raw1_name, n, lambda: asyncio.run(bench_raw(port, data, n, 1)))
            measure(rawn_name, n, lambda: asyncio.run(bench_raw(port, data, n, args.pool)))
            measure(
                channel_name,
                args.messages,
                lambda: bench_channel(port, args.messages, args.pool, args.batch)[0],
            )
        print("best:")
        for name, rate in best.items():
            ours, theirs = cpu[name]
            print(
                f"  {name:<44} {rate:8.0f} msg/s   CPU/msg: sender {ours:5.0f} us, "
                f"sink {theirs:5.0f} us"
            )
        rate = best[channel_name]
        print(
            f"channel / smtplib new-connection      {rate / best[smtplib_name]:6.2f}x"
            "  (target >= 2.5x)"
        )
        print(f"channel / raw aiosmtplib 1 connection {rate / best[raw1_name]:6.2f}x")
        print(
            f"channel / raw aiosmtplib {args.pool} conns     {rate / best[rawn_name]:6.0%}"
            "   (target >= 70%)"
        )
        # On a loaded machine wall-clock rates swing; CPU per message much less. On an idle
        # machine (sender and sink on a core each) one connection is a ping-pong, so its
        # time per message is sender + sink CPU; several connections overlap the two, so
        # the slower side sets the pace. This is the rate the hardware allows.
        print("bound by CPU on an idle 2-core machine (sender one core, sink the other):")
        lanes = {smtplib_name: 1, raw1_name: 1, rawn_name: args.pool, channel_name: args.pool}
        bound = {name: 1e6 / (sum(c) if lanes[name] == 1 else max(c)) for name, c in cpu.items()}
        for name, value in bound.items():
            print(f"  {name:<44} {value:8.0f} msg/s")
        ratio = bound[channel_name] / bound[smtplib_name]
        print(f"  channel / smtplib new-connection     {ratio:6.2f}x")
        ratio = bound[channel_name] / bound[rawn_name]
        print(f"  channel / raw aiosmtplib {args.pool} conns    {ratio:6.0%}")
    finally:
        sink.stdin.write("\n")
        sink.stdin.flush()
        received = sink.stdout.readline().strip()
        sink.wait(timeout=10)
        print(f"sink received {received} messages")


if __name__ == "__main__":
    main()
