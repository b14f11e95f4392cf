"""A shared MLflow server on PostgreSQL, behind MLflow's own login.

    python -m pipeline.tools.team_server start|stop|status|add-user NAME

`make server` starts `mlflow server` on 127.0.0.1 (port MLFLOW_PORT, default 5050: `make ui`
has 5000) with artifacts proxied through it (`mlflow-artifacts:/`, stored in
.mlflow-server/artifacts, or MLFLOW_ARTIFACTS_DESTINATION). Its store is the PostgreSQL named
by MLFLOW_BACKEND_STORE_URI or a cluster of its own in .mlflow-server/pg (team_postgres.py).

Anyone who reaches the port (other users of this host included) must log in: the server runs
MLflow's basic-auth app and answers 401 without a user's name and password. Users live in
.mlflow-server/basic_auth.db; the admin's password is generated on first start into
.mlflow-server/admin-password; `add-user NAME` creates a teammate's account. The password,
the config and the users are mode 0600. Every user may read and write every run (MLflow's
default_permission EDIT): logins keep strangers out, not teammates apart.

Starting twice is harmless; `make server-stop` stops MLflow and the local cluster; `status`
says where the server is (exit status 3 when it is not running, 1 when its `mlflow server`
process died and the processes it started remain: `stop` and `start` stop those too). Which
processes are the server's is proven, not read from a pid file (processes.py). Starting and
stopping wait for observable events: pg_ctl's readiness, /health answering, processes gone.
"""

import argparse
import base64
import contextlib
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from pipeline.library.errors import TrackingError
from pipeline.library.files import write_json
from pipeline.runtime.store import sqlite_uri
from pipeline.tools.processes import (
    MARK_VARIABLE,
    SERVER_DEFAULTS,
    Member,
    bind_error,
    members,
    new_mark,
    signal_members,
)
from pipeline.tools.team_postgres import LocalCluster, ServerError, check_backend, last_line

REPOSITORY = Path(__file__).resolve().parents[2]
STATE_DIR = REPOSITORY / ".mlflow-server"
HOST = "127.0.0.1"
DEFAULT_PORT = 5050
ADMIN = "admin"
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30


class Authentication:
    """MLflow's basic-auth app for the server in `<state>`: its config, users and admin."""

    def __init__(self, state: Path) -> None:
        self.config = state / "basic_auth.ini"
        self.database = state / "basic_auth.db"
        self.password_file = state / "admin-password"

    def environment(self) -> dict[str, str]:
        """Write the config (and the admin's password, on first start); the server's variables."""
        if not self.password_file.exists():
            if self.database.exists():
                raise ServerError(
                    f"{self.password_file} is missing, but {self.database} holds the admin and "
                    "the users: restore it, or move the database aside to start with new ones"
                )
            _write_private(self.password_file, secrets.token_urlsafe(24) + "\n")
        _write_private(
            self.config,
            "[mlflow]\n"
            "default_permission = EDIT\n"  # every user logs runs into the shared experiment
            f"database_uri = {sqlite_uri(self.database)}\n"
            f"admin_username = {ADMIN}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # A password's hash costs 0.3 s of CPU here: checked once a minute per user and worker,
            # not at every call (a password changed or a user deleted through one worker is
            # still accepted by the others for up to that minute).
            "auth_cache_ttl_seconds = 60\n",
        )
        return {
            "MLFLOW_AUTH_CONFIG_PATH": str(self.config),
            # Used only when the app creates the admin, at first start; the config keeps no secret.
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin_password(),
            # Signs the login forms' CSRF tokens, the same in every worker of one start.
            "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY")
            or secrets.token_hex(32),
        }

    def admin_password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except OSError as error:
            raise ServerError(f"{self.password_file}: {error.strerror}") from None

    def login_hint(self) -> str:
        """The variables that log a client on this host in as the admin, password unprinted."""
        password = f'"$(cat {shlex.quote(str(self.password_file))})"'
        return f"MLFLOW_TRACKING_USERNAME={ADMIN} MLFLOW_TRACKING_PASSWORD={password}"

    def request(
        self, server: dict, path: str, body: dict | None = None, missing_ok: bool = False
    ) -> dict | None:
        """A call to MLflow's REST API as the admin: GET, or POST of `body`; its JSON answer
        (None for HTTP 404 if `missing_ok`)."""
        credentials = base64.b64encode(f"{ADMIN}:{self.admin_password()}".encode()).decode()
        request = urllib.request.Request(
            f"{server['tracking_uri']}/api/2.0/mlflow/{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as error:
            if missing_ok and error.code == 404:
                return None
            text = error.read().decode(errors="replace")
            with contextlib.suppress(ValueError, KeyError, TypeError):  # MLflow's JSON error
                text = json.loads(text)["message"]
            raise ServerError(
                f"MLflow at {server['tracking_uri']}: HTTP {error.code} ({last_line(text)[:160]})"
            ) from None
        except OSError as error:
            reason = getattr(error, "reason", None) or error.strerror or error
            raise ServerError(f"MLflow at {server['tracking_uri']}: {reason}") from None


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner alone, whatever mode it had."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


class MlflowServer:
    """The `mlflow server` started from `<state>`: its session, mark and address in mlflow.json.

    Its pid is the id of the session it was started in; its processes are those of the
    session that carry its mark (processes.py), alive after it if it died.
    """

    def __init__(self, state: Path) -> None:
        self.state = state
        self.record = state / "mlflow.json"
        self.log = state / "mlflow.log"

    def find(self) -> tuple[dict | None, list[Member]]:
        """The recorded server and its live processes; (None, []), record removed, if none."""
        if not self.record.is_file():
            return None, []
        server = json.loads(self.record.read_text())
        found = members(server["pid"], server["mark"]) if "mark" in server else []
        if not found:
            self.record.unlink()  # left by a server that died whole or a machine that rebooted
            return None, []
        return server, found

    def running(self) -> dict | None:
        """The recorded server if its `mlflow server` process is alive."""
        server, found = self.find()
        return server if server is not None and _leader_alive(server, found) else None

    def start(self, backend: str, shown_backend: str, port: int) -> dict:
        """Start `mlflow server` in a session of its own; return once /health answers."""
        self.state.mkdir(mode=0o711, exist_ok=True)
        artifacts = os.environ.get("MLFLOW_ARTIFACTS_DESTINATION")
        if not artifacts:  # runs' files: the server's user alone reads them
            (self.state / "artifacts").mkdir(mode=0o700, exist_ok=True)
            artifacts = str(self.state / "artifacts")
        mark = new_mark()
        environment = {
            **SERVER_DEFAULTS,
            **os.environ,
            # In the environment, not argv: a password in the URI stays out of `ps`.
            "MLFLOW_BACKEND_STORE_URI": backend,
            **Authentication(self.state).environment(),
            MARK_VARIABLE: mark,
        }
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
                    "--serve-artifacts", "--artifacts-destination", artifacts,
                    "--host", HOST, "--port", str(port),
                ],
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its session: found by its id, survives us
                umask=0o077,  # the users database, artifacts: for the server's user alone
            )  # fmt: skip
        server = {
            "pid": process.pid,
            "mark": mark,
            "port": port,
            "tracking_uri": f"http://{HOST}:{port}",
            "backend": shown_backend,
            "artifacts": artifacts,
        }
        write_json(self.record, server)  # before it answers: a failed start is stopped by it
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(server["tracking_uri"]):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                reason = (
                    f"exited while starting: {last_line(self.log.read_text(errors='replace'))}"
                    if process.returncode is not None
                    else f"did not answer {server['tracking_uri']}/health in {START_TIMEOUT_S} s"
                )
                raise ServerError(f"mlflow server {reason} (log: {self.log})")
            time.sleep(0.2)
        return server

    def stop(self) -> bool:
        """SIGTERM the server's processes and wait until they are gone (SIGKILL after
        STOP_TIMEOUT_S); False if none was left."""
        server, _ = self.find()
        if server is None:
            return False
        session, mark = server["pid"], server["mark"]
        signal_members(session, mark, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while members(session, mark):
            if time.monotonic() > deadline:
                signal_members(session, mark, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.1)
        self.record.unlink()
        return True


def _leader_alive(server: dict, found: list[Member]) -> bool:
    return any(member.pid == server["pid"] for member in found)


def _healthy(tracking_uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{tracking_uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _describe(server: dict) -> str:
    return (
        f"MLflow server at {server['tracking_uri']} (pid {server['pid']}; store "
        f"{server['backend']}; artifacts {server['artifacts']})"
    )


def _describe_remains(server: dict, found: list[Member]) -> str:
    serving = "still serve it" if _healthy(server["tracking_uri"]) else "remain"
    return (
        f"MLflow server at {server['tracking_uri']} lost its `mlflow server` process (pid "
        f"{server['pid']}), but {', '.join(map(str, found))} {serving}: "
        "make server-stop stops them"
    )


def start(backend_uri: str | None, port: int) -> tuple[dict, list[Member]]:
    """Start PostgreSQL (unless `backend_uri` names one) and the MLflow server; idempotent.

    What remains of a server whose `mlflow server` process died is stopped first, and
    returned too (it would hold the port).
    """
    mlflow = MlflowServer(STATE_DIR)
    running, found = mlflow.find()
    remains = []
    if running is not None and not _leader_alive(running, found):
        mlflow.stop()
        running, remains = None, found
    if running is None:
        reason = bind_error(HOST, port)
        if reason is not None:
            raise ServerError(
                f"port {port} on {HOST} is taken ({reason}): stop what uses it, "
                "or choose another with MLFLOW_PORT"
            )
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
        return running, remains
    return mlflow.start(backend_uri, shown, port), remains


def stop() -> list[str]:
    """Stop the MLflow server (or what remains of it) and the local cluster; what was stopped."""
    stopped = []
    if MlflowServer(STATE_DIR).stop():
        stopped.append("MLflow server")
    if LocalCluster(STATE_DIR).stop():
        stopped.append("PostgreSQL")
    return stopped


def add_user(name: str) -> str:
    """Create the account `name` through MLflow's REST API, as the admin; its new password."""
    if not name or ":" in name:  # HTTP basic authentication ends the name at the first ':'
        raise ServerError(
            f"a user name without ':' is needed, got {name!r}: make server-user NAME=<name>"
        )
    server = MlflowServer(STATE_DIR).running()
    if server is None:
        raise ServerError("the MLflow server is not running: start it first (make server)")
    authentication = Authentication(STATE_DIR)
    query = f"users/get?username={urllib.parse.quote(name, safe='')}"
    if authentication.request(server, query, missing_ok=True) is not None:
        raise ServerError(f"user {name} exists already on {server['tracking_uri']}")
    password = secrets.token_urlsafe(24)
    authentication.request(server, "users/create", {"username": name, "password": password})
    return password


def status() -> int:
    """Say where the server is; 0 running, 1 its `mlflow server` died but remains, 3 not."""
    server, found = MlflowServer(STATE_DIR).find()
    if server is None:
        print("MLflow server not running")
        return 3  # as `pg_ctl status` and LSB init scripts say "not running"
    if not _leader_alive(server, found):
        print(_describe_remains(server, found))
        return 1  # LSB: "dead and the pid file exists"
    print(_describe(server))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.tools.team_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("start", "stop", "status", "add-user"))
    parser.add_argument("name", nargs="?", help="add-user: the new account's name")
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
    if (arguments.name is not None) != (arguments.command == "add-user"):
        parser.error("a name goes with add-user, and only with it")
    try:
        if arguments.command == "start":
            server, remains = start(arguments.backend_store_uri, arguments.port)
            if remains:
                print(f"stopped what remained of the last server: {', '.join(map(str, remains))}")
            print(_describe(server))
            login = Authentication(STATE_DIR).login_hint()
            print(f"On this machine: export MLFLOW_TRACKING_URI={server['tracking_uri']} {login}")
            print("A teammate's account: make server-user NAME=<name>")
        elif arguments.command == "stop":
            stopped = stop()
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        elif arguments.command == "add-user":
            password = add_user(arguments.name)
            print(f"user {arguments.name} added; on their machine (this password is shown once):")
            print(
                f"export MLFLOW_TRACKING_USERNAME={shlex.quote(arguments.name)} "
                f"MLFLOW_TRACKING_PASSWORD={password}"
            )
        else:
            return status()
    except (ServerError, TrackingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
