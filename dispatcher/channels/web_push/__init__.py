"""Web push: the channel, the payload it encrypts, VAPID signing, and the browsers'
subscriptions it sends to.

* :mod:`~dispatcher.channels.web_push.channel`: :class:`WebPushChannel`.
* :mod:`~dispatcher.channels.web_push.payload`: the JSON the service worker receives.
* :mod:`~dispatcher.channels.web_push.vapid`: keys and signed claims per push service.
* :mod:`~dispatcher.channels.web_push.subscriptions`: stored browser subscriptions.

The package imports nothing itself: the channel's dependencies load only when the
registry builds the channel.
"""
