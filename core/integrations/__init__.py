"""Bridges from other training libraries to the tracking SDK."""
