"""What the black-box tests share: stages run by the real client in working directories of
their own (a package copy, params.yaml, a store), and stores read with sqlite3, so that
reading never creates or upgrades one."""

import copy
import hashlib
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import yaml
from params_editing import set_key

from pipeline.library.split import stratified_split
from pipeline.library.squares import generate_squares, write_squares

REPO = Path(__file__).resolve().parents[1]
SHIPPED = yaml.safe_load((REPO / "params.yaml").read_text())
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

GENERATE = ("generate", "fixed", "data/raw/fixed.parquet")
SPLIT = ("split", "fixed", "data/raw/fixed.parquet", "data/split/fixed")
TRAIN = ("train", "gru", "data/split/fixed", "data/models/gru", "data/history/gru")
EVALUATE = (
    "evaluate",
    "gru",
    "data/models/gru",
    "data/split/fixed/test.parquet",
    "data/metrics/gru.json",
    "data/metrics/gru.confusion.json",
    "data/predictions/gru.csv",
)
PLOT = (
    "plot",
    "gru",
    "data/models/gru",
    "data/split/fixed/test.parquet",
    "data/history/gru",
    "data/plots/gru",
)
#: Finds no packed variant with a padded twin in small params: writes an empty folder.
PADDING = ("padding", "data/models", "data/split", "data/padding")
#: report's arguments change with the report; dvc.yaml says what they are now.
REPORT = tuple(
    yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["report"]["cmd"].split()[3:]
)
TRAIN_OUTPUTS = (
    "data/models/gru/weights.pt",
    "data/models/gru/config.json",
    "data/history/gru/loss.csv",
    "data/history/gru/accuracy.csv",
)
EVALUATE_OUTPUTS = (
    "data/metrics/gru.json",
    "data/metrics/gru.confusion.json",
    "data/predictions/gru.csv",
)


def small_params(**changes: object) -> dict:
    """The shipped params cut to one dataset (96 squares) and one model (2 epochs).

    `changes` maps dotted keys ("models.gru.lr") to new values.
    """
    params = {
        **SHIPPED,
        "datasets": {"fixed": {**SHIPPED["datasets"]["fixed"], "n": 96}},
        "models": {"gru": {**SHIPPED["models"]["gru"], "epochs": 2}},
    }
    for dotted, value in changes.items():
        params = set_key(params, dotted, value)
    return params


def params_text(params: dict) -> str:
    return yaml.safe_dump(params, sort_keys=False)


def replace_line(text: str, old: str, new: str) -> str:
    """`text` with its one line `old` replaced by `new` (raw YAML the dumper cannot write)."""
    lines = text.splitlines()
    assert lines.count(old) == 1, f"{old!r} is not one line of:\n{text}"
    lines[lines.index(old)] = new
    return "\n".join(lines) + "\n"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def names_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll `condition` until it holds (an observable event); fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ---------------------------------------------------------------------------
# Stores, read without MLflow.


@dataclass(frozen=True)
class Run:
    id: str
    name: str
    status: str
    artifact_uri: str
    tags: dict[str, str]
    params: dict[str, str]
    metric_count: int

    def output_tags(self) -> dict[str, str]:
        return {k: v for k, v in self.tags.items() if k.startswith("output/")}


def store_runs(database: Path) -> list[Run]:
    """Every run of a SQLite store, oldest first; [] while there is no store (yet)."""
    if not database.exists() or database.stat().st_size == 0:
        return []
    connection = sqlite3.connect(f"file:{quote(str(database))}?mode=ro", uri=True, timeout=30)
    try:
        tables = {row[0] for row in connection.execute("select name from sqlite_master")}
        if not {"runs", "tags", "params"} <= tables:
            return []
        rows = connection.execute(
            "select run_uuid, name, status, artifact_uri from runs order by start_time, run_uuid"
        ).fetchall()
        tags: dict[str, dict[str, str]] = {}
        for run_id, key, value in connection.execute("select run_uuid, key, value from tags"):
            tags.setdefault(run_id, {})[key] = value
        params: dict[str, dict[str, str]] = {}
        for run_id, key, value in connection.execute("select run_uuid, key, value from params"):
            params.setdefault(run_id, {})[key] = value
        metrics = dict(connection.execute("select run_uuid, count(*) from metrics group by 1"))
    finally:
        connection.close()
    return [
        Run(
            run_id,
            name,
            status,
            uri,
            tags.get(run_id, {}),
            params.get(run_id, {}),
            metrics.get(run_id, 0),
        )
        for run_id, name, status, uri in rows
    ]


def store_tables(database: Path) -> set[str]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return {row[0] for row in connection.execute("select name from sqlite_master")}


def store_problems(database: Path, reference: Path) -> list[str]:
    """Why `database` is not a whole MLflow store like `reference` (none if it is)."""
    problems = []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        integrity = connection.execute("pragma integrity_check").fetchone()[0]
        versions = connection.execute("select version_num from alembic_version").fetchall()
    with sqlite3.connect(f"file:{reference}?mode=ro", uri=True) as connection:
        expected_versions = connection.execute("select version_num from alembic_version").fetchall()
    if integrity != "ok":
        problems.append(f"integrity_check: {integrity}")
    if versions != expected_versions:
        problems.append(f"alembic_version {versions}, expected {expected_versions}")
    tables, expected = store_tables(database), store_tables(reference)
    if tables != expected:
        problems.append(f"tables differ: extra {tables - expected}, missing {expected - tables}")
    return problems


# ---------------------------------------------------------------------------
# Working directories: a copy of the package, params.yaml, and the client.


def processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is `directory` (a stage's client and child)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cwd").readlink() == directory:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def holds_a_socket(pid: int) -> bool:
    try:
        return any(
            fd.readlink().name.startswith("socket:") for fd in Path(f"/proc/{pid}/fd").iterdir()
        )
    except OSError:
        return False


def process_alive(pid: int) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def as_user(user: str) -> list[str]:
    """A command prefix that runs as `user`, able to read anything (the interpreter lives
    under /root) but to write only where `user` may."""
    return [
        "setpriv",
        f"--reuid={user}",
        "--regid=nogroup",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
        "--",
    ]


class Workdir:
    """A directory to run stages in, as a user would: package copy, params.yaml, own store."""

    def __init__(
        self,
        root: Path,
        package: Path,
        server_directory: Path,
        params: dict | str,
        store: Path | None = None,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(package, root / "pipeline", dirs_exist_ok=True)
        if store is not None:
            shutil.copy(store, self.database)
        self.env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(server_directory.parent),
            "LANG": "C.UTF-8",
            "PIPELINE_STAGE_SERVER_DIR": str(server_directory),
            "PIPELINE_STAGE_SERVER_IDLE_S": "300",
        }
        self.write_params(params)

    @property
    def database(self) -> Path:
        return self.root / "mlflow.db"

    def at(self, root: Path) -> "Workdir":
        """This workdir as found at `root`, where it was copied or moved."""
        moved = copy.copy(self)
        moved.root = root
        return moved

    def write_params(self, params: dict | str) -> None:
        text = params if isinstance(params, str) else params_text(params)
        (self.root / "params.yaml").write_text(text)

    def command(self, args: tuple[str, ...], user: str | None) -> list[str]:
        prefix = as_user(user) if user is not None else []
        return [*prefix, sys.executable, "-m", "pipeline", *args]

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        user: str | None = None,
        limits: dict[int, int] | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess:
        def limit() -> None:
            for kind, value in (limits or {}).items():
                resource.setrlimit(kind, (value, value))

        return subprocess.run(
            self.command(args, user),
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            preexec_fn=limit if limits else None,
        )

    def start(self, *args: str, env: dict[str, str] | None = None, user: str | None = None):
        return subprocess.Popen(
            self.command(args, user),
            cwd=self.root,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )

    def succeed(self, *args: str, env: dict[str, str] | None = None) -> float:
        """Run a stage that must succeed; its wall time in seconds."""
        started = time.monotonic()
        result = self.run(*args, env=env)
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stderr}"
        return time.monotonic() - started

    def runs(self) -> list[Run]:
        return store_runs(self.database)

    def files(self) -> set[str]:
        """Every file here but the package copy (outputs, the store, leftovers)."""
        return {
            str(path.relative_to(self.root))
            for path in self.root.rglob("*")
            if path.is_file() and path.relative_to(self.root).parts[0] != "pipeline"
        }

    def digests(self, paths: tuple[str, ...]) -> dict[str, str | None]:
        return {p: md5(self.root / p) if (self.root / p).is_file() else None for p in paths}

    def leftovers(self) -> list[str]:
        """Staged or temporary files a stage left among its outputs (none may survive it)."""
        return sorted(
            name
            for name in self.files()
            if not name.startswith("mlruns/") and (".staged-" in name or ".tmp" in Path(name).name)
        )

    def write_split(self, dataset: dict | None = None, split: dict | None = None) -> None:
        """The split files of `datasets.fixed` as split@fixed writes them."""
        dataset = dataset or small_params()["datasets"]["fixed"]
        split = split or SHIPPED["split"]
        squares = generate_squares(
            dataset["n"], dataset["noise"], dataset["seed"], dataset["variable_len"]
        )
        parts = stratified_split(squares.labels, split["val"], split["test"], split["seed"])
        for part, rows in parts.parts().items():
            write_squares(squares.take(rows), self.root / f"data/split/fixed/{part}.parquet")

    def copy_data_from(self, other: "Workdir") -> None:
        shutil.copytree(other.root / "data", self.root / "data", dirs_exist_ok=True)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a user mistake gets: exit status 1, `error: ...` alone on stderr."""
    assert result.returncode == 1, f"exit {result.returncode}, stderr:\n{result.stderr}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"{len(lines)} stderr lines:\n{result.stderr[:3000]}"
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


def fill(directory: Path) -> Path:
    """Write a file into `directory` until its filesystem is full; the file."""
    filler = directory / "filler"
    with filler.open("wb") as file:
        try:
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        except OSError:
            pass
    return filler


def stage_pid(workdir: Workdir) -> int:
    """The process that runs the newest run's stage (its `pid` tag)."""
    run = wait_for(lambda: [r for r in workdir.runs() if r.status == "RUNNING"], 120, "a run")
    return int(run[-1].tags["pid"])


def state(pid: int) -> str:
    """A process's state letter (R, S, T, Z, ...), or "" once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
