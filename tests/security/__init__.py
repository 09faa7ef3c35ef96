"""Hostile input: one test module per finding of the security issue."""
