"""Run ``rapport serve`` as a real process on a free loopback port, for tests that need a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.support.pg import free_port


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started that still run (Linux; none when it is gone)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def serve_argv(port: int, *args: str) -> list[str]:
    """The command line of ``rapport serve`` on 127.0.0.1:``port`` with ``args``."""
    return [sys.executable, "-m", "rapport", "serve", "--host", "127.0.0.1", "--port", str(port), *args]


class RapportServer:
    """A ``rapport serve`` subprocess; ``url`` is its base URL once ``start`` returns."""

    def __init__(
        self,
        database_url: str,
        *,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.extra_args = list(extra_args)
        self.env = {**os.environ, "RAPPORT_SECRET_KEY": "server-test-secret-0123456789", **(env or {})}
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def start(self, timeout: float = 120.0) -> RapportServer:
        """Start the server and wait until /healthz answers."""
        log_dir = self.workdir or Path.cwd()
        self.log_path = log_dir / f"server-{self.port}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            serve_argv(self.port, "--database-url", self.database_url, *self.extra_args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy: {self.output()}")

    def output(self) -> str:
        """Return what the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def kill(self) -> None:
        """kill -9 the server (crash tests)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop the server gracefully."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
