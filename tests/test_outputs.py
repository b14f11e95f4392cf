"""An output replaces the previous one only once its run has recorded it; a failure or a
signal leaves the previous one, and two processes writing one output leave a whole file."""

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import (
    PLOT,
    TRAIN,
    TRAIN_OUTPUTS,
    Run,
    Workdir,
    fill,
    md5,
    names_in,
    small_params,
    store_runs,
    wait_for,
)


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
