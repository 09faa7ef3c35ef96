"""The naive baseline: one Celery task and one commit per recipient.

This is what a hand-rolled "for user in users: notify_user.delay(user.id)" does.
"""

from __future__ import annotations

import json
import os

import redis
from celery import Celery

from dispatcher import Dispatcher
from dispatcher.clock import utcnow
from dispatcher.db.models import Delivery, Notification

app = Celery("naive", broker=os.environ.get("DISPATCHER_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_ignore_result=True)

_d: Dispatcher | None = None
_r: redis.Redis | None = None


@app.task(name="naive.notify_one")
def notify_one(
    event_id: int, subscriber_pk: int, external_id: str, data: dict, type: str = "bench_fanout"
) -> None:
    global _d, _r
    if _d is None:
        _d = Dispatcher.from_env()
        _r = redis.Redis.from_url(_d.settings.redis_url)
    now = utcnow()
    content = _d.renderer.render(
        type,
        "in_app",
        ("title", "body"),
        "en",
        {**data, "recipient": {"id": external_id}},
    )
    with _d.store.session() as s:
        n = Notification(
            event_id=event_id,
            subscriber_id=subscriber_pk,
            type=type,
            category="general",
            priority="medium",
            title=content["title"],
            body=content["body"],
            created_at=now,
            inbox_at=now,
        )
        s.add(n)
        s.flush()
        s.add(
            Delivery(
                notification_id=n.id,
                channel="in_app",
                priority="medium",
                status="sent",
                attempts=1,
                scheduled_for=now,
                sent_at=now,
            )
        )
        nid = n.id
    assert _r is not None
    _r.publish(
        f"{_d.settings.redis_prefix}:inbox:{external_id}",
        json.dumps({"type": "notification", "notification": {"id": nid, **content}}),
    )
