"""What every benchmark here shares: how sides are timed, summed up and printed.

    runs = interleave({"baseline": Side(slow), "ours": Side(fast)}, repeats=5)
    runs.cell("ours")                  # '0.421 (0.410-0.455)': median (min-max) seconds
    runs.ratio("baseline", "ours")     # Ratio: of the medians, and the per-repeat range
    print_runs_table(runs)             # every timed run, so each ratio can be checked

The rules, the same for every benchmark:
- every side runs once, untimed, before anything is timed (imports, caches, lazy
  initialisation such as torch's first optimiser step are paid there, by every side);
- then `repeats` rounds, each running every side once: in the given order in rounds 1,
  3, ..., in the reverse order in rounds 2, 4, ..., so no side always goes first or last
  and the sides see the same machine noise; every side gets the same number of runs;
- a side's figure is the median of its runs, with their spread (min-max);
- seconds are rounded to 3 significant digits (more for 1,000 s and up) BEFORE any
  ratio is taken: a ratio printed is the ratio of the medians as printed, and the range
  after it is that of the ratios of the runs of one round (as `print_runs_table` prints
  them), so a reader can recompute every ratio from printed seconds;
- the clock is `time.perf_counter`, around the side's `run` only: its `prepare` and
  `after` (building a model, checking a result) are not timed.
"""

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Side:
    """One thing to time: `run()`, or `run(prepare())` when `prepare` is given.

    `prepare` (untimed) runs before each run, the warm-up included; `after` (untimed)
    gets each run's return value, the warm-up's included (to check a result, or to
    collect what a run measured on its own).
    """

    run: Callable[..., Any]
    prepare: Callable[[], Any] | None = None
    after: Callable[[Any], None] | None = None

    def once(self) -> float:
        """Seconds of one run (prepare and after excluded)."""
        argument = (self.prepare(),) if self.prepare is not None else ()
        start = time.perf_counter()
        result = self.run(*argument)
        seconds = time.perf_counter() - start
        if self.after is not None:
            self.after(result)
        return seconds


def rounded(value: float) -> float:
    """`value` to 3 significant digits, or to whole units from 100 up."""
    return round(value, decimals(value))


def decimals(value: float) -> int:
    """The decimals that show `value` to 3 significant digits (0 from 100 up)."""
    if value == 0 or not math.isfinite(value):
        return 2
    return max(0, 2 - math.floor(math.log10(abs(value))))


def show(value: float) -> str:
    """`value` as printed: rounded as `rounded` rounds it."""
    return f"{rounded(value):.{decimals(value)}f}"


@dataclass(frozen=True)
class Summary:
    """Median and spread of some measured values, each rounded as printed."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Summary":
        values = [rounded(value) for value in values]
        return cls(rounded(statistics.median(values)), min(values), max(values))

    def cell(self) -> str:
        """'median (min-max)'; just the value when there was one run."""
        if self.low == self.high:
            return show(self.median)
        return f"{show(self.median)} ({show(self.low)}-{show(self.high)})"


@dataclass(frozen=True)
class Ratio:
    """numerator / denominator: of the printed medians, and the range of the paired ones."""

    of_medians: float
    low: float
    high: float

    @classmethod
    def of(cls, numerators: Sequence[float], denominators: Sequence[float]) -> "Ratio":
        if len(numerators) != len(denominators):
            raise ValueError("a ratio pairs runs: both sides need as many")
        paired = [rounded(a) / rounded(b) for a, b in zip(numerators, denominators, strict=True)]
        numerator, denominator = Summary.of(numerators), Summary.of(denominators)
        return cls(numerator.median / denominator.median, min(paired), max(paired))

    def cell(self, unit: str = "x") -> str:
        """'2.13x (2.05-2.20)': of the medians, then the range over rounds."""
        if show(self.low) == show(self.high):
            return f"{show(self.of_medians)}{unit}"
        return f"{show(self.of_medians)}{unit} ({show(self.low)}-{show(self.high)})"


@dataclass(frozen=True)
class Runs:
    """The timed runs of each side, round by round (the warm-up excluded)."""

    seconds: dict[str, list[float]]
    repeats: int

    def summary(self, name: str) -> Summary:
        return Summary.of(self.seconds[name])

    def cell(self, name: str) -> str:
        return self.summary(name).cell()

    def ratio(self, numerator: str, denominator: str) -> Ratio:
        return Ratio.of(self.seconds[numerator], self.seconds[denominator])


def interleave(sides: Mapping[str, Side | Callable[[], Any]], repeats: int) -> Runs:
    """Warm every side up once, then time `repeats` interleaved rounds of all of them."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    sides = {name: side if isinstance(side, Side) else Side(side) for name, side in sides.items()}
    for side in sides.values():
        side.once()  # the warm-up, untimed
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    for round_ in range(repeats):
        for name in order if round_ % 2 == 0 else reversed(order):
            seconds[name].append(sides[name].once())
    return Runs(seconds, repeats)


def runs_table(rows: Mapping[str, Sequence[float]], title: str = "side") -> list[str]:
    """Markdown lines: one row per series, one column per round, as rounded for ratios."""
    repeats = max((len(values) for values in rows.values()), default=0)
    lines = [
        f"| {title} | " + " | ".join(f"run {i + 1}" for i in range(repeats)) + " |",
        "|---|" + "---:|" * repeats,
    ]
    lines += [
        f"| {name} | " + " | ".join(map(show, values)) + " |" for name, values in rows.items()
    ]
    return lines


RUNS_TITLE = "Every timed run (s), round by round (rounds 2, 4, ... ran the sides in reverse):"


def print_runs_table(*runs: Runs, title: str = "side") -> None:
    """Every timed run's seconds, so the ranges of the ratios can be recomputed."""
    rows = {name: seconds for one in runs for name, seconds in one.seconds.items()}
    print(f"\n{RUNS_TITLE}\n")
    print("\n".join(runs_table(rows, title)))


def cpu_model() -> str:
    """The CPU's name, as /proc/cpuinfo gives it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def available_cpus() -> int:
    """What `nproc` counts (without its OMP_NUM_THREADS rule): the CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def torch_capability(pinned: str | None) -> str:
    """torch's CPU kernels: what the CPU supports, and what is run (`pinned`, if pinned)."""
    import torch

    best = "AVX512" if torch.cpu._is_avx512_supported() else None
    best = best or ("AVX2" if torch.cpu._is_avx2_supported() else "DEFAULT")
    if pinned is None:
        return (
            f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}"
        )
    return (
        f"torch {torch.__version__} with its CPU kernels pinned to {pinned.upper()} "
        f"(params.yaml's cpu_capability, as in every stage; this CPU supports {best})"
    )


def rounds(repeats: int) -> str:
    """How the timed runs were made, in words."""
    if repeats == 1:
        return "1 timed round (one run of each side)"
    return f"{repeats} interleaved rounds (every other one in reverse order)"


def header(title: str, repeats: int, pinned: str | None) -> str:
    """The lines above a benchmark's tables: what it is, the machine, how it was timed."""
    return (
        f"### {title}\n\n"
        f"Machine: nproc {available_cpus()}, {cpu_model()}, {torch_capability(pinned)}, "
        f"Python {platform.python_version()}. Timing: each side warmed up once (untimed), then "
        f"{rounds(repeats)}; "
        "seconds are median (min-max) of those runs; a ratio is that of the medians as "
        "printed, with the range of the ratios within one round.\n"
    )


def arguments(
    description: str, default_repeats: int, quick_repeats: int = 1
) -> argparse.ArgumentParser:
    """A parser with `--repeats N` and `--quick` (fewer repeats), for more to be added."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"timed rounds after the warm-up (default {default_repeats})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a short run: {quick_repeats} round(s) unless --repeats",
    )
    parser.set_defaults(default_repeats=default_repeats, quick_repeats=quick_repeats)
    return parser


def repeats_of(options: argparse.Namespace) -> int:
    """--repeats if given, else the quick or the default count; at least 1."""
    if options.repeats is not None:
        repeats = options.repeats
    else:
        repeats = options.quick_repeats if options.quick else options.default_repeats
    if repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    return repeats
