"""The processes of a server started here, proven by more than a pid; whether a port is free.

A pid file proves nothing once its process is gone: the pid, and so the session id it
named, can be reused by an unrelated process. So a server is started in a session of its
own (start_new_session=True) with a random mark in its environment, which every process it
spawns inherits (uvicorn's workers too): a process is the server's when it is in the
recorded session and its environment carries the mark. Only its owner (or root) can read a
process's environment, so another user's process is never taken for it, and a stranger
cannot join the session. Signals go through a pidfd opened before the proof is read, so a
process that exits meanwhile is not replaced by a stranger that receives them.
"""

import os
import re
import secrets
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

#: The environment variable that marks a server's processes.
MARK_VARIABLE = "PIPELINE_SERVER_MARK"
#: What `make ui` and `make server` start MLflow with unless the environment says otherwise:
#: no usage reports, and no server-side job runner (GenAI scorers, unused here), which
#: costs seven processes and about 1.3 GB.
SERVER_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


@dataclass(frozen=True)
class Member:
    """A live process proven to be the server's."""

    pid: int
    command: str  # what a person recognises: `mlflow server`, `uvicorn`

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


def new_mark() -> str:
    """A fresh mark for a server about to start."""
    return secrets.token_hex(16)


def members(session: int, mark: str) -> list[Member]:
    """The live (not zombie) processes of `session` that carry `mark`, in pid order."""
    pids = sorted(int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [Member(pid, _command(pid)) for pid in pids if _is_member(pid, session, mark)]


def signal_members(session: int, mark: str, signum: int) -> list[Member]:
    """Send `signum` to every process proven the server's; those it reached."""
    reached = []
    for member in members(session, mark):
        try:
            pidfd = os.pidfd_open(member.pid)
        except ProcessLookupError:
            continue
        try:
            if _is_member(member.pid, session, mark):  # the pidfd holds this very process
                signal.pidfd_send_signal(pidfd, signum)
                reached.append(member)
        except ProcessLookupError:  # it exited in between
            pass
        finally:
            os.close(pidfd)
    return reached


def _is_member(pid: int, session: int, mark: str) -> bool:
    proc = Path(f"/proc/{pid}")
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] == "Z" or int(fields[3]) != session:
            return False
        environment = (proc / "environ").read_bytes().split(b"\0")  # only the session's
    except (OSError, IndexError):  # gone, or another user's
        return False
    return f"{MARK_VARIABLE}={mark}".encode() in environment


def _command(pid: int) -> str:
    """`mlflow server`, `uvicorn`, `multiprocessing spawn` (a worker), else the program."""
    try:
        words = (Path(f"/proc/{pid}") / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return "?"
    words = words.split("\0")
    helper = re.search(r"from (multiprocessing)\.(\w+) import", " ".join(words))
    if helper:
        return " ".join(helper.groups())
    if "-m" in words:
        module, subcommand = [*words[words.index("-m") + 1 :], "", ""][:2]
        return f"{module} {subcommand}" if subcommand.isalpha() else module
    return Path(words[0]).name


def bind_error(host: str, port: int) -> str | None:
    """Why `port` on `host` cannot be listened on as uvicorn listens, or None when it can."""
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        probe.bind((host, port))
    except OSError as error:
        return error.strerror or str(error)
    finally:
        probe.close()
    return None
