"""The command line: `python -m pipeline <stage> <name> [paths...]`, as dvc.yaml calls it.

It checks params.yaml before anything heavy is imported, then hands the stage to a warm
process (pipeline/runtime/server.py) that has torch, MLflow and matplotlib imported, or
runs it in this process. A warm process takes a stage only when it proves it would run
it exactly as this process would: the same code on disk, the same libraries, the same
process context (identity.py); otherwise, or when no warm process can be had, the stage
runs here and one line says why. To DVC nothing changes: the command runs, prints and
exits with the stage's status.

Signals: SIGINT, SIGTERM and SIGHUP are forwarded to the stage; a client stopped (Ctrl-Z,
SIGSTOP) stops its stage, and continued, continues it; a client killed outright stops its
stage as SIGTERM would.
"""

import array
import fcntl
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from pipeline.library import numerics
from pipeline.library.errors import PipelineError
from pipeline.runtime import identity
from pipeline.runtime.params import Params, load_params
from pipeline.runtime.signals import SignalGate
from pipeline.runtime.stage import execute, stage_parser

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Signals that stop a process from the terminal (Ctrl-Z, background reads and writes).
STOP_SIGNALS = (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
#: After this process goes on again, how long its stage is watched for a late stop.
CONTINUE_GRACE_S = 0.5
START_TIMEOUT_S = 120  # importing everything on a cold, busy machine
#: Unix socket paths hold about 100 bytes; a longer one is reached through /proc.
SOCKET_PATH_LIMIT = 100


class ServerUnavailableError(Exception):
    """No warm process can run the stage as this process would; it runs here instead."""


def main(argv: list[str], stages: dict[str, str]) -> int:
    """Run stage `argv[0]` (a key of `stages`, each naming its module); the exit status."""
    client = Client()
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, client.on_signal)
    if not argv or argv[0] not in stages:
        print(f"usage: python -m pipeline {{{','.join(stages)}}} ...", file=sys.stderr)
        return 2
    module_name = stages[argv[0]]
    if wants_help(argv[1:]):
        stage_parser(importlib.import_module(module_name).STAGE).print_help()
        return 0
    try:
        params = load_params()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if warm_processes_enabled():
        try:
            return run_in_server(module_name, argv, params, client)
        except ServerUnavailableError as reason:
            print(f"note: running {argv[0]} in this process: {reason}", file=sys.stderr)
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    return run_here(module_name, argv, params)


def wants_help(arguments: list[str]) -> bool:
    """-h or --help before any `--` (after it, every word is a name or a path)."""
    options = arguments[: arguments.index("--")] if "--" in arguments else arguments
    return bool({"-h", "--help"} & set(options))


def warm_processes_enabled() -> bool:
    """Whether stages may run in warm processes (Linux, unless PIPELINE_STAGE_SERVER=0)."""
    return sys.platform == "linux" and os.environ.get("PIPELINE_STAGE_SERVER", "1") != "0"


def run_here(module_name: str, argv: list[str], params: Params) -> int:
    """Run the stage in this process: pin the CPU kernels, import the stage, execute it."""
    numerics.pin(params.cpu_capability)
    before = identity.source_snapshot()
    module = importlib.import_module(module_name)
    moved = identity.changed(before, identity.source_snapshot())
    if moved:
        print(f"error: pipeline/{moved[0]} changed while {argv[0]} was loading; run it again")
        return 1
    gate = SignalGate()
    gate.install()
    status = execute(module, argv[1:], params, identity.PACKAGE_DIR, gate, before)
    # The stage has ended: from here a signal ends this process by its default action, never
    # with the stage's 0; one the gate took after the stage's last look says so below.
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    if gate.received and status == 0:
        return 128 + gate.received
    return status


# ---------------------------------------------------------------------------
# Running the stage in a warm process.


class Client:
    """Holds the connection to the stage's process, to forward signals and stops to it."""

    def __init__(self) -> None:
        self.connection: socket.socket | None = None
        self.stage_pid: int | None = None
        self.received: int | None = None

    def on_signal(self, signum: int, _frame: object) -> None:
        self.received = self.received or signum
        if self.connection is None:  # nothing started yet: just stop
            raise SystemExit(128 + signum)
        with suppress(OSError):  # the stage may be gone already; its status tells
            self.connection.sendall(f"signal {signum}\n".encode())

    def on_stop(self, signum: int, _frame: object) -> None:
        """Ctrl-Z: stop the stage, then this process as the signal would."""
        with suppress(ProcessLookupError):
            os.kill(self.stage_pid, signal.SIGSTOP)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # stops here until SIGCONT
        signal.signal(signum, self.on_stop)

    def on_continue(self, _signum: int, _frame: object) -> None:
        """This process goes on again (`fg`, SIGCONT): so does its stage. A stage that saw
        this process stopped (SIGSTOP, which cannot be caught) may stop a moment later: it
        is continued again until the grace period is over."""
        deadline = time.monotonic() + CONTINUE_GRACE_S
        while True:
            with suppress(ProcessLookupError):
                os.kill(self.stage_pid, signal.SIGCONT)
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)


def server_key(capability: str) -> str:
    """The name of the warm processes that may run this client's stages: from the source on
    disk, this process's context and the CPU kernels pinned (the server proves the rest)."""
    return identity.digest(
        identity.source_snapshot(),
        identity.process_context(),
        numerics.pinned_environment(capability),
    )


def run_in_server(module_name: str, argv: list[str], params: Params, client: Client) -> int:
    """Run the stage in a child of a warm process; the stage's exit status."""
    key = server_key(params.cpu_capability)
    request = {
        "module": module_name,
        "argv": argv,
        "cwd": str(Path.cwd()),
        "env": dict(os.environ),
        "umask": _current_umask(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "params": params.values,
        "source": str(params.source),
        "context": identity.process_context(),
        "client": os.getpid(),
    }
    payload = json.dumps(request).encode() + b"\n"
    descriptors = array.array("i", [_usable(descriptor) for descriptor in (0, 1, 2)])
    for attempt in range(2):  # a server that was just leaving (idle) drops the first try
        connection = _connect_or_start(key, numerics.pinned_environment(params.cpu_capability))
        try:
            connection.sendmsg(
                [payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, descriptors.tobytes())]
            )
            answer = read_line(connection).decode()
        except OSError:
            answer = ""
        if answer.startswith("started "):
            break
        connection.close()
        if answer.startswith("declined "):
            raise ServerUnavailableError(answer.removeprefix("declined "))
        if attempt:
            raise ServerUnavailableError("the warm process did not take the stage")
    client.stage_pid = int(answer.split()[1])
    client.connection = connection
    signal.signal(signal.SIGCONT, client.on_continue)
    for signum in STOP_SIGNALS:
        signal.signal(signum, client.on_stop)
    answer = read_line(connection).decode()
    # The stage has ended: from here a signal ends this process as it would any other (by
    # its default action), never with the stage's 0; one that came before says so below.
    for signum in (*FORWARDED_SIGNALS, *STOP_SIGNALS, signal.SIGCONT):
        signal.signal(signum, signal.SIG_DFL)
    if not answer.startswith("exit "):
        print(f"error: the {argv[0]} stage's process ended without a status", file=sys.stderr)
        return 1
    status = int(answer.split()[1])
    if client.received and status == 0:
        return 128 + client.received  # the stage finished, but a signal was sent: say so
    return status


def read_line(connection: socket.socket) -> bytes:
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


def server_directory() -> Path:
    """A directory for the warm processes' sockets and logs that only this user can open:
    in XDG_RUNTIME_DIR where there is one, else in the temporary directory (or, for tests,
    in PIPELINE_STAGE_SERVER_DIR)."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    base = os.environ.get("PIPELINE_STAGE_SERVER_DIR") or runtime_dir or tempfile.gettempdir()
    directory = Path(base) / f"pipeline-stage-servers-{os.getuid()}"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = os.lstat(directory)
    except OSError as error:
        raise ServerUnavailableError(f"{directory}: {error.strerror or error}") from None
    if not directory.is_dir() or directory.is_symlink():
        raise ServerUnavailableError(f"{directory} is not a directory")
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise ServerUnavailableError(f"{directory} is not private to this user")
    return directory


def _connect_or_start(key: str, pins: dict[str, str]) -> socket.socket:
    directory = server_directory()
    path = directory / f"{key}.sock"
    connection = try_connect(path)
    if connection is not None:
        return connection
    try:
        with (directory / f"{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one starter; the others wait, then connect
            connection = try_connect(path)
            if connection is None:
                _start_server(path, directory / f"{key}.log", pins)
                connection = try_connect(path)
    except OSError as error:
        raise ServerUnavailableError(f"cannot start a warm process ({error})") from None
    if connection is None:
        raise ServerUnavailableError(f"the warm process at {path} refuses connections")
    return connection


def try_connect(path: Path) -> socket.socket | None:
    """A connection to the server listening at `path`, or None."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with short_address(path) as address:
            connection.connect(address)
    except OSError:
        connection.close()
        return None
    return connection


@contextmanager
def short_address(path: Path) -> Iterator[str]:
    """`path` as a socket address; a long one is reached through an open descriptor of its
    directory (Linux's /proc)."""
    if len(os.fsencode(path)) < SOCKET_PATH_LIMIT:
        yield str(path)
        return
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{directory}/{path.name}"
    finally:
        os.close(directory)


def _start_server(path: Path, log: Path, pins: dict[str, str]) -> None:
    """Start a warm process for `path` and wait until it listens (it says so on a pipe)."""
    path.unlink(missing_ok=True)  # a socket left by a server that died
    ready_read, ready_write = os.pipe()
    # The client's environment as it is (its children are compared with it), plus the pins.
    # Started in the package's parent, so that `-m pipeline` finds this package; the server
    # then leaves for `/`, holding no directory of the user's.
    environment = {**os.environ, **pins}
    with log.open("ab") as log_file:
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", "--serve", str(path), str(ready_write)],
            cwd=identity.PACKAGE_DIR.parent,
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
        raise ServerUnavailableError(f"the warm process did not start (its log: {log})")
