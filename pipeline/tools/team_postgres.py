"""The team server's PostgreSQL: a cluster of its own in `.mlflow-server/pg`, or one named by URI.

That cluster listens on no TCP port: only on a unix socket inside its own data directory
(mode 0700), so no port can clash and only its owner reaches it (trust authentication).
PostgreSQL refuses to run as root, so under root it runs as the `postgres` user that the
distribution's package creates (through setpriv), and owns its data directory.
"""

import os
import pwd
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

DATABASE = "mlflow"
CLUSTER_USER = "postgres"  # the system user of Debian's postgresql package
SOCKET_NAME = ".s.PGSQL.5432"  # the unix socket PostgreSQL creates for its default port
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes, the last one a NUL
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
            reason = last_line(result.stderr + result.stdout) or f"exit status {result.returncode}"
            if explained_by is not None and explained_by.is_file():
                reason = last_line(explained_by.read_text(errors="replace")) or reason
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
        raise ServerError(f"PostgreSQL at {shown}: {first_line(str(cause))}") from None
    return shown


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
