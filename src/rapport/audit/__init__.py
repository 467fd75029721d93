"""The append-only audit log (R26)."""
