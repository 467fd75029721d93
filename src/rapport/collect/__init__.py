"""Collect: the Segment-compatible tracking API, ingest (validate, dedupe, append), quarantine, identity
resolution, the event processor and imports.

Ingest side (this package's HTTP path): ``api.py`` parses and answers, ``normalize.py`` turns one message
into an event row or a field-level error (pure), ``ingest.py`` assembles and writes rows, ``committer.py``
groups the writes of concurrent requests into one transaction, ``quarantine.py`` lists and replays bad
events. Identity resolution and profile updates happen later, in the processor, from pending events.
"""
