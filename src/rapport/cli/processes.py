"""``rapport serve --processes N``: N API processes sharing one port, each with its own listening socket.

One interpreter serves the API on one core (its lock); a machine with more cores serves more with more
processes. Each process binds the port itself with ``SO_REUSEPORT`` and the kernel spreads connections
over their sockets by a hash of the addresses. (A socket shared by forked processes, as ``uvicorn
--workers`` does it, leaves it to whichever process wakes first: SDK clients keep their connections open,
and a burst of them all landed on one process while the other idled. B2 measured 44k events/s on one
process, the same on two with a shared socket, and 70k on two with their own sockets.)

The parent only supervises: it resolves the settings once (the generated secret key included, so no two
processes race to create it), starts each process as a fresh interpreter (``python -c``, settings on its
stdin), waits until every one is listening, restarts one that dies later, and on SIGINT/SIGTERM stops them
all gracefully (SIGTERM: uvicorn finishes the requests in flight and the committer writes what is queued).
The in-process worker runs in the first process only: SQLite keeps its single claimer, and PostgreSQL's
production shape runs ``rapport worker`` processes anyway. Each process asks the kernel to SIGTERM it
when the parent dies, so none is left serving alone. Linux only (elsewhere ``SO_REUSEPORT`` does not
balance, or does not exist).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

from rapport.app import create_app
from rapport.config import Settings
from rapport.kit.logs import configure_logging

log = logging.getLogger("rapport.cli.processes")

#: How long a process may take to start listening before the server gives up.
START_TIMEOUT = 120.0
#: How long the processes get to finish in-flight requests on stop before they are killed.
STOP_TIMEOUT = 30.0
#: A restarted process that dies again this soon stops the server (a restart loop would hide the error).
FLAPPING_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1
_READY = b"ready\n"


class ProcessesError(RuntimeError):
    """The processes could not be started (the reason is the message)."""


def supported() -> bool:
    """Tell whether this platform balances connections over ``SO_REUSEPORT`` sockets (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def resolve_count(requested: int) -> int:
    """The number of API processes: ``requested``, or one per core when it is 0."""
    if requested < 0:
        raise ValueError("the number of processes cannot be negative")
    return requested or (os.cpu_count() or 1)


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port) that other processes of this user may bind too."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes]
    ready_fd: int
    started: float
    ready: bool = False
    respawned: bool = False


class Supervisor:
    """Starts, watches and stops the API processes of one ``rapport serve``."""

    def __init__(self, settings: Settings, count: int) -> None:
        if not supported():
            raise ProcessesError("several API processes need Linux (SO_REUSEPORT); use --processes 1")
        self.settings = settings.model_copy(update={"secret_key": settings.resolved_secret_key()})
        self.count = count
        self.children: dict[int, _Child] = {}
        self.stopping = threading.Event()

    def _spawn(self, index: int, *, respawned: bool = False) -> _Child:
        read_fd, write_fd = os.pipe()
        job = {
            "settings": self.settings.model_dump(mode="json"),
            "worker": index == 0 and self.settings.run_worker_in_process,
            "ready_fd": write_fd,
            "index": index,
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", "from rapport.cli.processes import child_main; child_main()"],
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),
            start_new_session=True,  # Ctrl-C reaches the parent only, which stops each process once
        )
        os.close(write_fd)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(job).encode("utf-8"))
        proc.stdin.close()
        return _Child(index=index, proc=proc, ready_fd=read_fd, started=time.monotonic(), respawned=respawned)

    def start(self) -> None:
        """Start every process and return once all of them listen; raise ProcessesError if one cannot."""
        for index in range(self.count):
            self.children[index] = self._spawn(index)
        deadline = time.monotonic() + START_TIMEOUT
        while not all(child.ready for child in self.children.values()):
            if self.stopping.is_set():
                self.stop()
                raise ProcessesError("stopped while starting")
            for child in self.children.values():
                code = child.proc.poll()
                if code is not None and not child.ready:
                    self.stop()
                    raise ProcessesError(f"API process {child.index} exited with code {code} while starting")
            if time.monotonic() > deadline:
                self.stop()
                raise ProcessesError(f"the API processes did not start within {START_TIMEOUT:.0f} s")
            self._read_ready(0.2)

    def _read_ready(self, timeout: float) -> None:
        waiting = {c.ready_fd: c for c in self.children.values() if not c.ready and c.ready_fd >= 0}
        if not waiting:
            time.sleep(timeout)
            return
        readable, _w, _x = select.select(list(waiting), [], [], timeout)
        for fd in readable:
            child = waiting[fd]
            if os.read(fd, len(_READY)) == _READY:
                child.ready = True
            os.close(fd)
            child.ready_fd = -1

    def watch(self) -> None:
        """Restart a process that dies until ``stopping`` is set; one that dies again right after its
        start stops the server (a restart loop would hide the error)."""
        while not self.stopping.wait(0.5):
            self._read_ready(0)
            for index, child in list(self.children.items()):
                code = child.proc.poll()
                if code is None or self.stopping.is_set():
                    continue
                if child.respawned and time.monotonic() - child.started < FLAPPING_SECONDS:
                    log.error(
                        "API process %d exited with code %d right after a restart; stopping", index, code
                    )
                    self.stopping.set()
                    raise ProcessesError(f"API process {index} keeps exiting (code {code})")
                log.warning("API process %d exited with code %d; starting it again", index, code)
                if child.ready_fd >= 0:
                    os.close(child.ready_fd)
                self.children[index] = self._spawn(index, respawned=True)

    def stop(self) -> None:
        """SIGTERM every process, wait for them to finish (STOP_TIMEOUT), then kill what is left."""
        self.stopping.set()
        for child in self.children.values():
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children.values():
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            if child.ready_fd >= 0:
                os.close(child.ready_fd)
                child.ready_fd = -1


def run(supervisor: Supervisor, on_ready: Callable[[], None] = lambda: None) -> None:
    """Run the supervisor's processes until SIGINT/SIGTERM (the caller migrated the database already);
    ``on_ready`` runs once every process listens."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: supervisor.stopping.set())
    supervisor.start()
    on_ready()
    try:
        supervisor.watch()
    finally:
        supervisor.stop()


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent (the supervisor) dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class _Server(uvicorn.Server):
    """uvicorn's server, telling the supervisor through a pipe once it listens."""

    def __init__(self, config: uvicorn.Config, ready_fd: int) -> None:
        super().__init__(config)
        self.ready_fd = ready_fd

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.ready_fd >= 0:
            os.write(self.ready_fd, _READY)
            os.close(self.ready_fd)
            self.ready_fd = -1


def child_main() -> None:
    """One API process (started by :class:`Supervisor`): the job arrives as JSON on stdin."""
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the supervisor died before the request took effect
        return
    job: dict[str, Any] = json.loads(sys.stdin.buffer.read())
    settings = Settings.model_validate(job["settings"])
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    try:
        sock = reuseport_socket(settings.host, settings.port)
    except OSError as exc:
        log.error(
            "API process %d cannot listen on %s:%d: %s", job["index"], settings.host, settings.port, exc
        )
        sys.exit(3)
    application = create_app(settings, start_worker=bool(job["worker"]))
    config = uvicorn.Config(application, log_config=None, access_log=False)
    _Server(config, int(job["ready_fd"])).run(sockets=[sock])
