"""Workspaces, users and roles, API keys, UI sessions."""
