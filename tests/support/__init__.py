"""Test support: real databases, servers and factories shared by the suite."""
