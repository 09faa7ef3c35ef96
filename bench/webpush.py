"""Web push throughput: WebPushChannel against a naive ``pywebpush.webpush()`` loop.

Both send to the same local push service (``tests/push_service.py``) running in its own
process on 127.0.0.1. It checks every VAPID token (signature verified once per distinct
token, ``aud``/``exp``/``sub`` on every request) and decrypts one push in
``--decrypt-every`` to prove the bodies are right without making the service the
bottleneck on a small machine.

    .venv/bin/python -m bench.webpush            # 10,000 pushes; naive loop 2,000
    .venv/bin/python -m bench.webpush --pushes 2000 --naive 500

The channel run includes everything ``send()`` does: one query for 10,000
subscriptions, encryption, VAPID (cached per origin), concurrent HTTP on one
aiohttp session, and the ``last_success_at`` update.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402
from pywebpush import WebPusher, webpush  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from dispatcher import Dispatcher, Priority, Settings  # noqa: E402
from dispatcher.channels.base import Message  # noqa: E402
from dispatcher.channels.web_push.channel import WebPushChannel  # noqa: E402
from dispatcher.channels.web_push.payload import build_payload  # noqa: E402
from dispatcher.channels.web_push.subscriptions import parse_subscription  # noqa: E402
from dispatcher.channels.web_push.vapid import VapidKey  # noqa: E402
from dispatcher.db.models import PushSubscription, Subscriber  # noqa: E402
from dispatcher.settings import PushSettings  # noqa: E402
from dispatcher.subscribers.recipient import Recipient  # noqa: E402
from tests.push_service import Device  # noqa: E402

SUBJECT = "mailto:bench@example.com"
CONTENT = {
    "title": "Ticket sold: Copa del Rey Final",
    "body": "Luis sold 2 tickets for 45.00 EUR to Marta.",
    "url": "/tickets/123",
}


def start_service(devices: list[Device], key: VapidKey, workdir: Path, decrypt_every: int):
    path = workdir / "devices.json"
    path.write_text(json.dumps([d.to_record() for d in devices]))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.push_service",
            "--devices",
            str(path),
            "--vapid-key",
            key.public_key_b64,
            "--decrypt-every",
            str(decrypt_every),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, port


def stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=10) as response:
        return dict(json.load(response))


def prepare_channel(
    devices: list[Device], key: VapidKey, workdir: Path, concurrency: int
) -> tuple[Dispatcher, WebPushChannel, list[Message]]:
    """A dispatcher on a fresh SQLite file holding one subscription per device."""
    push = PushSettings(
        vapid_private_key=SecretStr(key.private_key_b64),
        vapid_subject=SUBJECT,
        allow_insecure_loopback=True,
        timeout=30.0,
        concurrency=concurrency,
    )
    settings = Settings.from_env(
        database_url=f"sqlite:///{workdir / 'bench.db'}", broker_url="memory://", push=push
    )
    d = Dispatcher(settings)
    d.migrate()
    now = datetime.now(UTC)
    with d.store.session() as s:
        s.execute(
            insert(Subscriber),
            [
                {"id": i + 1, "external_id": f"s{i}", "timezone": "UTC", "attributes": {}}
                for i in range(len(devices))
            ],
        )
        rows = []
        for i, device in enumerate(devices):
            parsed = parse_subscription(device.subscription(), allow_insecure_loopback=True)
            rows.append(
                {
                    "subscriber_id": i + 1,
                    "endpoint": parsed.endpoint,
                    "p256dh": parsed.p256dh,
                    "auth": parsed.auth,
                    "created_at": now,
                }
            )
        s.execute(insert(PushSubscription), rows)
    kind = d.catalog.get("ticket_created")
    messages = [
        Message(
            delivery_id=i + 1,
            notification_id=i + 1,
            event_id=1,
            type=kind,
            priority=Priority.HIGH,
            recipient=Recipient(i + 1, f"s{i}", "en", "UTC"),
            content=CONTENT,
            data={},
            attempt=1,
            created_at=now,
        )
        for i in range(len(devices))
    ]
    channel = d.channels.get("web_push")
    assert isinstance(channel, WebPushChannel)
    d.channels.open(channel)
    return d, channel, messages


def run_channel(
    d: Dispatcher, channel: WebPushChannel, messages: list[Message]
) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    outcomes = d.channels.run(channel.send(messages))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    failed = [o for o in outcomes if not o.ok]
    assert not failed, f"{len(failed)} failed, first: {failed[0].error}"
    return wall, cpu


def run_naive(devices: list[Device], key: VapidKey) -> tuple[float, float]:
    payload = build_payload(
        CONTENT, notification_id=1, type_name="ticket_created", priority=Priority.HIGH
    ).decode()
    wall, cpu = time.perf_counter(), time.process_time()
    for device in devices:
        webpush(
            device.subscription(),
            data=payload,
            vapid_private_key=key.private_key_b64,
            vapid_claims={"sub": SUBJECT},  # a fresh dict: webpush() fills in aud and exp
            ttl=86400,
            timeout=30,
        )
    return time.perf_counter() - wall, time.process_time() - cpu


def crypto_costs(devices: list[Device], key: VapidKey, rounds: int = 500) -> tuple[float, float]:
    """CPU microseconds per push for aes128gcm encryption and for one VAPID signature."""
    from py_vapid import Vapid02

    payload = build_payload(
        CONTENT, notification_id=1, type_name="ticket_created", priority=Priority.HIGH
    )
    pushers = [WebPusher(d.subscription()) for d in devices[:rounds]]
    start = time.process_time()
    for pusher in pushers:
        pusher.encode(payload, "aes128gcm")
    encrypt = (time.process_time() - start) / len(pushers) * 1e6
    vapid = Vapid02(key.private_key)
    start = time.process_time()
    for _ in range(rounds):
        vapid.sign({"aud": "http://127.0.0.1:1", "exp": int(time.time()) + 3600, "sub": SUBJECT})
    sign = (time.process_time() - start) / rounds * 1e6
    return encrypt, sign


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=10_000)
    parser.add_argument("--naive", type=int, default=2_000, help="pushes in the naive loop")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--decrypt-every", type=int, default=50)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternate channel and naive runs; report medians"
    )
    args = parser.parse_args()

    key = VapidKey.generate()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        total = args.pushes + args.naive
        print(f"generating {total} browser subscriptions (P-256 keys + auth secrets)...")
        devices = [Device.new("http://127.0.0.1:0/push") for _ in range(total)]
        proc, port = start_service(devices, key, workdir, args.decrypt_every)
        base = f"http://127.0.0.1:{port}/push"
        for device in devices:
            device.endpoint = f"{base}/{device.token}"
        channel_runs: list[tuple[float, float]] = []
        naive_runs: list[tuple[float, float]] = []
        try:
            channel_devices, naive_devices = devices[: args.pushes], devices[args.pushes :]
            d, channel, messages = prepare_channel(channel_devices, key, workdir, args.concurrency)
            for _ in range(args.rounds):
                channel_runs.append(run_channel(d, channel, messages))
                naive_runs.append(run_naive(naive_devices, key))
            signatures = channel.signer.signatures
            d.close()
            after = stats(port)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(10)
        encrypt_us, sign_us = crypto_costs(devices, key)

    pushed = args.rounds * total
    assert after["accepted"] == pushed and after["rejected_count"] == 0, after
    assert after["last"]["title"] == CONTENT["title"]
    wall_c, cpu_c = (statistics.median(x) for x in zip(*channel_runs, strict=True))
    wall_n, cpu_n = (statistics.median(x) for x in zip(*naive_runs, strict=True))
    rate_c, rate_n = args.pushes / wall_c, args.naive / wall_n
    print(
        f"load average before the run: {load:.2f} on {os.cpu_count()} CPUs; "
        f"{args.rounds} alternating rounds, medians shown"
    )
    print(
        f"push service: {after['accepted']} accepted, {after['rejected_count']} rejected, "
        f"{after['decrypted']} decrypted and checked (1 in {args.decrypt_every}); "
        f"most in flight {after['max_in_flight']}"
    )
    print(
        f"WebPushChannel  {args.pushes:>6} pushes  {wall_c:6.2f} s  {rate_c:7.0f} pushes/s  "
        f"CPU {cpu_c / args.pushes * 1e6:4.0f} us/push  "
        f"VAPID signatures: {signatures} in {args.rounds * args.pushes} pushes"
    )
    print(
        f"naive webpush() {args.naive:>6} pushes  {wall_n:6.2f} s  {rate_n:7.0f} pushes/s  "
        f"CPU {cpu_n / args.naive * 1e6:4.0f} us/push  VAPID signatures: one per push"
    )
    print(
        f"ratio: {rate_c / rate_n:.1f}x the naive loop (the naive loop sends {args.naive} "
        f"pushes per round, not {args.pushes}: it would take minutes; rates compare per second)"
    )
    print(
        f"CPU per push: aes128gcm encryption {encrypt_us:.0f} us (both); VAPID signing "
        f"{sign_us:.0f} us per signature: naive {sign_us:.0f} us per push, channel "
        f"{sign_us * signatures / (args.rounds * args.pushes):.3f} us per push"
    )


if __name__ == "__main__":
    main()
