"""Tests of the face: what an app imports from ``dispatcher`` and calls on ``Dispatcher``."""
