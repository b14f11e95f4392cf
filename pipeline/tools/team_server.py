"""A shared MLflow server on PostgreSQL: `python -m pipeline.tools.team_server start|stop|status`.

`make server` starts `mlflow server` on 127.0.0.1 (port MLFLOW_PORT, default 5000) with
artifacts proxied through it (`mlflow-artifacts:/`, stored in .mlflow-server/artifacts, or
MLFLOW_ARTIFACTS_DESTINATION). Its store is the PostgreSQL named by MLFLOW_BACKEND_STORE_URI
(`postgresql://user:password@host:5432/db`; SQLAlchemy 2.1 reaches it with psycopg 3) or, when
none is named, a cluster of its own in .mlflow-server/pg, created with initdb on first start.

That cluster listens on no TCP port: only on a unix socket inside its own data directory
(mode 0700), so no port can clash and only its owner reaches it (trust authentication).
PostgreSQL refuses to run as root, so under root it runs as the `postgres` user that the
distribution's package creates (through setpriv), and owns its data directory.

Starting twice is harmless; `make server-stop` stops MLflow and the local cluster; `status`
says where the server is (exit status 3 when it is not running). Starting and stopping wait
for observable events: pg_ctl's readiness, the server's /health answering, the process gone.
"""

import argparse
import contextlib
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

from pipeline.library.files import write_json

REPOSITORY = Path(__file__).resolve().parents[2]
STATE_DIR = REPOSITORY / ".mlflow-server"
HOST = "127.0.0.1"
DEFAULT_PORT = 5000
DATABASE = "mlflow"
CLUSTER_USER = "postgres"  # the system user of Debian's postgresql package
SOCKET_NAME = ".s.PGSQL.5432"  # the unix socket PostgreSQL creates for its default port
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes, the last one a NUL
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30
INSTALL_HINT = "install it with `sudo apt-get install -y postgresql` (Debian, Ubuntu)"


class ServerError(Exception):
    """Why the server cannot start or stop: reported as one line, exit status 1."""


class LocalCluster:
    """The PostgreSQL cluster in `<state>/pg`: created, started and stopped by this module."""

    def __init__(self, state: Path) -> None:
        self.data = state / "pg"
        self.log = self.data / "postgres.log"

    @property
    def uri(self) -> str:
        """The MLflow backend URI: database `mlflow` through the socket in the data directory."""
        return f"postgresql://{DATABASE}@/{DATABASE}?host={quote(str(self.data))}"

    def start(self) -> None:
        """Create the cluster if needed, start it unless running, and ensure the database."""
        socket_path = self.data / SOCKET_NAME
        if len(str(socket_path).encode()) > SOCKET_PATH_MAX:
            raise ServerError(
                f"{socket_path}: too long for a unix socket ({SOCKET_PATH_MAX} bytes at most); "
                "move the repository to a shorter path or set MLFLOW_BACKEND_STORE_URI"
            )
        bindir = postgres_bindir()
        if not (self.data / "PG_VERSION").is_file():
            self._create(bindir)
        if not self.running():
            self._run(
                bindir / "pg_ctl", "start", "--wait", "--timeout=60", "-D", str(self.data),
                "-l", str(self.log),
                "-o", f"-c listen_addresses='' -k {shlex.quote(str(self.data))}",
                doing="start PostgreSQL", explained_by=self.log,
            )  # fmt: skip
        self._ensure_database()

    def stop(self) -> bool:
        """Stop the cluster (fast: open sessions are ended); False if it was not running."""
        if not self.running():
            return False
        self._run(
            postgres_bindir() / "pg_ctl", "stop", "--wait", "-m", "fast", "-D", str(self.data),
            doing="stop PostgreSQL",
        )  # fmt: skip
        return True

    def running(self) -> bool:
        """Whether a postmaster serves the data directory (its postmaster.pid names a live one)."""
        if not (self.data / "PG_VERSION").is_file():
            return False
        status = self._run(
            postgres_bindir() / "pg_ctl", "status", "-D", str(self.data),
            doing="ask PostgreSQL's status", check=False,
        )  # fmt: skip
        return status.returncode == 0

    def _create(self, bindir: Path) -> None:
        self.data.parent.mkdir(mode=0o711, exist_ok=True)  # 0711: the cluster's owner passes
        self.data.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            owner = _cluster_owner()
            os.chown(self.data, owner.pw_uid, owner.pw_gid)
            reachable = self._run("test", "-w", str(self.data), doing="", check=False)
            if reachable.returncode != 0:
                raise ServerError(
                    f"{self.data}: the {CLUSTER_USER} user cannot reach it (PostgreSQL refuses "
                    "to run as root, so as root the cluster runs as that user); move the "
                    "repository where it can, run as a non-root user, or set "
                    "MLFLOW_BACKEND_STORE_URI"
                )
        self._run(
            bindir / "initdb", "-D", str(self.data), f"--username={DATABASE}", "--auth=trust",
            "--encoding=UTF8", "--no-locale", "--no-instructions",
            doing="create the PostgreSQL cluster",
        )  # fmt: skip

    def _ensure_database(self) -> None:
        import psycopg  # the driver MLflow uses too; only this command needs it here

        maintenance = f"postgresql://{DATABASE}@/postgres?host={quote(str(self.data))}"
        with psycopg.connect(maintenance, autocommit=True) as connection:
            query = "SELECT 1 FROM pg_database WHERE datname = %s"
            if connection.execute(query, (DATABASE,)).fetchone() is None:
                connection.execute(f'CREATE DATABASE "{DATABASE}"')

    def _run(
        self,
        *command: str | Path,
        doing: str,
        check: bool = True,
        explained_by: Path | None = None,
    ) -> subprocess.CompletedProcess:
        """Run a PostgreSQL command as the cluster's owner, from inside its data directory.

        A failure raises ServerError with the last line of stderr, or of `explained_by`
        (the server's log says why a start failed; pg_ctl only says to read it).
        """
        prefix = []
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise ServerError("running as root needs setpriv (util-linux) to run PostgreSQL")
            prefix = [setpriv, f"--reuid={CLUSTER_USER}", f"--regid={CLUSTER_USER}"]
            prefix += ["--init-groups", "--"]
        result = subprocess.run(
            [*prefix, *map(str, command)],
            cwd=self.data if self.data.is_dir() else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            reason = _last_line(result.stderr + result.stdout) or f"exit status {result.returncode}"
            if explained_by is not None and explained_by.is_file():
                reason = _last_line(explained_by.read_text(errors="replace")) or reason
            raise ServerError(f"cannot {doing} in {self.data}: {reason}")
        return result


def postgres_bindir() -> Path:
    """Where initdb and pg_ctl are: on PATH, else the newest /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda initdb: [int(part) for part in re.findall(r"\d+", initdb.parent.parent.name)],
    )
    if not installed:
        raise ServerError(
            f"PostgreSQL's initdb not found: {INSTALL_HINT}, or set MLFLOW_BACKEND_STORE_URI "
            "to a PostgreSQL of your own"
        )
    return installed[-1].parent


def _cluster_owner() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(CLUSTER_USER)
    except KeyError:
        raise ServerError(
            f"PostgreSQL refuses to run as root and there is no `{CLUSTER_USER}` user: "
            f"{INSTALL_HINT}, or run as a non-root user"
        ) from None


def check_backend(uri: str) -> str:
    """Connect to a PostgreSQL named by URI as MLflow will; return the URI without password."""
    if not re.match(r"postgresql(\+\w+)?://", uri):
        raise ServerError(
            f"MLFLOW_BACKEND_STORE_URI must be a postgresql:// URI, got {uri.split(':')[0]}:..."
        )
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import SQLAlchemyError

    shown = make_url(uri).render_as_string(hide_password=True)
    try:
        engine = create_engine(uri, connect_args={"connect_timeout": 10})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except (SQLAlchemyError, ImportError) as error:  # ImportError: a driver not installed
        cause = getattr(error, "orig", None) or error
        raise ServerError(f"PostgreSQL at {shown}: {_first_line(str(cause))}") from None
    return shown


class MlflowServer:
    """The `mlflow server` process started from `<state>`: its pid and address in mlflow.json."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.record = state / "mlflow.json"
        self.log = state / "mlflow.log"

    def running(self) -> dict | None:
        """The recorded server (pid, port, tracking_uri, backend) if its process is alive."""
        if not self.record.is_file():
            return None
        server = json.loads(self.record.read_text())
        if _is_mlflow_server(server["pid"]):
            return server
        self.record.unlink()  # left by a server that died or a machine that rebooted
        return None

    def start(self, backend: str, shown_backend: str, port: int) -> dict:
        """Start `mlflow server` in a session of its own; return once /health answers."""
        self.state.mkdir(mode=0o711, exist_ok=True)
        artifacts = os.environ.get("MLFLOW_ARTIFACTS_DESTINATION")
        if not artifacts:  # runs' files: the server's user alone reads them
            (self.state / "artifacts").mkdir(mode=0o700, exist_ok=True)
            artifacts = str(self.state / "artifacts")
        environment = {
            **os.environ,
            # In the environment, not argv: a password in the URI stays out of `ps`.
            "MLFLOW_BACKEND_STORE_URI": backend,
            "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
            # Server-side jobs (GenAI scorers) are unused here and cost eight processes.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get(
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"
            ),
        }
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "mlflow", "server",
                    "--serve-artifacts", "--artifacts-destination", artifacts,
                    "--host", HOST, "--port", str(port),
                ],
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped whole, survives us
            )  # fmt: skip
        tracking_uri = f"http://{HOST}:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(tracking_uri):
            if process.poll() is not None:
                reason = _last_line(self.log.read_text(errors="replace"))
                raise ServerError(
                    f"mlflow server exited while starting: {reason} (log: {self.log})"
                )
            if time.monotonic() > deadline:
                _signal_group(process.pid, signal.SIGKILL)
                raise ServerError(
                    f"mlflow server did not answer {tracking_uri}/health within "
                    f"{START_TIMEOUT_S} s (log: {self.log})"
                )
            time.sleep(0.2)
        server = {
            "pid": process.pid,
            "port": port,
            "tracking_uri": tracking_uri,
            "backend": shown_backend,
            "artifacts": artifacts,
        }
        write_json(self.record, server)
        return server

    def stop(self) -> bool:
        """SIGTERM the server's process group and wait until it is gone; False if not running."""
        server = self.running()
        if server is None:
            return False
        pid = server["pid"]
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _is_mlflow_server(pid):
            if time.monotonic() > deadline:
                _signal_group(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.1)
        self.record.unlink()
        return True


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended by itself meanwhile
        os.killpg(pid, signum)


def _is_mlflow_server(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) `mlflow server`, not a stranger reusing the pid."""
    proc = Path(f"/proc/{pid}")
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z" and b"server" in command and any(b"mlflow" in part for part in command)


def _check_port_free(port: int) -> None:
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        probe.bind((HOST, port))
    except OSError as error:
        raise ServerError(
            f"port {port} on {HOST} is taken ({error.strerror}): stop what uses it, "
            "or choose another with MLFLOW_PORT"
        ) from None
    finally:
        probe.close()


def _healthy(tracking_uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{tracking_uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _describe(server: dict) -> str:
    return (
        f"MLflow server at {server['tracking_uri']} (pid {server['pid']}; store "
        f"{server['backend']}; artifacts {server['artifacts']})"
    )


def start(backend_uri: str | None, port: int) -> dict:
    """Start PostgreSQL (unless `backend_uri` names one) and the MLflow server; idempotent."""
    mlflow = MlflowServer(STATE_DIR)
    running = mlflow.running()
    if running is None:
        _check_port_free(port)
    elif running["port"] != port:
        raise ServerError(
            f"{_describe(running)} is already running on another port; "
            "stop it first (make server-stop)"
        )
    if backend_uri:
        shown = check_backend(backend_uri)
    else:
        cluster = LocalCluster(STATE_DIR)
        cluster.start()
        backend_uri = shown = cluster.uri
    if running is not None:
        if running["backend"] != shown:
            raise ServerError(
                f"{_describe(running)} is already running with another store; "
                "stop it first (make server-stop)"
            )
        return running
    return mlflow.start(backend_uri, shown, port)


def stop() -> list[str]:
    """Stop the MLflow server and the local cluster; what was stopped."""
    stopped = []
    if MlflowServer(STATE_DIR).stop():
        stopped.append("MLflow server")
    if LocalCluster(STATE_DIR).stop():
        stopped.append("PostgreSQL")
    return stopped


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.tools.team_server", description=__doc__
    )
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument(
        "--backend-store-uri",
        default=os.environ.get("MLFLOW_BACKEND_STORE_URI"),
        help="a postgresql:// URI (default: MLFLOW_BACKEND_STORE_URI, else a local cluster)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("MLFLOW_PORT") or DEFAULT_PORT),
        help=f"the port on {HOST} (default: MLFLOW_PORT, else {DEFAULT_PORT})",
    )
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "start":
            server = start(arguments.backend_store_uri, arguments.port)
            print(_describe(server))
            print(f"On this machine: export MLFLOW_TRACKING_URI={server['tracking_uri']}")
        elif arguments.command == "stop":
            stopped = stop()
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        else:
            server = MlflowServer(STATE_DIR).running()
            if server is None:
                print("MLflow server not running")
                return 3  # as `pg_ctl status` and LSB init scripts say "not running"
            print(_describe(server))
    except ServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
