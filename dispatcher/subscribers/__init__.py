"""The people notifications go to: the directory, their addresses and their inbox.

* :mod:`~dispatcher.subscribers.directory`: subscribers by external id (``upsert``, ``get``).
* :mod:`~dispatcher.subscribers.addresses`: email addresses, time zones and locales, validated.
* :mod:`~dispatcher.subscribers.inbox`: the stored in-app notifications and their states.
"""
