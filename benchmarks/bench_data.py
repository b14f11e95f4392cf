"""Data throughput at 1,000,000 squares, and what a data stage costs before it does any work.

1. Generation: `generate_squares` against the chapter's square-by-square generator
   (tests.chapter.generate_sequences), checking they give the same bits.
2. Parquet: generate + write, and read back to padded arrays, against the plain pandas
   way (a DataFrame with one Python list of points per row; reading back row by row).
3. A data stage's fixed cost: `python -m pipeline generate fixed` at the default size,
   against the same library calls in a bare Python process (no MLflow, no CLI).

Run from the repository root:  python -m benchmarks.bench_data  (or `make bench`)
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.library.squares import generate_squares, read_squares, unpad_points, write_squares
from pipeline.runtime.params import load_params
from tests.chapter import generate_sequences

N_SQUARES = 1_000_000
REPEATS = 3
REPOSITORY = Path(__file__).resolve().parents[1]


def timed(run: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def median_seconds(run: Callable[[], object], repeats: int = REPEATS) -> float:
    return statistics.median(timed(run)[0] for _ in range(repeats))


def generation() -> list[str]:
    ours, squares = timed(lambda: generate_squares(N_SQUARES, 0.1, seed=13, variable_len=False))
    chapter, (points, directions) = timed(lambda: generate_sequences(N_SQUARES, seed=13))
    same = np.array_equal(np.concatenate(points), unpad_points(squares.points, squares.lengths))
    if not (same and np.array_equal(directions, squares.labels)):
        raise AssertionError("the vectorised generator and the chapter's differ")
    ours = min(ours, median_seconds(lambda: generate_squares(N_SQUARES, 0.1, 13, False)))
    return [f"| generate 1M fixed squares | {chapter:.2f} | {ours:.2f} | {chapter / ours:.0f}x |"]


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


def parquet(directory: Path) -> list[str]:
    path, baseline_path = directory / "ours.parquet", directory / "pandas.parquet"

    def generate_and_write() -> None:
        write_squares(generate_squares(N_SQUARES, 0.1, seed=13, variable_len=False), path)

    write = median_seconds(generate_and_write)
    read = median_seconds(lambda: read_squares(path))
    squares = generate_squares(N_SQUARES, 0.1, seed=13, variable_len=False)
    baseline_write = timed(lambda: pandas_write(squares, baseline_path))[0]
    baseline_write += timed(lambda: generate_squares(N_SQUARES, 0.1, 13, False))[0]
    baseline_read, padded = timed(lambda: pandas_read(baseline_path))
    if not np.array_equal(padded, read_squares(path).points):
        raise AssertionError("the pandas round trip and ours differ")
    return [
        f"| generate + write 1M squares to Parquet | {baseline_write:.2f} | {write:.2f} "
        f"| {baseline_write / write:.0f}x |",
        f"| read 1M squares back to padded arrays | {baseline_read:.2f} | {read:.2f} "
        f"| {baseline_read / read:.0f}x |",
    ]


BARE_STAGE = """
from pipeline.runtime.params import load_params
from pipeline.library.squares import write_squares
from pipeline.library.squares import generate_squares
dataset = load_params().dataset("fixed")
write_squares(generate_squares(dataset.n, dataset.noise, dataset.seed, False), "bare.parquet")
"""


def stage_fixed_cost(directory: Path) -> list[str]:
    shutil.copy(REPOSITORY / "params.yaml", directory / "params.yaml")
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPOSITORY),
        "MLFLOW_TRACKING_URI": f"sqlite:///{directory / 'mlflow.db'}",
    }

    def run(*arguments: str) -> None:
        subprocess.run(
            [sys.executable, *arguments],
            cwd=directory,
            env=environment,
            check=True,
            capture_output=True,
        )

    stage = ("-m", "pipeline", "generate", "fixed", "stage.parquet")
    run(*stage)  # creates the MLflow database, once, as the first stage of a pipeline does
    seconds = {
        "the Python interpreter alone (`python -c pass`)": ("-c", "pass"),
        "the stage's library calls alone (no MLflow, no CLI)": ("-c", BARE_STAGE),
        "importing the stage (MLflow included)": ("-c", "import pipeline.stages.generate"),
        "the whole stage: `python -m pipeline generate fixed`": stage,
    }
    for label, arguments in seconds.items():
        seconds[label] = median_seconds(lambda arguments=arguments: run(*arguments), repeats=5)
    torch_loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pipeline.stages.generate; print('torch' in sys.modules)",
        ],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    whole, bare = seconds[list(seconds)[-1]], seconds[list(seconds)[1]]
    return [
        *(f"| {label} | {value:.2f} |" for label, value in seconds.items()),
        f"| whole stage / library calls alone | {whole / bare:.1f}x |",
        f"| torch imported by the stage | {torch_loaded} |",
    ]


def main() -> None:
    print(
        f"Medians of {REPEATS} runs (stage: 5), one process, {os.cpu_count()} cores; "
        "baseline and ours in the same run.\n"
    )
    with tempfile.TemporaryDirectory() as scratch:
        print("| what | baseline s | ours s | speed-up |")
        print("|---|---:|---:|---:|")
        for row in [*generation(), *parquet(Path(scratch))]:
            print(row)
        n_default = load_params(REPOSITORY / "params.yaml").dataset("fixed").n
        print(f"\nA data stage's fixed cost (`generate@fixed`, {n_default} squares):\n")
        print("| what | seconds |")
        print("|---|---:|")
        for row in stage_fixed_cost(Path(scratch)):
            print(row)


if __name__ == "__main__":
    main()
