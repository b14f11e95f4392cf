"""Two machines of a team: a shared MLflow server on PostgreSQL, a git remote, a DVC remote.

Machine A starts the server (`make server`), runs the pipeline and two queued experiments
against it, and pushes; machine B pulls and gets every output without running a stage, then
finds the MLflow runs behind them through their md5 tags. These are the commands of the
README's "Scaling out" guide, run as written. Everything is real: PostgreSQL, `mlflow server`,
DVC's queue workers, a bare git remote and a DVC remote in directories, two clones. Each
machine logs in with an account that `make server-user` created.

The other tests hold the server to what it promises on its own: logins, refusals in one
line, and processes it proves are its own before it reports or signals them.
"""

import base64
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, PipelineRepo, copy_of_this_repository, stages_run
from mlflow import MlflowClient
from support import free_port

from pipeline.library.errors import TrackingError
from pipeline.runtime import tracking

EXPERIMENT = "square-sequences"
SEEDS = (1, 2)
WEIGHTS = "data/models/gru/weights.pt"
LONG_EPOCHS = 400  # seconds of training: the server is stopped in the middle of them

# The README's lookup (step 7), run on machine B: the runs that wrote a weights file, then
# the model of the first scoring the test split.
FIND_AND_SCORE = """
import json, sys
import mlflow, pandas as pd

runs = mlflow.search_runs(
    experiment_names=["square-sequences"],
    filter_string=f"tags.`output/data/models/gru/weights.pt` = '{sys.argv[1]}'",
    output_format="list",
)
model = mlflow.pyfunc.load_model(f"models:/{runs[0].data.tags['model_id']}")
scores = model.predict(pd.read_parquet("data/split/fixed/test.parquet"))
print(json.dumps({"run_ids": [run.info.run_id for run in runs], "scores": list(map(float, scores))}))
"""


@pytest.fixture
def team():
    """Machine A and machine B, clones of one bare git remote, in a directory of their own.

    Not under pytest's temporary directory: that is 0700, and under root the PostgreSQL
    cluster of A's `make server` runs as the `postgres` user, who must enter A.
    """
    root = Path(tempfile.mkdtemp(prefix="team-"))
    root.chmod(0o755)
    (root / "a").mkdir()
    machine_a = copy_of_this_repository(root / "a")
    machine_a.use_small_params(models=("gru",))
    (machine_a.root / "dvc.lock").unlink()  # it records the default params' pipeline
    machine_a.commit("small params")
    machine_a.run("git", "init", "--quiet", "--bare", str(root / "origin.git"))
    machine_a.run("git", "remote", "add", "origin", str(root / "origin.git"))
    machine_a.run("git", "push", "--quiet", "--set-upstream", "origin", "HEAD")
    machine_b = PipelineRepo(root / "b")
    machine_a.run("git", "clone", "--quiet", str(root / "origin.git"), str(machine_b.root))
    # `make server` uses the clone's .venv: this checkout's, left out of git. (B's files are
    # newer than it, so `make` would reinstall it: B calls the module `make server` calls.)
    (machine_a.root / ".venv").symlink_to(REPO / ".venv")
    with (machine_a.root / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("/.venv\n")
    for machine in (machine_a, machine_b):
        machine.env["MLFLOW_PORT"] = str(free_port())
        machine.env["MLFLOW_WORKERS"] = "1"  # MLflow's default, 4, is for a bigger machine
    yield machine_a, machine_b
    machine_a.run("dvc", "queue", "stop", "--kill", check=False)
    for machine in (machine_b, machine_a):
        machine.run("python", "-m", "pipeline.tools.team_server", "stop", check=False)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_machines_share_results_through_the_remotes_and_the_mlflow_server(team, monkeypatch):
    machine_a, machine_b = team
    tracking_uri = start_server(machine_a)
    log_in(monkeypatch, "admin", admin_password(machine_a.root))  # this test's own client
    client = MlflowClient(tracking_uri=tracking_uri)
    for machine, name in ((machine_a, "alice"), (machine_b, "bob")):
        added = machine_a.run("make", "server-user", f"NAME={name}").stdout
        machine.env.update(credentials(added), MLFLOW_TRACKING_URI=tracking_uri)

    executed, experiments = produce_results(machine_a, client, storage=machine_a.root.parent)
    locks = get_results(machine_b, experiments)

    # The server holds exactly one FINISHED run per stage A executed, and nothing else;
    # each output has a run of its stage that tagged it with its md5 and logged it.
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([experiment_id], run_view_type=3, max_results=1000)
    assert Counter(run.data.tags["dvc.stage"] for run in runs) == executed
    assert {run.info.status for run in runs} == {"FINISHED"}
    for result, lock in locks.items():
        check_runs_behind(result, lock, runs, client)

    find_the_run_and_score_its_model(machine_b, locks["main"], runs)
    serve_a_postgresql_named_by_uri(machine_a, machine_b, len(runs), monkeypatch)
    restore_from_the_run_cache(machine_b, locks, client, experiment_id, len(runs))
    stop_the_server_during_a_run(machine_a, client, experiment_id, tracking_uri)


@pytest.mark.slow
def test_queued_experiments_as_a_fresh_servers_first_use_lose_no_run(team, monkeypatch):
    """Two queued experiments, two workers, a server nothing has logged to: both log the same
    new datasets in the same second, MLflow's get-or-create races, and neither loses a run."""
    machine_a, _ = team
    tracking_uri = start_server(machine_a)
    log_in(monkeypatch, "admin", admin_password(machine_a.root))
    client = MlflowClient(tracking_uri=tracking_uri)
    added = machine_a.run("make", "server-user", "NAME=alice").stdout
    machine_a.env.update(credentials(added), MLFLOW_TRACKING_URI=tracking_uri)
    for seed in SEEDS:
        machine_a.run("dvc", "exp", "run", "--queue", "-S", f"models.gru.seed={seed}")
    queue = run_queue(machine_a, client, workers=2)
    assert queue.count("Success") == len(SEEDS), queue
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([experiment_id], run_view_type=3, max_results=1000)
    stages = [
        "generate@fixed", "split@fixed", "train@gru", "evaluate@gru", "plot@gru", "padding", "report"
    ]  # fmt: skip
    assert Counter(run.data.tags["dvc.stage"] for run in runs) == Counter(stages * len(SEEDS))
    assert {run.info.status for run in runs} == {"FINISHED"}


def test_a_taken_port_is_refused_in_one_line_and_nothing_is_started(tmp_path):
    copy_package(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = team_server(tmp_path, "start", "--port", str(port), check=False)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: port {port} on 127.0.0.1 is taken (Address already in use): "
        "stop what uses it, or choose another with MLFLOW_PORT\n"
    )
    assert not (tmp_path / ".mlflow-server").exists()


def test_an_unreachable_postgresql_is_named_in_one_line_without_its_password(tmp_path):
    copy_package(tmp_path)
    closed = free_port()
    uri = f"postgresql://team:secret@127.0.0.1:{closed}/mlflow"
    options = ("--port", str(free_port()), "--backend-store-uri", uri)
    result = team_server(tmp_path, "start", *options, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"error: PostgreSQL at postgresql://team:***@127.0.0.1:{closed}/mlflow: "
    )
    assert "Connection refused" in result.stderr and "secret" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / ".mlflow-server").exists()


@pytest.fixture
def home():
    """A directory holding a copy of the package: the server it starts keeps its state in
    `.mlflow-server` there. Not under pytest's 0700 temporary directory (see `team`)."""
    root = Path(tempfile.mkdtemp(prefix="team-server-"))
    root.chmod(0o755)
    copy_package(root)
    yield root
    team_server(root, "stop", check=False)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_the_server_admits_its_users_and_refuses_anyone_else(home, monkeypatch):
    """MLflow's basic-auth app is on: without a user's password (or with a wrong one) a
    REST call gets 401 and changes nothing; the admin (whose password `start` generated and
    keeps private) and a user that `add-user` created log runs into the shared experiment."""
    port = free_port()
    started = team_server(home, "start", MLFLOW_PORT=str(port), MLFLOW_WORKERS="1").stdout
    state = home / ".mlflow-server"
    login = (
        f'MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD="$(cat {state}/admin-password)"'
    )
    assert login in started
    for private in ("admin-password", "basic_auth.ini", "basic_auth.db"):
        assert stat.S_IMODE((state / private).stat().st_mode) == 0o600, private
    uri = f"http://127.0.0.1:{port}"
    for variable in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(TrackingError) as refused:  # a stage without an account: one line
        tracking.open_experiment(uri)
    assert str(refused.value) == (
        f"MLflow at {uri}: cannot open the store (HTTP 401: the server wants an account it "
        "knows; set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
    )
    log_in(monkeypatch, "admin", admin_password(home))
    admin = MlflowClient(uri)
    experiment_id = admin.create_experiment("shared")
    run_id = admin.create_run(experiment_id).info.run_id
    admin.log_metric(run_id, "loss", 0.5)

    metric = {"run_id": run_id, "key": "loss", "value": 99.0, "timestamp": 0, "step": 1}
    tag = {"run_id": run_id, "key": "intruder", "value": "was here"}
    for intruder in (None, ("admin", "not-the-password")):
        assert post(uri, "runs/log-metric", metric, intruder) == 401
        assert post(uri, "runs/set-tag", tag, intruder) == 401
    data = admin.get_run(run_id).data
    assert data.metrics == {"loss": 0.5} and "intruder" not in data.tags

    alice = credentials(team_server(home, "add-user", "alice").stdout)
    again = team_server(home, "add-user", "alice", check=False)
    assert (again.returncode, again.stderr) == (1, f"error: user alice exists already on {uri}\n")
    log_in(monkeypatch, alice["MLFLOW_TRACKING_USERNAME"], alice["MLFLOW_TRACKING_PASSWORD"])
    teammate = MlflowClient(uri)
    own = teammate.create_run(experiment_id).info.run_id  # in the experiment the admin made
    teammate.log_metric(own, "loss", 0.25)
    teammate.set_terminated(own)
    assert teammate.get_run(own).data.metrics == {"loss": 0.25}
    assert teammate.get_run(own).info.status == "FINISHED"


@pytest.mark.slow
def test_a_server_whose_mlflow_process_was_killed_is_named_stopped_and_started_again(home):
    """SIGKILL of the recorded `mlflow server` leaves uvicorn's processes serving its port:
    `status` names them (it does not say "not running"), `stop` stops every one of them,
    and `start` works again."""
    port = free_port()
    started = team_server(home, "start", MLFLOW_PORT=str(port), MLFLOW_WORKERS="2").stdout
    leader = int(server_pid(started))
    os.kill(leader, signal.SIGKILL)
    while leader in live_processes(leader):  # until the kernel has ended it
        time.sleep(0.1)
    left = live_processes(leader)
    assert left, "nothing outlived `mlflow server`: this test proves nothing"

    status = team_server(home, "status", check=False)
    assert status.returncode == 1 and "not running" not in status.stdout, status.stdout
    assert "(uvicorn)" in status.stdout
    assert all(f"pid {pid} (" in status.stdout for pid in left), (left, status.stdout)
    assert team_server(home, "stop").stdout == "stopped: MLflow server, PostgreSQL\n"
    assert live_processes(leader) == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port)).close()
    restarted = team_server(home, "start", MLFLOW_PORT=str(port), MLFLOW_WORKERS="1").stdout
    assert f"MLflow server at http://127.0.0.1:{port} (pid " in restarted


@pytest.mark.slow
def test_a_record_naming_a_stranger_neither_calls_it_the_server_nor_signals_it(home):
    """The server's record outlived it (a crash, a reboot) and its pid went to a stranger,
    one that even runs as `python ... -m mlflow server`, in a session of its own: `status`
    does not call it the server, and `stop` does not signal it."""
    team_server(home, "start", MLFLOW_PORT=str(free_port()), MLFLOW_WORKERS="1")
    record_file = home / ".mlflow-server" / "mlflow.json"
    record = json.loads(record_file.read_text())
    team_server(home, "stop")
    stranger = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(3600)", "-m", "mlflow", "server"],
        start_new_session=True,
    )
    try:
        record_file.write_text(json.dumps({**record, "pid": stranger.pid}))
        status = team_server(home, "status", check=False)
        assert (status.returncode, status.stdout) == (3, "MLflow server not running\n")
        record_file.write_text(json.dumps({**record, "pid": stranger.pid}))
        assert team_server(home, "stop").stdout == "nothing was running\n"
        assert stranger.poll() is None, "stop signalled a process that was not the server's"
    finally:
        stranger.kill()
        stranger.wait()


def copy_package(directory: Path) -> None:
    """This checkout's package into `directory`, where its server keeps its state."""
    shutil.copytree(REPO / "pipeline", directory / "pipeline")


def team_server(
    home: Path, *arguments: str, check: bool = True, **environment: str
) -> subprocess.CompletedProcess:
    """`python -m pipeline.tools.team_server <arguments>` of the copy of the package in
    `home` (its state: `home`/.mlflow-server), with no MLflow variables but `environment`."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.tools.team_server", *arguments],
        cwd=home, env=inherited | environment, capture_output=True, text=True,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"{arguments} failed:\n{result.stdout}\n{result.stderr}")
    return result


def start_server(machine_a: PipelineRepo) -> str:
    """`make server`, twice (the second changes nothing) and `status`; the tracking URI."""
    first = machine_a.run("make", "server").stdout
    tracking_uri = f"http://127.0.0.1:{machine_a.env['MLFLOW_PORT']}"
    assert f"export MLFLOW_TRACKING_URI={tracking_uri}" in first
    assert server_pid(machine_a.run("make", "server").stdout) == server_pid(first)
    status = machine_a.run("python", "-m", "pipeline.tools.team_server", "status").stdout
    assert tracking_uri in status and server_pid(status) == server_pid(first)
    return tracking_uri


def produce_results(
    machine_a: PipelineRepo, client: MlflowClient, storage: Path
) -> tuple[Counter, list[str]]:
    """README steps 4 and 5 on A; the stages it executed, and its experiments' names."""
    machine_a.run("dvc", "remote", "add", "-d", "storage", str(storage / "dvc-storage"))
    machine_a.run("git", "add", ".dvc/config")
    machine_a.run("git", "commit", "-m", "DVC remote")
    executed = Counter(machine_a.repro())
    machine_a.run("git", "add", "dvc.lock")
    machine_a.run("git", "commit", "-m", "results")
    for seed in SEEDS:
        machine_a.run("dvc", "exp", "run", "--queue", "-S", f"models.gru.seed={seed}")
    queue = run_queue(machine_a, client, workers=2)
    assert queue.count("Success") == len(SEEDS), queue
    experiments = experiment_names(machine_a.run("dvc", "exp", "list").stdout)
    assert len(experiments) == len(SEEDS)
    for name in experiments:
        executed.update(stages_run(machine_a.run("dvc", "queue", "logs", name).stdout))
    machine_a.run("dvc", "push", "--run-cache")
    machine_a.run("git", "push", "--quiet")
    machine_a.run("dvc", "exp", "push", "origin", *experiments)
    return executed, experiments


def get_results(machine_b: PipelineRepo, experiments: list[str]) -> dict[str, dict]:
    """README step 6 on B: every output, A's commit's and each experiment's, without running
    a stage; the dvc.lock of each ("main" and the experiments' names)."""
    machine_b.run("git", "pull", "--quiet")
    machine_b.run("dvc", "pull")
    assert "Data and pipelines are up to date." in machine_b.run("dvc", "status").stdout
    assert machine_b.repro() == []
    locks = {"main": machine_b.lock()}
    assert experiment_names(machine_b.run("dvc", "exp", "list", "origin").stdout) == experiments
    for name in experiments:
        machine_b.run("dvc", "exp", "pull", "origin", name)
        machine_b.run("dvc", "exp", "apply", name)
        assert "Data and pipelines are up to date." in machine_b.run("dvc", "status").stdout
        locks[name] = machine_b.lock()
    machine_b.run("git", "checkout", "--", ".")
    machine_b.run("dvc", "checkout")
    assert machine_b.lock() == locks["main"]
    return locks


def check_runs_behind(result: str, lock: dict, runs: list, client: MlflowClient) -> None:
    """Each output file of `lock` has a run of its stage that tagged it with its md5, with
    params and artifacts; the training run is the only one for its weights, with metrics.

    How params and artifacts are named is tracking's business; what a colleague relies on
    is the md5 tag, the stage as run name, and that the run holds what it recorded.
    """
    for stage, outputs in output_md5s(lock).items():
        for path, md5 in outputs.items():
            makers = [
                run
                for run in runs
                if run.data.tags["dvc.stage"] == stage
                and run.data.tags.get(f"output/{path}") == md5
            ]
            assert makers, f"{result}: no run of {stage} tagged {path} with {md5}"
            assert makers[0].data.params, f"{result}: the run of {stage} has no params"
            assert client.list_artifacts(makers[0].info.run_id), f"{result}: {stage} logged nothing"
    weights_md5 = output_md5s(lock)["train@gru"][WEIGHTS]
    (training,) = [run for run in runs if run.data.tags.get(f"output/{WEIGHTS}") == weights_md5]
    assert training.data.metrics, f"{result}: the training run has no metrics"


def find_the_run_and_score_its_model(machine_b: PipelineRepo, lock: dict, runs: list) -> None:
    """README step 7 on B: the run behind the pulled weights, found by their md5, and its
    logged model scoring the test split exactly as the pulled predictions file says."""
    weights_md5 = output_md5s(lock)["train@gru"][WEIGHTS]
    found = json.loads(machine_b.run("python", "-c", FIND_AND_SCORE, weights_md5).stdout)
    (training,) = [run for run in runs if run.info.run_id in found["run_ids"]]
    assert training.info.run_name == "train@gru" and len(found["run_ids"]) == 1
    expected = pd.read_csv(machine_b.root / "data/predictions/gru.csv")["probability"]
    assert found["scores"] == pytest.approx(expected.tolist(), rel=1e-6)


def restore_from_the_run_cache(
    machine_b: PipelineRepo, locks: dict, client: MlflowClient, experiment_id: str, runs: int
) -> None:
    """B asks for a result A computed: DVC restores it from the pulled run cache, so no
    stage runs and MLflow records nothing new."""
    machine_b.run("dvc", "pull", "--run-cache")
    restored = machine_b.run("dvc", "exp", "run", "-S", f"models.gru.seed={SEEDS[0]}").stdout
    assert stages_run(restored) == [], restored
    (same_seed,) = [lock for lock in locks.values() if seed_of(lock) == SEEDS[0]]
    assert machine_b.lock()["stages"] == same_seed["stages"]
    assert len(client.search_runs([experiment_id], run_view_type=3)) == runs


def stop_the_server_during_a_run(
    machine_a: PipelineRepo, client: MlflowClient, experiment_id: str, tracking_uri: str
) -> None:
    """The server stops while the pipeline trains: a stage fails soon, naming the server.

    That is the training stage, at its first call after training; or, should training have
    ended before the server was gone, the evaluation stage, at its first. Once the server is
    back the next run completes, and no run is left RUNNING.
    """
    set_training_epochs(machine_a, LONG_EPOCHS)
    since_interrupted = started_since(time.time())
    pipeline = subprocess.Popen(
        ["dvc", "repro", "evaluate@gru"],
        cwd=machine_a.root,
        env=machine_a.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    training = f"{since_interrupted} and tags.`dvc.stage` = 'train@gru'"
    wait_for_runs(client, experiment_id, f"{training} and attributes.status = 'RUNNING'")
    machine_a.run("make", "server-stop")
    output = pipeline.communicate(timeout=120)[0]  # bounded retries: no hang
    assert pipeline.returncode != 0, f"the pipeline completed without its server:\n{output}"
    assert tracking_uri in output, output
    status = machine_a.run("python", "-m", "pipeline.tools.team_server", "status", check=False)
    assert status.returncode == 3 and "not running" in status.stdout

    machine_a.run("make", "server")
    set_training_epochs(machine_a, 3)
    since_restart = started_since(time.time())
    assert machine_a.repro("evaluate@gru") == ["train@gru", "evaluate@gru"]
    after_restart = client.search_runs([experiment_id], since_restart)
    assert [run.info.status for run in after_restart] == ["FINISHED", "FINISHED"]
    since = client.search_runs([experiment_id], since_interrupted, run_view_type=3)
    assert "RUNNING" not in [run.info.status for run in since]


def serve_a_postgresql_named_by_uri(
    machine_a: PipelineRepo, machine_b: PipelineRepo, runs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README step 1 with a PostgreSQL of one's own: B serves A's cluster, named by URI, and
    sees every run (as B's server's admin: its logins are its own); stopping B's server
    leaves that PostgreSQL (and A's server) alone."""
    server = ("python", "-m", "pipeline.tools.team_server")
    status = machine_a.run(*server, "status").stdout
    store = re.search(r"; store (\S+);", status).group(1)
    second_uri = f"http://127.0.0.1:{machine_b.env['MLFLOW_PORT']}"
    output = machine_b.run("env", f"MLFLOW_BACKEND_STORE_URI={store}", *server, "start").stdout
    assert f"MLflow server at {second_uri} " in output
    with monkeypatch.context() as patch:
        log_in(patch, "admin", admin_password(machine_b.root))
        second = MlflowClient(tracking_uri=second_uri)
        experiment_id = second.get_experiment_by_name(EXPERIMENT).experiment_id
        found = second.search_runs([experiment_id], run_view_type=3, max_results=1000)
    assert len(found) == runs
    assert machine_b.run(*server, "stop").stdout == "stopped: MLflow server\n"
    assert machine_a.run(*server, "status").stdout == status


def run_queue(repo: PipelineRepo, client: MlflowClient, workers: int) -> str:
    """`dvc queue start -j <workers>`, then wait until DVC has collected every experiment.

    First the MLflow server tells when each experiment's last stage, `report`, has ended (a
    cheap query; on a fresh server the experiment appears with the first stage); then `dvc
    queue status`, a DVC process each time (seconds of CPU on a busy machine), is polled
    until no task is queued or running. Returns its last table.
    """
    queued = repo.run("dvc", "queue", "status").stdout.count("Queued")
    reports = "tags.`dvc.stage` = 'report' and attributes.status = 'FINISHED'"

    def runs(filter_string: str) -> list:
        experiment = client.get_experiment_by_name(EXPERIMENT)
        return client.search_runs([experiment.experiment_id], filter_string) if experiment else []

    expected = len(runs(reports)) + queued
    with (repo.root.parent / "queue-start.log").open("w") as log:  # the workers keep stdout
        subprocess.run(
            ["dvc", "queue", "start", "-j", str(workers)],
            cwd=repo.root, env=repo.env, stdout=log, stderr=subprocess.STDOUT, check=True,
        )  # fmt: skip
    deadline = time.monotonic() + 600
    while len(runs(reports)) < expected:
        ended = [
            run for run in runs("attributes.status != 'FINISHED'") if run.info.status != "RUNNING"
        ]
        assert not ended, f"a queued stage ended {ended[0].info.status}: {ended[0].info.run_name}"
        assert time.monotonic() < deadline, repo.run("dvc", "queue", "status").stdout
        time.sleep(1)
    while re.search(r"\b(Queued|Running)\b", status := repo.run("dvc", "queue", "status").stdout):
        assert time.monotonic() < deadline, status
        time.sleep(2)
    return status


def wait_for_runs(client: MlflowClient, experiment_id: str, filter_string: str) -> list:
    """Poll the server until some run matches `filter_string`; those runs."""
    deadline = time.monotonic() + 120
    while not (runs := client.search_runs([experiment_id], filter_string)):
        assert time.monotonic() < deadline, f"no run matching {filter_string} within 120 s"
        time.sleep(0.2)
    return runs


def started_since(seconds: float) -> str:
    """A filter for the runs started since a time.time()."""
    return f"attributes.start_time >= {int(seconds * 1000)}"


def server_pid(server_output: str) -> str:
    return re.search(r"\(pid (\d+);", server_output).group(1)


def experiment_names(dvc_exp_list: str) -> list[str]:
    """The names `dvc exp list` prints under each baseline, as `<sha> [<name>]` for local
    experiments and `<name>` for a remote's; sorted."""
    indented = [line.split() for line in dvc_exp_list.splitlines() if line[:1].isspace()]
    return sorted(words[-1].strip("[]") for words in indented if words)


def output_md5s(lock: dict) -> dict[str, dict[str, str]]:
    """Each stage's output files (directories aside) and their md5, from a parsed dvc.lock."""
    return {
        stage: {out["path"]: out["md5"] for out in entry["outs"] if not out["md5"].endswith(".dir")}
        for stage, entry in lock["stages"].items()
    }


def seed_of(lock: dict) -> int:
    """The seed of gru in a parsed dvc.lock."""
    return lock["stages"]["train@gru"]["params"]["params.yaml"]["models.gru"]["seed"]


def set_training_epochs(repo: PipelineRepo, epochs: int) -> None:
    params = repo.params()
    params["models"]["gru"]["epochs"] = epochs
    repo.write_params(params)


def admin_password(root: Path) -> str:
    """The admin's password that `make server` generated in `root`/.mlflow-server."""
    return (root / ".mlflow-server" / "admin-password").read_text().strip()


def credentials(add_user_output: str) -> dict[str, str]:
    """MLFLOW_TRACKING_USERNAME and _PASSWORD from the `export` line `add-user` prints."""
    line = re.search(
        r"^export (MLFLOW_TRACKING_USERNAME=\S+ MLFLOW_TRACKING_PASSWORD=\S+)$",
        add_user_output,
        re.MULTILINE,
    )
    assert line, add_user_output
    return dict(assignment.split("=", 1) for assignment in line.group(1).split())


def log_in(monkeypatch: pytest.MonkeyPatch, username: str, password: str) -> None:
    """This process's MLflow clients log in as `username` from now on."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def post(uri: str, endpoint: str, body: dict, login: tuple[str, str] | None) -> int:
    """POST `body` to MLflow's REST `endpoint`, with basic authentication if `login`; the
    HTTP status."""
    headers = {"Content-Type": "application/json"}
    if login is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(login).encode()).decode()
    request = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/{endpoint}", data=json.dumps(body).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def live_processes(session: int) -> list[int]:
    """The live (not zombie) processes of a session, as /proc lists them."""
    pids = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if fields[0] != "Z" and int(fields[3]) == session:
            pids.append(int(stat_file.parent.name))
    return sorted(pids)
