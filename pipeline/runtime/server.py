"""Warm stage processes: pay for importing torch, MLflow and matplotlib once, not per stage.

`python -m pipeline <stage> ...` is a small client. It asks a stage server (started on
demand, one per version of this package and of the environment) to fork a child that
already has every heavy library imported; the child takes over the client's working
directory, environment, standard streams and CPU affinity, runs the stage exactly as
`run_here` would, and reports its exit status. To DVC nothing changes: the command
runs, prints and exits with the stage's status.

- Signals: the client forwards SIGINT, SIGTERM and SIGHUP to the child; a client that
  dies (SIGKILL) stops its child as SIGTERM would.
- Code or environment changes: the server is chosen by a hash of this package's source,
  the interpreter, its installed packages and the pinned CPU kernels, so an edited
  module is never run by a server that imported the old one.
- Lifetime: a server exits after PIPELINE_STAGE_SERVER_IDLE_S seconds (default 600)
  without a stage. PIPELINE_STAGE_SERVER=0 runs every stage in its own process instead
  (the default off Linux, where forking a process that imported these libraries is not
  safe). Servers listen on Unix sockets in a directory only their user can open.
"""

import array
import functools
import hashlib
import importlib
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from pipeline.library import numerics
from pipeline.runtime.params import Params, params_from_values

PACKAGE_DIR = Path(__file__).resolve().parents[1]
STAGES = ("generate", "split", "train", "evaluate", "plot", "report")
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEFAULT_IDLE_S = 600
#: Environment that Python reads only as it starts (the server's start, for its children).
STARTUP_VARIABLES = (
    "PYTHONHASHSEED",
    "PYTHONOPTIMIZE",
    "PYTHONWARNINGS",
    "PYTHONDEVMODE",
    "PYTHONMALLOC",
    "PYTHONUTF8",
    "PYTHONIOENCODING",
    "PYTHONSAFEPATH",
)
#: Resource limits (`ulimit`) a stage process must have as its client has them.
LIMITS = ("RLIMIT_FSIZE", "RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_CORE")
START_TIMEOUT_S = 120  # importing everything on a cold, busy machine


class ServerUnavailableError(Exception):
    """No stage server can be reached or started; the stage runs in this process instead."""


def enabled() -> bool:
    """Whether stages run in warm processes (Linux, unless PIPELINE_STAGE_SERVER=0)."""
    return sys.platform == "linux" and os.environ.get("PIPELINE_STAGE_SERVER", "1") != "0"


def run_here(argv: list[str], params: Params) -> int:
    """Run stage `argv` in this process: pin the CPU kernels, import the stage, execute it."""
    from pipeline.runtime.stage import SignalGate, execute

    numerics.pin(params.cpu_capability)
    module = importlib.import_module(f"pipeline.stages.{argv[0]}")
    gate = SignalGate()
    gate.install()
    return execute(module, argv[1:], params, PACKAGE_DIR, gate)


# ---------------------------------------------------------------------------
# The client: one `python -m pipeline ...` process.


class Client:
    """Holds the connection to the child so that signals can be forwarded to it."""

    def __init__(self) -> None:
        self.connection: socket.socket | None = None
        self.received: int | None = None

    def on_signal(self, signum: int, _frame: object) -> None:
        self.received = self.received or signum
        if self.connection is None:  # nothing started yet: just stop
            raise SystemExit(128 + signum)
        with suppress(OSError):  # the child may be gone already; its status tells
            self.connection.sendall(f"signal {signum}\n".encode())


def run_in_server(argv: list[str], params: Params, client: Client) -> int:
    """Run stage `argv` in a child of a warm server; the stage's exit status."""
    key = server_key(params.cpu_capability)
    request = {
        "argv": argv,
        "cwd": str(Path.cwd()),
        "env": dict(os.environ),
        "umask": _current_umask(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "params": params.values,
        "source": str(params.source),
        "package_dir": str(PACKAGE_DIR),
    }
    payload = json.dumps(request).encode() + b"\n"
    descriptors = array.array("i", [_usable(descriptor) for descriptor in (0, 1, 2)])
    for attempt in range(2):  # a server that was just leaving (idle) drops the first try
        connection = _connect_or_start(key, params.cpu_capability)
        try:
            connection.sendmsg(
                [payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, descriptors.tobytes())]
            )
            if _read_line(connection) == b"started":
                break
        except OSError:
            pass
        connection.close()
        if attempt:
            raise ServerUnavailableError("the stage server did not take the stage")
    client.connection = connection
    answer = _read_line(connection)
    # The stage has ended: from here a signal ends this process as it would any other (by
    # its default action), never with the stage's 0; one that came before says so below.
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    if not answer.startswith(b"exit "):
        print(f"error: the {argv[0]} stage's process ended without a status", file=sys.stderr)
        return 1
    status = int(answer.split()[1])
    if client.received and status == 0:
        return 128 + client.received  # the stage finished, but a signal was sent: say so
    return status


def _read_line(connection: socket.socket) -> bytes:
    """One line from the connection, without its newline; b"" if it closes first."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = connection.recv(1)
        if not chunk:
            return b""
        line += chunk
    return line[:-1]


def _usable(descriptor: int) -> int:
    """`descriptor`, or /dev/null in its place when this process has it closed."""
    try:
        os.fstat(descriptor)
    except OSError:
        return os.open(os.devnull, os.O_RDWR)
    return descriptor


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def server_key(capability: str) -> str:
    """Which server may run a stage: same source, interpreter, packages and CPU kernel pin."""
    digest = hashlib.sha256()
    for file in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(file.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    site_packages = Path(sysconfig.get_paths()["purelib"])
    identity = [sys.executable, sys.version, str(site_packages.stat().st_mtime_ns)]
    identity += [f"{k}={v}" for k, v in sorted(numerics.pinned_environment(capability).items())]
    # What a process gets at its start, not later: a child keeps its server's limits and
    # its interpreter's start-up settings, so they must be the client's too.
    identity += [f"{name}={resource.getrlimit(getattr(resource, name))}" for name in LIMITS]
    identity += [f"{name}={os.environ.get(name)}" for name in STARTUP_VARIABLES]
    digest.update("\0".join(identity).encode())
    return digest.hexdigest()[:24]


def _server_directory() -> Path:
    """A directory for sockets and logs that only this user can open."""
    override = os.environ.get("PIPELINE_STAGE_SERVER_DIR")
    directory = Path(override or tempfile.gettempdir()) / f"pipeline-stage-servers-{os.getuid()}"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = directory.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise ServerUnavailableError(f"{directory} is not private to this user")
    return directory


def _connect_or_start(key: str, capability: str) -> socket.socket:
    import fcntl

    directory = _server_directory()
    path = directory / f"{key}.sock"
    connection = _try_connect(path)
    if connection is not None:
        return connection
    with (directory / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter; the others wait, then connect
        connection = _try_connect(path)
        if connection is None:
            _start_server(path, directory / f"{key}.log", capability)
            connection = _try_connect(path)
    if connection is None:
        raise ServerUnavailableError(f"the stage server at {path} started but refuses connections")
    return connection


@contextmanager
def _unavailable_on(kind: type[BaseException], what: str) -> Iterator[None]:
    try:
        yield
    except kind as error:
        raise ServerUnavailableError(f"{what} ({error})") from None


def _try_connect(path: Path) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _short_address(path) as address:
            connection.connect(address)
    except OSError:
        connection.close()
        return None
    return connection


@contextmanager
def _short_address(path: Path) -> Iterator[str]:
    """`path` as a socket address: Unix socket paths are limited to about 100 bytes, so a
    long one is reached through an open descriptor of its directory (Linux's /proc)."""
    if len(os.fsencode(path)) < 100:
        yield str(path)
        return
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{directory}/{path.name}"
    finally:
        os.close(directory)


def _start_server(path: Path, log: Path, capability: str) -> None:
    """Start a server for `path` and wait until it listens (it says so on a pipe)."""
    path.unlink(missing_ok=True)  # a socket left by a server that died
    ready_read, ready_write = os.pipe()
    environment = {**os.environ, **numerics.pinned_environment(capability)}
    environment.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    environment["PYTHONPATH"] = str(PACKAGE_DIR.parent)
    with log.open("ab") as log_file, _unavailable_on(OSError, "cannot start a stage server"):
        subprocess.Popen(
            [sys.executable, "-m", "pipeline.runtime.server", str(path), str(ready_write)],
            cwd="/",
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            pass_fds=(ready_write,),
            start_new_session=True,  # not in the terminal's process group: Ctrl-C is forwarded
        )
    os.close(ready_write)
    try:
        ready, _, _ = select.select([ready_read], [], [], START_TIMEOUT_S)
        answer = os.read(ready_read, 64) if ready else b""
    finally:
        os.close(ready_read)
    if answer != b"ready\n":
        raise ServerUnavailableError(f"the stage server did not start (its log: {log})")


# ---------------------------------------------------------------------------
# The server.


def preload() -> None:
    """Import everything a stage imports, without running any torch operation.

    A forked child must not inherit threads or initialised kernel libraries: torch's CPU
    capability, thread pools and MKL are first touched in the child, after its pin.
    """
    for stage in STAGES:
        try:
            importlib.import_module(f"pipeline.stages.{stage}")
        except Exception:
            traceback.print_exc()
    for module in (
        "pipeline.runtime.tracking",
        "pipeline.runtime.logged_model",
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
    ):
        importlib.import_module(module)
    # Logging a model maps every installed module to its package (1.4 s); the map depends on
    # site-packages only, which the server key covers, so children inherit it ready-made.
    from mlflow.utils import requirements_utils

    for warm_up in ("_init_modules_to_packages_map", "_init_packages_to_modules_map"):
        getattr(requirements_utils, warm_up, lambda: None)()
    # Opening a SQLite store checks its schema against the newest of MLflow's migration
    # scripts, which MLflow loads anew each time (68 files: tens of ms a stage). The answer
    # depends on the installed MLflow only, which the server key covers: work it out once.
    from mlflow.store.db import utils as db_utils

    if hasattr(db_utils, "_get_latest_schema_revision"):
        db_utils._get_latest_schema_revision = functools.cache(db_utils._get_latest_schema_revision)
        db_utils._get_latest_schema_revision()
    if threading.active_count() != 1:
        raise RuntimeError(f"preloading started threads: {threading.enumerate()}")


def serve(path: Path, ready_descriptor: int) -> None:
    """Accept stages on `path` until idle or SIGTERM; fork a child for each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _leave)
    preload()
    idle_s = float(os.environ.get("PIPELINE_STAGE_SERVER_IDLE_S", DEFAULT_IDLE_S))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with _short_address(path) as address:
        listener.bind(address)
    listener.listen(64)
    inode = path.stat().st_ino
    path.with_suffix(".pid").write_text(f"{os.getpid()}\n")
    os.write(ready_descriptor, b"ready\n")
    os.close(ready_descriptor)
    with suppress(_LeaveError):
        _accept(listener, path, inode, idle_s)
    if _still_ours(path, inode):
        path.unlink(missing_ok=True)
        path.with_suffix(".pid").unlink(missing_ok=True)


class _LeaveError(Exception):
    """SIGTERM asked the server to go."""


def _leave(_signum: int, _frame: object) -> None:
    raise _LeaveError


def _accept(listener: socket.socket, path: Path, inode: int, idle_s: float) -> None:
    """Fork a child per connection; return once idle for `idle_s` or the socket is not ours."""
    children: set[int] = set()
    last_active = time.monotonic()
    while True:
        readable, _, _ = select.select([listener], [], [], 1.0)
        children -= _reaped(children)
        if readable:
            connection, _ = listener.accept()
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                listener.close()
                _serve_stage(connection)  # never returns
            connection.close()
            children.add(pid)
            last_active = time.monotonic()
        elif children:
            last_active = time.monotonic()
        elif time.monotonic() - last_active > idle_s or not _still_ours(path, inode):
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


def _serve_stage(connection: socket.socket) -> None:
    """In the forked child: become the client's stage process, run the stage, report, exit."""
    from pipeline.runtime.stage import Interrupted, SignalGate, execute

    status = 1
    finished = threading.Event()
    try:
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        request = _receive_request(connection)
        try:
            connection.sendall(b"started\n")
        except OSError:  # the client left (a signal, before it could forward one)
            status = 128 + signal.SIGTERM
            return
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.umask(request["umask"])
        os.sched_setaffinity(0, request["affinity"])
        params = params_from_values(request["params"], Path(request["source"]))
        numerics.pin(params.cpu_capability)
        argv = request["argv"]
        sys.argv = ["python -m pipeline", *argv]
        module = importlib.import_module(f"pipeline.stages.{argv[0]}")
        # Forwarded signals wait in the socket until now: the gate is there to take them.
        gate = SignalGate()
        gate.install()
        threading.Thread(target=_forward_signals, args=(connection, finished), daemon=True).start()
        status = execute(module, argv[1:], params, Path(request["package_dir"]), gate)
    except Interrupted as interrupt:  # before `execute` took over: nothing was started
        gate.raising = False
        gate.stop_raising()
        status = 128 + interrupt.signum
    except BaseException:  # the child must report, whatever happened
        traceback.print_exc()
    finally:
        finished.set()
        for stream in (sys.stdout, sys.stderr):
            with suppress(OSError):
                stream.flush()
        with suppress(OSError):
            connection.sendall(f"exit {status}\n".encode())
        os._exit(status)


def _receive_request(connection: socket.socket) -> dict:
    """The client's request line, and its stdin, stdout and stderr as this process's own."""
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
    for target, descriptor in zip((0, 1, 2), descriptors, strict=True):
        os.dup2(descriptor, target)
        os.close(descriptor)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own streams
    sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    return json.loads(message)


def _forward_signals(connection: socket.socket, finished: threading.Event) -> None:
    """Deliver the client's forwarded signals to the main thread; its death as SIGTERM."""
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)  # never handled here
    main = threading.main_thread().ident
    buffer = b""
    while True:
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


def stop_all() -> int:
    """Stop this user's stage servers (`make stop`); each finishes the stages it runs."""
    stopped = 0
    for pid_file in _server_directory().glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
            stopped += 1
        except (ProcessLookupError, ValueError):
            pid_file.unlink(missing_ok=True)
    print(f"stopped {stopped} stage server{'s' * (stopped != 1)}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["stop"]:
        sys.exit(stop_all())
    serve(Path(sys.argv[1]), int(sys.argv[2]))
