"""Interrupted and concurrent runs under real DVC: clean ends, nothing half-written, recovery.

Training is made long (many epochs) so that a signal lands in the middle of it; the
stage's process id comes from its MLflow run, tagged `pid`.
"""

import os
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.slow

LONG_EPOCHS = 1500  # a few seconds of training on the small training split


def with_training_epochs(repo, epochs: int) -> int:
    """Set models.gru.epochs; the value it had."""
    params = repo.params()
    before, params["models"]["gru"]["epochs"] = params["models"]["gru"]["epochs"], epochs
    repo.write_params(params)
    return before


def start(repo, *command: str) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=repo.root,
        env=repo.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def running_run(repo, stage: str, timeout: float = 120):
    """The RUNNING MLflow run of `stage`, once its stage has begun its work."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in repo.mlflow_runs():
            if run.info.run_name == stage and run.info.status == "RUNNING" and run.data.params:
                return run
        time.sleep(0.1)  # polling an observable state, not waiting for a phase
    raise AssertionError(f"no RUNNING run of {stage} within {timeout} s")


def leftovers(repo) -> list[str]:
    """Every file under the train stage's output directories (none should survive it)."""
    return sorted(
        str(path.relative_to(repo.root))
        for directory in ("data/models/gru", "data/history/gru")
        if (repo.root / directory).exists()
        for path in (repo.root / directory).rglob("*")
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_training_ends_the_run_killed_and_the_next_repro_completes(
    reproduced_repo, signum
):
    epochs = with_training_epochs(reproduced_repo, LONG_EPOCHS)
    dvc = start(reproduced_repo, "dvc", "repro", "train@gru")
    run = running_run(reproduced_repo, "train@gru")  # training has begun: it lasts seconds
    os.kill(int(run.data.tags["pid"]), signum)
    output, _ = dvc.communicate(timeout=120)

    assert dvc.returncode != 0
    assert f"exited with {128 + signum}" in output
    [killed] = [r for r in reproduced_repo.mlflow_runs() if r.info.run_id == run.info.run_id]
    assert killed.info.status == "KILLED"
    assert leftovers(reproduced_repo) == []  # no output, whole or half, and no temporary file

    # Back to the committed params: the next repro completes (from DVC's run cache) and
    # the workspace is the committed one again. The SIGKILL test below retrains for real.
    with_training_epochs(reproduced_repo, epochs)
    reproduced_repo.repro()
    assert reproduced_repo.run("dvc", "status", "--json").stdout.strip() == "{}"
    assert reproduced_repo.run("git", "status", "--porcelain").stdout == ""
    assert [r.info.status for r in reproduced_repo.mlflow_runs()] == ["KILLED"]


def test_after_sigkill_the_next_repro_completes_with_a_clean_runs_outputs(reproduced_repo):
    with_training_epochs(reproduced_repo, LONG_EPOCHS)
    dvc = start(reproduced_repo, "dvc", "repro", "train@gru")
    run = running_run(reproduced_repo, "train@gru")
    os.kill(int(run.data.tags["pid"]), signal.SIGKILL)
    dvc.communicate(timeout=120)
    assert dvc.returncode != 0

    assert reproduced_repo.repro("train@gru") == ["train@gru"]
    recovered = {
        out["path"]: out["md5"] for out in reproduced_repo.lock()["stages"]["train@gru"]["outs"]
    }
    # The abandoned run is closed by the next run of the same stage.
    [abandoned] = [r for r in reproduced_repo.mlflow_runs() if r.info.run_id == run.info.run_id]
    assert abandoned.info.status == "KILLED"

    reproduced_repo.run("dvc", "repro", "--single-item", "--force", "train@gru")  # from scratch
    clean = {
        out["path"]: out["md5"] for out in reproduced_repo.lock()["stages"]["train@gru"]["outs"]
    }
    assert recovered == clean


def test_two_repros_at_once_the_second_stops_clearly_and_nothing_is_corrupted(reproduced_repo):
    with_training_epochs(reproduced_repo, LONG_EPOCHS)
    first = start(reproduced_repo, "dvc", "repro")
    running_run(reproduced_repo, "train@gru")
    second = reproduced_repo.run("dvc", "repro", check=False)
    output, _ = first.communicate(timeout=600)

    assert first.returncode == 0, output
    # DVC locks what a running stage reads and writes: the second run stops at the first
    # stage it would touch, naming the busy file and the process that holds it.
    assert second.returncode != 0
    assert "is busy, it is being blocked by" in second.stderr
    assert f"(PID {first.pid})" in second.stderr
    assert reproduced_repo.run("dvc", "status", "--json").stdout.strip() == "{}"
    assert {run.info.status for run in reproduced_repo.mlflow_runs()} == {"FINISHED"}
