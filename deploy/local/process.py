"""Detached server processes tracked by pid files, so ``down`` stops exactly what ``up`` started."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fraudstream.deploy.local.errors import ServiceNotReady, StackError

logger = logging.getLogger(__name__)

#: How long stop() waits for a SIGKILLed process to be gone.
KILL_WAIT_S = 10.0


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    return stat.rsplit(")", 1)[1].split()


def process_start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (None if it is gone); guards pid reuse."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])


def fully_exited(pid: int) -> bool:
    """True once every thread of ``pid`` has exited, so its sockets and files are closed.

    A multi-threaded process (a JVM) whose main thread is done shows as a zombie while its
    other threads still run and hold its listening ports; only a zombie with no thread left
    but the leader is really gone.
    """
    fields = _stat_fields(pid)
    if fields is None:
        return True
    if fields[0] != "Z":
        return False
    try:
        return len(os.listdir(f"/proc/{pid}/task")) <= 1
    except OSError:
        return True


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user and system) process ``pid`` has used so far; None if gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # utime and stime are fields 14 and 15 of /proc/PID/stat; these start at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ManagedProcess:
    """A named server process; its identity (pid + start time) is kept in a pid file."""

    name: str
    run_dir: Path
    #: The server's own log file when its output says little (Kafka's log4j file): tailed too.
    detail_log: Path | None = None

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir.parent / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of the process this launcher started, if it is still that process."""
        try:
            record = json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        pid, ticks = int(record["pid"]), record.get("start_ticks")
        if process_start_ticks(pid) is None or process_start_ticks(pid) != ticks:
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, argv: Sequence[str], *, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> int:
        """Start the process detached in its own session, output appended to its log file."""
        if self.running():
            raise StackError(f"{self.name} is already running (pid {self.pid()})")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        record = {"pid": proc.pid, "start_ticks": process_start_ticks(proc.pid), "argv": list(argv)}
        self.pid_file.write_text(json.dumps(record))
        logger.info("started name=%s pid=%s", self.name, proc.pid)
        return proc.pid

    def kill(self, signum: int = signal.SIGKILL) -> bool:
        """Send ``signum`` to the process group (fault injection); True if it was running."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signum)
        return True

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; True if something was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not fully_exited(pid):
            _reap(pid)
            time.sleep(0.1)
        if not fully_exited(pid):
            logger.warning("killing name=%s pid=%s after %.0fs", self.name, pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            # Until it is gone it still holds its ports: a restart right away would find
            # them taken (seen: a broker restarted just after a SIGKILL).
            deadline = time.monotonic() + KILL_WAIT_S
            while time.monotonic() < deadline and not fully_exited(pid):
                _reap(pid)
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` of its output and of its detail log, each under its path, after
        the last error lines above them (a JVM's shutdown noise buries the cause)."""
        parts = []
        for path in (self.log_file, self.detail_log):
            text = _read_lines(path) if path is not None else []
            tail = text[-lines:]
            errors = [line[:MAX_LINE] for line in text[:-lines] if _is_error(line)]
            if errors:
                parts.append("\n".join([f"--- errors in {path}", *errors[-ERROR_LINES:]]))
            if tail:
                parts.append("\n".join([f"--- {path}", *tail]))
        return "\n".join(parts) if parts else f"(no log in {self.log_file.parent})"


#: Error lines shown above a log's tail, and how much of each.
ERROR_LINES = 5
MAX_LINE = 300
ERROR_MARKERS = (" ERROR ", " FATAL ", "Exception: ", " # ", "level=error")


def _is_error(line: str) -> bool:
    # Stack frames ("\tat ...") would push the messages out.
    return not line.startswith(("\t", " ")) and any(m in line for m in ERROR_MARKERS)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(predicate: Callable[[], bool], timeout: float, message: str,
               proc: ManagedProcess | Sequence[ManagedProcess] | None = None,
               interval: float = 0.2,
               laggard: Callable[[], ManagedProcess] | None = None) -> None:
    """Poll ``predicate`` until true, else raise ``ServiceNotReady`` (with the log).

    Every process in ``proc`` is watched: one that exits fails the wait at once with its
    log. On timeout the log shown is ``laggard()``'s (the process holding things up, e.g. the
    Kafka node that never listened), else the first process's.
    """
    procs = [proc] if isinstance(proc, ManagedProcess) else list(proc or ())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for p in procs:
            if not p.running():
                raise StackError(f"{message}: {p.name} exited. Last log lines:\n{p.log_tail()}")
        time.sleep(interval)
    culprit = laggard() if laggard is not None else (procs[0] if procs else None)
    tail = f" Last log lines of {culprit.name}:\n{culprit.log_tail()}" if culprit else ""
    raise ServiceNotReady(f"{message} (waited {timeout:.0f}s).{tail}")
