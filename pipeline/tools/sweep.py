"""Sweeps through DVC's experiment queue: one experiment per point, then one summary.

A sweep file (sweeps/noise.yaml) names one params.yaml key and its values, the variants, the
model seeds, and settings held fixed for the whole sweep. Each (value, seed) is one DVC
experiment, named `<sweep>-<value>-seed-<seed>`: `-S` sets the key, every variant's seed and
the fixed settings, and its targets are `evaluate@<variant>` (no plots, no report). DVC
decides the rest: which experiments exist and with which params (`dvc exp show --json`),
what runs (its queue), what is restored instead of run (its run cache).

    python -m pipeline.tools.sweep run SWEEP [-j N]     queue what is missing, run it, wait, summarize
    python -m pipeline.tools.sweep summary SWEEP        the summary of the experiments DVC holds
    python -m pipeline.tools.sweep matrix SWEEP         the experiments' names, as a JSON list
    python -m pipeline.tools.sweep run-one SWEEP NAME   one experiment, in this workspace
    python -m pipeline.tools.sweep pull SWEEP REMOTE    the sweep's experiments found on a git remote

The summary goes to data/sweeps/<sweep>/ (not a DVC output: no stage may read it) and to
MLflow as one run, `sweep@<sweep>`, whose children are the runs of its experiments.
"""

import argparse
import functools
import json
import math
import re
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.library.errors import ParamsError, PipelineError
from pipeline.runtime.params import params_from_values, read_yaml

SUMMARY_ROOT = Path("data/sweeps")
#: Where evaluate@<variant> writes its metrics (dvc.yaml), and the one the summary reads.
METRICS_FILE = "data/metrics/{variant}.json"
METRIC = "test_accuracy"
#: While the queue runs: seconds between two looks at the experiments' git refs (refs/exps,
#: which DVC writes when an experiment starts or ends; milliseconds each), and the most
#: between two reads of `dvc queue status` (a second of CPU each, on the machine the
#: experiments run on). The queue is read as soon as the refs move, then every
#: REFS_SETTLE_S until the progress shows it (DVC marks a task ended seconds after it
#: writes the experiment's ref), at most SETTLE_POLLS times.
REFS_POLL_S = 1
REFS_SETTLE_S = 3
SETTLE_POLLS = 10
QUEUE_POLL_S = 30
#: Seconds with work queued and fewer experiments running than workers asked for, before
#: the missing workers are started again.
IDLE_RESTART_S = 60
EXP_SHOW_ATTEMPTS = 5
LOCK_WAIT_S = 120
#: Looks in a row at the queue that find none of the sweep's experiments before a sweep
#: stopped by Ctrl-C says it has stopped; and that do not find one of its tasks before it
#: counts that task as gone (removed by hand).
QUIET_POLLS_TO_STOP = 3
UNSEEN_POLLS_TO_DROP = 3
SWEEP_KEYS = ("name", "param", "values", "variants", "seeds", "each_variant", "set")
REQUIRED_KEYS = SWEEP_KEYS[:5]
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
MAX_SEED = 2**32 - 1
EXIT_INTERRUPTED = 130


class SweepError(PipelineError):
    """A sweep file breaks the contract, or DVC refuses a step: one line for a person."""


# ---------------------------------------------------------------------------
# The sweep file.


@dataclass(frozen=True)
class Point:
    """One experiment of a sweep: a value of the swept param, one model seed, and every
    params.yaml key it sets (dotted key -> value, in the order `-S` gives them)."""

    name: str
    value: float
    seed: int
    overrides: dict[str, Any]

    def set_params(self) -> list[str]:
        """`-S key=value` for each override, values as YAML scalars (DVC parses them so)."""
        return [
            word
            for key, value in self.overrides.items()
            for word in ("-S", f"{key}={json.dumps(value)}")
        ]


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file."""

    name: str
    param: str
    values: tuple[float, ...]
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    each_variant: dict[str, Any]
    fixed: dict[str, Any]
    source: Path
    points: tuple[Point, ...]

    @property
    def targets(self) -> list[str]:
        """The stages each experiment reproduces (with what they need, nothing more)."""
        return [f"evaluate@{variant}" for variant in self.variants]

    @property
    def directory(self) -> Path:
        return SUMMARY_ROOT / self.name

    def point(self, name: str) -> Point:
        """The point named `name`; SweepError listing the names otherwise."""
        for point in self.points:
            if point.name == name:
                return point
        raise SweepError(
            f"{self.source}: no experiment {name!r} in this sweep "
            f"(python -m pipeline.tools.sweep matrix {self.source} lists them)"
        )

    def definition(self) -> dict[str, Any]:
        """The sweep as flat settings (for MLflow's params and the summary page)."""
        values = {
            "param": self.param,
            "values": ", ".join(format_value(value) for value in self.values),
            "variants": ", ".join(self.variants),
            "seeds": ", ".join(map(str, self.seeds)),
        }
        values |= {f"each_variant.{key}": value for key, value in self.each_variant.items()}
        return values | {f"set.{key}": value for key, value in self.fixed.items()}


def format_value(value: float) -> str:
    """A swept value as experiment names show it: 0.1, 1.0, 128 (Python's shortest repr)."""
    return repr(value)


def experiment_name(sweep_name: str, value: float, seed: int) -> str:
    return f"{sweep_name}-{format_value(value)}-seed-{seed}"


def load_sweep(path: Path, params: dict[str, Any]) -> Sweep:
    """Read and check the sweep file at `path` against params.yaml's `params`; every point's
    params must pass params.yaml's own checks. SweepError names the file and the key."""
    try:
        raw = read_yaml(path)
    except ParamsError as error:
        raise SweepError(str(error)) from None
    if not isinstance(raw, dict):
        raise SweepError(f"{path}: must be a mapping with keys {', '.join(REQUIRED_KEYS)}")
    unknown = sorted(set(raw) - set(SWEEP_KEYS))
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if unknown or missing:
        problem = f"unknown key {unknown[0]!r}" if unknown else f"missing key {missing[0]!r}"
        raise SweepError(f"{path}: {problem}; the keys are {', '.join(SWEEP_KEYS)}")

    def fail(key: str, problem: str) -> SweepError:
        return SweepError(f"{path}: {key} {problem}")

    name = raw["name"]
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise fail("name", f"must be lower-case letters, digits, '-' or '_', got {name!r}")
    param = raw["param"]
    if not isinstance(param, str) or not _is_scalar_key(params, param):
        raise fail("param", f"must be a key of params.yaml holding one value, got {param!r}")
    values = _distinct_list(raw["values"], "values", _is_number, "finite numbers", fail)
    models = params.get("models") or {}
    variants = _distinct_list(
        raw["variants"],
        "variants",
        lambda v: isinstance(v, str) and v in models,
        "keys of models",
        fail,
    )
    seeds = _distinct_list(
        raw["seeds"],
        "seeds",
        lambda s: _is_int(s) and 0 <= s <= MAX_SEED,
        f"integers 0 to {MAX_SEED}",
        fail,
    )
    each_variant = _mapping(raw.get("each_variant"), "each_variant", fail)
    for key, value in each_variant.items():
        if key == "seed" or not all(_is_scalar_key(params, f"models.{v}.{key}") for v in variants):
            raise fail(
                f"each_variant.{key}",
                "must be a setting of every variant (not its seed: seeds sets it)",
            )
        _check_scalar(value, f"each_variant.{key}", fail)
    fixed = _mapping(raw.get("set"), "set", fail)
    for key, value in fixed.items():
        if not _is_scalar_key(params, key):
            raise fail(f"set.{key}", "must be a key of params.yaml holding one value")
        _check_scalar(value, f"set.{key}", fail)

    points = []
    for value in values:
        for seed in seeds:
            overrides: dict[str, Any] = {param: value}
            for variant in variants:
                settings = {"seed": seed, **each_variant}
                for key, setting in settings.items():
                    _add_override(overrides, f"models.{variant}.{key}", setting, fail)
            for key, setting in fixed.items():
                _add_override(overrides, key, setting, fail)
            point = Point(experiment_name(name, value, seed), value, seed, overrides)
            try:
                params_from_values(
                    apply_overrides(params, overrides), Path(f"{path}, {point.name}")
                )
            except ParamsError as error:
                raise SweepError(str(error)) from None
            points.append(point)
    return Sweep(
        name,
        param,
        tuple(values),
        tuple(variants),
        tuple(seeds),
        each_variant,
        fixed,
        path,
        tuple(points),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _distinct_list(
    value: Any,
    key: str,
    valid: Callable[[Any], bool],
    what: str,
    fail: Callable[[str, str], SweepError],
) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise fail(key, f"must be a non-empty list of {what}")
    for item in value:
        if not valid(item):
            raise fail(key, f"must be {what}, got {item!r}")
    if len(set(value)) != len(value):
        raise fail(key, "must not repeat a value")
    return value


def _mapping(value: Any, key: str, fail: Callable[[str, str], SweepError]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(key, "must be a mapping of settings")
    return value


def _check_scalar(value: Any, key: str, fail: Callable[[str, str], SweepError]) -> None:
    if isinstance(value, dict | list) or value is None:
        raise fail(key, f"must be one value, got {value!r}")


def _add_override(
    overrides: dict[str, Any], key: str, value: Any, fail: Callable[[str, str], SweepError]
) -> None:
    if key in overrides:
        raise fail(key, "is set twice (by param, seeds, each_variant or set)")
    overrides[key] = value


def _is_scalar_key(params: dict[str, Any], key: str) -> bool:
    try:
        value = lookup(params, key)
    except KeyError:
        return False
    return not isinstance(value, dict | list)


def lookup(values: dict[str, Any], key: str) -> Any:
    """The value at a dotted key of nested mappings; KeyError if there is none."""
    for part in key.split("."):
        if not isinstance(values, dict) or part not in values:
            raise KeyError(key)
        values = values[part]
    return values


def apply_overrides(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of `params` with each dotted key set, as `dvc exp run -S` sets params.yaml."""
    result = json.loads(json.dumps(params))
    for key, value in overrides.items():
        *parents, last = key.split(".")
        lookup(result, ".".join(parents))[last] = value
    return result


# ---------------------------------------------------------------------------
# What DVC holds.


@dataclass(frozen=True)
class Experiment:
    """One entry of `dvc exp show --json`: a finished experiment or a queue task.

    state: success, queued, running or failed. rev: the experiment's commit (a queue task's
    stash commit until it has run). task: the queue task's id, if it went through the queue.
    """

    name: str
    state: str
    rev: str
    task: str | None
    params: dict[str, Any]
    metrics: dict[str, dict[str, Any]]


def parse_exp_show(show: list[dict[str, Any]]) -> tuple[str, list[Experiment]]:
    """The baseline commit and its experiments, from `dvc exp show --json`."""
    baselines = [entry for entry in show if entry.get("rev") != "workspace"]
    if not baselines:
        raise SweepError("dvc exp show lists no commit: commit the repository first")
    experiments = []
    for entry in baselines[0].get("experiments") or []:
        tip = entry["revs"][0]
        data = tip.get("data") or {}
        executor = entry.get("executor") or {}
        local = executor.get("local") or {}
        experiments.append(
            Experiment(
                name=entry.get("name") or tip.get("name") or tip["rev"][:7],
                state=executor.get("state") or "success",
                rev=tip["rev"],
                task=local.get("task_id"),
                params=((data.get("params") or {}).get("params.yaml") or {}).get("data") or {},
                metrics={
                    path: found["data"]
                    for path, found in (data.get("metrics") or {}).items()
                    if "data" in found
                },
            )
        )
    return baselines[0]["rev"], experiments


def read_experiments() -> tuple[str, list[Experiment]]:
    """`dvc exp show --json`, parsed (see parse_exp_show).

    While the queue runs, exp show fails now and then: a queue worker removes a temporary
    workspace it was listing. Such a failure is tried again, up to EXP_SHOW_ATTEMPTS times.
    """
    for attempt in range(1, EXP_SHOW_ATTEMPTS + 1):
        result = dvc("exp", "show", "--json", echo=False, check=attempt == EXP_SHOW_ATTEMPTS)
        if result.returncode == 0:
            break
        time.sleep(attempt)
    try:
        return parse_exp_show(json.loads(result.stdout))
    except json.JSONDecodeError:
        raise SweepError(f"dvc exp show --json printed no JSON: {result.stdout[:200]!r}") from None


@functools.cache
def lock_at(rev: str) -> dict[str, Any]:
    """dvc.lock as committed in `rev` (commits never change, so each is read once; with
    libyaml's parser: the pure-Python one takes half a second per lock)."""
    shown = subprocess.run(["git", "show", f"{rev}:dvc.lock"], capture_output=True, text=True)
    if shown.returncode != 0:
        return {"stages": {}}
    return yaml.load(shown.stdout, Loader=yaml.CSafeLoader) or {"stages": {}}


def stale_targets(
    lock: dict[str, Any], params: dict[str, Any], targets: Sequence[str]
) -> list[str]:
    """The targets whose results in `lock` were not made from `params`.

    A stage's record is current when every param it recorded equals `params` and every
    dependency another stage writes has that stage's recorded md5, that stage being current
    too. An experiment reproduces its targets only: a variant added to a sweep after its
    experiments ran keeps the baseline's record there, with the baseline's data and seeds.
    """
    stages = lock.get("stages") or {}
    writer = {
        out["path"]: stage for stage, entry in stages.items() for out in entry.get("outs", [])
    }
    written = {
        out["path"]: out.get("md5") for entry in stages.values() for out in entry.get("outs", [])
    }

    @functools.cache
    def current(stage: str) -> bool:
        entry = stages.get(stage)
        if entry is None:
            return False
        for recorded in (entry.get("params") or {}).values():
            for key, value in recorded.items():
                try:
                    if lookup(params, key) != value:
                        return False
                except KeyError:
                    return False
        for dep in entry.get("deps", []):
            path = dep["path"]
            if path in writer and (written[path] != dep.get("md5") or not current(writer[path])):
                return False
        return True

    return [target for target in targets if not current(target)]


@dataclass(frozen=True)
class PointState:
    """Where a point of the sweep stands: done, running, queued, failed or missing, with the
    experiment that says so, and the entries under its name that belong to other params."""

    kind: str
    experiment: Experiment | None
    obsolete: tuple[Experiment, ...] = ()
    reason: str = ""


def classify(
    sweep: Sweep,
    params: dict[str, Any],
    experiments: Sequence[Experiment],
    lock_of: Callable[[str], dict[str, Any]] = lock_at,
) -> dict[str, PointState]:
    """Each point's state, from DVC's experiments: an experiment counts for a point when it has
    the point's name and exactly the params the point asks for (params.yaml with its
    overrides); a finished one also needs its evaluate stages current for those params."""
    states = {}
    for point in sweep.points:
        wanted = apply_overrides(params, point.overrides)
        named = [experiment for experiment in experiments if experiment.name == point.name]
        same = [experiment for experiment in named if experiment.params == wanted]
        by_state: dict[str, list[Experiment]] = {}
        for experiment in same:
            by_state.setdefault(experiment.state, []).append(experiment)
        obsolete = [experiment for experiment in named if experiment not in same]
        reason = "its params differ" if obsolete else ""
        done = None
        for experiment in by_state.get("success", []):
            stale = stale_targets(lock_of(experiment.rev), wanted, sweep.targets)
            if stale:
                obsolete.append(experiment)
                reason = f"{', '.join(stale)} did not run in it"
            else:
                done = experiment
        # Failed tasks are kept until the point is queued again, then removed.
        obsolete += by_state.get("failed", [])
        if done is not None:
            states[point.name] = PointState("done", done, tuple(obsolete), reason)
            continue
        kind = next((kind for kind in ("running", "queued", "failed") if by_state.get(kind)), None)
        if kind is None:
            states[point.name] = PointState("missing", None, tuple(obsolete), reason)
        else:
            states[point.name] = PointState(kind, by_state[kind][0], tuple(obsolete), reason)
    return states


# ---------------------------------------------------------------------------
# Running DVC.


def dvc(
    *args: str, echo: bool = True, check: bool = True, output: str = "capture"
) -> subprocess.CompletedProcess:
    """Run `dvc args...`, printing the command first when `echo`; SweepError if it fails and
    `check`, with the last line DVC wrote.

    output: "capture" (returned), "show" (to this process's terminal) or "discard", which
    `dvc queue start` needs: the workers it leaves behind keep its output open until they
    end, so a captured start would not return before the whole queue had run.
    """
    command = ["dvc", *args]
    if echo:
        print(f"$ {shlex.join(command)}", flush=True)
    streams = {
        "capture": {"capture_output": True},
        "show": {},
        "discard": {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL},
    }[output]
    try:
        result = subprocess.run(command, text=True, stdin=subprocess.DEVNULL, **streams)
    except FileNotFoundError:
        raise SweepError(
            "dvc is not on PATH: activate the environment (source .venv/bin/activate) "
            "or use make sweep"
        ) from None
    if check and result.returncode != 0:
        raise _failure(args, result)
    return result


def _failure(args: Sequence[str], result: subprocess.CompletedProcess) -> SweepError:
    """`dvc args` failed: the command, its status and the last line DVC wrote."""
    lines = f"{result.stderr or ''}{result.stdout or ''}".strip().splitlines()
    said = f": {lines[-1].strip()}" if lines else ""
    return SweepError(f"{shlex.join(['dvc', *args])} failed (exit {result.returncode}){said}")


def queue_point(point: Point, targets: list[str]) -> None:
    """`dvc exp run --queue` for one point. A queue worker taking a task holds DVC's
    experiments lock (.dvc/tmp/exps/rwlock) for a moment, and queueing then fails at once:
    it is tried again, a second apart, for up to LOCK_WAIT_S."""
    command = ["exp", "run", "--queue", "-n", point.name, *point.set_params(), *targets]
    deadline = time.monotonic() + LOCK_WAIT_S
    result = dvc(*command, check=False)
    while result.returncode != 0 and "rwlock" in f"{result.stderr}{result.stdout}":
        if time.monotonic() > deadline:
            break
        print("  (DVC's experiments are locked by a queue worker: trying again)", flush=True)
        time.sleep(1)
        result = dvc(*command, echo=False, check=False)
    if result.returncode != 0:
        raise _failure(command, result)


def task_of(experiment: Experiment) -> str:
    """How the queue names an experiment's task: its id, unambiguous where names repeat."""
    return experiment.task or experiment.rev


def failure_line(task: str) -> str:
    """A failed task's error, as the stage said it (`error: ...`), or where to read it."""
    logs = dvc("queue", "logs", task, echo=False, check=False).stdout or ""
    errors = [line.strip() for line in logs.splitlines() if line.lower().startswith("error")]
    said = next(
        (line for line in errors if line.startswith("error:")), errors[-1] if errors else ""
    )
    return f"{said} (dvc queue logs {task})" if said else f"see dvc queue logs {task}"


#: A row of `dvc queue status`: task id, name, creation time, status.
QUEUE_ROW = re.compile(r"^([0-9a-f]{7})\s+(\S+)\s.*\s(Queued|Running|Success|Failed)\s*$")


def queue_tasks() -> list[tuple[str, str, str]]:
    """(short id, name, status) of every task `dvc queue status` lists; status is Queued,
    Running, Success or Failed. A second of CPU, where `dvc exp show` takes several once
    many experiments exist."""
    listed = dvc("queue", "status", echo=False).stdout
    return [row.groups() for row in map(QUEUE_ROW.match, listed.splitlines()) if row]


# ---------------------------------------------------------------------------
# Commands.


def run(sweep: Sweep, params: dict[str, Any], jobs: int) -> int:
    """Queue the points that are not done, run the queue with `jobs` workers, wait, and
    summarize. Ctrl-C stops the sweep's running experiments; rerunning resumes."""
    started = time.monotonic()
    try:
        before = {task for task, _, _ in queue_tasks()}
        _, experiments = read_experiments()
        states = classify(sweep, params, experiments)
        counts = Counter(state.kind for state in states.values())
        print(
            f"sweep {sweep.name}: {len(sweep.points)} experiments; {counts['done']} done, "
            f"{counts['running'] + counts['queued']} in the queue, "
            f"{counts['missing'] + counts['failed']} to queue",
            flush=True,
        )
        workers = False
        for point in sweep.points:
            state = states[point.name]
            _clear(point, state)
            if state.kind in ("missing", "failed"):
                queue_point(point, sweep.targets)
            if state.kind != "done" and not workers:  # they run while the rest is queued
                dvc("queue", "start", "-j", str(jobs), output="discard")
                workers = True
        if workers:
            wait(sweep, jobs, started, counts["done"], before)
    except KeyboardInterrupt:
        return stop(sweep)
    return summary(sweep, params)


def _clear(point: Point, state: PointState) -> None:
    """Remove what stands under the point's name but is not it: a finished experiment with
    other params (or stale results), a queue task with other params, a failed task."""
    for experiment in state.obsolete:
        if experiment.state == "running":
            raise SweepError(
                f"{point.name} is running with other params than the sweep's; let it end or "
                f"stop it: dvc queue kill {task_of(experiment)[:7]}"
            )
        if experiment.state == "success":
            print(
                f"{point.name}: replacing the experiment of that name ({state.reason})", flush=True
            )
            dvc("exp", "remove", experiment.name)
        else:
            dvc("queue", "remove", task_of(experiment))


def wait(sweep: Sweep, jobs: int, started: float, done: int, before: set[str]) -> None:
    """Watch the sweep's queue tasks until each has ended, printing progress when it changes
    and each failure by name, with its error, as it happens.

    done: points already done; before: the queue's task ids before this run queued any.
    The sweep's tasks are its names' tasks that are new, or were queued or running.
    """
    names = {point.name for point in sweep.points}
    tracked: dict[str, str] = {}  # task id -> experiment name
    unseen: Counter[str] = Counter()  # polls in a row a tracked task was not listed
    shown, reported, quiet, refs, settle = "", set(), 0, exp_refs(), 0
    short_since: float | None = None  # since when fewer run than could
    while True:
        status = {}
        for task, name, state in queue_tasks():
            if name in names and (task not in before or state in ("Queued", "Running")):
                tracked[task] = name
                status[task] = state
        for task in tracked:
            # A task that a worker is taking is listed nowhere for a moment; one that stays
            # away was removed by hand.
            unseen[task] = 0 if task in status else unseen[task] + 1
            if task not in status:
                status[task] = "Running" if unseen[task] < UNSEEN_POLLS_TO_DROP else "Failed"
        counts = Counter(status.values())
        for task, state in status.items():
            if state == "Failed" and task not in reported:
                reported.add(task)
                print(f"failed: {tracked[task]}: {failure_line(task)}", flush=True)
        progress = (
            f"{done + counts['Success']} of {len(sweep.points)} done, {counts['Running']} "
            f"running, {counts['Queued']} queued, {counts['Failed']} failed"
        )
        if progress != shown:
            print(f"[{_elapsed(started)}] {progress}", flush=True)
            shown, settle = progress, 0
        # Ended: every point accounted for, or nothing of the sweep seen in the queue for a
        # while (a task removed by hand before it was ever listed).
        quiet = quiet + 1 if counts["Running"] == counts["Queued"] == 0 else 0
        ended = counts["Success"] + counts["Failed"]
        if quiet and (done + ended >= len(sweep.points) or quiet >= UNSEEN_POLLS_TO_DROP):
            return
        # A worker leaves when it finds the queue empty for a while (say, while the sweep was
        # still queueing), sometimes even with tasks left: start the missing ones again.
        if not (counts["Queued"] > 0 and counts["Running"] < jobs):
            short_since = None
        elif short_since is None:
            short_since = time.monotonic()
        elif time.monotonic() - short_since >= IDLE_RESTART_S:
            dvc("queue", "start", "-j", str(jobs), output="discard")
            short_since = None
        # The next read: when the refs move, or REFS_SETTLE_S after the last read while the
        # progress has not caught up with them, or at the latest after QUEUE_POLL_S.
        deadline = time.monotonic() + (REFS_SETTLE_S if settle else QUEUE_POLL_S)
        settle = max(settle - 1, 0)
        while (now := exp_refs()) == refs and time.monotonic() < deadline:
            time.sleep(REFS_POLL_S)
        if now != refs:
            refs, settle = now, SETTLE_POLLS


def exp_refs() -> str:
    """The experiments' git refs and their commits: a change means an experiment moved."""
    listed = subprocess.run(
        ["git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps"],
        capture_output=True,
        text=True,
    )
    return listed.stdout


def stop(sweep: Sweep) -> int:
    """After Ctrl-C: take the sweep's waiting experiments out of the queue and let the
    running ones end, so that a rerun finds the queue empty of them and queues again what
    did not run. A second Ctrl-C leaves at once; what runs then ends on its own.

    Running experiments are not killed: `dvc queue kill` races with a worker that has just
    taken a task (it can mark the task failed while the worker runs it anyway)."""
    print(
        "\ninterrupted: taking the sweep's experiments out of the queue; those running "
        "will end (Ctrl-C again to leave now)",
        flush=True,
    )
    ours = {point.name for point in sweep.points}
    running: list[str] = []
    quiet = 0
    try:
        while quiet < QUIET_POLLS_TO_STOP:
            tasks = [(task, name, state) for task, name, state in queue_tasks() if name in ours]
            queued = [task for task, _, state in tasks if state == "Queued"]
            now_running = sorted(name for _, name, state in tasks if state == "Running")
            # All at once, else one by one: a worker may have taken one meanwhile.
            if queued and _dvc_failed("queue", "remove", *queued) and len(queued) > 1:
                for task in queued:
                    _dvc_failed("queue", "remove", task)
            if now_running and now_running != running:
                print(f"waiting for: {', '.join(now_running)}", flush=True)
            running = now_running
            # A task a worker is taking shows neither as queued nor as running for a moment.
            quiet = quiet + 1 if not queued and not running else 0
            time.sleep(1)
    except KeyboardInterrupt:
        print(
            f"left running: {', '.join(running) or 'nothing'}; they end on their own. Rerun "
            "the same command to resume.",
            flush=True,
        )
        return EXIT_INTERRUPTED
    print(
        "stopped. Rerun the same command to resume: what finished is kept, the rest is "
        "queued again.",
        flush=True,
    )
    return EXIT_INTERRUPTED


def _dvc_failed(*args: str) -> bool:
    """Run a dvc command that may fail harmlessly (its task moved on meanwhile); if it
    failed, print DVC's last line and return True."""
    result = dvc(*args, check=False)
    if result.returncode == 0:
        return False
    lines = f"{result.stderr}{result.stdout}".strip().splitlines()
    print(f"  ({lines[-1].strip() if lines else f'exit {result.returncode}'})", flush=True)
    return True


def _elapsed(started: float) -> str:
    seconds = int(time.monotonic() - started)
    return f"{seconds // 60:d}m{seconds % 60:02d}s"


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
        for name in ("accuracy.png", "accuracy.csv", "experiments.csv", "README.md")
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
            return run(sweep, params, args.jobs)
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
