"""The Celery app's configuration, shared by the processes that ring and those that work.

Producers (``notify`` in an app) only send messages by task name, so they use
:func:`celery_app` as it is; a worker adds its tasks to the same configuration
(:func:`dispatcher.worker.create_app`).
"""

from __future__ import annotations

from celery import Celery
from kombu.entity import Queue

from dispatcher import names
from dispatcher.brokers import is_amqp
from dispatcher.settings import Settings


def celery_app(settings: Settings) -> Celery:
    """A Celery app for ``settings``' broker, configured for at-least-once delivery."""
    app = Celery("dispatcher", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        # At least once: ack after the task ran, requeue if the worker process dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(name) for name in names.ALL],  # type: ignore[no-untyped-call]
        task_default_queue=names.for_priority("medium"),
        task_routes={
            names.SWEEP: {"queue": names.MAINTENANCE},
            names.PURGE: {"queue": names.MAINTENANCE},
            names.CAMPAIGN_TICK: {"queue": names.MAINTENANCE},
            names.CAMPAIGN_CHUNK: {"queue": names.BULK},
        },
        broker_transport_options={
            # The broker is a doorbell, the database the truth: a message lost with its
            # worker is made good by the beat sweep (pending events and deliveries after
            # DISPATCHER_SWEEP_GRACE_SECONDS, claimed ones when their lease expires), so
            # kombu's emulated acks on Redis (an "unacked" hash and index written and
            # cleared per message, two round trips) buy nothing and cost a third of
            # the worker's per-task CPU.
            "ack_emulation": False,
        },
        broker_connection_retry_on_startup=True,
        # Flower learns of tasks from the workers' events, and turns them on itself
        # while it runs; a "sent" event per publish would double the broker traffic
        # of every notify.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=False,
        timezone="UTC",
        enable_utc=True,
        worker_hijack_root_logger=False,
    )
    if is_amqp(settings.broker_url):
        app.conf.update(
            # RabbitMQ acks for real, has no visibility timeout (an unacked message goes
            # back to its queue the moment its consumer's connection closes) and cannot
            # emulate acks: drop the Redis-only option. Publisher confirms make a ring
            # return only once the broker has the message.
            broker_transport_options={"confirm_publish": True},
        )
    return app


def ringing_app(settings: Settings) -> Celery:
    """:func:`celery_app` for the doorbell: a producer that gives up on the broker within
    ``ring_timeout_seconds`` instead of retrying a connection for seconds (its caller
    is an app's request thread; the sweep rings what it could not)."""
    app = celery_app(settings)
    timeout = settings.ring_timeout_seconds
    sockets = (
        # py-amqp's socket timeouts once connected.
        {"read_timeout": max(1.0, timeout), "write_timeout": max(1.0, timeout)}
        if is_amqp(settings.broker_url)
        # redis-py's sockets (the Redis transport).
        else {"socket_connect_timeout": timeout, "socket_timeout": max(1.0, timeout)}
    )
    app.conf.update(
        broker_connection_timeout=timeout,
        broker_connection_max_retries=1,
        broker_transport_options={
            **app.conf.broker_transport_options,
            # kombu's ``default_channel`` reconnects with these (forever by default).
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.1,
            "interval_max": 0.1,
            **sockets,
        },
    )
    return app
