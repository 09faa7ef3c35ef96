"""What inline recipients cost: ``notify(to=[{"id", "email", "timezone", "locale"}, ...])``
(subscribers upserted in the event's transaction) against the naive way an app does it
without them: ``subscribers.upsert`` once per person, then ``notify(to=[ids])``.

Each round uses new subscriber ids (the first-contact case, the one inline recipients
exist for) in a scratch SQLite database, or with ``--postgres`` a scratch PostgreSQL
database beside the admin URL (dropped afterwards). The doorbell rings a throw-away
Redis database (``--redis-url``), flushed at the end. Prints both and the ratio.

    python -m bench.inline_recipients [--n 200] [--repeat 3] [--postgres postgresql://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.policies import scratch_postgres
from dispatcher import Dispatcher, Settings

TICKET = {
    "ticket_id": 1,
    "event_name": "Final",
    "seller": "Luis",
    "amount": "45.00",
    "currency": "EUR",
}


def people(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}-{i}",
            "email": f"p{i}@example.com",
            "timezone": "Europe/Madrid",
            "locale": "es",
        }
        for i in range(n)
    ]


def run(d: Dispatcher, n: int, repeat: int) -> None:
    inline: list[float] = []
    naive: list[float] = []
    for r in range(repeat):
        batch = people(f"inline{r}", n)
        start = time.perf_counter()
        d.notify("ticket_created", to=batch, data=TICKET)
        inline.append(time.perf_counter() - start)

        batch = people(f"naive{r}", n)
        start = time.perf_counter()
        for p in batch:
            d.subscribers.upsert(
                p["id"], email=p["email"], timezone=p["timezone"], locale=p["locale"]
            )
        d.notify("ticket_created", to=[p["id"] for p in batch], data=TICKET)
        naive.append(time.perf_counter() - start)
    best_inline, best_naive = min(inline), min(naive)
    print(
        f"{d.store.dialect:<10} n={n}: inline {best_inline * 1000:8.1f} ms "
        f"({best_inline / n * 1e6:6.0f} µs/recipient)   naive upsert-then-notify "
        f"{best_naive * 1000:8.1f} ms   naive/inline {best_naive / best_inline:5.1f}x"
    )


def bench(url: str, args: argparse.Namespace) -> None:
    d = Dispatcher(
        Settings.from_env(database_url=url, redis_url=args.redis_url, broker_url=args.redis_url)
    )
    try:
        d.migrate()
        run(d, args.n, args.repeat)
    finally:
        d.close()
        redis.Redis.from_url(args.redis_url).flushdb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", metavar="ADMIN_URL", default=None)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres:
            with scratch_postgres(args.postgres) as url:
                bench(url, args)
        else:
            bench(f"sqlite:///{Path(tmp) / 'bench.db'}", args)


if __name__ == "__main__":
    main()
