"""Shared fixtures: real MLflow SQLite stores, working directories for the client, copies of
this repository to run DVC in, and a headless Chromium with no network."""

import contextlib
import functools
import itertools
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from support import (
    EVALUATE,
    GENERATE,
    PADDING,
    PLOT,
    REPO,
    SPLIT,
    TRAIN,
    Workdir,
    as_user,
    small_params,
)

from pipeline.runtime.client import try_connect

_experiment_numbers = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def stage_servers(tmp_path_factory):
    """Stage servers of the test session's own, stopped when it ends.

    Every copy of the repository holds the same package, so the pipeline tests share one
    warm server; tests that need a fresh one set PIPELINE_STAGE_SERVER_DIR themselves.
    """
    directory = tmp_path_factory.getbasetemp() / "stage-servers"
    os.environ["PIPELINE_STAGE_SERVER_DIR"] = str(directory)
    os.environ["PIPELINE_STAGE_SERVER_IDLE_S"] = "300"
    yield directory
    stop_stage_servers(directory)


def stop_stage_servers(directory: Path) -> None:
    """SIGTERM every warm process listening on a socket under `directory` (the process that
    holds a socket is the one the kernel names, SO_PEERCRED, not one a file claims)."""
    for path in directory.rglob("*.sock"):
        connection = try_connect(path)
        if connection is None:
            continue
        with connection:
            credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        with contextlib.suppress(ProcessLookupError):
            os.kill(struct.unpack("3i", credentials)[0], signal.SIGTERM)


@pytest.fixture(scope="session")
def mlflow_database(tmp_path_factory) -> str:
    """A SQLite tracking URI shared by the session (creating one costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def mlflow_store(mlflow_database, tmp_path, monkeypatch):
    """A fresh experiment in the session's store, with the test running in tmp_path.

    Yields an MlflowClient and the experiment's name.
    """
    from mlflow import MlflowClient

    experiment = f"test-{next(_experiment_numbers)}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_database)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    monkeypatch.chdir(tmp_path)
    client = MlflowClient(tracking_uri=mlflow_database)
    yield client, experiment


class PipelineRepo:
    """A copy of this repository in a git repo of its own, to run the real DVC pipeline in.

    Commands run with this checkout's .venv first on PATH and no MLflow or DVC variables
    inherited, so the copy's stages log to the copy's own mlflow.db.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "test@example.invalid",
            "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.invalid",
        }
        for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "DVC_ROOT"):
            self.env.pop(variable, None)

    def run(
        self, *command: str, check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess:
        """Run a command in the copy; raise with its output if it fails and `check`."""
        result = subprocess.run(
            command, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def repro(self, *targets: str) -> list[str]:
        """`dvc repro`; the stages it ran, in order."""
        return stages_run(self.run("dvc", "repro", *targets).stdout)

    def commit(self, message: str) -> None:
        self.run("git", "add", "--all")
        self.run("git", "commit", "--quiet", "-m", message)

    def params(self) -> dict:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def write_params(self, params: dict) -> None:
        (self.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def use_small_params(self, models: tuple[str, ...] | None = None) -> dict:
        """Small, fast settings; with `models`, only those variants and their datasets."""
        params = self.params()
        if models is not None:
            params["models"] = {name: params["models"][name] for name in models}
            used = {model["dataset"] for model in params["models"].values()}
            params["datasets"] = {name: params["datasets"][name] for name in used}
        for dataset in params["datasets"].values():
            if dataset.get("kind", "squares") == "squares":  # digits come as scikit-learn has them
                dataset["n"] = 96
        for model in params["models"].values():
            model["epochs"] = 2
        self.write_params(params)
        return params

    def lock(self) -> dict:
        return yaml.safe_load((self.root / "dvc.lock").read_text())

    def mlflow_runs(self) -> list:
        """Every run in the copy's default store, oldest first."""
        from pipeline.runtime import tracking

        client = tracking.client(f"sqlite:///{self.root / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("square-sequences")
        if experiment is None:
            return []
        runs = client.search_runs([experiment.experiment_id], run_view_type=3, max_results=10_000)
        return sorted(runs, key=lambda run: run.info.start_time)

    def copy_to(self, destination: Path) -> "PipelineRepo":
        """A copy of this copy (git history, DVC cache and outputs), with an empty MLflow store."""
        shutil.copytree(
            self.root,
            destination,
            symlinks=True,
            ignore=shutil.ignore_patterns("mlflow.db", "mlruns"),
        )
        return PipelineRepo(destination)


def stages_run(dvc_output: str) -> list[str]:
    """The stages that `dvc repro` printed as running, in order."""
    return re.findall(r"^Running stage '([^']+)'", dvc_output, flags=re.MULTILINE)


def copy_of_this_repository(destination: Path) -> PipelineRepo:
    """This checkout's tracked and new files (no outputs) in a fresh git repo, committed."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    repo = PipelineRepo(destination)
    repo.run("git", "init", "--quiet")
    repo.commit("copy")
    return repo


@pytest.fixture
def pipeline_repo(tmp_path) -> PipelineRepo:
    """A fresh copy of this repository: no outputs, no MLflow store."""
    return copy_of_this_repository(tmp_path / "repo")


#: The variants of the reproduced copy: one on each dataset branch, one packed.
SMALL_MODELS = ("gru", "lstm_packed")


@pytest.fixture(scope="session")
def reproduced_template(tmp_path_factory) -> PipelineRepo:
    """A copy with small params, `dvc repro` done once and committed (shared: do not change)."""
    repo = copy_of_this_repository(tmp_path_factory.mktemp("template") / "repo")
    repo.use_small_params(models=SMALL_MODELS)
    (repo.root / "dvc.lock").unlink()  # it records the default params' pipeline
    repo.repro()
    repo.commit("reproduced")
    return repo


@pytest.fixture
def reproduced_repo(reproduced_template, tmp_path) -> PipelineRepo:
    """A private copy of the reproduced template, with an empty MLflow store."""
    return reproduced_template.copy_to(tmp_path / "repo")


# ---------------------------------------------------------------------------
# Working directories of the black-box tests (tests/support.py).


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


@pytest.fixture(scope="session")
def template(session_workdir) -> Workdir:
    """Every output of the small pipeline, made once by the real stages (do not change it)."""
    done = session_workdir("template")
    for stage in (GENERATE, SPLIT, TRAIN, EVALUATE, PLOT, PADDING):
        done.succeed(*stage)
    return done


@pytest.fixture(scope="session")
def whole_store(template) -> Path:
    """A store made by the stages, one at a time: what a whole store looks like."""
    return template.database


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


#: Chromium or Chrome, by the names Debian, Ubuntu and Google install them under.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Headless (Playwright adds --headless), fetching nothing on its own account; the last three
#: flags are one of offline_page's two locks on the network.
BROWSER_FLAGS = (
    "--no-sandbox",  # root, as in containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=socks5://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


@functools.cache
def network_namespace() -> tuple[str, ...]:
    """The `unshare` command that runs a program without network, or () where none is allowed.

    As root it needs CAP_SYS_ADMIN; otherwise a user namespace of its own grants that.
    """
    for unshare in (("unshare", "--net", "--"), ("unshare", "--map-root-user", "--net", "--")):
        try:
            if subprocess.run([*unshare, "true"], capture_output=True).returncode == 0:
                return unshare
        except FileNotFoundError:  # no util-linux
            return ()
    return ()


def system_browser() -> Path:
    """The system's Chromium or Chrome. Fails, not skips, where there is none: CI's machines
    have one (.ci/run installs it)."""
    found = next(filter(None, map(shutil.which, BROWSERS)), None)
    if found is None:
        pytest.fail(
            f"no Chromium or Chrome on PATH (looked for {', '.join(BROWSERS)}):"
            " apt-get install -y chromium, as .ci/run does"
        )
    return Path(found)


@pytest.fixture(scope="session")
def browser_executable(tmp_path_factory) -> Path:
    """The system's Chromium or Chrome, started in a network namespace where one is allowed."""
    found = system_browser()
    if not network_namespace():
        return found
    wrapper = tmp_path_factory.mktemp("browser") / "offline-chromium"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.join([*network_namespace(), str(found)])} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def browser_errors() -> list[str]:
    """The console errors and uncaught exceptions of offline_page's tab, in order.

    The test fails on any left when it ends: one that expects some removes them.
    """
    return []


@contextlib.contextmanager
def browser_page(executable: Path, flags: tuple[str, ...], errors: list[str]) -> Iterator:
    """A 1280 x 900 tab of a fresh headless Chromium (Playwright) started with `flags`; its
    console errors and uncaught exceptions are appended to `errors`."""
    from playwright.sync_api import sync_playwright

    def console(message) -> None:
        if message.type == "error":
            errors.append(f"console error: {message.text} ({message.location['url']})")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=flags)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            page.on("console", console)
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            yield page
        finally:
            browser.close()


@pytest.fixture
def offline_page(browser_executable, browser_errors) -> Iterator:
    """A 1280 x 900 tab of a fresh headless Chromium (Playwright) with no network at all.

    Two locks on the network, either of which holds alone (tests/test_browser.py checks that
    no request leaves): Chromium runs, where the kernel allows it, in a network namespace of
    its own whose only interface, loopback, is down, so no host exists, not even this machine;
    and its flags send every request, loopback included, to a proxy on a closed port and
    resolve no host name (containers without CAP_SYS_ADMIN, for instance, refuse namespaces).
    """
    with browser_page(browser_executable, BROWSER_FLAGS, browser_errors) as page:
        yield page
    assert browser_errors == [], "the page logged errors:\n" + "\n".join(browser_errors)


@pytest.fixture
def loopback_page() -> Iterator:
    """A tab as offline_page's, that reaches this machine's servers (127.0.0.1) and nothing
    else: for the MLflow UI. Its page's own console errors are MLflow's, not asserted."""
    flags = (*BROWSER_FLAGS[:-3], "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    with browser_page(system_browser(), flags, []) as page:
        yield page
