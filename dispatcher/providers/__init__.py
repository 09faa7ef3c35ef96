"""Providers: the transports that carry a channel's messages (an SMTP server, a push service).

A channel builds messages; a provider moves bytes and reports what the far end said.
"""
