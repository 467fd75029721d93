"""Profiles: reads (by id or identifier, search, timeline, traits with history, merges), GDPR export/erase."""
