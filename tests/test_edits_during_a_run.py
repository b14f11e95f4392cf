"""What a stage records is what it ran: params or code edited while it runs fail it.

DVC reads params.yaml and the code again when it saves dvc.lock; a stage that let an edit
made during its run pass would have its outputs recorded beside values it never used, and
cached in DVC's run cache under them. The stage is held still (SIGSTOP) while the edit
lands, so the edit is made during the run on any machine, however fast.
"""

import os
import signal
import subprocess
from collections.abc import Callable

import pytest
import yaml
from params_editing import set_key
from support import TRAIN, TRAIN_OUTPUTS, Workdir, small_params, stage_pid, wait_for

EPOCHS = 300


def edit_while_running(workdir: Workdir, process: subprocess.Popen, edit: Callable[[], None]):
    """Hold the stage's process still, edit, let it go on; its exit status and stderr."""
    pid = stage_pid(workdir)
    os.kill(pid, signal.SIGSTOP)
    try:
        edit()
    finally:
        os.kill(pid, signal.SIGCONT)
    _, stderr = process.communicate(timeout=600)
    return process.returncode, stderr


@pytest.fixture
def training(make_workdir, template) -> Workdir:
    workdir = make_workdir()
    workdir.copy_data_from(template)
    for output in TRAIN_OUTPUTS:
        (workdir.root / output).unlink()
    workdir.write_params(small_params(**{"models.gru.epochs": EPOCHS}))
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("warm", ["1", "0"], ids=["warm process", "own process"])
def test_params_edited_while_a_stage_runs_fail_it_naming_the_key(training, warm):
    process = training.start(*TRAIN, env={"PIPELINE_STAGE_SERVER": warm})
    edited = small_params(**{"models.gru.epochs": 3})
    status, stderr = edit_while_running(training, process, lambda: training.write_params(edited))
    assert status == 1, stderr
    assert stderr.splitlines()[-1] == (
        f"error: params.yaml: models.gru.epochs changed while train@gru ran ({EPOCHS} -> 3): "
        "nothing was written; run it again"
    )
    assert not any((training.root / output).exists() for output in TRAIN_OUTPUTS)
    assert [run.status for run in training.runs()] == ["FAILED"]


@pytest.mark.slow
def test_an_edit_of_an_untracked_param_lets_the_stage_finish(training):
    process = training.start(*TRAIN)
    other = small_params(**{"models.gru.epochs": EPOCHS, "split.seed": 7})  # not train's
    status, stderr = edit_while_running(training, process, lambda: training.write_params(other))
    assert status == 0, stderr
    assert all((training.root / output).is_file() for output in TRAIN_OUTPUTS)


@pytest.mark.slow
def test_code_edited_while_a_stage_runs_fails_it_naming_the_file(training):
    module = training.root / "pipeline/library/training.py"
    process = training.start(*TRAIN)

    def edit() -> None:
        module.write_text(module.read_text() + "\n# edited\n")

    status, stderr = edit_while_running(training, process, edit)
    assert status == 1, stderr
    assert stderr.splitlines()[-1] == (
        "error: pipeline/library/training.py changed while train@gru ran: nothing was "
        "written; run it again"
    )
    assert [run.status for run in training.runs()] == ["FAILED"]


@pytest.mark.slow
def test_dvc_keeps_no_lock_and_no_run_cache_entry_for_a_stage_whose_params_moved(
    reproduced_repo,
):
    repo = reproduced_repo
    lock_before = repo.lock()["stages"]["train@gru"]
    repo.write_params(set_key(repo.params(), "models.gru.epochs", EPOCHS))
    process = subprocess.Popen(
        ["dvc", "repro", "-s", "train@gru"],
        cwd=repo.root,
        env=repo.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run = wait_for(
        lambda: [r for r in repo.mlflow_runs() if r.info.status == "RUNNING"], 300, "the run"
    )
    pid = int(run[-1].data.tags["pid"])
    os.kill(pid, signal.SIGSTOP)
    try:
        repo.write_params(set_key(repo.params(), "models.gru.epochs", 3))
    finally:
        os.kill(pid, signal.SIGCONT)
    output, _ = process.communicate(timeout=600)
    assert process.returncode != 0, output
    assert "models.gru.epochs changed while train@gru ran" in output
    assert repo.lock()["stages"]["train@gru"] == lock_before  # DVC recorded nothing
    # A genuine run with the value now in params.yaml trains; nothing is restored from cache.
    rerun = repo.run("dvc", "repro", "-s", "train@gru").stdout
    assert "Running stage 'train@gru'" in rerun, rerun
    assert (
        yaml.safe_load((repo.root / "dvc.lock").read_text())["stages"]["train@gru"]["params"][
            "params.yaml"
        ]["models.gru"]["epochs"]
        == 3
    )
