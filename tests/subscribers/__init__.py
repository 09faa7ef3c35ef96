"""Tests of dispatcher.subscribers."""
