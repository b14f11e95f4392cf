"""The pipeline's fixed cost: whole DVC commands against the work their stages do.

    python -m benchmarks.bench_pipeline [--repeats N]

For each way of running stages (warm stage processes, the default; and every stage in a
process of its own, PIPELINE_STAGE_SERVER=0, as before they existed), in a fresh copy
of this repository with the default params:
- `dvc repro` from nothing (no outputs, no cache, no stage server running);
- `dvc exp run -S models.gru.seed=S` right after it (4 stages), N times with other seeds;
- the same with no stage server running, N times.
Each command's wall time is set against its stages' own work: the sum, over the MLflow
runs it created, of each run's start to end (the stage's body, its MLflow records and
its commit). The ratio wall / work is the pipeline's cost per unit of work; 1.0 would
mean no fixed cost at all. A repeated command reports its median wall, work and ratio
(the ratio taken run by run). Both ways run in this one process, one after the other.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient

REPO = Path(__file__).resolve().parents[1]


def copy_of_this_checkout(destination: Path) -> Path:
    """The tracked and new files of this checkout in a fresh git repository, committed."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    (destination / "dvc.lock").unlink(missing_ok=True)  # from nothing
    environment = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@b.invalid"}
    environment |= {"GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@b.invalid"}
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(command, cwd=destination, env=environment, check=True)
    return destination


def timed(command: list[str], cwd: Path, environment: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started


def work_since(repo: Path, since_ms: int) -> tuple[float, int]:
    """Seconds of stage work (run start to end) in runs started after `since_ms`; their count."""
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("square-sequences")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.start_time >= {since_ms}",
        max_results=10_000,
    )
    return sum((run.info.end_time - run.info.start_time) / 1000 for run in runs), len(runs)


def stop_servers(directory: Path) -> None:
    """Stop the stage servers started from `directory`; return once they are gone."""
    for pid_file in directory.glob("*/*.pid"):
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
            while True:  # until the process is gone (an observable fact, polled)
                os.kill(pid, 0)
                time.sleep(0.05)
        except ProcessLookupError:
            pass


Row = tuple[str, int, float, float, float]  # command, stages, wall s, work s, wall / work


def summary(label: str, runs: list[tuple[float, float, int]]) -> Row:
    """The medians of (wall s, work s, stages) runs of one command; the ratio run by run."""
    walls, works, stages = zip(*runs, strict=True)
    ratio = statistics.median(wall / work for wall, work in zip(walls, works, strict=True))
    return label, stages[0], statistics.median(walls), statistics.median(works), ratio


def measure(mode: str, scratch: Path, repeats: int) -> list[Row]:
    """`dvc repro` from nothing, then `dvc exp run` `repeats` times warm and cold, in `mode`."""
    repo = copy_of_this_checkout(scratch / f"repo-{mode}")
    servers = scratch / f"servers-{mode}"
    environment = {**os.environ, "PATH": f"{REPO / '.venv/bin'}{os.pathsep}{os.environ['PATH']}"}
    environment |= {"PIPELINE_STAGE_SERVER": mode, "PIPELINE_STAGE_SERVER_DIR": str(servers)}
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "DVC_ROOT"):
        environment.pop(variable, None)

    def run(command: list[str], cold: bool) -> tuple[float, float, int]:
        if cold:
            stop_servers(servers)
        since = int(time.time() * 1000)
        wall = timed(command, repo, environment)
        return (wall, *work_since(repo, since))

    rows = [summary("dvc repro (from nothing)", [run(["dvc", "repro"], cold=True)])]
    seeds = iter(range(7, 7 + 2 * repeats))  # a new seed each time: every run trains
    for label, cold in (
        ("dvc exp run -S models.gru.seed=N", False),
        ("the same, no warm server", True),
    ):
        command = ["dvc", "exp", "run", "-S"]
        runs = [run([*command, f"models.gru.seed={next(seeds)}"], cold) for _ in range(repeats)]
        rows.append(summary(label, runs))
    stop_servers(servers)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each dvc exp run")
    repeats = parser.parse_args().repeats
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; exp run: medians of {repeats}")
    print("| stages run as | command | stages | wall s | work s | wall / work |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        for mode, name in (("1", "warm processes"), ("0", "a process each")):
            for label, stages, wall, work, ratio in measure(mode, Path(scratch), repeats):
                print(f"| {name} | `{label}` | {stages} | {wall:.1f} | {work:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
