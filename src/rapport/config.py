"""Settings, built once at the edge (CLI or create_app) and passed down; never read from globals."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as an environment variable prefixed RAPPORT_."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_", env_file=None, extra="ignore")

    database_url: str = Field(default="sqlite:///./rapport.db", description="SQLite file or PostgreSQL URL")
    secret_key: str = Field(default="", description="Signs cookies and links; generated and kept if empty")
    host: str = "127.0.0.1"
    port: int = 8000
    base_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    log_json: bool = True
    run_worker_in_process: bool = True
    session_max_age_seconds: int = 12 * 3600
    secure_cookies: bool = False
    db_pool_size: int = 10
    worker_poll_seconds: float = 0.2
    worker_batch_size: int = 20

    def resolved_secret_key(self, state_dir: Path | None = None) -> str:
        """Return the secret key, creating and persisting one beside the SQLite file when unset."""
        if self.secret_key:
            return self.secret_key
        path = (state_dir or Path.cwd()) / ".rapport-secret"
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key
