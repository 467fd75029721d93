"""Delivery: the outbox, claim-time checks (consent, suppression, caps, quiet hours), channels, feedback."""
