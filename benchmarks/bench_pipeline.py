"""The pipeline's fixed cost: whole DVC commands against the work their stages do.

    python -m benchmarks.bench_pipeline [--repeats N] [--repro-repeats N] [--quick]

Each command's wall time is set against its stages' own work: the sum, over the MLflow
runs it created, of each run's start to end (the stage's body, its MLflow records and
its commit). The ratio wall / work is the pipeline's cost per unit of work; 1.0 would
mean no fixed cost at all. Two comparisons, each of sides in one interleaving:

1. `dvc repro` from nothing: every run in a fresh copy of this checkout (tracked and new
   files, committed; no outputs, no DVC cache, no dvc.lock, no MLflow store) and no stage
   server running, so the warm side pays the server's start. Sides: warm stage processes
   (the default) and every stage in a process of its own (PIPELINE_STAGE_SERVER=0, as
   before the server existed). --repro-repeats rounds; each takes minutes.
2. `dvc exp run -S models.gru.seed=S` (train, evaluate, plot and report of one model: 4
   stages) in one copy where the whole pipeline has run, a new seed every time so every
   run trains. Sides: warm stage processes with the server already running; the same with
   the server stopped just before the command (the command pays its start); a process
   each. --repeats rounds.

Timing (benchmarks/timing.py): every side warmed up once, untimed (for 1., a whole
untimed `dvc repro` per side), then the rounds, every other one in reverse order; the
wall is timed around the command only (the copy, stopping servers and reading MLflow are
outside the clock). Medians and spread; ratios of the medians as printed, with the range
over runs (wall / work: of the same run; between sides: of the same round). The stage
servers are this run's own, in a temporary directory, stopped at the end.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path

from mlflow import MlflowClient

from benchmarks.timing import (
    RUNS_TITLE,
    Ratio,
    Runs,
    Side,
    Summary,
    arguments,
    header,
    interleave,
    runs_table,
)
from pipeline.runtime.params import load_params

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "square-sequences"
EXP_RUN = "dvc exp run -S models.gru.seed=N"


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


def dvc(command: list[str], cwd: Path, environment: dict[str, str]) -> None:
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


def mlflow_runs(repo: Path) -> dict[str, float]:
    """Every finished MLflow run of `repo`'s store: its id and seconds from start to end."""
    if not (repo / "mlflow.db").exists():
        return {}
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return {}
    runs = client.search_runs([experiment.experiment_id], max_results=50_000)
    return {
        run.info.run_id: (run.info.end_time - run.info.start_time) / 1000
        for run in runs
        if run.info.end_time is not None
    }


def stop_servers(directory: Path) -> None:
    """Stop the stage servers started with `directory`; return once they are gone."""
    for pid_file in directory.glob("*/*.pid"):
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
            while True:  # until the process is gone (an observable fact, polled)
                os.kill(pid, 0)
                time.sleep(0.05)
        except ProcessLookupError:
            pass


class Way:
    """One way of running stages: its environment, and each run's MLflow work (untimed)."""

    def __init__(self, environment: dict[str, str], server: str) -> None:
        self.environment = environment | {"PIPELINE_STAGE_SERVER": server}
        self.works: list[float] = []  # seconds of stage work, one per run, the warm-up first
        self.stages: list[int] = []  # MLflow runs (stages), likewise

    def side(self, command: Callable[[], list[str]], repository: Callable[[], Path]) -> Side:
        """`command()` in the repository `repository()` gives; only the command is timed."""

        def prepare() -> tuple[Path, list[str], set[str]]:
            repo = repository()
            return repo, command(), set(mlflow_runs(repo))

        def run(prepared: tuple[Path, list[str], set[str]]) -> tuple[Path, set[str]]:
            repo, arguments, before = prepared
            dvc(arguments, repo, self.environment)
            return repo, before

        def after(result: tuple[Path, set[str]]) -> None:
            repo, before = result
            new = [seconds for run, seconds in mlflow_runs(repo).items() if run not in before]
            self.works.append(sum(new))
            self.stages.append(len(new))

        return Side(run, prepare=prepare, after=after)

    def timed_works(self) -> list[float]:
        return self.works[1:]  # the warm-up's comes first

    def stage_count(self) -> str:
        counts = sorted(set(self.stages[1:]))
        return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


#: side: (the way stages run: PIPELINE_STAGE_SERVER, what the table says of it)
REPRO_SIDES = {
    "repro, warm processes": ("1", "warm processes (server started by the command)"),
    "repro, a process each": ("0", "a process each"),
}
EXP_SIDES = {
    "exp run, server running": ("1", "warm processes, server already running"),
    "exp run, server stopped first": ("1", "warm processes, server stopped just before"),
    "exp run, a process each": ("0", "a process each"),
}


def environment_for(servers: Path) -> dict[str, str]:
    environment = {**os.environ, "PATH": f"{REPO / '.venv/bin'}{os.pathsep}{os.environ['PATH']}"}
    environment |= {
        "PIPELINE_STAGE_SERVER_DIR": str(servers),  # this run's own servers
        "PIPELINE_STAGE_SERVER_IDLE_S": "3600",  # none leaves between two of its commands
    }
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "DVC_ROOT"):
        environment.pop(variable, None)
    return environment


def repro_from_nothing(
    scratch: Path, servers: Path, repeats: int
) -> tuple[Runs | None, dict[str, Way], Path]:
    """Comparison 1 (skipped when `repeats` is 0); a copy where the whole pipeline has run."""
    environment = environment_for(servers)
    numbers = count()
    copies: list[Path] = []

    def fresh_copy() -> Path:
        stop_servers(servers)  # from nothing: no server running, on either side
        while copies:  # the copy of the run before is done with
            shutil.rmtree(copies.pop())
        copy = scratch / f"repo-{next(numbers)}"
        copy.mkdir()
        copies.append(copy_of_this_checkout(copy))
        return copy

    ways = {side: Way(environment, server) for side, (server, _) in REPRO_SIDES.items()}
    if repeats == 0:
        repo = fresh_copy()
        dvc(["dvc", "repro"], repo, ways["repro, warm processes"].environment)
        return None, {}, repo
    sides = {side: way.side(lambda: ["dvc", "repro"], fresh_copy) for side, way in ways.items()}
    return interleave(sides, repeats), ways, copies[-1]


def exp_runs(repo: Path, servers: Path, repeats: int) -> tuple[Runs, dict[str, Way]]:
    """Comparison 2, in `repo`, where the whole pipeline has run."""
    environment = environment_for(servers)
    seeds = count(7)  # a new seed each time: every run trains

    def command() -> list[str]:
        return ["dvc", "exp", "run", "-S", f"models.gru.seed={next(seeds)}"]

    def stopped_first() -> Path:
        stop_servers(servers)
        return repo

    ways = {side: Way(environment, server) for side, (server, _) in EXP_SIDES.items()}
    sides = {
        side: way.side(command, stopped_first if "stopped" in side else lambda: repo)
        for side, way in ways.items()
    }
    return interleave(sides, repeats), ways


def rows(runs: Runs, ways: dict[str, Way], labels: dict, command: str) -> list[str]:
    lines = []
    for side, (_, how) in labels.items():
        way, walls = ways[side], runs.seconds[side]
        works = way.timed_works()
        lines.append(
            f"| {how} | {command} | {way.stage_count()} | {runs.cell(side)} "
            f"| {Summary.of(works).cell()} | {Ratio.of(walls, works).cell('')} |"
        )
    return lines


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], default_repeats=3, quick_repeats=1)
    parser.add_argument(
        "--repro-repeats",
        type=int,
        default=None,
        help="rounds of `dvc repro` from nothing, minutes each (default 1; 0 skips them)",
    )
    options = parser.parse_args()
    repeats = options.repeats if options.repeats is not None else (1 if options.quick else 3)
    repro_repeats = options.repro_repeats
    if repro_repeats is None:
        repro_repeats = 0 if options.quick else 1
    if repeats < 1 or repro_repeats < 0:
        raise SystemExit("--repeats must be at least 1, --repro-repeats at least 0")

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as directory:
        scratch = Path(directory)
        servers = scratch / "servers"
        try:
            repro, repro_ways, repo = repro_from_nothing(scratch, servers, repro_repeats)
            exp, exp_ways = exp_runs(repo, servers, repeats)
        finally:
            stop_servers(servers)

    capability = load_params(REPO / "params.yaml").cpu_capability
    title = "The pipeline's fixed cost: DVC commands against their stages' work"
    print(header(title, repeats, capability))
    print(
        f"`dvc exp run`: {repeats} round{'s' * (repeats != 1)}; `dvc repro` from nothing: "
        + (f"{repro_repeats} round{'s' * (repro_repeats != 1)}." if repro else "not run.")
        + " Work: the sum of the command's MLflow runs, start to end; wall / work of the "
        "medians, with its range over runs.\n"
    )
    print("| stages run as | command | stages | wall s | work s | wall / work |")
    print("|---|---|---:|---:|---:|---:|")
    if repro:
        print("\n".join(rows(repro, repro_ways, REPRO_SIDES, "`dvc repro` (from nothing)")))
    print("\n".join(rows(exp, exp_ways, EXP_SIDES, f"`{EXP_RUN}`")))

    print("\n| walls compared | of medians (range within a round) |")
    print("|---|---:|")
    if repro:
        ratio = repro.ratio("repro, a process each", "repro, warm processes")
        print(f"| `dvc repro`: a process each / warm processes | {ratio.cell()} |")
    for side in ("exp run, server stopped first", "exp run, a process each"):
        ratio = exp.ratio(side, "exp run, server running")
        print(f"| `dvc exp run`: {EXP_SIDES[side][1]} / server running | {ratio.cell()} |")

    print(f"\n{RUNS_TITLE}\n")
    series = {}
    for runs, ways in ((repro, repro_ways), (exp, exp_ways)):
        for side, way in ways.items() if runs else ():
            series[f"{side}: wall"] = runs.seconds[side]
            series[f"{side}: work"] = way.timed_works()
    print("\n".join(runs_table(series)))


if __name__ == "__main__":
    main()
