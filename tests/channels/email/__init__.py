"""Tests of the email channel: message bytes, SMTP, unsubscribe, through a real server."""
