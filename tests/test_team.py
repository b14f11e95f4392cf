"""Two machines of a team: a shared MLflow server on PostgreSQL, a git remote, a DVC remote.

Machine A starts the server (`make server`), runs the pipeline and two queued experiments
against it, and pushes; machine B pulls and gets every output without running a stage, then
finds the MLflow runs behind them through their md5 tags. These are the commands of the
README's "Scaling out" guide, run as written. Everything is real: PostgreSQL, `mlflow server`,
DVC's queue workers, a bare git remote and a DVC remote in directories, two clones.
"""

import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, PipelineRepo, copy_of_this_repository, stages_run
from mlflow import MlflowClient

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
def test_two_machines_share_results_through_the_remotes_and_the_mlflow_server(team):
    machine_a, machine_b = team
    tracking_uri = start_server(machine_a)
    client = MlflowClient(tracking_uri=tracking_uri)
    for machine in (machine_a, machine_b):
        machine.env["MLFLOW_TRACKING_URI"] = tracking_uri

    executed, experiments = produce_results(machine_a, client, storage=machine_a.root.parent)
    locks = get_results(machine_b, experiments)

    # The server holds exactly one FINISHED run per stage A executed, and nothing else;
    # each output has a run of its stage that tagged it with its md5 and logged it.
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([experiment_id], run_view_type=3, max_results=1000)
    assert Counter(run.info.run_name for run in runs) == executed
    assert {run.info.status for run in runs} == {"FINISHED"}
    for result, lock in locks.items():
        check_runs_behind(result, lock, runs, client)

    find_the_run_and_score_its_model(machine_b, locks["main"], runs)
    serve_a_postgresql_named_by_uri(machine_a, machine_b, len(runs))
    restore_from_the_run_cache(machine_b, locks, client, experiment_id, len(runs))
    stop_the_server_during_a_run(machine_a, client, experiment_id, tracking_uri)


def test_a_taken_port_is_refused_in_one_line_and_nothing_is_started(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = start_in(tmp_path, "--port", str(port))
    assert result.returncode == 1
    assert result.stderr == (
        f"error: port {port} on 127.0.0.1 is taken (Address already in use): "
        "stop what uses it, or choose another with MLFLOW_PORT\n"
    )
    assert not (tmp_path / ".mlflow-server").exists()


def test_an_unreachable_postgresql_is_named_in_one_line_without_its_password(tmp_path):
    closed = free_port()
    uri = f"postgresql://team:secret@127.0.0.1:{closed}/mlflow"
    result = start_in(tmp_path, "--port", str(free_port()), "--backend-store-uri", uri)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"error: PostgreSQL at postgresql://team:***@127.0.0.1:{closed}/mlflow: "
    )
    assert "Connection refused" in result.stderr and "secret" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / ".mlflow-server").exists()


def start_in(directory: Path, *options: str) -> subprocess.CompletedProcess:
    """`python -m pipeline.tools.team_server start` of a copy of the package in `directory`,
    whose state is then `directory`/.mlflow-server."""
    shutil.copytree(REPO / "pipeline", directory / "pipeline")
    return subprocess.run(
        [sys.executable, "-m", "pipeline.tools.team_server", "start", *options],
        cwd=directory, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


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
                if run.info.run_name == stage and run.data.tags.get(f"output/{path}") == md5
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
    training = f"{since_interrupted} and attributes.run_name = 'train@gru'"
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
    machine_a: PipelineRepo, machine_b: PipelineRepo, runs: int
) -> None:
    """README step 1 with a PostgreSQL of one's own: B serves A's cluster, named by URI, and
    sees every run; stopping B's server leaves that PostgreSQL (and A's server) alone."""
    server = ("python", "-m", "pipeline.tools.team_server")
    status = machine_a.run(*server, "status").stdout
    store = re.search(r"; store (\S+);", status).group(1)
    second_uri = f"http://127.0.0.1:{machine_b.env['MLFLOW_PORT']}"
    output = machine_b.run("env", f"MLFLOW_BACKEND_STORE_URI={store}", *server, "start").stdout
    assert f"MLflow server at {second_uri} " in output
    second = MlflowClient(tracking_uri=second_uri)
    experiment_id = second.get_experiment_by_name(EXPERIMENT).experiment_id
    assert len(second.search_runs([experiment_id], run_view_type=3, max_results=1000)) == runs
    assert machine_b.run(*server, "stop").stdout == "stopped: MLflow server\n"
    assert machine_a.run(*server, "status").stdout == status


def run_queue(repo: PipelineRepo, client: MlflowClient, workers: int) -> str:
    """`dvc queue start -j <workers>`, then wait until DVC has collected every experiment.

    First the MLflow server tells when each experiment's last stage, `report`, has ended (a
    cheap query); then `dvc queue status`, a DVC process each time (seconds of CPU on a busy
    machine), is polled until no task is queued or running. Returns its last table.
    """
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    queued = repo.run("dvc", "queue", "status").stdout.count("Queued")
    reports = "attributes.run_name = 'report' and attributes.status = 'FINISHED'"
    expected = len(client.search_runs([experiment_id], reports)) + queued
    with (repo.root.parent / "queue-start.log").open("w") as log:  # the workers keep stdout
        subprocess.run(
            ["dvc", "queue", "start", "-j", str(workers)],
            cwd=repo.root, env=repo.env, stdout=log, stderr=subprocess.STDOUT, check=True,
        )  # fmt: skip
    deadline = time.monotonic() + 600
    while len(client.search_runs([experiment_id], reports)) < expected:
        unfinished = client.search_runs([experiment_id], "attributes.status != 'FINISHED'")
        ended = [run for run in unfinished if run.info.status != "RUNNING"]
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
