"""What a stage process is: the code it imported and the process it runs as.

A stage's outputs are recorded as made by the code on disk and by its client's process. A
warm process (pipeline/runtime/server.py) imported its code earlier and was started by an
earlier client, so before it runs a stage it proves both: its snapshot of the pipeline's
source equals the disk's, the files of every library it loaded are unchanged, and its
process context (nice level, cgroup, namespaces, root, user, limits) equals the client's.
The stage itself compares the source and the params it started from with those at its end.
"""

import hashlib
import os
import resource
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

#: The pipeline package: its source is what a stage runs.
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: Namespaces a process lives in (Linux's /proc/self/ns).
NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
#: Fields of /proc/self/status a process inherits: its capabilities and sandboxing.
STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
#: Environment that Python reads only as it starts (a child keeps its server's).
STARTUP_VARIABLES = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONNOUSERSITE",
    "PYTHONUSERBASE",
    "PYTHONPLATLIBDIR",
    "PYTHONHASHSEED",
    "PYTHONOPTIMIZE",
    "PYTHONWARNINGS",
    "PYTHONDEVMODE",
    "PYTHONMALLOC",
    "PYTHONUTF8",
    "PYTHONIOENCODING",
    "PYTHONSAFEPATH",
)

Snapshot = dict[str, str]


def source_snapshot(root: Path = PACKAGE_DIR) -> Snapshot:
    """The sha256 of every Python file of the package, by its path relative to the package."""
    return {
        file.relative_to(root).as_posix(): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(root.rglob("*.py"))
        if "__pycache__" not in file.parts
    }


def changed(before: Snapshot, after: Snapshot) -> list[str]:
    """The keys whose values differ between two snapshots (added and removed ones too)."""
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def loaded_files() -> Snapshot:
    """(mtime, size, inode) of the file of every loaded module outside the package: an
    installed library edited in place, or reinstalled, changes them."""
    files = {getattr(module, "__file__", None) for module in list(sys.modules.values())}
    return restat(
        file
        for file in files
        if file and Path(file).is_absolute() and not file.startswith(str(PACKAGE_DIR))
    )


def restat(files: Iterable[str]) -> Snapshot:
    """Each file's (mtime, size, inode) as it is on disk now, or "gone"."""
    now = {}
    for file in files:
        try:
            status = Path(file).stat()
        except OSError:
            now[file] = "gone"
            continue
        now[file] = f"{status.st_mtime_ns}:{status.st_size}:{status.st_ino}"
    return now


def process_context() -> Snapshot:
    """What a process inherits from its parent and cannot take over later: its nice level,
    cgroup, namespaces, root directory, user and groups, capabilities, resource limits,
    interpreter, the settings Python reads as it starts, and the package it imports."""
    context = {
        "nice": str(os.getpriority(os.PRIO_PROCESS, 0)),
        "uids": str(os.getresuid()),
        "gids": str(os.getresgid()),
        "groups": str(sorted(os.getgroups())),
        "interpreter": f"{sys.executable} {sys.version}",
        "package": str(PACKAGE_DIR),  # each checkout has warm processes of its own
        "site-packages": str(Path(sysconfig.get_paths()["purelib"]).stat().st_mtime_ns),
    }
    root = Path("/proc/self/root" if Path("/proc/self/root").exists() else "/").stat()
    context["root"] = f"{root.st_dev}:{root.st_ino}"
    context["cgroup"] = _read("/proc/self/cgroup")
    for namespace in NAMESPACES:
        try:
            context[f"ns.{namespace}"] = str(Path(f"/proc/self/ns/{namespace}").readlink())
        except OSError:
            context[f"ns.{namespace}"] = "none"
    status = dict(
        line.split(":", 1) for line in _read("/proc/self/status").splitlines() if ":" in line
    )
    for field in STATUS_FIELDS:
        context[field] = status.get(field, "").strip()
    for name in sorted(dir(resource)):
        if name.startswith("RLIMIT_"):
            context[name] = str(resource.getrlimit(getattr(resource, name)))
    for name in STARTUP_VARIABLES:
        context[name] = str(os.environ.get(name))
    return context


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def digest(*parts: Snapshot | dict[str, str]) -> str:
    """A short hash of snapshots, for a server's name."""
    hasher = hashlib.sha256()
    for part in parts:
        for key, value in sorted(part.items()):
            hasher.update(f"{key}\0{value}\0".encode("utf-8", "surrogateescape"))
    return hasher.hexdigest()[:24]
