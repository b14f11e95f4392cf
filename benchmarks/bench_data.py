"""Data throughput at 1,000,000 squares, and what a data stage costs before it does any work.

1. Generation: `generate_squares` against the chapter's square-by-square generator
   (tests.chapter.generate_sequences); every run is checked to give the chapter's bits.
2. Parquet: generate + write, and read back to padded arrays, against the plain pandas
   way (a DataFrame with one Python list of points per row; reading back row by row);
   every read is checked against the padded arrays the other side reads.
3. A data stage's fixed cost: `python -m pipeline generate fixed` at the default size,
   in a warm stage process (the default) and in a process of its own
   (PIPELINE_STAGE_SERVER=0), against the same library calls in a bare Python process
   (no MLflow, no CLI), the interpreter alone, and the imports a stage process pays.
   Each is a whole process, timed from the outside; the stage server is this run's own
   (in a temporary directory), started by the warm-up and stopped at the end.

Timing (benchmarks/timing.py): in each of the four comparisons every side is warmed up
once, untimed, then --repeats rounds, every other one in reverse order; medians and
spread; ratios of the medians as printed, with the range within one round.

Run from the repository root:  python -m benchmarks.bench_data [--repeats N] [--quick]
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.timing import (
    Runs,
    Side,
    arguments,
    header,
    interleave,
    print_runs_table,
    repeats_of,
    show,
)
from pipeline.library.squares import (
    Squares,
    generate_squares,
    read_squares,
    unpad_points,
    write_squares,
)
from pipeline.runtime.params import load_params
from tests.chapter import generate_sequences

N_SQUARES = 1_000_000
REPEATS = 3
REPOSITORY = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPOSITORY / "params.yaml")


def ours() -> Squares:
    return generate_squares(N_SQUARES, 0.1, seed=13, variable_len=False)


def print_comparison(rows: list[tuple[str, Runs]]) -> None:
    """Rows of (what, runs of its baseline and our side, in that order) as a markdown table."""
    print("| what | baseline s | ours s | speed-up (baseline / ours) |")
    print("|---|---:|---:|---:|")
    for what, runs in rows:
        baseline, our_side = runs.seconds
        print(
            f"| {what} | {runs.cell(baseline)} | {runs.cell(our_side)} "
            f"| {runs.ratio(baseline, our_side).cell()} |"
        )


def generation(repeats: int) -> Runs:
    """The chapter's generator against ours; every run's squares checked to be the same."""
    latest: dict[str, object] = {}

    def check_chapter(result: tuple[list[np.ndarray], np.ndarray]) -> None:
        latest["chapter"] = result
        compare()

    def check_ours(result: Squares) -> None:
        latest["ours"] = result
        compare()

    def compare() -> None:
        if len(latest) < 2:
            return
        (points, directions), squares = latest["chapter"], latest["ours"]
        same = np.array_equal(np.concatenate(points), unpad_points(squares.points, squares.lengths))
        if not (same and np.array_equal(directions, squares.labels)):
            raise AssertionError("the vectorised generator and the chapter's differ")

    sides = {
        "chapter: generate_sequences": Side(
            lambda: generate_sequences(N_SQUARES, seed=13), after=check_chapter
        ),
        "ours: generate_squares": Side(ours, after=check_ours),
    }
    return interleave(sides, repeats)


def pandas_write(squares, path: Path) -> None:
    rows = [
        [{"x0": x0, "x1": x1} for x0, x1 in sequence[:length].tolist()]
        for sequence, length in zip(squares.points, squares.lengths, strict=True)
    ]
    frame = pd.DataFrame(
        {
            "seq_id": squares.seq_ids,
            "label": squares.labels,
            "length": squares.lengths,
            "points": rows,
        }
    )
    frame.to_parquet(path)


def pandas_read(path: Path) -> np.ndarray:
    frame = pd.read_parquet(path)
    padded = np.zeros((len(frame), int(frame["length"].max()), 2))
    for row, points in enumerate(frame["points"]):
        for step, point in enumerate(points):
            padded[row, step] = point["x0"], point["x1"]
    return padded


def parquet(directory: Path, repeats: int) -> tuple[Runs, Runs]:
    """Generate + write, then read back, each way; every read checked against the other."""
    path, baseline_path = directory / "ours.parquet", directory / "pandas.parquet"
    write = interleave(
        {
            "pandas: generate + write": lambda: pandas_write(ours(), baseline_path),
            "ours: generate + write_squares": lambda: write_squares(ours(), path),
        },
        repeats,
    )
    expected = read_squares(path).points

    def check(padded: np.ndarray) -> None:
        if not np.array_equal(padded, expected):
            raise AssertionError("the pandas round trip and ours differ")

    read = interleave(
        {
            "pandas: read row by row": Side(lambda: pandas_read(baseline_path), after=check),
            "ours: read_squares": Side(lambda: read_squares(path).points, after=check),
        },
        repeats,
    )
    return write, read


BARE_STAGE = """
from pipeline.runtime.params import load_params
from pipeline.library.squares import write_squares
from pipeline.library.squares import generate_squares
dataset = load_params().dataset("fixed")
write_squares(generate_squares(dataset.n, dataset.noise, dataset.seed, False), "bare.parquet")
"""

STAGE = ("-m", "pipeline", "generate", "fixed", "stage.parquet")
PYTHON_ALONE = "Python alone: `python -c pass`"
LIBRARY_ALONE = "the stage's library calls alone (no MLflow, no CLI)"
WARM_STAGE = "the whole stage, warm stage process: `python -m pipeline generate fixed`"
OWN_PROCESS = "the whole stage, a process of its own (`PIPELINE_STAGE_SERVER=0`)"
#: what: (arguments to the interpreter, extra environment)
PROCESSES = {
    PYTHON_ALONE: (("-c", "pass"), {}),
    "`python -c 'import torch'`": (("-c", "import torch"), {}),
    "`python -c 'import mlflow'`": (("-c", "import mlflow"), {}),
    "`python -c 'import matplotlib.figure, matplotlib.backends.backend_agg'`": (
        ("-c", "import matplotlib.figure, matplotlib.backends.backend_agg"),
        {},
    ),
    "importing the stage's module: `import pipeline.stages.generate`": (
        ("-c", "import pipeline.stages.generate"),
        {},
    ),
    LIBRARY_ALONE: (("-c", BARE_STAGE), {}),
    WARM_STAGE: (STAGE, {}),
    OWN_PROCESS: (STAGE, {"PIPELINE_STAGE_SERVER": "0"}),
}


HEAVY = ("numpy", "pyarrow", "torch", "mlflow", "matplotlib")


def stage_fixed_cost(directory: Path, repeats: int) -> tuple[Runs, str]:
    """Each process of PROCESSES, whole, timed from outside; what the stage's module imports."""
    shutil.copy(REPOSITORY / "params.yaml", directory / "params.yaml")
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPOSITORY),
        "MLFLOW_TRACKING_URI": f"sqlite:///{directory / 'mlflow.db'}",
        "PIPELINE_STAGE_SERVER_DIR": str(directory / "servers"),  # this run's own server
    }
    for variable in ("PIPELINE_STAGE_SERVER", "MLFLOW_EXPERIMENT_NAME"):
        environment.pop(variable, None)

    def process(arguments: tuple[str, ...], extra: dict[str, str]) -> Side:
        return Side(
            lambda: subprocess.run(
                [sys.executable, *arguments],
                cwd=directory,
                env=environment | extra,
                check=True,
                capture_output=True,
            )
        )

    try:
        # The warm-up's first stage creates the MLflow database, as a pipeline's first does,
        # and the warm-up of WARM_STAGE starts the server the timed runs then reuse.
        runs = interleave({what: process(*how) for what, how in PROCESSES.items()}, repeats)
        imported = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, pipeline.stages.generate\n"
                f"print(*[name for name in {HEAVY!r} if name in sys.modules], sep=', ')",
            ],
            cwd=directory,
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    finally:
        subprocess.run(
            [sys.executable, "-m", "pipeline.runtime.server", "stop"],
            cwd=directory,
            env=environment,
            capture_output=True,
            check=False,
        )
    return runs, imported


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], default_repeats=REPEATS, quick_repeats=1)
    repeats = repeats_of(parser.parse_args())
    title = "Data: generation, Parquet, a data stage's fixed cost"
    print(header(title, repeats, PARAMS.cpu_capability))
    with tempfile.TemporaryDirectory() as scratch:
        generated = generation(repeats)
        written, read = parquet(Path(scratch), repeats)
        stage, imported = stage_fixed_cost(Path(scratch), repeats)

    print(f"{N_SQUARES:,} squares, one process (numpy and pyarrow as they come).\n")
    print_comparison(
        [
            ("generate 1M fixed squares (the chapter's bits)", generated),
            ("generate + write 1M squares to Parquet", written),
            ("read 1M squares back to padded arrays", read),
        ]
    )
    n_default = PARAMS.dataset("fixed").n
    print(
        f"\nA data stage's fixed cost (`generate@fixed`, {n_default:,} squares): each row a "
        f"whole process. Of {', '.join(HEAVY)}, the stage's module imports: {imported}.\n"
    )
    python_alone = stage.summary(PYTHON_ALONE).median
    print(f"| process | seconds | minus Python alone ({show(python_alone)} s) |")
    print("|---|---:|---:|")
    for what in PROCESSES:
        median = stage.summary(what).median
        print(f"| {what} | {stage.cell(what)} | {show(median - python_alone)} |")
    print("\n| ratio | of medians (range within a round) |")
    print("|---|---:|")
    for whole in (WARM_STAGE, OWN_PROCESS):
        short = whole.split(":")[0].split(" (")[0]
        print(f"| {short} / library calls alone | {stage.ratio(whole, LIBRARY_ALONE).cell()} |")
    print(f"| own process / warm stage process | {stage.ratio(OWN_PROCESS, WARM_STAGE).cell()} |")
    print_runs_table(generated, written, read, stage)


if __name__ == "__main__":
    main()
