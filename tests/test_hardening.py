"""Issue 10's hostile cases, black-box: `python -m pipeline ...` on real stores and files.

Every test arranges a working directory holding a copy of the package and a params.yaml,
runs the real command-line client (which hands the stage to a warm stage server unless
PIPELINE_STAGE_SERVER=0), and asserts the exit status, the one stderr line a user mistake
gets, what is left on disk and the state of the MLflow run in a real SQLite store. Stores
are read with sqlite3, so reading never creates or upgrades one.

The package is copied once per session: the runtime under test is one version of it.
"""

import contextlib
import copy
import hashlib
import http.server
import math
import os
import random
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from params_editing import set_key

from pipeline.library.split import stratified_split
from pipeline.library.squares import generate_squares, read_squares, write_squares

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
EVALUATE_OUTPUTS = ("data/metrics/gru.json", "data/predictions/gru.csv")


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
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
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


@pytest.fixture(scope="session")
def package(tmp_path_factory) -> Path:
    """The package under test, copied once: the lead edits pipeline/ meanwhile."""
    root = tmp_path_factory.mktemp("package")
    shutil.copytree(
        REPO / "pipeline",
        root / "pipeline",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    # What a stage server imports first: a tree caught mid-edit fails here, once, clearly.
    preload = "from pipeline.__main__ import STAGES; from pipeline.runtime import server; server.preload(list(STAGES.values()))"
    result = subprocess.run(
        [sys.executable, "-c", preload], cwd=root, capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"the package copy does not import: {result.stderr.strip()[-500:]}")
    return root / "pipeline"


@pytest.fixture(scope="session")
def public_directory() -> Iterator[Path]:
    """A directory other users can enter (pytest's are private to root); removed at the end.

    Its servers/ holds the session's stage-server sockets: removing it ends the servers.
    """
    directory = Path(tempfile.mkdtemp(prefix="hardening-", dir="/tmp"))
    directory.chmod(0o755)
    (directory / "servers").mkdir()
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """A store as MLflow creates it, without runs: creating one takes seconds, a copy none."""
    database = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    create = "import sys; from mlflow import MlflowClient; MlflowClient(sys.argv[1]).search_experiments()"
    subprocess.run(
        [sys.executable, "-c", create, f"sqlite:///{database}"],
        cwd=database.parent,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        check=True,
        capture_output=True,
    )
    return database


FRESH = None  # `make_workdir(store=FRESH)`: no store; the first stage creates it


@pytest.fixture
def make_workdir(tmp_path, package, public_directory, empty_store) -> Callable[..., Workdir]:
    """Workdirs under tmp_path: `make_workdir(name, params, store)`, with a copy of
    `empty_store` unless told otherwise."""

    def make(
        name: str = "work", params: dict | str | None = None, store: Path | None = empty_store
    ) -> Workdir:
        return Workdir(
            tmp_path / name, package, public_directory / "servers", params or small_params(), store
        )

    return make


@pytest.fixture
def workdir(make_workdir) -> Workdir:
    return make_workdir()


@pytest.fixture(scope="session")
def session_workdir(
    tmp_path_factory, package, public_directory, empty_store
) -> Callable[[str], Workdir]:
    """Workdirs that live as long as the session: `session_workdir(name)`."""

    def make(name: str) -> Workdir:
        root = tmp_path_factory.mktemp(name)
        return Workdir(root, package, public_directory / "servers", small_params(), empty_store)

    return make


@pytest.fixture(scope="session")
def template(session_workdir) -> Workdir:
    """Every output of the small pipeline, made once by the real stages (do not change it)."""
    done = session_workdir("template")
    for stage in (GENERATE, SPLIT, TRAIN, EVALUATE, PLOT):
        done.succeed(*stage)
    return done


@pytest.fixture(scope="session")
def whole_store(template) -> Path:
    """A store made by the stages, one at a time: what a whole store looks like."""
    return template.database


# ---------------------------------------------------------------------------
# 6 and 5: params that used to crash later are refused before anything starts.


def refused_before_anything(workdir: Workdir, args: tuple[str, ...], *fragments: str) -> str:
    """Run a stage that must be refused: one line naming `fragments`, no file, no run."""
    before = workdir.files()
    line = error_line(workdir.run(*args))
    for fragment in fragments:
        assert fragment in line, line
    assert workdir.files() == before, "the refused stage wrote files"
    assert workdir.runs() == []
    return line


PARAMS_REFUSED = {
    "split.val 0.0": ({"split.val": 0.0}, GENERATE, "params.yaml: split.val must be"),
    "split.test 0.0": ({"split.test": 0.0}, GENERATE, "params.yaml: split.test must be"),
    "tiny n empties a split": ({"datasets.fixed.n": 4}, GENERATE, "datasets.fixed (n = 4)"),
    "n 10000000000": ({"datasets.fixed.n": 10_000_000_000}, GENERATE, "datasets.fixed.n must"),
    "noise 1e308": ({"datasets.fixed.noise": 1e308}, GENERATE, "datasets.fixed.noise must"),
    "noise nan": ({"datasets.fixed.noise": math.nan}, GENERATE, "datasets.fixed.noise must"),
    "lr above float32": ({"models.gru.lr": 1e39}, TRAIN, "models.gru.lr must"),
    "lr inf": ({"models.gru.lr": math.inf}, TRAIN, "models.gru.lr must"),
    "split sums to 1": ({"split.val": 0.5, "split.test": 0.5}, GENERATE, "split.val + split.test"),
}


@pytest.mark.parametrize("case", PARAMS_REFUSED)
def test_params_that_used_to_crash_later_are_refused_by_validation(workdir, case):
    changes, args, fragment = PARAMS_REFUSED[case]
    workdir.write_params(small_params(**changes))
    if args == TRAIN:
        workdir.write_split()
    refused_before_anything(workdir, args, fragment)


@pytest.mark.parametrize(
    ("section", "name", "args"),
    [
        ("models", "m" * 65, ("train", "m" * 65, "s", "m", "h")),
        ("models", "-gru", ("train", "-gru", "s", "m", "h")),
        ("datasets", "d" * 65, ("generate", "d" * 65, "out.parquet")),
        ("datasets", "-fixed", ("generate", "-fixed", "out.parquet")),
    ],
    ids=["model name 65 chars", "model name -gru", "dataset name 65 chars", "dataset name -fixed"],
)
def test_names_too_long_or_starting_with_a_dash_are_refused(workdir, section, name, args):
    params = small_params()
    if section == "models":
        params["models"] = {name: params["models"]["gru"]}
    else:
        params["datasets"] = {name: params["datasets"]["fixed"]}
        params["models"]["gru"]["dataset"] = name
    workdir.write_params(params)
    refused_before_anything(workdir, args, f"{section}.", "must be a name of 1 to 64")


def test_a_stage_name_starting_with_a_dash_is_an_argument_not_an_option(workdir):
    refused_before_anything(workdir, ("train", "-gru", "s", "m", "h"), "models.-gru is missing")


def test_a_name_of_64_characters_runs_end_to_end(workdir):
    name = "d" * 64
    params = small_params()
    params["datasets"] = {name: params["datasets"]["fixed"]}
    params["models"]["gru"]["dataset"] = name
    workdir.write_params(params)
    output = f"data/raw/{name}.parquet"
    workdir.succeed("generate", name, output)
    [run] = workdir.runs()
    assert run.status == "FINISHED"
    assert run.name == f"generate@{name}"
    assert run.output_tags() == {f"output/{output}": md5(workdir.root / output)}


def test_an_output_path_longer_than_mlflow_keys_is_recorded(workdir):
    output = "data/" + "/".join(["x" * 100] * 3) + "/fixed.parquet"
    workdir.succeed("generate", "fixed", output)
    [run] = workdir.runs()
    assert run.status == "FINISHED"
    [(key, digest)] = run.output_tags().items()
    assert len(key) <= 250
    assert digest == md5(workdir.root / output)


@pytest.mark.parametrize(
    ("changes", "args", "fragments"),
    [
        ({"models.gru.hidden_dim": 100_000}, TRAIN, ("models.gru.hidden_dim", "memory")),
        ({"datasets.fixed.n": 400_000_000}, GENERATE, ("datasets.fixed.n", "memory")),
        ({"models.gru.batch_size": 500}, TRAIN, ("models.gru.batch_size", "train.parquet")),
    ],
    ids=["hidden_dim 100000", "n 400000000", "batch_size above the split"],
)
def test_sizes_the_machine_cannot_hold_are_refused_before_a_run_starts(
    workdir, changes, args, fragments
):
    workdir.write_params(small_params(**changes))
    workdir.write_split()
    refused_before_anything(workdir, args, *fragments)


def test_device_cuda_without_cuda_is_one_line_before_a_run_starts(workdir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    workdir.write_params(small_params(device="cuda"))
    workdir.write_split()
    refused_before_anything(workdir, TRAIN, "device", "CUDA")


@pytest.mark.parametrize(
    "args",
    [("train", "gru"), ("generate", "fixed", "a.parquet", "b.parquet"), ("generate",)],
    ids=["missing paths", "extra path", "no name"],
)
def test_command_line_mistakes_are_one_line(workdir, args):
    refused_before_anything(workdir, args, "python -m pipeline")


# ---------------------------------------------------------------------------
# 7: params.yaml is read exactly as DVC reads it.


def dvc_reads(text: str) -> object:
    """What DVC's own parser makes of a params file (or the exception it raises)."""
    from dvc.utils.serialize import parse_yaml

    try:
        return parse_yaml(text, "params.yaml")
    except Exception as error:  # the refusal is the answer
        return error


def value_at(values: dict, dotted: str) -> object:
    for key in dotted.split("."):
        values = values[key]
    return values


BASE_TEXT = params_text(small_params())
#: (old line, new line, the dotted key it sets, what DVC reads there).
YAML_ACCEPTED = {
    "n: 010 is ten": ("    n: 96", "    n: 010", "datasets.fixed.n", 10),
    "noise: 1e-3 is a float": ("    noise: 0.1", "    noise: 1e-3", "datasets.fixed.noise", 0.001),
}
YAML_REFUSED = {
    "n: 17:04 is a string": ("    n: 96", "    n: 17:04", "datasets.fixed.n", "'17:04'"),
    "variable_len: no is a string": (
        "    variable_len: false",
        "    variable_len: no",
        "datasets.fixed.variable_len",
        "'no'",
    ),
}


@pytest.mark.parametrize("case", YAML_ACCEPTED)
def test_values_dvc_accepts_mean_the_same_to_the_stage(workdir, case):
    old, new, key, expected = YAML_ACCEPTED[case]
    text = replace_line(BASE_TEXT, old, new)
    assert value_at(dvc_reads(text), key) == expected
    workdir.write_params(text)
    workdir.succeed(*GENERATE)
    [run] = workdir.runs()
    assert run.params[f"data.{key.rsplit('.', 1)[1]}"] == str(expected)
    if key.endswith(".n"):
        assert pq.read_metadata(workdir.root / GENERATE[2]).num_rows == expected


@pytest.mark.parametrize("case", YAML_REFUSED)
def test_values_dvc_reads_as_strings_are_refused_naming_the_key(workdir, case):
    old, new, key, shown = YAML_REFUSED[case]
    text = replace_line(BASE_TEXT, old, new)
    assert isinstance(value_at(dvc_reads(text), key), str)
    workdir.write_params(text)
    refused_before_anything(workdir, GENERATE, f"{key} must be", f"got {shown}")


def alias_bomb(levels: int, width: int) -> str:
    """Billion laughs as one flow value: `width ** levels` strings if expanded, a few KB if
    not; `levels` lists nested through aliases."""
    nested = [f"&l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        nested.append(f"&l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return f"[{', '.join(nested)}]"


#: 10**8 strings if expanded, nested 4 deep: shallow enough for the params contract's depth.
WIDE_BOMB = alias_bomb(levels=4, width=100)


#: Broken params files (bytes) and a fragment their one line must hold.
YAML_BROKEN = {
    "duplicate key": (replace_line(BASE_TEXT, "    n: 96", "    n: 96\n    n: 97"), "duplicate"),
    "alias bomb in a value": (
        replace_line(BASE_TEXT, "    n: 96", f"    n: {WIDE_BOMB}"),
        "datasets.fixed.n must be",
    ),
    "alias bomb under an unknown key": (f"lols: {WIDE_BOMB}\n{BASE_TEXT}", "lols"),
    "alias bomb nested 9 deep": (
        replace_line(BASE_TEXT, "    n: 96", f"    n: {alias_bomb(levels=9, width=9)}"),
        "params.yaml:",
    ),
    "nested 20000 deep": (BASE_TEXT + "deep: " + "[" * 20_000 + "]" * 20_000 + "\n", "deep"),
    "a non-UTF-8 byte": (BASE_TEXT.replace("fixed:", "fix\udcffed:", 1), "UTF-8"),
    "a NUL character": (BASE_TEXT.replace("fixed:", "fix\x00ed:", 1), "params.yaml:"),
    "two documents": (BASE_TEXT + "---\n" + BASE_TEXT, "params.yaml:"),
    "a python tag": (
        replace_line(BASE_TEXT, "    n: 96", "    n: !!python/object/apply:os.system [id]"),
        "params.yaml:",
    ),
    "a list, not a mapping": ("- 1\n- 2\n", "params.yaml:"),
    "an empty file": ("", "is missing"),
    "two mebibytes": (BASE_TEXT + "#" * (2 << 20) + "\n", "params.yaml:"),
}


@pytest.mark.parametrize("case", YAML_BROKEN)
def test_a_broken_params_file_is_one_bounded_line_and_nothing_is_written(workdir, case):
    text, fragment = YAML_BROKEN[case]
    # surrogateescape: "\udcff" is the lone byte 0xff, not UTF-8.
    (workdir.root / "params.yaml").write_bytes(text.encode("utf-8", "surrogateescape"))
    before = workdir.files()
    # 1 GiB of address space: the client alone needs far less; an expanded bomb far more.
    result = workdir.run(*GENERATE, limits={resource.RLIMIT_AS: 1 << 30}, timeout=60)
    line = error_line(result)
    assert line.startswith("error: params.yaml"), line
    assert fragment in line, line
    assert len(line) < 300, f"{len(line)} characters"
    assert workdir.files() == before
    assert workdir.runs() == []


def test_dvc_refuses_what_the_stage_refuses_for_duplicate_keys():
    text, _ = YAML_BROKEN["duplicate key"]
    assert isinstance(dvc_reads(text), Exception)


# ---------------------------------------------------------------------------
# 5: non-finite data is refused, naming the file; metrics are always finite.


def damaged_point(path: Path, value: float) -> None:
    """Rewrite a Parquet file of squares with one coordinate set to `value`."""
    squares = read_squares(path)
    squares.points[len(squares.points) // 2, 1, 0] = value
    write_squares(squares, path)


@pytest.mark.parametrize(
    ("part", "value"),
    [("train", math.nan), ("train", math.inf), ("train", 1e39), ("val", -math.inf)],
    ids=["train nan", "train inf", "train 1e39 (beyond float32)", "val -inf"],
)
def test_a_split_with_a_non_finite_point_is_refused_naming_the_file(workdir, part, value):
    workdir.write_split()
    damaged = workdir.root / f"data/split/fixed/{part}.parquet"
    damaged_point(damaged, value)
    line = error_line(workdir.run(*TRAIN))
    assert f"data/split/fixed/{part}.parquet" in line
    assert "NaN, infinite or too large" in line
    assert workdir.digests(TRAIN_OUTPUTS) == dict.fromkeys(TRAIN_OUTPUTS)
    assert workdir.leftovers() == []
    assert [run.status for run in workdir.runs()] == ["FAILED"]


def test_a_raw_file_with_a_nan_point_is_refused_by_split(workdir):
    workdir.succeed(*GENERATE)
    damaged_point(workdir.root / "data/raw/fixed.parquet", math.nan)
    line = error_line(workdir.run(*SPLIT))
    assert "data/raw/fixed.parquet" in line
    assert not any(path.startswith("data/split") for path in workdir.files())
    assert [run.status for run in workdir.runs()] == ["FINISHED", "FAILED"]


def test_a_learning_rate_that_cannot_learn_is_refused_naming_the_key(workdir):
    """1e30 trained to a finite loss of 1e29 (garbage), 3e38 crashed inside Adam: refused."""
    workdir.write_params(small_params(**{"models.gru.lr": 1e30}))
    workdir.write_split()
    result = workdir.run(*TRAIN)
    history = workdir.root / "data/history/gru/loss.csv"
    observed = history.read_text() if history.exists() else "no loss.csv"
    assert result.returncode == 1, f"exit {result.returncode}; loss.csv:\n{observed}"
    line = error_line(result)
    assert "models.gru.lr" in line
    assert workdir.digests(TRAIN_OUTPUTS) == dict.fromkeys(TRAIN_OUTPUTS)
    assert workdir.runs() == []  # refused before a run starts


def metrics_are_strict_json(path: Path) -> dict:
    import json

    def refuse(constant: str) -> None:
        raise ValueError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_the_logged_model_keeps_no_temporary_name(template):
    """Artifact paths are shared by every run; a staged directory's name is not."""
    models = [p for p in (template.root / "mlruns/models").rglob("*") if p.is_file()]
    assert models, "no logged model"
    staged = sorted({str(p.relative_to(template.root)) for p in models if ".staged-" in str(p)})
    assert staged == [], staged


def test_metrics_of_a_clean_run_are_finite_strict_json(template):
    metrics = metrics_are_strict_json(template.root / "data/metrics/gru.json")
    assert all(math.isfinite(value) for value in metrics.values())


def scaled_weights(directory: Path, value: float) -> None:
    """Set every weight of a checkpoint to `value` (finite weights, non-finite outputs)."""
    import torch

    path = directory / "weights.pt"
    state = torch.load(path, weights_only=True)
    torch.save({name: torch.full_like(tensor, value) for name, tensor in state.items()}, path)


@pytest.mark.parametrize("value", [math.nan, 3e38], ids=["nan weights", "huge weights"])
def test_a_model_whose_outputs_are_not_finite_writes_no_metrics(make_workdir, template, value):
    workdir = make_workdir()
    workdir.copy_data_from(template)
    for path in EVALUATE_OUTPUTS:
        (workdir.root / path).unlink()
    scaled_weights(workdir.root / "data/models/gru", value)
    line = error_line(workdir.run(*EVALUATE))
    assert "data/models/gru/weights.pt" in line
    assert workdir.digests(EVALUATE_OUTPUTS) == dict.fromkeys(EVALUATE_OUTPUTS)
    assert [run.status for run in workdir.runs()] == ["FAILED"]


# ---------------------------------------------------------------------------
# 9: one line, naming the file, for bad inputs of the later stages.


class CodeRunningPickle:
    """Unpickling this runs `touch <marker>`: weights-only loading must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def break_checkpoint(directory: Path, damage: str, marker: Path) -> str:
    """Damage a checkpoint in `directory`; the file the message must name."""
    import pickle

    import torch

    weights, config = directory / "weights.pt", directory / "config.json"
    if damage == "weights missing":
        weights.unlink()
    elif damage == "weights garbage":
        weights.write_bytes(random.Random(10).randbytes(4096))
    elif damage == "weights a bare pickle STOP":
        weights.write_bytes(b".")
    elif damage == "weights empty":
        weights.write_bytes(b"")
    elif damage == "code-running pickle (torch archive)":
        torch.save({"weights": CodeRunningPickle(marker)}, weights)
    elif damage == "code-running pickle (plain)":
        weights.write_bytes(pickle.dumps(CodeRunningPickle(marker)))
    elif damage == "weights of another model":
        torch.save({"other.weight": torch.zeros(3, 3)}, weights)
    elif damage == "config garbage":
        config.write_text("{not json")
        return "config.json"
    elif damage == "config a list":
        config.write_text("[1, 2]\n")
        return "config.json"
    elif damage == "config unknown arch":
        config.write_text(config.read_text().replace('"gru"', '"transformer"'))
        return "config.json"
    elif damage == "config wider than the weights":
        config.write_text(config.read_text().replace('"hidden_dim": 2', '"hidden_dim": 3'))
    elif damage == "config huge hidden_dim":
        config.write_text(config.read_text().replace('"hidden_dim": 2', '"hidden_dim": 1000000'))
        return "config.json"
    elif damage == "config not UTF-8":
        config.write_bytes(b"\xff\xfe{}")
        return "config.json"
    return "weights.pt"


CHECKPOINT_DAMAGE = (
    "weights missing",
    "weights garbage",
    "weights a bare pickle STOP",
    "weights empty",
    "code-running pickle (torch archive)",
    "code-running pickle (plain)",
    "weights of another model",
    "config garbage",
    "config a list",
    "config unknown arch",
    "config wider than the weights",
    "config huge hidden_dim",
    "config not UTF-8",
)


@pytest.mark.parametrize("damage", CHECKPOINT_DAMAGE)
def test_a_bad_checkpoint_is_one_line_naming_the_file(make_workdir, template, damage):
    workdir = make_workdir()
    workdir.copy_data_from(template)
    for path in EVALUATE_OUTPUTS:
        (workdir.root / path).unlink()
    marker = workdir.root / "pickle-ran-code"
    named = break_checkpoint(workdir.root / "data/models/gru", damage, marker)
    # 4 GiB: a stage that tries to build a model of a million hidden units fails fast.
    result = workdir.run(*EVALUATE, limits={resource.RLIMIT_AS: 4 << 30})
    line = error_line(result)
    assert f"data/models/gru/{named}" in line, line
    assert not marker.exists(), "loading the checkpoint ran its code"
    assert workdir.digests(EVALUATE_OUTPUTS) == dict.fromkeys(EVALUATE_OUTPUTS)
    assert workdir.leftovers() == []
    assert [run.status for run in workdir.runs()] in ([], ["FAILED"])


def empty_squares_file(path: Path) -> None:
    pq.write_table(pq.read_table(path).slice(0, 0), path)


@pytest.mark.parametrize(
    ("emptied", "args", "outputs"),
    [
        ("data/split/fixed/train.parquet", TRAIN, TRAIN_OUTPUTS),
        ("data/split/fixed/val.parquet", TRAIN, TRAIN_OUTPUTS),
        ("data/split/fixed/test.parquet", EVALUATE, EVALUATE_OUTPUTS),
    ],
    ids=["train", "val", "test"],
)
def test_a_split_with_no_rows_is_one_line_naming_it(make_workdir, template, emptied, args, outputs):
    workdir = make_workdir()
    workdir.copy_data_from(template)
    for path in outputs:
        (workdir.root / path).unlink()
    empty_squares_file(workdir.root / emptied)
    line = error_line(workdir.run(*args))
    assert emptied in line, line
    assert workdir.digests(outputs) == dict.fromkeys(outputs)


def test_a_raw_file_too_small_to_split_is_refused_naming_it(workdir):
    squares = generate_squares(3, 0.1, 13, False)
    write_squares(squares, workdir.root / "data/raw/fixed.parquet")
    result = workdir.run(*SPLIT)
    line = error_line(result)
    assert "data/raw/fixed.parquet" in line, line
    assert not any(path.startswith("data/split") for path in workdir.files())


HISTORY_DAMAGE = {
    "garbage": b"this is not a csv\n\x01\x02",
    "wrong header": b"a,b,c\n1,0.5,0.5\n",
    "empty": b"",
    "a nan loss": b"epoch,train,val\n1,nan,0.5\n2,0.4,0.5\n",
    "a missing column": b"epoch,train,val\n1,0.5\n",
    "not UTF-8": b"epoch,train,val\n1,0.5,\xff\n",
}


@pytest.mark.parametrize("damage", HISTORY_DAMAGE)
def test_a_malformed_history_file_is_one_line_naming_it(make_workdir, template, damage):
    workdir = make_workdir()
    workdir.copy_data_from(template)
    shutil.rmtree(workdir.root / "data/plots/gru")
    (workdir.root / "data/history/gru/loss.csv").write_bytes(HISTORY_DAMAGE[damage])
    line = error_line(workdir.run(*PLOT))
    assert "data/history/gru/loss.csv" in line, line
    assert not (workdir.root / "data/plots/gru").exists()
    assert workdir.leftovers() == []


METRICS_DAMAGE = {
    "not JSON": "{",
    "a list": "[1, 2]",
    "a missing key": '{"test_accuracy": 0.5}',
    "a NaN value": None,  # the template's metrics with test_loss NaN
    "not UTF-8": b"\xff\xfe",
}


@pytest.mark.parametrize("damage", METRICS_DAMAGE)
def test_a_malformed_metrics_file_is_one_line_naming_it(make_workdir, template, damage):
    workdir = make_workdir()
    workdir.copy_data_from(template)
    metrics = workdir.root / "data/metrics/gru.json"
    content = METRICS_DAMAGE[damage]
    if content is None:
        text = metrics.read_text()
        loss = metrics_are_strict_json(metrics)["test_loss"]
        content = text.replace(f'"test_loss": {loss!r}', '"test_loss": NaN')
        assert content != text
    if isinstance(content, str):
        content = content.encode()
    metrics.write_bytes(content)
    line = error_line(workdir.run(*REPORT))
    assert "data/metrics/gru.json" in line, line
    assert not (workdir.root / "data/report").exists()


# ---------------------------------------------------------------------------
# 9: the store: garbage, half-built, read-only, unsupported, unreachable, full.


def test_a_garbage_store_is_one_line_naming_it(workdir):
    workdir.database.write_bytes(os.urandom(8192))
    before = md5(workdir.database)
    line = error_line(workdir.run(*GENERATE))
    assert str(workdir.database) in line
    assert md5(workdir.database) == before
    assert not (workdir.root / GENERATE[2]).exists()


def half_built_store(database: Path, whole: Path, how: str) -> None:
    database.unlink(missing_ok=True)
    if how == "an alembic temporary table":
        shutil.copy(whole, database)
        with sqlite3.connect(database) as connection:
            connection.execute("create table _alembic_tmp_metrics (key varchar(250))")
    else:  # a schema without its version table
        with sqlite3.connect(database) as connection:
            connection.execute("create table experiments (experiment_id integer primary key)")
            connection.execute("create table runs (run_uuid varchar(32) primary key)")


@pytest.mark.parametrize("how", ["an alembic temporary table", "no alembic_version"])
def test_a_half_built_store_says_how_to_recover_and_the_advice_works(workdir, empty_store, how):
    half_built_store(workdir.database, empty_store, how)
    before = md5(workdir.database)
    line = error_line(workdir.run(*GENERATE))
    assert "half-built" in line, line
    broken = Path(f"{workdir.database}.broken")
    assert f"mv {workdir.database} {broken}" in line, line
    assert md5(workdir.database) == before
    assert not (workdir.root / GENERATE[2]).exists()

    workdir.database.rename(broken)  # the advice, followed
    workdir.succeed(*GENERATE)
    assert [run.status for run in workdir.runs()] == ["FINISHED"]


def test_a_store_of_an_unknown_schema_version_is_one_line(workdir):
    with sqlite3.connect(workdir.database) as connection:
        connection.execute("update alembic_version set version_num = 'ffffffffffff'")
    line = error_line(workdir.run(*GENERATE))
    assert str(workdir.database) in line
    assert not (workdir.root / GENERATE[2]).exists()


def test_an_empty_store_file_is_created_in_place(make_workdir):
    workdir = make_workdir(store=FRESH)
    workdir.database.touch()
    workdir.succeed(*GENERATE)
    assert [run.status for run in workdir.runs()] == ["FINISHED"]


@pytest.mark.parametrize("uri", ["bogus://somewhere", "ftp://127.0.0.1/store"])
def test_an_unsupported_tracking_uri_is_one_line_naming_it(workdir, uri):
    before = workdir.files()
    line = error_line(workdir.run(*GENERATE, env={"MLFLOW_TRACKING_URI": uri}))
    assert uri in line
    assert workdir.files() == before


class NotMlflow(http.server.BaseHTTPRequestHandler):
    """A web server that is not MLflow: every request gets a 404 HTML page."""

    PAGE = b"<html><body><h1>Not Found</h1><p>NOT-AN-MLFLOW-PAGE</p></body></html>"

    def _answer(self) -> None:
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.PAGE)))
        self.end_headers()
        self.wfile.write(self.PAGE)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer  # noqa: N815 - http.server's names

    def log_message(self, *args: object) -> None:
        pass


class HealthyButSilent(http.server.BaseHTTPRequestHandler):
    """Answers /health; every API call hangs until the test ends."""

    released = threading.Event()

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/health"):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        else:
            self.released.wait(120)

    do_POST = do_PATCH = do_GET  # noqa: N815 - http.server's names

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[Callable[[type], str]]:
    """`http_server(handler)` serves on loopback; its URI."""
    servers = []

    def serve(handler: type) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    HealthyButSilent.released.set()
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_404_from_a_server_that_is_not_mlflow_is_one_line_without_the_page(workdir, http_server):
    uri = http_server(NotMlflow)
    started = time.monotonic()
    line = error_line(workdir.run(*GENERATE, env={"MLFLOW_TRACKING_URI": uri}))
    assert time.monotonic() - started < 15
    assert uri in line
    assert "<" not in line and "NOT-AN-MLFLOW-PAGE" not in line, line
    assert not (workdir.root / GENERATE[2]).exists()


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A socket that accepts connections (in the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_server_that_never_answers_fails_within_15_seconds(workdir, silent_listener):
    started = time.monotonic()
    line = error_line(workdir.run(*GENERATE, env={"MLFLOW_TRACKING_URI": silent_listener}))
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"{elapsed:.1f} s"
    assert silent_listener in line
    assert not (workdir.root / GENERATE[2]).exists()


def test_a_server_that_answers_health_but_not_the_api_fails_within_15_seconds(workdir, http_server):
    uri = http_server(HealthyButSilent)
    started = time.monotonic()
    result = workdir.run(*GENERATE, env={"MLFLOW_TRACKING_URI": uri}, timeout=120)
    elapsed = time.monotonic() - started
    line = error_line(result)
    assert elapsed < 15, f"{elapsed:.1f} s: {line}"
    assert uri in line
    assert not (workdir.root / GENERATE[2]).exists()


@pytest.fixture
def small_filesystem(tmp_path) -> Iterator[Callable[[int], Path]]:
    """`small_filesystem(kib)`: a tmpfs of that size (skips where mounting is not allowed)."""
    mounted = []

    def mount(kib: int) -> Path:
        path = tmp_path / f"tmpfs{len(mounted)}"
        path.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kib}k,mode=0755", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs to fill ({result.stderr.strip()})")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


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


def test_a_full_disk_for_the_output_is_one_line_and_keeps_the_previous_file(
    workdir, small_filesystem
):
    disk = small_filesystem(256)
    output = disk / "fixed.parquet"
    output.write_bytes(b"the previous output")
    workdir.write_params(small_params(**{"datasets.fixed.n": 20_000}))
    line = error_line(workdir.run("generate", "fixed", str(output)))
    assert str(disk) in line, line
    assert "No space left on device" in line, line
    assert output.read_bytes() == b"the previous output"
    assert names_in(disk) == ["fixed.parquet"]
    assert [run.status for run in workdir.runs()] == ["FAILED"]


def test_the_commands_file_size_limit_binds_its_stage(workdir):
    """`ulimit -f` (a user's, a CI runner's) bounds what the stage may write, as it would
    bound a stage run in its own process: one line, no output."""
    workdir.write_params(small_params(**{"datasets.fixed.n": 250_000}))  # about 20 MB
    result = workdir.run(*GENERATE, limits={resource.RLIMIT_FSIZE: 8 << 20})
    written = workdir.root / GENERATE[2]
    size = written.stat().st_size if written.exists() else 0
    assert result.returncode == 1, f"exit {result.returncode}: wrote {size} bytes past the limit"
    assert "too large" in error_line(result).lower()
    assert not written.exists()


# ---------------------------------------------------------------------------
# Stages run as another user: permissions bind (they do not for root).


@pytest.fixture(scope="session")
def nobody_servers(public_directory) -> Path:
    directory = public_directory / "servers-nobody"
    directory.mkdir()
    shutil.chown(directory, "nobody", "nogroup")
    return directory


@pytest.fixture
def nobody_workdir(package, public_directory, nobody_servers, empty_store) -> Workdir:
    """A workdir that user `nobody` owns (under the session's public directory)."""
    root = Path(tempfile.mkdtemp(prefix="nobody-", dir=public_directory))
    root.chmod(0o755)
    workdir = Workdir(root, package, nobody_servers, small_params(), empty_store)
    workdir.env["HOME"] = str(root)
    subprocess.run(["chown", "-R", "nobody:nogroup", str(root)], check=True)
    probe = subprocess.run([*as_user("nobody"), "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot run as nobody here ({probe.stderr.strip()})")
    return workdir


def test_a_read_only_data_folder_is_one_line_naming_it(nobody_workdir):
    workdir = nobody_workdir
    raw = workdir.root / "data/raw"
    raw.mkdir(parents=True)
    (raw / "fixed.parquet").write_bytes(b"the previous output")
    shutil.chown(raw, "root", "root")
    raw.chmod(0o755)
    line = error_line(workdir.run(*GENERATE, user="nobody"))
    assert "data/raw" in line, line
    assert "ermission denied" in line, line
    assert (raw / "fixed.parquet").read_bytes() == b"the previous output"
    assert names_in(raw) == ["fixed.parquet"]
    assert [run.status for run in workdir.runs()] == ["FAILED"]


@pytest.mark.parametrize("origin", ["made here", "moved here"])
def test_a_read_only_store_is_one_line_naming_it(nobody_workdir, whole_store, origin):
    workdir = nobody_workdir
    if origin == "made here":
        workdir.succeed(*GENERATE)
    else:  # its artifact locations point at the template's directory
        shutil.copy(whole_store, workdir.database)
    shutil.chown(workdir.database, "root", "root")
    workdir.database.chmod(0o644)
    shutil.chown(workdir.root, "root", "root")  # no journal can be created beside it
    runs = workdir.runs()
    output = "data/raw/other.parquet"
    line = error_line(workdir.run("generate", "fixed", output, user="nobody"))
    assert str(workdir.database) in line and "readonly database)" in line, line
    assert workdir.runs() == runs
    assert not (workdir.root / output).exists()


# ---------------------------------------------------------------------------
# 8: an output replaces the previous one only once its run has recorded it.


def test_an_output_path_with_at_and_plus_is_recorded_and_replaces_the_previous(workdir):
    output = workdir.root / "data/raw/fixed@v1+b.parquet"
    output.parent.mkdir(parents=True)
    output.write_bytes(b"the previous output")
    workdir.succeed("generate", "fixed", "data/raw/fixed@v1+b.parquet")
    [run] = workdir.runs()
    assert run.status == "FINISHED"
    assert list(run.output_tags().values()) == [md5(output)]
    assert pq.read_metadata(output).num_rows == 96
    assert workdir.leftovers() == []


def previous_training(workdir: Workdir, template: Workdir) -> dict[str, str | None]:
    """Put the template's training outputs in place as the previous ones; their md5s."""
    workdir.copy_data_from(template)
    return workdir.digests(TRAIN_OUTPUTS)


def wait_for_running_body(database: Path, process: subprocess.Popen) -> Run:
    """The stage's run once it has started and logged its params (its body is running)."""

    def started() -> Run | None:
        assert process.poll() is None, f"the stage ended early:\n{process.communicate()[1]}"
        return next((r for r in store_runs(database) if r.status == "RUNNING" and r.params), None)

    return wait_for(started, 120, "the stage's run to start")


def assert_a_failed_record_keeps_the_previous_outputs(
    workdir: Workdir,
    template: Workdir,
    database: Path,
    sabotage: Callable[[], Callable[[], None]],
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> None:
    """Train; once its body runs, `sabotage` the store (it returns the repair). The stage
    must fail in one line naming the store and keep the previous outputs; the next run
    of the stage ends the run the failure could not end."""
    previous = previous_training(workdir, template)
    if user is not None:
        subprocess.run(["chown", "-R", f"{user}:nogroup", str(workdir.root)], check=True)
    workdir.write_params(small_params(**{"models.gru.epochs": 150, "models.gru.seed": 5}))
    process = workdir.start(*TRAIN, env=env, user=user)
    started = wait_for_running_body(database, process)
    repair = sabotage()
    try:
        _, stderr = process.communicate(timeout=300)
    finally:
        repair()
    assert process.returncode == 1, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert str(database.parent) in lines[0], lines[0]
    assert workdir.digests(TRAIN_OUTPUTS) == previous
    assert workdir.leftovers() == []

    workdir.write_params(small_params())
    result = workdir.run(*TRAIN, env=env, user=user)
    assert result.returncode == 0, result.stderr
    statuses = {run.id: run.status for run in store_runs(database)}
    assert statuses[started.id] in ("FAILED", "KILLED")
    assert "RUNNING" not in statuses.values()


def test_a_store_made_read_only_after_the_start_keeps_the_previous_outputs(
    nobody_workdir, template
):
    workdir = nobody_workdir

    def read_only() -> Callable[[], None]:
        workdir.database.chmod(0o444)
        workdir.root.chmod(0o555)  # and no journal beside it

        def restore() -> None:
            workdir.root.chmod(0o755)
            workdir.database.chmod(0o644)

        return restore

    assert_a_failed_record_keeps_the_previous_outputs(
        workdir, template, workdir.database, read_only, user="nobody"
    )


def test_a_store_disk_full_after_the_start_keeps_the_previous_outputs(
    workdir, template, small_filesystem
):
    disk = small_filesystem(16 << 10)
    database = disk / "mlflow.db"

    def full() -> Callable[[], None]:
        return fill(disk).unlink

    assert_a_failed_record_keeps_the_previous_outputs(
        workdir, template, database, full, env={"MLFLOW_TRACKING_URI": f"sqlite:///{database}"}
    )


@pytest.mark.slow
def test_sigterm_during_plot_leaves_the_previous_picture_folder(make_workdir, template):
    workdir = make_workdir()
    workdir.copy_data_from(template)
    plots = workdir.root / "data/plots"
    shutil.rmtree(plots / "gru")
    (plots / "gru").mkdir()
    (plots / "gru/previous.png").write_bytes(b"the previous picture")
    process = workdir.start(*PLOT)

    def staged_pictures() -> list[Path]:
        assert process.poll() is None, process.communicate()[1]
        return [p for d in plots.glob(".gru.staged-*") for p in d.glob("*.png")]

    wait_for(lambda: len(staged_pictures()) >= 2, 120, "two pictures in the staged folder")
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert names_in(plots) == ["gru"]
    assert names_in(plots / "gru") == ["previous.png"]
    assert [run.status for run in workdir.runs()] == ["KILLED"]

    workdir.succeed(*PLOT)  # a clean run replaces the folder whole
    assert names_in(plots / "gru") == names_in(template.root / "data/plots/gru")


# ---------------------------------------------------------------------------
# 2: a fresh store used by several stages at once.


def start_together(commands: list[tuple[Workdir, tuple[str, ...]]]) -> list[subprocess.Popen]:
    """Start every command, each waiting on one pipe; release them all at once."""
    gate_read, gate_write = os.pipe()
    ready_read, ready_write = os.pipe()
    processes = []
    for workdir, args in commands:
        script = f'echo ready >&{ready_write}; read _ <&{gate_read}; exec "$@"'
        processes.append(
            subprocess.Popen(
                ["bash", "-c", script, "bash", *workdir.command(args, None)],
                cwd=workdir.root,
                env=workdir.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                pass_fds=(gate_read, ready_write),
            )
        )
    os.close(gate_read)
    os.close(ready_write)
    with os.fdopen(ready_read) as ready:
        for _ in commands:
            assert ready.readline() == "ready\n"
    os.close(gate_write)  # every reader sees end-of-file at once
    return processes


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(3))
def test_a_fresh_store_used_by_four_stages_at_once_stays_whole(make_workdir, empty_store, trial):
    workdir = make_workdir(f"fresh-store-{trial}", store=FRESH)
    outputs = [f"data/raw/fixed{i}.parquet" for i in range(4)]
    processes = start_together([(workdir, ("generate", "fixed", out)) for out in outputs])
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    assert [status for status, _ in results] == [0] * 4, results
    assert [run.status for run in workdir.runs()] == ["FINISHED"] * 4
    assert store_problems(workdir.database, empty_store) == []
    assert len({md5(workdir.root / out) for out in outputs}) == 1
    workdir.succeed(*GENERATE)  # and the store keeps working


# ---------------------------------------------------------------------------
# 4: two processes writing the same output at once.


@pytest.mark.slow
def test_two_stages_writing_one_output_leave_one_whole_file(make_workdir, tmp_path):
    """2M squares, seeds 1 and 2, one path: the file is one writer's whole output."""
    shared = tmp_path / "shared/squares.parquet"
    writers = [
        make_workdir(
            f"writer{seed}",
            small_params(**{"datasets.fixed.n": 2_000_000, "datasets.fixed.seed": seed}),
        )
        for seed in (1, 2)
    ]
    processes = start_together([(w, ("generate", "fixed", str(shared))) for w in writers])
    while any(process.poll() is None for process in processes):  # a reader meanwhile
        if shared.exists():
            assert pq.read_metadata(shared).num_rows == 2_000_000
        time.sleep(0.01)
    statuses = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    assert [status for status, _ in statuses] == [0, 0], statuses
    finished = [w.runs()[-1] for w in writers]
    assert [run.status for run in finished] == ["FINISHED", "FINISHED"]
    tags = [next(iter(run.output_tags().values())) for run in finished]
    assert tags[0] != tags[1], "the two seeds gave the same bytes"
    # Last rename wins: the file is one run's output; the other run's tag names bytes that
    # were replaced (by design: both ran to the end).
    assert md5(shared) in tags, f"the file ({md5(shared)}) is neither run's output {tags}"
    assert pq.read_table(shared).num_rows == 2_000_000
    assert names_in(shared.parent) == ["squares.parquet"]


# ---------------------------------------------------------------------------
# 3: a copied or moved repository keeps its artifacts beside its own store.


def artifact_files(database: Path) -> dict[str, list[Path]]:
    """Each run's artifact files as MLflow (and so `mlflow ui`) finds them."""
    from mlflow import MlflowClient
    from mlflow.utils.file_utils import local_file_uri_to_path

    client = MlflowClient(tracking_uri=f"sqlite:///{database}")

    def listed(run_id: str, path: str | None = None) -> list[str]:
        found = []
        for info in client.list_artifacts(run_id, path):
            found += listed(run_id, info.path) if info.is_dir else [info.path]
        return found

    return {
        run.id: [Path(local_file_uri_to_path(run.artifact_uri)) / p for p in listed(run.id)]
        for run in store_runs(database)
    }


def locations(database: Path, experiment: str = "%") -> list[str]:
    """The artifact locations of the experiments named like `experiment`, their runs and
    logged models."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        ids = [
            row[0]
            for row in connection.execute(
                "select experiment_id from experiments where name like ?", (experiment,)
            )
        ]
        marks = ",".join("?" * len(ids))
        found = []
        for table, column in (
            ("experiments", "artifact_location"),
            ("runs", "artifact_uri"),
            ("logged_models", "artifact_location"),
        ):
            query = f"select {column} from {table} where experiment_id in ({marks})"
            found += [row[0] for row in connection.execute(query, ids)]
    return found


def tree(directory: Path) -> dict[str, int]:
    return (
        {str(p): p.stat().st_mtime_ns for p in directory.rglob("*")} if directory.exists() else {}
    )


def assert_store_lives_in(root: Path) -> None:
    from mlflow.utils.file_utils import local_file_uri_to_path

    database = root / "mlflow.db"
    for location in locations(database, "square-sequences"):
        path = Path(local_file_uri_to_path(location))
        assert path.is_relative_to(root / "mlruns"), f"{location} is outside {root}"
    files = artifact_files(database)
    for run_id, paths in files.items():
        assert paths, f"run {run_id}: MLflow lists no artifacts"
        for path in paths:
            assert path.is_relative_to(root / "mlruns") and path.is_file(), path


@pytest.mark.slow
def test_a_copied_then_moved_repository_logs_beside_its_own_store(make_workdir, tmp_path):
    original = make_workdir("original", store=FRESH)  # made by the stages, as a user's is
    original.write_split()
    original.succeed(*TRAIN)  # a logged model too
    original_tree = tree(original.root / "mlruns")

    copy_root = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(original.root), str(copy_root)], check=True)
    copied = original.at(copy_root)
    copied.succeed(*GENERATE)
    assert [run.status for run in copied.runs()] == ["FINISHED", "FINISHED"]
    assert_store_lives_in(copy_root)
    assert tree(original.root / "mlruns") == original_tree

    moved = tmp_path / "moved here, with a space"
    subprocess.run(["mv", str(copy_root), str(moved)], check=True)
    relocated = original.at(moved)
    relocated.succeed(*GENERATE)
    assert [run.status for run in relocated.runs()] == ["FINISHED"] * 3
    assert_store_lives_in(moved)
    assert not copy_root.exists(), "the next run re-created the old location"
    assert tree(original.root / "mlruns") == original_tree


def test_a_copied_store_points_no_experiment_at_the_original(make_workdir, tmp_path):
    """MLflow's own `Default` experiment too: a run logged there would land in the original."""
    original = make_workdir("original", store=FRESH)
    original.succeed(*GENERATE)
    copy_root = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(original.root), str(copy_root)], check=True)
    original.at(copy_root).succeed(*GENERATE)
    outside = [
        location
        for location in locations(copy_root / "mlflow.db")
        if str(original.root) in location
    ]
    assert outside == [], f"still pointing at the original: {outside}"


# ---------------------------------------------------------------------------
# 1: signals, swept across a stage's whole life.


@dataclass(frozen=True)
class Moment:
    """When a trial's signal goes: at `fraction` of a clean run's duration, or on `event`."""

    fraction: float | None = None
    event: str | None = None  # a key of EVENTS

    def __str__(self) -> str:
        return f"{self.fraction:.2f} D" if self.event is None else self.event


@dataclass
class Outcome:
    """What one trial did, and what is wrong with it."""

    signals: tuple[int, ...]
    moment: Moment
    delivered: list[bool | None]  # True: to a live process; None: it may have exited
    status: int
    statuses: list[str]
    outputs: str
    stderr: str
    problems: list[str] = field(default_factory=list)

    def row(self) -> str:
        names = "+".join(signal.Signals(s).name for s in self.signals)
        return (
            f"{names:<15} {self.moment!s:<13} delivered={self.delivered!s:<14} "
            f"exit={self.status:<4} runs={self.statuses!s:<14} outputs={self.outputs:<8} "
            f"{'; '.join(self.problems) or 'ok'}"
        )


@dataclass
class SignalSubject:
    """A stage to signal, with its previous outputs and a clean run's outputs and duration."""

    workdir: Workdir
    args: tuple[str, ...]
    outputs: tuple[str, ...]
    previous: dict[str, str | None]
    new: dict[str, str | None]
    duration: float
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def prepare(
        cls,
        workdir: Workdir,
        args: tuple[str, ...],
        outputs: tuple[str, ...],
        previous_params: dict,
        params: dict,
        env: dict[str, str] | None = None,
    ) -> "SignalSubject":
        env = env or {}
        workdir.write_params(previous_params)
        workdir.succeed(*args, env=env)
        previous = workdir.digests(outputs)
        for path in outputs:
            saved = workdir.root / "previous" / path
            saved.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(workdir.root / path, saved)
        workdir.write_params(params)
        duration = workdir.succeed(*args, env=env)
        new = workdir.digests(outputs)
        assert new != previous
        subject = cls(workdir, args, outputs, previous, new, duration, env)
        subject.restore_previous()
        return subject

    def restore_previous(self) -> None:
        for path in self.outputs:
            shutil.copy2(self.workdir.root / "previous" / path, self.workdir.root / path)

    def outputs_state(self) -> str:
        found = self.workdir.digests(self.outputs)
        if found == self.previous:
            return "previous"
        if found == self.new:
            return "new"
        return "MIXED:" + ",".join(
            Path(p).name
            for p, digest in found.items()
            if digest not in (self.previous[p], self.new[p])
        )


#: Moments of a stage's life seen from outside: its run and its outputs.
EVENTS: dict[str, Callable[[list[Run], "SignalSubject"], bool]] = {
    # The client has connected to its stage server (a socket among its descriptors).
    "client connected": lambda _, subject: any(
        map(holds_a_socket, processes_in(subject.workdir.root))
    ),
    # The client and the stage's own process (a server's child, once it took the client's
    # working directory) are both there.
    "stage process started": lambda _, subject: len(processes_in(subject.workdir.root)) >= 2,
    "run started": lambda runs, _: bool(runs),
    "run recording": lambda runs, _: any(run.metric_count for run in runs),
    "outputs committed": lambda _, subject: subject.outputs_state() != "previous",
    "run finished": lambda runs, _: any(run.status == "FINISHED" for run in runs),
}


def signal_process(process: subprocess.Popen, signum: int) -> bool | None:
    """Send `signum`; True if it reached a live process, False if it had exited, None if
    it exited so close to the signal that which came first cannot be told."""
    if process.poll() is not None:
        return False
    os.kill(process.pid, signum)
    return True if process_alive(process.pid) else None


def trial(subject: SignalSubject, signals: tuple[int, ...], moment: Moment) -> Outcome:
    """Run the stage once, signal it at `moment` (then 5 ms apart), and judge the result."""
    workdir = subject.workdir
    subject.restore_previous()
    known = {run.id for run in workdir.runs()}

    def new_runs() -> list[Run]:
        return [run for run in workdir.runs() if run.id not in known]

    process = workdir.start(*subject.args, env=subject.env)
    started = time.monotonic()
    if moment.event is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(
                timeout=max(0.0, moment.fraction * subject.duration - (time.monotonic() - started))
            )
    else:
        happened = EVENTS[moment.event]
        wait_for(
            lambda: process.poll() is not None or happened(new_runs(), subject),
            120,
            moment.event,
        )
    delivered = []
    for index, signum in enumerate(signals):
        if index:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.005)
        delivered.append(signal_process(process, signum))
    _, stderr = process.communicate(timeout=300)
    wait_for(lambda: not processes_in(workdir.root), 60, "the stage's processes to end")
    runs = new_runs()
    outcome = Outcome(
        signals,
        moment,
        delivered,
        process.returncode,
        [r.status for r in runs],
        subject.outputs_state(),
        stderr,
    )
    judge(outcome, subject, runs)
    return outcome


def judge(outcome: Outcome, subject: SignalSubject, runs: list[Run]) -> None:
    """Note every way the trial broke the contract in stage.py's docstring."""
    problems = outcome.problems
    allowed = {0} | {128 + s for s in outcome.signals} | {-s for s in outcome.signals}
    if outcome.status not in allowed:
        problems.append(f"exit {outcome.status}")
    # Python's own Ctrl-C before the client installs its handler (its first imports) is a
    # KeyboardInterrupt traceback and exit -2; nothing of the stage ran. Any other traceback
    # is a failure to stop cleanly.
    interpreter_start = outcome.status == -signal.SIGINT and not runs
    if "Traceback" in outcome.stderr and not (
        interpreter_start and outcome.stderr.rstrip().endswith("KeyboardInterrupt")
    ):
        problems.append("a traceback on stderr")
    if outcome.status == 0 and True in outcome.delivered:
        problems.append("exit 0 after a signal reached the live process")
    if "RUNNING" in outcome.statuses:
        problems.append("run left RUNNING")
    if len(runs) > 1:
        problems.append(f"{len(runs)} runs")
    if "FAILED" in outcome.statuses:
        problems.append("run FAILED, not KILLED")
    if outcome.outputs not in ("previous", "new"):
        problems.append("partial outputs")
    if outcome.statuses == ["FINISHED"]:
        if outcome.outputs != "new":
            problems.append("FINISHED but outputs not the new ones")
        tags = {k.removeprefix("output/"): v for k, v in runs[0].output_tags().items()}
        if tags != subject.new:
            problems.append("FINISHED run's output tags are not the outputs' md5s")
    elif outcome.outputs != "previous":
        problems.append(f"outputs changed though the run is {outcome.statuses}")
    if outcome.status == 0 and outcome.statuses != ["FINISHED"]:
        problems.append("exit 0 without a FINISHED run")
    if subject.workdir.leftovers():
        problems.append(f"leftovers {subject.workdir.leftovers()}")


def assert_all_clean(outcomes: list[Outcome]) -> None:
    table = "\n".join(outcome.row() for outcome in outcomes)
    print(table)  # shown with -rP; the failure message holds it too
    broken = [outcome for outcome in outcomes if outcome.problems]
    details = "\n\n".join(f"{o.row()}\nstderr:\n{o.stderr[-1500:]}" for o in broken)
    assert not broken, f"{len(broken)} of {len(outcomes)} trials broke:\n{table}\n\n{details}"


def sweep(offset: float, count: int) -> list[Moment]:
    """`count` moments spread over 0 to 1.05 clean-run durations, shifted by `offset` (0-1)."""
    return [Moment(fraction=1.05 * (index + offset) / count) for index in range(count)]


@pytest.fixture(scope="session")
def train_subject(session_workdir) -> SignalSubject:
    """train@gru, 100 epochs: a body long enough for most trials to land in it."""
    workdir = session_workdir("train-signals")
    workdir.write_split()
    return SignalSubject.prepare(
        workdir,
        TRAIN,
        TRAIN_OUTPUTS,
        small_params(**{"models.gru.epochs": 100, "models.gru.seed": 7}),
        small_params(**{"models.gru.epochs": 100}),
    )


@pytest.fixture(scope="session")
def generate_subject(session_workdir) -> SignalSubject:
    """generate@fixed: the short path (no torch, a body of a fraction of a second)."""
    workdir = session_workdir("generate-signals")
    return SignalSubject.prepare(
        workdir,
        GENERATE,
        (GENERATE[2],),
        small_params(**{"datasets.fixed.n": 20_000, "datasets.fixed.seed": 1}),
        small_params(**{"datasets.fixed.n": 20_000}),
    )


def signal_ids(signum: int) -> str:
    return signal.Signals(signum).name


@pytest.mark.slow
@pytest.mark.parametrize("signum", HANDLED_SIGNALS, ids=signal_ids)
def test_a_signal_at_any_moment_of_training_stops_it_cleanly_or_lets_it_finish(
    train_subject, signum
):
    offset = (HANDLED_SIGNALS.index(signum) + 1) / (len(HANDLED_SIGNALS) + 1)
    moments = [*sweep(offset, 4), *(Moment(event=event) for event in EVENTS)]
    outcomes = [trial(train_subject, (signum,), moment) for moment in moments]
    assert_all_clean(outcomes)
    assert any(o.statuses == ["KILLED"] for o in outcomes), "no trial landed in the body"


@pytest.mark.slow
@pytest.mark.parametrize("signum", HANDLED_SIGNALS, ids=signal_ids)
def test_a_signal_at_any_moment_of_a_short_stage_stops_it_cleanly_or_lets_it_finish(
    generate_subject, signum
):
    offset = (HANDLED_SIGNALS.index(signum) + 1) / (len(HANDLED_SIGNALS) + 1)
    events = ("stage process started", "run started", "outputs committed")
    moments = [*sweep(offset, 2), *(Moment(event=event) for event in events)]
    assert_all_clean([trial(generate_subject, (signum,), moment) for moment in moments])


@pytest.mark.slow
def test_a_signal_as_the_stage_process_starts_is_honoured(generate_subject):
    """The child of the stage server sets itself up before `execute` runs: a signal the
    client forwards then must end the stage as interrupted too (128 + n, no traceback)."""
    moments = [Moment(event=e) for e in ("client connected", "stage process started")] * 4
    assert_all_clean([trial(generate_subject, (signal.SIGTERM,), moment) for moment in moments])


@pytest.mark.slow
def test_a_client_killed_outright_stops_its_stage(train_subject):
    """SIGKILL reaches only the client; its stage must stop as if sent SIGTERM."""
    moments = [Moment(fraction=0.5), Moment(event="run recording")]
    assert_all_clean([trial(train_subject, (signal.SIGKILL,), moment) for moment in moments])


@pytest.mark.slow
@pytest.mark.parametrize(
    "signals",
    [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGINT)],
    ids=["SIGINT twice", "SIGTERM then SIGINT"],
)
def test_a_second_signal_5_ms_after_the_first_still_ends_the_run(train_subject, signals):
    moments = [Moment(event="run started"), Moment(event="run recording")]
    assert_all_clean([trial(train_subject, signals, moment) for moment in moments])


@pytest.mark.slow
def test_a_signal_early_in_a_stage_run_in_its_own_process_is_honoured(workdir):
    """PIPELINE_STAGE_SERVER=0: the start-up (imports) is long; signals land in it too."""
    subject = SignalSubject.prepare(
        workdir,
        GENERATE,
        (GENERATE[2],),
        small_params(**{"datasets.fixed.seed": 1}),
        small_params(),
        env={"PIPELINE_STAGE_SERVER": "0"},
    )
    moments = [Moment(fraction=0.05), Moment(fraction=0.2), Moment(event="run started")]
    outcomes = [
        trial(subject, (signum,), moment)
        for signum, moment in zip(HANDLED_SIGNALS, moments, strict=True)
    ]
    assert_all_clean(outcomes)


FINALIZER_HOOK = '''\
"""Test hook: when the stage stages its first output, a signal lands in a weakref callback."""
import os
import signal
import sys
import weakref

_SIGNUM = int(os.environ["HARDENING_SIGNAL"])
_fired = []


class _Doomed:
    pass


def _finalizer(_reference):
    signal.raise_signal(_SIGNUM)
    total = 0
    for step in range(200_000):  # the handler runs here: Python swallows what it raises
        total += step


def _hook(event, args):
    if event == "os.mkdir" and ".staged-" in str(args[0]) and not _fired:
        _fired.append(True)
        doomed = _Doomed()
        _fired.append(weakref.ref(doomed, _finalizer))
        del doomed


sys.addaudithook(_hook)
'''


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=signal_ids)
def test_a_signal_swallowed_in_a_finalizer_still_stops_the_stage(workdir, tmp_path, signum):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(FINALIZER_HOOK)
    workdir.write_split()
    workdir.write_params(small_params(**{"models.gru.epochs": 100}))
    env = {"PIPELINE_STAGE_SERVER": "0", "PYTHONPATH": str(hooks), "HARDENING_SIGNAL": str(signum)}
    result = workdir.run(*TRAIN, env=env)
    assert "Exception ignored" in result.stderr, f"the hook did not fire:\n{result.stderr}"
    assert result.returncode == 128 + signum, result.stderr
    assert [run.status for run in workdir.runs()] == ["KILLED"]
    assert workdir.digests(TRAIN_OUTPUTS) == dict.fromkeys(TRAIN_OUTPUTS)
    assert workdir.leftovers() == []
