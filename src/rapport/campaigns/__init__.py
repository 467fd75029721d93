"""Campaigns: broadcast, scheduled, triggered and date-relative sends with A/B/n arms, control groups and goals."""
