"""Two beats running by mistake start each campaign occurrence once: the tick claims the
due campaign with a conditional update, and runs are unique per occurrence."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from dispatcher import CampaignStatus, Dispatcher
from dispatcher.clock import utcnow
from dispatcher.db.models import CampaignRun, Notification
from dispatcher.worker import Runtime
from tests.campaigns.support import PAYOUT, add_subscribers, notified
from tests.conftest import Beat, StartWorker, make_settings, wait_for


def runs(d: Dispatcher) -> int:
    with d.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(CampaignRun)) or 0)


def test_ticks_run_at_once_in_several_processes_start_one_run(
    dispatcher: Dispatcher, database_url: str
) -> None:
    d = dispatcher
    add_subscribers(d, 5)
    campaign = d.campaigns.create(
        "due",
        type="payout_sent",
        data=PAYOUT,
        audience={"all": True},
        start_at=utcnow() + timedelta(milliseconds=300),
    )
    others = [
        Dispatcher(make_settings(database_url, broker_url=d.settings.broker_url)) for _ in range(4)
    ]
    try:
        time.sleep(0.4)
        barrier = threading.Barrier(len(others))
        started: list[list[int]] = []

        def tick(other: Dispatcher) -> None:
            runtime = Runtime(other)
            barrier.wait()
            started.append(runtime.campaign_tick().started)
            runtime.close()

        threads = [threading.Thread(target=tick, args=(o,)) for o in others]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for o in others:
            o.close()
    assert sorted(len(s) for s in started) == [0, 0, 0, 1]
    assert runs(d) == 1
    assert d.campaigns.get(campaign.id).next_run_at is None


def test_two_real_beats_start_a_scheduled_campaign_once(
    dispatcher: Dispatcher, start_worker: StartWorker, tmp_path: Path
) -> None:
    d = dispatcher
    start_worker()
    add_subscribers(d, 40)
    beats = [Beat(d.settings, tmp_path / f"beat{i}.log") for i in range(2)]
    try:
        campaign = d.campaigns.create(
            "soon",
            type="payout_sent",
            data=PAYOUT,
            audience={"all": True},
            start_at=utcnow() + timedelta(seconds=3),
        )
        wait_for(
            lambda: d.campaigns.get(campaign.id).status == CampaignStatus.COMPLETED, timeout=60
        )
        time.sleep(3)  # both beats tick a few more times
    finally:
        for b in beats:
            b.stop()
    for b in beats:
        assert "Sending due task campaign_tick" in b.log()
    assert runs(d) == 1
    pks = notified(d)
    assert len(pks) == len(set(pks)) == 40
    with d.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == 40
