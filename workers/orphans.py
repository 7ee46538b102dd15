"""Workers left behind by a supervisor that died, found and stopped by the next one.

Workers run in sessions of their own, so they outlive a supervisor that is SIGKILLed or
crashes. Left alone they keep their web ports (the next supervisor's workers could not bind
them) and keep writing for partitions the group may have handed to others. Every worker the
supervisor starts is therefore listed under ``$FRAUDSTREAM_STATE_DIR/run/<app id>/``; the next
supervisor of the same app kills the listed processes that are still fraudstream workers (a
pid the system reused for something else is left alone) before it starts its own. One
supervisor per app and state dir at a time is enforced with a lock, so a running supervisor's
workers are never taken for orphans.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import time
from pathlib import Path
from typing import IO

from fraudstream.settings import Settings

logger = logging.getLogger(__name__)


class SupervisorBusy(RuntimeError):
    """Another supervisor manages this app's workers from the same state dir."""

    retriable = False


def run_dir(settings: Settings) -> Path:
    return settings.state_dir / "run" / settings.app_id


def claim(settings: Settings) -> IO[str]:
    """Hold the app's supervisor lock (released when the returned file is closed)."""
    path = run_dir(settings) / "supervisor.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path, "a+")  # noqa: SIM115 - held for the supervisor's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise SupervisorBusy(f"another supervisor runs the workers of {settings.app_id} from "
                             f"{settings.state_dir}; stop it first (or use another "
                             "FRAUDSTREAM_APP_ID or FRAUDSTREAM_STATE_DIR)") from None
    return lock


def listed(settings: Settings, pid: int) -> None:
    """Note that this supervisor started worker ``pid``."""
    path = run_dir(settings) / f"worker-{pid}.pid"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(pid))


def unlisted(settings: Settings, pid: int) -> None:
    (run_dir(settings) / f"worker-{pid}.pid").unlink(missing_ok=True)


def is_worker(pid: int, app_id: str) -> bool:
    """True when ``pid`` runs ``fraudstream ... worker`` for ``app_id`` (not a reused pid, and
    not another app's worker)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return (any(b"fraudstream" in a for a in argv) and b"worker" in argv
            and f"FRAUDSTREAM_APP_ID={app_id}".encode() in environ)


def stop_orphans(settings: Settings, wait_s: float = 10.0) -> list[int]:
    """SIGKILL the listed workers still running (their process groups); returns their pids.

    Call it holding ``claim``: without the lock, a live supervisor's workers would be taken
    for orphans.
    """
    killed = []
    for path in sorted(run_dir(settings).glob("worker-*.pid")):
        try:
            pid = int(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if is_worker(pid, settings.app_id):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # its own session: pgid == pid
            killed.append(pid)
        path.unlink(missing_ok=True)
    deadline = time.monotonic() + wait_s
    while killed and time.monotonic() < deadline and any(_exists(p) for p in killed):
        time.sleep(0.05)
    if killed:
        logger.warning("stopped workers left by a previous supervisor pids=%s", killed)
    return killed


def _exists(pid: int) -> bool:
    """The process is still there (a zombie awaiting its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
