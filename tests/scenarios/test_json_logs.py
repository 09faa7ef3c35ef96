"""``DISPATCHER_LOG_FORMAT=json``: a real worker prints our log lines as JSON with their ids."""

from __future__ import annotations

import json

from dispatcher import Dispatcher
from tests.conftest import StartWorker, wait_for


def test_worker_logs_are_json_with_ids(dispatcher: Dispatcher, start_worker: StartWorker) -> None:
    worker = start_worker({"DISPATCHER_LOG_FORMAT": "json"})
    dispatcher.subscribers.upsert("json-ana")
    receipt = dispatcher.notify("payout_sent", to="json-ana", data={"payout_id": 1, "amount": "1"})

    def fanned_out() -> list[dict[str, object]]:
        found = []
        for line in worker.log().splitlines():
            if line.startswith("{"):
                doc = json.loads(line)
                if doc.get("event") == "event.fanned_out" and doc.get("event_id") == receipt.id:
                    found.append(doc)
        return found

    (line,) = wait_for(fanned_out)
    assert line["level"] == "info" and isinstance(line["ts"], str)
    structured = [json.loads(x) for x in worker.log().splitlines() if x.startswith("{")]
    assert any("ready." in str(doc.get("message", "")) for doc in structured)  # Celery's own
