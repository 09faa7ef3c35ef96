"""Tests of dispatcher.channels: the contract, the registry, and each channel."""
