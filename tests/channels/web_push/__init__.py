"""Tests of the web push channel, against a real push service on loopback."""
