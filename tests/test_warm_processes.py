"""Warm processes run a stage exactly as its client would, or not at all.

A warm process runs a stage only with the code and libraries on disk, in its client's
process context (nice level, cgroup, namespaces); otherwise the client runs the stage
itself and says so in one line. Ctrl-Z stops the stage with its client; `make stop` stops
the warm processes of its own checkout only. Every test runs the real client in a working
directory of its own (tests/support.py) with warm processes of its own.
"""

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import stop_stage_servers
from support import (
    GENERATE,
    REPO,
    TRAIN,
    Workdir,
    error_line,
    md5,
    small_params,
    stage_pid,
    state,
    wait_for,
)

from pipeline.runtime.client import try_connect

#: Long enough for a test to act while the stage trains, short enough to finish.
LONG_TRAINING = small_params(**{"models.gru.epochs": 100_000})


@pytest.fixture
def servers(tmp_path) -> Iterator[Path]:
    """A directory for this test's warm processes only; they are stopped at its end."""
    directory = tmp_path / "servers"
    directory.mkdir()
    yield directory
    stop_stage_servers(directory)


@pytest.fixture
def own(make_workdir, servers) -> Workdir:
    """A working directory whose warm processes are this test's own."""
    workdir = make_workdir()
    workdir.env["PIPELINE_STAGE_SERVER_DIR"] = str(servers)
    return workdir


def sockets(directory: Path) -> list[Path]:
    return sorted(directory.glob("*/*.sock"))


def listener_pid(socket_file: Path) -> int:
    """The process listening on a socket, as the kernel names it (SO_PEERCRED)."""
    connection = try_connect(socket_file)
    assert connection is not None, f"nothing listens on {socket_file}"
    with connection:
        credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return struct.unpack("3i", credentials)[0]


def notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note: ")]


def start(workdir: Workdir, prefix: list[str], *args: str) -> subprocess.Popen:
    """The client, run through `prefix` (nice, unshare, sh -c ...)."""
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "pipeline", *args],
        cwd=workdir.root,
        env=workdir.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stopped_by_sigterm(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    return stderr


# ---------------------------------------------------------------------------
# Where a stage runs, and as whom.


def test_a_stage_runs_in_a_warm_child_that_takes_the_clients_directory_environment_umask(own):
    own.env["PYTHONPATH"] = str(own.root)  # the package, from another working directory
    own.succeed(*GENERATE)  # starts the warm process
    elsewhere = own.root / "elsewhere"  # the client's working directory: output and params
    elsewhere.mkdir()
    (elsewhere / "params.yaml").write_text((own.root / "params.yaml").read_text())
    process = subprocess.Popen(
        ["sh", "-c", f"umask 077 && exec {sys.executable} -m pipeline generate fixed out.parquet"],
        cwd=elsewhere,
        env={**own.env, "MLFLOW_EXPERIMENT_NAME": "from-the-client"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert notes(stderr) == []
    assert (elsewhere / "out.parquet").stat().st_mode & 0o777 == 0o600
    [run] = own.at(elsewhere).runs()
    assert int(run.tags["pid"]) != process.pid, "the client ran the stage itself"
    assert len(sockets(Path(own.env["PIPELINE_STAGE_SERVER_DIR"]))) == 1


def server_key(workdir: Workdir) -> str:
    """The warm process name a client of `workdir` would pick now."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pipeline.runtime.client import server_key as k; print(k('avx2'))",
        ],
        cwd=workdir.root,
        env=workdir.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def start_server(workdir: Workdir, socket_file: Path) -> subprocess.Popen:
    """A warm process listening at `socket_file`, importing `workdir`'s package as it is now."""
    socket_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    ready_read, ready_write = os.pipe()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--serve", str(socket_file), str(ready_write)],
        cwd=workdir.root,
        env=workdir.env,
        pass_fds=(ready_write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(ready_write)
    readable, _, _ = select.select([ready_read], [], [], 300)
    assert readable and os.read(ready_read, 16) == b"ready\n"
    os.close(ready_read)
    return server


@pytest.mark.slow
def test_a_warm_process_that_imported_other_code_than_the_disk_runs_none_of_it(own, servers):
    """An edit saved after a client named its server and before the server imported: the
    server holds the edited code under the name of the code on disk once it is reverted."""
    module = own.root / "pipeline/stages/generate.py"
    original = module.read_text()
    name = server_key(own)  # what a client of the code on disk will ask for
    module.write_text(
        "from pipeline.library.errors import InputError\n"
        + original.replace(
            "def run(context: Context) -> None:\n",
            "def run(context: Context) -> None:\n    raise InputError('the edited code ran')\n",
        )
    )
    server = start_server(own, servers / f"pipeline-stage-servers-{os.getuid()}/{name}.sock")
    module.write_text(original)  # reverted: the disk holds the code the name stands for
    result = own.run(*GENERATE)
    assert result.returncode == 0, result.stderr
    assert notes(result.stderr) == [
        "note: running generate in this process: pipeline/stages/generate.py changed since "
        "the warm process imported it"
    ]
    assert (own.root / GENERATE[2]).is_file()
    server.wait(timeout=120)  # a server whose code is not on disk leaves by itself


@pytest.mark.slow
def test_a_library_file_changed_on_disk_since_the_warm_process_loaded_it_is_not_run(own):
    site = own.root.parent / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("LOADED = 1\n")  # every process imports it first
    own.env["PYTHONPATH"] = str(site)
    own.succeed(*GENERATE)
    (site / "sitecustomize.py").write_text("LOADED = 2\n")
    result = own.run(*GENERATE)
    assert result.returncode == 0, result.stderr
    assert notes(result.stderr) == [
        f"note: running generate in this process: {site / 'sitecustomize.py'} changed since "
        "the warm process imported it"
    ]


@pytest.mark.slow
def test_a_client_under_nice_has_its_stage_run_at_its_nice_level(own, template):
    own.succeed(*GENERATE)  # a warm process at nice 0
    own.copy_data_from(template)
    own.write_params(LONG_TRAINING)
    process = start(own, ["nice", "-n", "19"], *TRAIN)
    assert os.getpriority(os.PRIO_PROCESS, stage_pid(own)) == 19
    stopped_by_sigterm(process)


@pytest.mark.slow
def test_a_client_in_its_own_mount_namespace_writes_where_it_sees(own):
    own.succeed(*GENERATE)  # a warm process in the host's mount namespace
    elsewhere, raw = own.root.parent / "bound", own.root / "data/raw"
    elsewhere.mkdir()
    (own.root / GENERATE[2]).unlink()
    bind = f"mount --bind {elsewhere} {raw} && exec {sys.executable} -m pipeline " + " ".join(
        GENERATE
    )
    process = start(own, ["unshare", "--mount", "--map-root-user", "sh", "-c", bind])
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert (elsewhere / "fixed.parquet").is_file()
    assert not (raw / "fixed.parquet").exists(), "written to the host's data/raw"


@pytest.fixture
def cgroup() -> Iterator[Path]:
    """A cgroup of the pids controller for the test; removed once its processes are gone."""
    root = Path("/sys/fs/cgroup/pids")
    if not os.access(root, os.W_OK):
        pytest.skip(f"{root} is not writable here (cgroup v1 as root)")
    group = root / f"pipeline-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    yield group
    wait_for(lambda: not (group / "cgroup.procs").read_text().split(), 120, "an empty cgroup")
    group.rmdir()


@pytest.mark.slow
def test_a_client_in_a_cgroup_has_its_stage_in_that_cgroup(own, template, servers, cgroup):
    own.succeed(*GENERATE)  # a warm process in the test's cgroup
    own.copy_data_from(template)
    own.write_params(LONG_TRAINING)
    enter = f"echo $$ > {cgroup}/cgroup.procs && exec {sys.executable} -m pipeline " + " ".join(
        TRAIN
    )
    process = start(own, ["sh", "-c", enter])
    pid = stage_pid(own)
    assert str(pid) in (cgroup / "cgroup.procs").read_text().split()
    stopped_by_sigterm(process)
    stop_stage_servers(servers)  # a warm process started in the cgroup lives there


# ---------------------------------------------------------------------------
# Stopping and continuing.


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTSTP, signal.SIGSTOP], ids=["ctrl-z", "sigstop"])
def test_a_stopped_client_stops_its_stage_and_continued_continues_it(own, template, stop):
    own.succeed(*GENERATE)
    own.copy_data_from(template)
    own.write_params(LONG_TRAINING)
    process = start(own, [], *TRAIN)
    pid = stage_pid(own)
    assert pid != process.pid  # the stage runs in a warm process
    os.kill(process.pid, stop)
    wait_for(lambda: state(pid) == "T", 60, "the stage stopped with its client")
    os.kill(process.pid, signal.SIGCONT)
    wait_for(lambda: state(pid) in ("R", "S", "D"), 60, "the stage going on with its client")
    stopped_by_sigterm(process)
    assert [run.status for run in own.runs()][-1] == "KILLED"


# ---------------------------------------------------------------------------
# When there can be no warm process: the stage runs in the client, said in one line.


def regular_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("")
    return path


def someone_elses_name(tmp_path: Path) -> Path:
    """A shared directory where another user made a file of the servers' directory's name."""
    (tmp_path / f"pipeline-stage-servers-{os.getuid()}").write_text("")
    return tmp_path


def immutable_directory(tmp_path: Path) -> Path:
    path = tmp_path / "immutable"
    path.mkdir()
    subprocess.run(["chattr", "+i", str(path)], check=True)
    return path


UNUSABLE_DIRECTORIES = {
    "under /proc": lambda _: Path("/proc/self/attr/warm"),
    "a regular file": regular_file,
    "another user's file in its place": someone_elses_name,
    "an immutable directory": immutable_directory,
}


@pytest.mark.parametrize("case", UNUSABLE_DIRECTORIES)
def test_an_unusable_servers_directory_runs_the_stage_in_the_client_with_one_line(
    make_workdir, tmp_path, case
):
    directory = UNUSABLE_DIRECTORIES[case](tmp_path)
    workdir = make_workdir()
    workdir.env["PIPELINE_STAGE_SERVER_DIR"] = str(directory)
    try:
        result = workdir.run(*GENERATE)
    finally:
        subprocess.run(["chattr", "-i", str(directory)], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: running generate in this process: ")
    assert (workdir.root / GENERATE[2]).is_file()


# ---------------------------------------------------------------------------
# make stop, dead servers, idle servers.


@pytest.mark.slow
def test_make_stop_stops_the_warm_processes_of_its_own_checkout_only(make_workdir, servers):
    mine, theirs = make_workdir("mine"), make_workdir("theirs")
    for workdir in (mine, theirs):
        workdir.env["PIPELINE_STAGE_SERVER_DIR"] = str(servers)
        workdir.succeed(*GENERATE)
    [first, second] = sockets(servers)
    by_checkout = {
        Path(f"/proc/{listener_pid(path)}/cwd").readlink(): path for path in (first, second)
    }
    assert set(by_checkout) == {Path("/")}  # neither holds a directory of the user's
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.runtime.server", "stop"],
        cwd=mine.root,
        env=mine.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == f"stopped 1 warm process of {mine.root / 'pipeline'}\n"
    wait_for(lambda: len(sockets(servers)) == 1, 60, "one server left")
    [left] = sockets(servers)
    assert listener_pid(left) > 0  # it still answers: theirs
    assert theirs.run(*GENERATE).stderr == ""


@pytest.mark.slow
def test_a_dead_servers_socket_is_replaced_and_an_idle_server_leaves(own, servers):
    own.succeed(*GENERATE)
    [socket_file] = sockets(servers)
    os.kill(listener_pid(socket_file), signal.SIGKILL)  # its socket file stays behind
    own.env["PIPELINE_STAGE_SERVER_IDLE_S"] = "1"
    result = own.run(*GENERATE)
    assert result.returncode == 0 and notes(result.stderr) == [], result.stderr
    wait_for(lambda: not sockets(servers), 120, "the idle server leaving")


@pytest.mark.slow
def test_stages_started_together_share_one_new_server(own, servers):
    processes = [
        start(own, [], "generate", name, f"data/raw/{name}.parquet")
        for name in ("fixed", "fixed", "fixed")
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0 and notes(stderr) == [], stderr
    assert len(sockets(servers)) == 1
    assert [run.status for run in own.runs()] == ["FINISHED"] * 3


@pytest.mark.slow
def test_a_stage_writes_the_same_bytes_in_a_warm_process_and_in_its_own(own, template):
    own.copy_data_from(template)
    outputs = {}
    for mode in ("1", "0"):  # train: the stage whose bytes the process could change
        target = own.root / f"mode{mode}"
        args = ("train", "gru", "data/split/fixed", f"{target}/model", f"{target}/history")
        own.succeed(*args, env={"PIPELINE_STAGE_SERVER": mode})
        outputs[mode] = {
            path.relative_to(target).as_posix(): md5(path)
            for path in sorted(target.rglob("*"))
            if path.is_file()
        }
    assert outputs["1"] == outputs["0"]
    assert len(outputs["1"]) == 4  # weights, config, 2 curves
    runs = own.runs()
    assert runs[0].tags["pid"] != runs[1].tags["pid"]


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


def test_a_stage_asked_for_help_prints_its_usage(workdir):
    result = workdir.run("train", "-h")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "usage: python -m pipeline train [-h] name splits checkpoint history\n"
    )
    assert result.stderr == ""


def test_a_name_after_double_dash_is_a_name_even_if_it_reads_as_an_option(workdir):
    line = error_line(workdir.run("train", "--", "-h", "a", "b", "c"))
    assert "models.-h is missing" in line, line


def test_warm_processes_live_in_the_runtime_directory_where_there_is_one(make_workdir, tmp_path):
    runtime = tmp_path / "run-user"
    runtime.mkdir(mode=0o700)
    workdir = make_workdir()
    del workdir.env["PIPELINE_STAGE_SERVER_DIR"]
    workdir.env["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        workdir.succeed(*GENERATE)
        assert sockets(runtime), f"no socket under {runtime}"
    finally:
        stop_stage_servers(runtime)
