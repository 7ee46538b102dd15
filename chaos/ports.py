"""The web ports of a chaos run's supervisor and workers: never the app's, never another run's.

A run's workers would otherwise inherit FRAUDSTREAM_WORKER_WEB_PORT and
FRAUDSTREAM_SUPERVISOR_PORT from the environment, the very ports a running ``fraudstream
supervise`` or ``demo`` serves on: each worker then dies at start (address already in use), the
supervisor replaces it again and again, and the run ends in a crash loop instead of a result.
So a run serves on the app's ports shifted by ``PORT_OFFSET`` (the next shift when those are
taken), checks that every one is free before it starts anything, and holds a lock on the shift
for as long as it runs, so that two runs (of different state dirs) never pick the same one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from fraudstream.errors import UserError
from fraudstream.loopback import port_taken
from fraudstream.settings import ENV_PREFIX, MAX_PORT, MAX_WORKERS, Settings

#: How far a run's ports sit from the app's (and from another run's). An app's slots
#: (``settings.MAX_WORKERS``) stay below the first shift's supervisor port
#: (FRAUDSTREAM_SUPERVISOR_PORT + 100, by default the web port + 99).
PORT_OFFSET = 100
#: Shifts tried in turn (100, 200, ...) before a run gives up: one per concurrent run.
MAX_SHIFTS = 5


class ChaosPortsTaken(UserError):
    """No shift of the app's ports is free for a chaos run's supervisor and workers."""


@dataclasses.dataclass(frozen=True)
class RunPorts:
    """Where one run's supervisor serves /metrics and from where its workers' web ports count."""

    supervisor_port: int
    worker_web_port: int
    workers: int

    def needed(self) -> dict[int, str]:
        """Every port the run binds, with the variable it derives from (slot N: web port + N;
        a standby binds only the port of the slot it is given)."""
        ports = {self.supervisor_port: "SUPERVISOR_PORT"}
        for slot in range(1, self.workers + 1):
            ports[self.worker_web_port + slot] = "WORKER_WEB_PORT"
        return ports

    def apply(self, settings: Settings) -> Settings:
        """``settings`` serving on these ports."""
        return dataclasses.replace(settings, supervisor_port=self.supervisor_port,
                                   worker_web_port=self.worker_web_port)


def app_ports(settings: Settings) -> set[int]:
    """The ports an app with ``settings`` may serve on: its supervisor, up to
    ``MAX_WORKERS`` workers, and every other server of the stack."""
    ports = {settings.supervisor_port}
    ports.update(settings.worker_web_port + slot for slot in range(1, MAX_WORKERS + 1))
    ports.update(getattr(settings, f.name) for f in dataclasses.fields(settings)
                 if f.name.endswith("_port") and f.name not in ("supervisor_port",
                                                                "worker_web_port"))
    return ports


def candidates(base: Settings, workers: int) -> list[RunPorts]:
    """The shifts of ``base``'s ports a run may use, in order: none of them is a port the app
    (with ``base``'s settings or the defaults) serves on, nor above 65535."""
    reserved = app_ports(base) | app_ports(Settings())
    found = []
    for shift in range(1, MAX_SHIFTS + 1):
        ports = RunPorts(base.supervisor_port + shift * PORT_OFFSET,
                         base.worker_web_port + shift * PORT_OFFSET, workers)
        if max(ports.needed()) <= MAX_PORT and not reserved & set(ports.needed()):
            found.append(ports)
    return found


def first_taken(host: str, ports: RunPorts) -> tuple[int, str] | None:
    """The first port of ``ports`` taken on ``host`` and its variable (None: all are free)."""
    for port, variable in sorted(ports.needed().items()):
        if port_taken(host, port):
            return port, variable
    return None


def _lock_path(host: str, ports: RunPorts) -> Path:
    # In the temporary folder, not the state dir: runs of different state dirs share ports.
    return (Path(tempfile.gettempdir()) / "fraudstream-chaos-ports"
            / f"{host.replace(':', '_')}-{ports.supervisor_port}-{ports.worker_web_port}.lock")


def _try_lock(path: Path) -> IO[str] | None:
    """The open, exclusively locked file ``path``; None when another run holds it."""
    try:
        path.parent.mkdir(mode=0o1777, parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - held open for the run, closed by the caller
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


@contextlib.contextmanager
def run_ports(base: Settings, workers: int) -> Iterator[RunPorts]:
    """Free ports for a run of ``workers`` workers, held (locked against other runs) until the
    block ends; raises ``ChaosPortsTaken`` at once, naming a taken port, when no shift is free."""
    first_problem: tuple[int, str] | None = None
    for ports in candidates(base, workers):
        handle = _try_lock(_lock_path(base.bind_host, ports))
        if handle is None:
            first_problem = first_problem or (ports.supervisor_port, "SUPERVISOR_PORT")
            continue
        try:
            taken = first_taken(base.bind_host, ports)
            if taken is None:
                yield ports
                return
            first_problem = first_problem or taken
        finally:
            handle.close()  # closing releases the lock
    raise ChaosPortsTaken(no_free_ports(base, workers, first_problem))


def no_free_ports(base: Settings, workers: int, taken: tuple[int, str] | None) -> str:
    """The one line that says which port stopped the run and which variable moves it."""
    shifts = f"+{PORT_OFFSET} ... +{MAX_SHIFTS * PORT_OFFSET}"
    if taken is None:
        return (f"no ports for a chaos run's supervisor and {workers} workers at {shifts} from "
                f"{ENV_PREFIX}WORKER_WEB_PORT={base.worker_web_port} and "
                f"{ENV_PREFIX}SUPERVISOR_PORT={base.supervisor_port}; run it with lower ones")
    port, variable = taken
    return (f"port {base.bind_host}:{port} is taken, and so is one at each other offset a "
            f"chaos run tries ({shifts} from the app's ports); stop what serves there, or run "
            f"it with another {ENV_PREFIX}{variable} (now {getattr(base, variable.lower())})")
