"""What DVC holds for a sweep, and how it is asked: its experiments and their params
(`dvc exp show --json`), the dvc.lock each committed, and so which points are done.

A point counts as done only when DVC holds an experiment of its name, with exactly its
params, whose evaluate stages ran for those params; the rest is queued again (see
pipeline/tools/sweep_queue.py). Every DVC command goes through `dvc`: a failure is one line.
"""

import functools
import json
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from pipeline.tools.sweep_plan import Sweep, SweepError, apply_overrides, lookup

EXP_SHOW_ATTEMPTS = 5


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
        raise dvc_failure(args, result)
    return result


def dvc_failure(args: Sequence[str], result: subprocess.CompletedProcess) -> SweepError:
    """`dvc args` failed: the command, its status and the last line DVC wrote."""
    lines = f"{result.stderr or ''}{result.stdout or ''}".strip().splitlines()
    said = f": {lines[-1].strip()}" if lines else ""
    return SweepError(f"{shlex.join(['dvc', *args])} failed (exit {result.returncode}){said}")
