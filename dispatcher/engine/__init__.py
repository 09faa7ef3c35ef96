"""The engine: how an event becomes deliveries, and how each delivery is sent and recorded.

* :mod:`~dispatcher.engine.outbox`: ``notify`` stores the event (joining the caller's
  transaction when asked) and rings the doorbell after commit.
* :mod:`~dispatcher.engine.doorbell`: Celery messages that only say "look at row X", and
  the latch that coalesces them.
* :mod:`~dispatcher.engine.fanout` and :mod:`~dispatcher.engine.drain`: an event becomes
  notifications and deliveries, in bulk; a drain fans out every due event of a kind.
* :mod:`~dispatcher.engine.bulk_inbox`, :mod:`~dispatcher.engine.bulk_fanout`,
  :mod:`~dispatcher.engine.members`, :mod:`~dispatcher.engine.inbox_content`,
  :mod:`~dispatcher.engine.render_once`: set-based in-app (``INSERT … SELECT``, content
  rendered once per locale) for a campaign chunk or a direct event to many.
* :mod:`~dispatcher.engine.claim`, :mod:`~dispatcher.engine.delivery`,
  :mod:`~dispatcher.engine.compose`, :mod:`~dispatcher.engine.records`: claim rows,
  decide (policies), render (templating), send (channels), record the outcome and its
  trail step.
* :mod:`~dispatcher.engine.sweep`, :mod:`~dispatcher.engine.purge`: beat's periodic work.
* :mod:`~dispatcher.engine.explain`: the trail of one event, per recipient and channel.

The engine knows policies, templating and channels; it never imports the face
(:mod:`dispatcher.dispatcher`), the worker, the gateway or the CLI.
"""
