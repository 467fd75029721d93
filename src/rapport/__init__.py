"""Rapport: an open-source customer engagement platform."""

__version__ = "0.1.0"
