"""Integrations with web frameworks; each lives beside the face and goes through it."""
