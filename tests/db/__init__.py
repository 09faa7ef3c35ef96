"""Tests of dispatcher.db."""
