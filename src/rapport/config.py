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
    api_processes: int = Field(
        default=1,
        ge=0,
        le=64,  # beyond a few per core they only contend; a typo of 10**20 forked until the machine stalled
        description="API processes `rapport serve` runs on its port (Linux SO_REUSEPORT; 0: one per core); "
        "the in-process worker runs in the first",
    )
    session_max_age_seconds: int = 12 * 3600
    secure_cookies: bool = False
    db_pool_size: int = 10
    worker_poll_seconds: float = 0.2
    worker_batch_size: int = 20
    render_processes: int = Field(
        default=-1,
        description="Helper processes that render the batches of each worker's send backlog off its "
        "interpreter lock (messaging/render_pool.py); -1: one on a machine with 2+ cores, 0: render in the "
        "worker itself",
    )
    delivery_handoff: bool = Field(
        default=True,
        description="A worker running both the event processor and the deliverer claims, checks and renders "
        "a batch's triggered messages in the batch's transaction and sends them right after it "
        "(Deliverer.adopt), sparing them the deliverer's own claim transaction (docs/delivery.md)",
    )
    ingest_full_sync: bool = Field(
        default=True,
        description="SQLite: fsync every ingest group commit (acknowledged events survive a power cut, not only "
        "a crash); off trades that for throughput on slow disks",
    )
    spool_dir: str = Field(default=".rapport-spool", description="Per-host send journals of the workers")
    email_from: str = "hello@rapport.local"
    smtp_host: str = Field(default="", description="SMTP server for email; empty: no email channel")
    smtp_port: int = 25
    smtp_security: str = Field(default="none", description="none, starttls or ssl")
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_pool_size: int = 4
    email_maildir: str = Field(
        default="",
        description="Without an SMTP server: deliver email into this Maildir folder (a local mail catcher, "
        "the demo's default) instead of having no email channel",
    )
    twilio_base_url: str = Field(default="https://api.twilio.com", description="Twilio-compatible API")
    twilio_account_sid: str = Field(default="", description="Empty: no SMS channel")
    twilio_auth_token: str = Field(default="", description="Also verifies inbound webhooks (R21)")
    sms_from: str = Field(default="", description="Sender number (E.164) or a MessagingServiceSid (MG…)")
    vapid_private_key: str = Field(
        default="", description="Web Push VAPID key (PEM or base64url); empty: no push"
    )
    vapid_subject: str = Field(default="", description="mailto: or https: contact sent with VAPID")
    webhook_secret: str = Field(default="", description="Signs outgoing webhooks; empty: no webhook channel")
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list, description="Hosts outgoing webhooks may reach (empty: any public host)"
    )
    outbound_allow_loopback: bool = Field(
        default=False, description="Let channels reach 127.0.0.1 (local test servers only, R24)"
    )
    channel_rates: dict[str, float] = Field(
        default_factory=dict, description='Messages per second per channel and worker, e.g. {"sms": 10}'
    )

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
