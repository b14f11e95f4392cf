"""This host and its processes: which process a run belongs to, and whether it still runs.

A run names its process by host, boot, PID namespace, PID and start time: a PID alone is
reused, and the same host name can be another machine, a container of its own or another
PID namespace, where the same PID is another process.
"""

import os
import socket
from pathlib import Path


def process_exists(pid: int) -> bool:
    """Whether a process `pid` runs on this host (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def started(pid: int | str = "self") -> str:
    """When process `pid` started, in clock ticks since boot ("" where unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2 :].split()[19]  # field 22: starttime


def place() -> dict[str, str]:
    """Where this process runs: host name, boot and PID namespace."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = str(Path("/proc/self/ns/pid").readlink())
    except OSError:
        boot = namespace = ""
    return {"host": socket.gethostname(), "host.boot": boot, "host.pid_namespace": namespace}


def process_runs(pid: int, start: str) -> bool:
    """Whether the process `pid` that started at `start` (see `started`) still runs here."""
    return process_exists(pid) and (not start or started(pid) == start)
