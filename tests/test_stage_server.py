"""Warm stage processes: the same stage, the same bytes, whoever runs it and however it ends."""

import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import stop_stage_servers

from pipeline.runtime import tracking
from pipeline.runtime.client import try_connect

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path) -> Iterator[Path]:
    """A copy of the package and small params: edits here start servers of their own,
    stopped when the test ends."""
    shutil.copytree(
        REPO / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["models"] = {"gru": {**params["models"]["gru"], "epochs": 3}}
    for dataset in params["datasets"].values():
        dataset["n"] = 96
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    yield tmp_path
    stop_stage_servers(tmp_path / "servers")


def environment(workdir: Path, **extra: str) -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(workdir),
        "PIPELINE_STAGE_SERVER_DIR": str(workdir / "servers"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
        **extra,
    }


def stage(workdir: Path, *argv: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *argv],
        cwd=workdir,
        env=environment(workdir, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen) -> int:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    return process.returncode


def servers(workdir: Path) -> list[Path]:
    return sorted((workdir / "servers").glob("*/*.sock"))


def server_pid(socket_file: Path) -> int:
    """The process listening on a socket, as the kernel names it (SO_PEERCRED)."""
    with try_connect(socket_file) as connection:
        credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return struct.unpack("3i", credentials)[0]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def wait_for(condition, timeout: float = 60.0) -> None:
    """Poll an observable condition (a file, a run state) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def run_statuses(workdir: Path) -> list[str]:
    client = tracking.client(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("square-sequences")
    if experiment is None:
        return []
    return [
        run.info.status for run in client.search_runs([experiment.experiment_id], run_view_type=3)
    ]


@pytest.mark.slow
def test_stages_started_together_share_one_new_server_and_all_succeed(workdir):
    processes = [
        stage(workdir, "generate", name, f"data/raw/{name}.parquet")
        for name in ("fixed", "variable", "fixed_shuffled", "fixed")
    ]
    for process in processes:
        finished(process)
    assert len(servers(workdir)) == 1
    assert sorted(run_statuses(workdir)) == ["FINISHED"] * 4


@pytest.mark.slow
def test_a_stage_writes_the_same_bytes_in_a_warm_process_and_in_its_own(workdir):
    finished(stage(workdir, "generate", "fixed", f"{workdir}/raw.parquet"))
    finished(stage(workdir, "split", "fixed", f"{workdir}/raw.parquet", f"{workdir}/split"))
    outputs = {}
    for mode in ("1", "0"):  # train: the stage whose bytes the process could change
        target = workdir / f"mode{mode}"
        finished(
            stage(
                workdir,
                "train",
                "gru",
                f"{workdir}/split",
                f"{target}/model",
                f"{target}/history",
                PIPELINE_STAGE_SERVER=mode,
            )
        )
        outputs[mode] = {
            path.relative_to(target).as_posix(): md5(path)
            for path in sorted(target.rglob("*"))
            if path.is_file()
        }
    assert outputs["1"] == outputs["0"]
    assert len(outputs["1"]) == 4  # weights, config, 2 curves
    assert len(servers(workdir)) == 1  # the own-process run started none


@pytest.mark.slow
def test_an_edited_module_is_run_by_a_new_server(workdir):
    finished(stage(workdir, "generate", "fixed", "data/raw/fixed.parquet"))
    module = workdir / "pipeline/stages/generate.py"
    edited = module.read_text().replace(
        "def run(context: Context) -> None:\n",
        "def run(context: Context) -> None:\n    raise InputError('the edited module ran')\n",
    )
    module.write_text("from pipeline.library.errors import InputError\n" + edited)
    process = stage(workdir, "generate", "fixed", "data/raw/fixed.parquet")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    assert stderr.startswith("error: the edited module ran")
    assert len(servers(workdir)) == 2


@pytest.mark.slow
def test_the_warm_child_takes_the_clients_directory_environment_and_umask(workdir):
    elsewhere = workdir / "elsewhere"  # the client's working directory: output and params here
    elsewhere.mkdir()
    (elsewhere / "params.yaml").write_text((workdir / "params.yaml").read_text())
    process = subprocess.Popen(
        [
            "sh",
            "-c",
            f"umask 077 && exec {sys.executable} -m pipeline generate fixed out.parquet",
        ],
        cwd=elsewhere,
        env=environment(workdir, MLFLOW_EXPERIMENT_NAME="from-the-client"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    finished(process)
    assert (elsewhere / "out.parquet").stat().st_mode & 0o777 == 0o600
    client = tracking.client(f"sqlite:///{workdir / 'mlflow.db'}")
    assert client.get_experiment_by_name("from-the-client") is not None


@pytest.mark.slow
def test_a_client_killed_outright_stops_its_stage_and_its_run_is_not_left_running(workdir):
    finished(stage(workdir, "generate", "fixed", "data/raw/fixed.parquet"))
    finished(stage(workdir, "split", "fixed", "data/raw/fixed.parquet", "data/split/fixed"))
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["models"]["gru"]["epochs"] = 100_000
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    process = stage(
        workdir, "train", "gru", "data/split/fixed", "data/models/gru", "data/history/gru"
    )
    wait_for(lambda: "RUNNING" in run_statuses(workdir))
    process.kill()
    process.wait()
    wait_for(lambda: "RUNNING" not in run_statuses(workdir))
    assert sorted(run_statuses(workdir)) == ["FINISHED", "FINISHED", "KILLED"]
    assert not (workdir / "data/models").exists() or not any(
        (workdir / "data/models").rglob("*.pt")
    )


@pytest.mark.slow
def test_a_dead_server_is_replaced_and_an_idle_one_leaves(workdir):
    finished(stage(workdir, "generate", "fixed", "a.parquet"))
    [socket_file] = servers(workdir)
    os.kill(server_pid(socket_file), signal.SIGKILL)  # its socket file stays behind
    finished(stage(workdir, "generate", "fixed", "b.parquet", PIPELINE_STAGE_SERVER_IDLE_S="1"))
    # Idle for a second, the new server leaves and tidies up, the dead one's socket included.
    # (It may be gone already: on one busy core a second passes quickly.)
    wait_for(lambda: not servers(workdir))


PRELOAD = """
import os, threading
from pipeline.__main__ import STAGES
from pipeline.runtime import server
server.preload(list(STAGES.values()))
os.environ["ATEN_CPU_CAPABILITY"] = "default"  # honoured only if no kernel ran yet
import torch
print(threading.active_count(), torch.backends.cpu.get_cpu_capability())
"""


def test_preloading_runs_no_kernel_and_starts_no_thread():
    result = subprocess.run(
        [sys.executable, "-c", PRELOAD],
        cwd=REPO,
        env={**os.environ, "ATEN_CPU_CAPABILITY": "avx2"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["1", "DEFAULT"]
