"""Email: the channel, the message bytes it builds, the SMTP provider that carries them,
and the one-click unsubscribe links it puts in every message.

* :mod:`~dispatcher.channels.email.channel`: :class:`EmailChannel`.
* :mod:`~dispatcher.channels.email.message`: headers that cannot be injected into, MIME
  built for speed.
* :mod:`~dispatcher.channels.email.smtp`: the SMTP connection pool (the provider).
* :mod:`~dispatcher.channels.email.unsubscribe`: signed RFC 8058 unsubscribe tokens.

The package imports nothing itself: the channel's dependencies load only when the
registry builds the channel.
"""
