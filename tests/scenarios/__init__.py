"""Scenarios end to end: real workers, beat, Flower, crashes and recovery, packaging."""
