"""Scoring workers as child processes: start, wait until ready, stop (demo, bench, tests)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from fraudstream.loopback import bind_refused
from fraudstream.settings import Settings

logger = logging.getLogger(__name__)


class WorkerStartError(RuntimeError):
    """A worker process exited or did not become ready; the message holds its log tail."""

    retriable = False


#: How long a slot's web port may stay taken at start before it is refused: a stopped worker's
#: leader thread reads as gone (a zombie) while its other threads, which share its sockets,
#: may still be exiting (seen once in a clean-clone test run).
SLOT_PORT_WAIT_S = 5.0


class SlotPortTaken(WorkerStartError):
    """A worker slot's web port is taken by a program that is not one of this app's workers:
    every worker started in the slot would exit at once, for ever."""


def check_slot_ports(settings: Settings, count: int, wait_s: float = SLOT_PORT_WAIT_S) -> None:
    """Raise ``SlotPortTaken`` unless the web ports of slots 1 to ``count`` can be bound; each
    gets ``wait_s`` seconds to come free.

    Measured: a web server on slot 1's port made ``supervise`` replace that slot's worker 19
    times in a minute; ``bench`` beside a running ``demo`` lost its first worker to the demo's
    port and then blamed the machine's load.
    """
    deadline = time.monotonic() + wait_s
    for index in range(1, count + 1):
        port = settings.worker_web_port + index
        while (refused := bind_refused(settings.bind_host, port)) is not None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        if refused is not None:
            raise SlotPortTaken(
                f"port {port} of worker slot {index} (FRAUDSTREAM_WORKER_WEB_PORT + {index}) on "
                f"{settings.bind_host} is taken by another program ({refused}), such as the "
                "workers of a running `fraudstream supervise` or `demo`; stop it, or set "
                f"FRAUDSTREAM_WORKER_WEB_PORT so that the web port + 1 to + {count} are free")


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process these exact settings."""
    env = dict(os.environ)
    for name, _default, _type in Settings.describe():
        value = getattr(settings, name.removeprefix("FRAUDSTREAM_").lower())
        env[name] = str(value)
    env["FRAUDSTREAM_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap
    # One OpenMP thread per worker process, whatever thread calls the model (see
    # workers.scoring.limit_model_threads).
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def write_targets(settings: Settings, name: str, targets: list[str], component: str) -> None:
    """List ``targets`` for the local Prometheus (file_sd ``targets/<name>-<app id>.json``).

    One file per app, so a chaos run and the demo never overwrite each other's targets.
    """
    from fraudstream.deploy.local.services import write_targets as write_file_sd

    write_file_sd(_targets_dir(settings), f"{name}-{settings.app_id}", targets,
                  {"component": component, "app": settings.app_id})


def remove_targets(settings: Settings, name: str) -> None:
    """Stop listing the targets ``write_targets`` listed: stopped processes are not down ones."""
    (_targets_dir(settings) / f"{name}-{settings.app_id}.json").unlink(missing_ok=True)


def stopping_file(settings: Settings, pid: int) -> Path:
    """Where worker ``pid`` announces that it is stopping (written at SIGTERM, before its web
    server goes away), so a supervisor drains it instead of taking it for hung."""
    return settings.state_dir / "run" / f"worker-{pid}.stopping"


def app_datadir(settings: Settings) -> Path:
    """Where the workers of this app (consumer group) keep their local Faust data."""
    return settings.state_dir / "faust" / settings.app_id


def worker_datadir(settings: Settings, index: int) -> Path:
    """Where the worker in slot ``index`` keeps its Faust data (the card table's RocksDB).

    Per slot, so a worker restarted in its slot (or the standby given the slot) finds the
    card table its predecessor kept on disk (workers.card_store).
    """
    return app_datadir(settings) / f"worker-{index}"


def _targets_dir(settings: Settings) -> Path:
    return settings.state_dir / "prometheus" / "targets"


@dataclass
class WorkerProcess:
    """One ``fraudstream worker --index N`` child process (or a warm standby for one).

    A standby (``standby_file`` set) imports everything and loads the model, writes
    ``standby_file``, then waits on its stdin for ``activate`` to give it a slot.
    """

    settings: Settings
    index: int
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    instance_id: str | None = None
    standby_file: Path | None = None
    name: str = ""

    @property
    def port(self) -> int:
        return self.settings.worker_web_port + self.index

    @property
    def log_file(self) -> Path:
        return self.settings.state_dir / "logs" / f"{self.name or f'worker-{self.index}'}.log"

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        args = ["--index", str(self.index)]
        if self.standby_file is not None:
            self.standby_file.unlink(missing_ok=True)
            args = ["--standby", str(self.standby_file)]
        elif self.instance_id is not None:
            args += ["--instance-id", self.instance_id]
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fraudstream.cli", "worker", *args, *self.extra_args],
                env=settings_env(self.settings),
                stdin=subprocess.PIPE if self.standby_file is not None else subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.forget()  # a mark left by an earlier process with this pid is not this one's
        logger.info("started worker name=%s pid=%d standby=%s", self.name or self.index,
                    self.proc.pid, self.standby_file is not None)

    def standby_ready(self) -> bool:
        """A standby that has loaded everything and waits for a slot."""
        return (self.standby_file is not None and self.alive()
                and self.standby_file.exists())

    def activate(self, index: int, instance_id: str | None) -> None:
        """Give a ready standby a slot: it joins the group with that web port and member id."""
        if self.proc is None or self.proc.stdin is None:
            raise WorkerStartError(f"{self.name} is not a standby")
        self.index, self.instance_id = index, instance_id
        line = json.dumps({"index": index, "instance_id": instance_id}) + "\n"
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()
        self.proc.stdin.close()
        if self.standby_file is not None:
            self.standby_file.unlink(missing_ok=True)
        self.standby_file = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _get(self, path: str, timeout: float) -> dict | None:
        """The JSON body of ``path`` (also of an error status), None when nothing answers."""
        url = f"http://{self.settings.bind_host}:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as exc:
            # /ready answers 503 with a body that says why (e.g. restoring its tables).
            try:
                return dict(json.loads(exc.read()))
            except (OSError, ValueError):
                return None
            finally:
                exc.close()
        except (OSError, ValueError):
            return None

    def metrics_page(self, timeout: float = 3.0) -> str | None:
        """The worker's /metrics page, None when it does not answer."""
        url = f"http://{self.settings.bind_host}:{self.port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return str(resp.read().decode())
        except (OSError, ValueError):
            return None

    def readiness(self, timeout: float = 1.0) -> dict | None:
        """The worker's /ready body (``ready`` false on a 503), None when it does not answer."""
        return self._get("/ready", timeout)

    def health(self, timeout: float = 1.0) -> dict | None:
        """The worker's /health body (``status`` ok or stopping), None when it does not answer."""
        return self._get("/health", timeout)

    def liveness(self, timeout: float = 1.0) -> bool:
        """True when the worker's event loop answers /health in time."""
        return self.health(timeout) is not None

    def stopping(self) -> bool:
        """True once the worker has announced that it is stopping (see ``stopping_file``)."""
        return self.proc is not None and stopping_file(self.settings, self.proc.pid).exists()

    def forget(self) -> None:
        """Remove what the process left behind for the supervisor (its stopping mark)."""
        if self.proc is not None:
            stopping_file(self.settings, self.proc.pid).unlink(missing_ok=True)

    def error_line(self) -> str:
        """The worker's one-line error (``fraudstream worker: error: ...``), else its last line."""
        lines = [line for line in self.log_tail(50).splitlines() if line.strip()]
        errors = [line for line in lines if ": error: " in line]
        return (errors or lines or ["(no log)"])[-1].strip()

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signum)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(5)
        self.forget()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class WorkerPool:
    """N scoring workers of one consumer group."""

    settings: Settings
    count: int
    workers: list[WorkerProcess] = field(default_factory=list)
    #: How long each slot's web port may stay taken at start (``check_slot_ports``).
    port_wait_s: float = SLOT_PORT_WAIT_S

    def start(self) -> None:
        """Start the workers; raise ``SlotPortTaken`` first, starting none, when a slot's web
        port stays taken."""
        check_slot_ports(self.settings, self.count, self.port_wait_s)
        self.workers = [WorkerProcess(self.settings, i) for i in range(1, self.count + 1)]
        for w in self.workers:
            w.start()
        self.write_scrape_targets()

    def write_scrape_targets(self) -> None:
        """Tell the local Prometheus (file_sd) where the workers' /metrics are."""
        write_targets(self.settings, "workers",
                      [f"{self.settings.bind_host}:{w.port}" for w in self.workers],
                      component="worker")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until every worker is ready and all transaction partitions are assigned."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for w in self.workers:
                if not w.alive():
                    raise WorkerStartError(f"worker {w.index} exited. Last log lines:\n"
                                           f"{w.log_tail()}")
            answers = [w.readiness() for w in self.workers]
            # The pid check: a stale process on the same port must not pass for this worker.
            if all(a is not None and a.get("ready") and w.proc is not None
                   and a.get("pid") == w.proc.pid for a, w in zip(answers, self.workers,
                                                                   strict=True)):
                assigned = sum(int(a.get("assigned_partitions", 0)) for a in answers if a)
                if assigned >= self.settings.partitions:
                    return
            time.sleep(0.3)
        tails = "\n".join(f"--- worker {w.index}\n{w.log_tail(10)}" for w in self.workers)
        raise WorkerStartError(f"workers not ready after {timeout:.0f}s\n{tails}")

    def stop(self) -> None:
        for w in self.workers:
            w.signal(signal.SIGTERM)
        for w in self.workers:
            w.stop()
        remove_targets(self.settings, "workers")
