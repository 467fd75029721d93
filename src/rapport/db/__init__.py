"""Storage: engine construction, declarative base, migrations."""
