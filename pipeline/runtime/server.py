"""Warm processes: pay for importing torch, MLflow and matplotlib once, not once per stage.

A client (pipeline/runtime/client.py) starts a server on demand; the server imports every
stage and the libraries they use, listens on a Unix socket in a directory only its user
can open, and forks a child per stage. Before the child runs a stage it proves that it is
its client's equal (pipeline/runtime/identity.py): the pipeline's source on disk is the
source the server imported, no library it loaded changed on disk, and the client runs in
the same process context (nice level, cgroup, namespaces, root, user, limits). Otherwise
it declines and the client runs the stage itself. The child then takes over the client's
working directory, environment, standard streams, umask and CPU affinity, and runs the
stage exactly as the client would.

A server named after a client's code and context serves only clients like it; it leaves
after PIPELINE_STAGE_SERVER_IDLE_S seconds (default 600) without a stage, as soon as the
code or libraries it imported change on disk, or when `make stop` asks the servers of its
own checkout to leave (`python -m pipeline.runtime.server stop`, through their sockets: no
process is signalled on the word of a pid file).
"""

import array
import functools
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from contextlib import suppress
from pathlib import Path

from pipeline.library import numerics
from pipeline.runtime import identity
from pipeline.runtime.client import (
    FORWARDED_SIGNALS,
    ServerUnavailableError,
    read_line,
    server_directory,
    short_address,
    try_connect,
)
from pipeline.runtime.params import params_from_values
from pipeline.runtime.signals import Interrupted, SignalGate
from pipeline.runtime.stage import execute

DEFAULT_IDLE_S = 600
#: How often an idle server looks whether the code it imported changed on disk.
STALE_CHECK_S = 2.0
#: How often a stage's process looks whether its client was stopped (Ctrl-Z, SIGSTOP).
CLIENT_WATCH_S = 0.2
#: What every stage imports besides the stage modules, without running any torch operation.
PRELOADED = (
    "pipeline.runtime.tracking",
    "torch._dynamo",  # torch.optim imports it on the first optimizer: 2 s
    "mlflow.pyfunc",
    "mlflow.models.signature",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.artifact.local_artifact_repo",
    "mlflow.store.db.utils",
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "mlflow.models.display_utils",
    "mlflow.pyfunc.scoring_server",
    "mlflow.tracing.export",
    "mlflow.tracing.export.utils",
    "mlflow.tracing.processor",
    "mlflow.tracing.processor.base_mlflow",
    "mlflow.tracing.processor.otel",
    "mlflow.tracing.utils.environment",
    "opentelemetry.sdk.metrics",
    "alembic.command",
    "alembic.config",
    "git",  # MLflow reads the source's git state
    "sqlalchemy.dialects.sqlite",
    "pandas",
    "pyarrow.dataset",
    "pyarrow.pandas_compat",
    "pyarrow.parquet",
    "torch.utils.serialization",
)


class Imported:
    """What the server imported: the pipeline's source and the files of its libraries."""

    def __init__(self, source: identity.Snapshot, libraries: identity.Snapshot) -> None:
        self.source = source
        self.libraries = libraries

    def stale(self) -> str | None:
        """Why the disk no longer holds what was imported, or None if it does."""
        moved = identity.changed(self.source, identity.source_snapshot())
        if moved:
            return f"pipeline/{moved[0]} changed since the warm process imported it"
        libraries = identity.changed(self.libraries, identity.restat(self.libraries))
        if libraries:
            return f"{libraries[0]} changed since the warm process imported it"
        return None


def preload(stage_modules: list[str]) -> Imported:
    """Import everything a stage imports; what was imported, proven unchanged meanwhile.

    A forked child must not inherit threads or initialised kernel libraries: torch's CPU
    capability, thread pools and MKL are first touched in the child, after its pin.
    """
    before = identity.source_snapshot()
    for module in (*stage_modules, *PRELOADED):
        importlib.import_module(module)
    # Logging a model maps every installed module to its package (1.4 s); the map depends on
    # the installed packages only, which the server proves unchanged: children inherit it.
    from mlflow.utils import requirements_utils

    for warm_up in ("_init_modules_to_packages_map", "_init_packages_to_modules_map"):
        getattr(requirements_utils, warm_up, lambda: None)()
    # Opening a SQLite store checks its schema against the newest of MLflow's migration
    # scripts, which MLflow loads anew each time (68 files: tens of ms a stage). The answer
    # depends on the installed MLflow only: work it out once.
    from mlflow.store.db import utils as db_utils

    if hasattr(db_utils, "_get_latest_schema_revision"):
        db_utils._get_latest_schema_revision = functools.cache(db_utils._get_latest_schema_revision)
        db_utils._get_latest_schema_revision()
    if threading.active_count() != 1:
        raise RuntimeError(f"preloading started threads: {threading.enumerate()}")
    imported = Imported(before, identity.loaded_files())
    reason = imported.stale()
    if reason:
        raise RuntimeError(f"cannot serve: {reason} (while it was importing)")
    return imported


# ---------------------------------------------------------------------------
# The server.


def serve(path: Path, ready_descriptor: int, stage_modules: list[str]) -> int:
    """Accept stages on `path` until idle, stale or asked to leave; fork a child for each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _leave)
    os.chdir("/")  # sys.path already holds the package's parent, as an absolute path
    imported = preload(stage_modules)
    idle_s = float(os.environ.get("PIPELINE_STAGE_SERVER_IDLE_S", DEFAULT_IDLE_S))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with short_address(path) as address:
        listener.bind(address)
    listener.listen(64)
    inode = path.stat().st_ino
    os.write(ready_descriptor, b"ready\n")
    os.close(ready_descriptor)
    with suppress(_LeaveError):
        _accept(listener, path, inode, idle_s, imported)
    if _still_ours(path, inode):
        path.unlink(missing_ok=True)
    return 0


class _LeaveError(Exception):
    """The server was asked to go."""


def _leave(_signum: int, _frame: object) -> None:
    raise _LeaveError


def _accept(
    listener: socket.socket, path: Path, inode: int, idle_s: float, imported: Imported
) -> None:
    """Fork a child per connection; return once idle, stale, or the socket is not ours."""
    children: set[int] = set()
    server_pid = os.getpid()
    last_active = last_check = time.monotonic()
    while True:
        readable, _, _ = select.select([listener], [], [], 1.0)
        children -= _reaped(children)
        now = time.monotonic()
        if readable:
            connection, _ = listener.accept()
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                listener.close()
                _serve_connection(connection, imported, server_pid)  # never returns
            connection.close()
            children.add(pid)
            last_active = now
        elif children:
            last_active = now
        elif now - last_active > idle_s or not _still_ours(path, inode):
            return
        elif now - last_check > STALE_CHECK_S:
            last_check = now
            if imported.stale():
                return


def _reaped(children: set[int]) -> set[int]:
    done = set()
    for pid in children:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished:
            done.add(pid)
    return done


def _still_ours(path: Path, inode: int) -> bool:
    try:
        return path.stat().st_ino == inode
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------------
# A child: one stage, or one request to leave.


def _serve_connection(connection: socket.socket, imported: Imported, server_pid: int) -> None:
    """In the forked child: answer one request, then exit."""
    status = 1
    try:
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        request = _receive_request(connection)
        if "stop" in request:
            status = _answer_stop(connection, request["stop"], server_pid)
        else:
            status = _run_stage(connection, request, imported)
    except BaseException:  # the child must report, whatever happened
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with suppress(OSError):
                stream.flush()
        with suppress(OSError):
            connection.sendall(f"exit {status}\n".encode())
        os._exit(status)


def _answer_stop(connection: socket.socket, package_dir: str, server_pid: int) -> int:
    """Leave if asked by a client of this checkout; servers of other checkouts stay."""
    if package_dir != str(identity.PACKAGE_DIR) or os.getppid() != server_pid:
        connection.sendall(b"other\n")
        return 0
    os.kill(server_pid, signal.SIGTERM)
    connection.sendall(b"stopping\n")
    return 0


def _run_stage(connection: socket.socket, request: dict, imported: Imported) -> int:
    """Run the client's stage as the client would, or decline to; its exit status."""
    reason = imported.stale() or _unlike(request["context"])
    if reason:
        connection.sendall(f"declined {reason}\n".encode())
        return 0
    try:
        connection.sendall(f"started {os.getpid()}\n".encode())
    except OSError:  # the client left (a signal, before it could forward one)
        return 128 + signal.SIGTERM
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(request["umask"])
    os.sched_setaffinity(0, request["affinity"])
    params = params_from_values(request["params"], Path(request["source"]))
    numerics.pin(params.cpu_capability)
    argv = request["argv"]
    sys.argv = ["python -m pipeline", *argv]
    module = importlib.import_module(request["module"])
    # Forwarded signals wait in the socket until now: the gate is there to take them.
    gate = SignalGate()
    gate.install()
    finished = threading.Event()
    watcher = threading.Thread(
        target=_follow_client, args=(connection, request["client"], finished), daemon=True
    )
    try:
        watcher.start()  # inside: a signal may land while it starts
        return execute(module, argv[1:], params, identity.PACKAGE_DIR, gate, imported.source)
    except Interrupted as interrupt:  # before `execute` took over: nothing was started
        gate.stop_raising()
        return 128 + interrupt.signum
    finally:
        finished.set()


def _unlike(context: dict[str, str]) -> str | None:
    """How the client's process context differs from this process's, or None."""
    here = identity.process_context()
    differing = identity.changed(context, here)
    if not differing:
        return None
    key = differing[0]
    return f"it runs with another {key} ({context.get(key)!r}, not {here.get(key)!r})"


def _receive_request(connection: socket.socket) -> dict:
    """The client's request line, and any standard streams it sent as this process's own."""
    descriptors = array.array("i")
    message, ancillary, _, _ = connection.recvmsg(
        1 << 20, socket.CMSG_SPACE(3 * descriptors.itemsize)
    )
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            descriptors.frombytes(data[: len(data) - len(data) % descriptors.itemsize])
    while not message.endswith(b"\n"):
        chunk = connection.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the client left before sending its request")
        message += chunk
    if descriptors:
        for target, descriptor in zip((0, 1, 2), descriptors, strict=True):
            os.dup2(descriptor, target)
            os.close(descriptor)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own streams
        sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    return json.loads(message)


def _follow_client(connection: socket.socket, client_pid: int, finished: threading.Event) -> None:
    """Deliver the client's forwarded signals to the main thread; stop while the client is
    stopped; stop the stage as SIGTERM would when the client is gone."""
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)  # never handled here
    main = threading.main_thread().ident
    buffer = b""
    while True:
        readable, _, _ = select.select([connection], [], [], CLIENT_WATCH_S)
        if not readable:
            if _stopped(client_pid) and not finished.is_set():
                os.kill(os.getpid(), signal.SIGSTOP)  # the client's SIGCONT continues us
            continue
        try:
            chunk = connection.recv(64)
        except OSError:
            chunk = b""
        if not chunk:
            if not finished.is_set():
                signal.pthread_kill(main, signal.SIGTERM)  # the client is gone: stop
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.startswith(b"signal "):
                signal.pthread_kill(main, int(line.split()[1]))


def _stopped(pid: int) -> bool:
    """Whether process `pid` is stopped (Ctrl-Z, SIGSTOP): state T in /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].startswith("T")


# ---------------------------------------------------------------------------
# `make stop`.


def stop_servers() -> int:
    """Ask this checkout's warm processes to leave (`make stop`); each finishes its stages."""
    try:
        directory = server_directory()
    except ServerUnavailableError as reason:
        print(f"no warm processes to stop ({reason})")
        return 0
    stopped = 0
    for path in sorted(directory.glob("*.sock")):
        connection = try_connect(path)
        if connection is None:
            continue
        with connection:
            request = json.dumps({"stop": str(identity.PACKAGE_DIR)}).encode() + b"\n"
            with suppress(OSError):
                connection.sendall(request)
                stopped += read_line(connection) == b"stopping"
    print(f"stopped {stopped} warm process{'es' * (stopped != 1)} of {identity.PACKAGE_DIR}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["stop"]:
        print("usage: python -m pipeline.runtime.server stop", file=sys.stderr)
        sys.exit(2)
    sys.exit(stop_servers())
