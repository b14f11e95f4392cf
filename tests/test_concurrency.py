"""Stages at once: several on a fresh store, two writing the same output."""

import os
import subprocess
import time

import pyarrow.parquet as pq
import pytest
from conftest import FRESH
from support import (
    GENERATE,
    Workdir,
    md5,
    names_in,
    small_params,
    store_problems,
)


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
