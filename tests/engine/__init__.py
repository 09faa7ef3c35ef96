"""Tests of dispatcher.engine."""
