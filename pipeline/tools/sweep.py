"""Sweeps through DVC's experiment queue: one experiment per point, then one summary.

A sweep file (sweeps/noise.yaml) names one params.yaml key and its values, the variants, the
model seeds, and settings held fixed for the whole sweep (pipeline/tools/sweep_plan.py). Each
(value, seed) is one DVC experiment, named `<sweep>-<value>-seed-<seed>`: `-S` sets the key,
every variant's seed and the fixed settings, and its targets are `evaluate@<variant>` (no
plots, no report). DVC decides the rest: which experiments exist and with which params
(`dvc exp show --json`, pipeline/tools/sweep_records.py), what runs (its queue,
pipeline/tools/sweep_queue.py), what is restored instead of run (its run cache).

    python -m pipeline.tools.sweep run SWEEP [-j N]    queue what is missing, run, summarize
    python -m pipeline.tools.sweep summary SWEEP       the summary of the experiments DVC holds
    python -m pipeline.tools.sweep matrix SWEEP        the experiments' names, as a JSON list
    python -m pipeline.tools.sweep run-one SWEEP NAME  one experiment, in this workspace
    python -m pipeline.tools.sweep pull SWEEP REMOTE   the sweep's experiments on a git remote

The summary goes to data/sweeps/<sweep>/ (not a DVC output: no stage may read it) and to
MLflow as one run, `sweep@<sweep>`, whose children are the runs of its experiments.
"""

import argparse
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.library.errors import ParamsError, PipelineError
from pipeline.runtime import store
from pipeline.runtime.params import read_yaml
from pipeline.tools.sweep_plan import Sweep, SweepError, load_sweep
from pipeline.tools.sweep_queue import run_queue
from pipeline.tools.sweep_records import classify, dvc, read_experiments

#: Where evaluate@<variant> writes its metrics (dvc.yaml), and the one the summary reads.
METRICS_FILE = "data/metrics/{variant}.json"
METRIC = "test_accuracy"
#: Where a running sweep holds its lock: one sweep per sweep file at a time.
LOCKS = Path(".dvc/tmp/sweeps")


class Interruption:
    """SIGTERM and SIGHUP stop a sweep as Ctrl-C does (a KeyboardInterrupt), noting which came,
    so that the exit status is 128 + the signal's number."""

    def __init__(self) -> None:
        self.signum = signal.SIGINT
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._interrupt)

    def _interrupt(self, signum: int, _frame: object) -> None:
        self.signum = signal.Signals(signum)
        raise KeyboardInterrupt

    @property
    def status(self) -> int:
        return 128 + self.signum


@contextmanager
def held(sweep_file: Path, name: str) -> Iterator[None]:
    """Hold the sweep's lock while it runs; SweepError naming who holds it otherwise."""
    LOCKS.mkdir(parents=True, exist_ok=True)
    path = LOCKS / f"{name}.lock"
    with path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise SweepError(
                f"{sweep_file}: sweep {name} is already running ({holder}); wait for it, or "
                "stop it with Ctrl-C"
            ) from None
        lock.seek(0)
        lock.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        lock.write(f"pid {os.getpid()} on {os.uname().nodename}, since {started}\n")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)


def summary(sweep: Sweep, params: dict[str, Any]) -> int:
    """Write data/sweeps/<sweep>/ from the experiments DVC holds, and log it to MLflow; exit
    status 1 if a point of the sweep is not in it."""
    from pipeline.runtime import tracking  # matplotlib, MLflow: only when summarizing
    from pipeline.tools import sweep_summary

    baseline, experiments = read_experiments()
    states = classify(sweep, params, experiments)
    results, revs, why_missing = [], {}, {}
    files = [METRICS_FILE.format(variant=variant) for variant in sweep.variants]
    for point in sweep.points:
        state = states[point.name]
        metrics = state.experiment.metrics if state.kind == "done" else {}
        if state.kind != "done" or any(METRIC not in metrics.get(file, {}) for file in files):
            why_missing[point.name] = (
                state.kind if state.kind != "done" else "its metrics are not in the DVC cache"
            )
            continue
        revs[point.name] = state.experiment.rev
        for variant, file in zip(sweep.variants, files, strict=True):
            result = sweep_summary.Result(
                point.name, point.value, point.seed, variant, metrics[file][METRIC]
            )
            results.append(result)
    if not results:
        raise SweepError(
            f"{sweep.source}: no finished experiment of this sweep under commit {baseline[:7]}: "
            f"run it first (make sweep SWEEP={sweep.source})"
        )
    spreads = sweep_summary.summarize(results, sweep.variants)
    paths = {
        name: sweep.directory / name
        for name in ("accuracy.png", "accuracy.csv", "experiments.csv", "README.md", "index.html")
    }
    seeds = f"{len(sweep.seeds)} model seed{'s' if len(sweep.seeds) > 1 else ''}"
    sweep_summary.draw_accuracy(
        spreads,
        sweep.param,
        sweep.variants,
        f"Test accuracy against {sweep.param} (sweep {sweep.name}): the mean over {seeds}, "
        "with a band from the lowest to the highest",
        paths["accuracy.png"],
    )
    sweep_summary.write_spreads_csv(spreads, sweep.param, paths["accuracy.csv"])
    sweep_summary.write_results_csv(results, sweep.param, revs, paths["experiments.csv"])
    table = sweep_summary.markdown_table(spreads, sweep.param, sweep.variants)
    sweep_summary.write_page(
        paths["README.md"],
        f"Sweep `{sweep.name}`: test accuracy against `{sweep.param}`",
        _page_intro(sweep, baseline, revs, seeds),
        _page_sections(sweep, table, revs, why_missing),
    )
    sweep_summary.write_html_page(
        paths["index.html"],
        f"Sweep {sweep.name}: test accuracy against {sweep.param}",
        paths["accuracy.png"],
        spreads,
        sweep.param,
        sweep.variants,
    )
    print(f"summary: {', '.join(str(path) for path in paths.values())}", flush=True)
    for name, why in why_missing.items():
        print(f"not in the summary: {name} ({why})", flush=True)
    means = {
        f"mean_{METRIC}.{variant}": sweep_summary.mean(
            [result.test_accuracy for result in results if result.variant == variant]
        )
        for variant in sweep.variants
    }
    run_id = tracking.log_sweep(
        sweep.name, sweep.definition(), baseline, sorted(revs), list(paths.values()), means
    )
    print(
        f"MLflow: run {run_id} (tags.`dvc.sweep` = '{sweep.name}'), with its experiments' runs "
        "as children",
        flush=True,
    )
    return 1 if why_missing else 0


def _page_intro(sweep: Sweep, baseline: str, revs: dict[str, str], seeds: str) -> str:
    return (
        f"{len(revs)} of {len(sweep.points)} experiments ({len(sweep.values)} values x {seeds}) "
        f"of `{sweep.source}`, on commit `{baseline[:7]}`, as `dvc exp show --json` reports "
        f"them; written by `python -m pipeline.tools.sweep summary {sweep.source}`.\n\n"
        f"![Test accuracy against {sweep.param}](accuracy.png)\n"
    )


def _page_sections(
    sweep: Sweep, table: str, revs: dict[str, str], why_missing: dict[str, str]
) -> list[tuple[str, str]]:
    settings = "\n".join(f"- `{key}`: {value}" for key, value in sweep.definition().items())
    experiments = "\n".join(f"- `{name}`: commit `{rev[:7]}`" for name, rev in revs.items())
    sections = [
        (
            "Test accuracy",
            "Each cell: the mean over the seeds (lowest-highest). `accuracy.csv` adds the "
            "standard deviation; `experiments.csv` holds every experiment's accuracy.\n\n" + table,
        ),
        ("Settings", settings),
        (
            "Experiments",
            f"{experiments}\n\nIn MLflow, one experiment's runs: "
            "``tags.`dvc.exp_name` = '<experiment>'``; this summary's run: "
            f"``tags.`dvc.sweep` = '{sweep.name}'``, whose children they are.",
        ),
    ]
    if why_missing:
        lines = "\n".join(f"- `{name}`: {why}" for name, why in why_missing.items())
        sections.append(("Not in the summary", lines))
    return sections


def matrix(sweep: Sweep) -> int:
    """Print the experiments' names as one JSON list (a GitHub job matrix)."""
    print(json.dumps([point.name for point in sweep.points]))
    return 0


def run_one(sweep: Sweep, name: str) -> int:
    """Run one experiment of the sweep in this workspace (`dvc exp run`, not the queue)."""
    point = sweep.point(name)
    return dvc(
        "exp",
        "run",
        "-n",
        point.name,
        *point.set_params(),
        *sweep.targets,
        output="show",
        check=False,
    ).returncode


def pull(sweep: Sweep, remote: str) -> int:
    """`dvc exp pull` the sweep's experiments that `remote` holds for this commit; name the
    ones it lacks."""
    listed = set(dvc("exp", "list", "--name-only", remote).stdout.split())
    found = [point.name for point in sweep.points if point.name in listed]
    for name in (point.name for point in sweep.points if point.name not in listed):
        print(f"not on {remote}: {name}", flush=True)
    if found:
        dvc("exp", "pull", remote, *found, output="show")
    return 0 if found else 1


def main(argv: list[str]) -> int:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.tools.sweep", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command, help_text in (
        ("run", "queue, run and summarize a sweep"),
        ("summary", "summarize the sweep's finished experiments"),
        ("matrix", "print the experiments' names as a JSON list"),
        ("run-one", "run one experiment of the sweep in this workspace"),
        ("pull", "dvc exp pull the sweep's experiments from a git remote"),
    ):
        sub = commands.add_parser(command, help=help_text)
        sub.add_argument("sweep", type=Path, help="the sweep file, e.g. sweeps/noise.yaml")
        if command == "run":
            sub.add_argument("-j", "--jobs", type=int, default=2, help="queue workers (default 2)")
        if command == "run-one":
            sub.add_argument("experiment", help="an experiment's name (see matrix)")
        if command == "pull":
            sub.add_argument("remote", help="a git remote, e.g. origin")
    args = parser.parse_args(argv)
    # The sweep's stages (run by DVC's queue workers, which inherit this environment) and
    # its summary log to an experiment of their own, beside the pipeline's.
    os.environ["MLFLOW_EXPERIMENT_NAME"] = store.sweeps_experiment_name()
    try:
        if not Path("dvc.yaml").is_file():
            raise SweepError("run from the repository's root (no dvc.yaml here)")
        try:
            params = read_yaml(Path("params.yaml"))
        except ParamsError as error:
            raise SweepError(str(error)) from None
        sweep = load_sweep(args.sweep, params)
        if args.command == "run":
            if args.jobs < 1:
                raise SweepError(f"--jobs must be at least 1, got {args.jobs}")
            interruption = Interruption()
            with held(args.sweep, sweep.name):
                if not run_queue(sweep, params, args.jobs):
                    return interruption.status
            return summary(sweep, params)
        if args.command == "summary":
            return summary(sweep, params)
        if args.command == "matrix":
            return matrix(sweep)
        if args.command == "run-one":
            return run_one(sweep, args.experiment)
        return pull(sweep, args.remote)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
