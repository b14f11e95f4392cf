"""A sweep through DVC's queue: queue the points not done, start workers, watch the tasks
end, and on Ctrl-C take the sweep's waiting tasks out of the queue.

DVC decides what runs (its queue) and what is restored instead of run (its run cache); this
module only watches, through `dvc queue status` and the experiments' git refs.
"""

import re
import subprocess
import time
from collections import Counter
from typing import Any

from pipeline.tools.sweep_plan import Point, Sweep, SweepError
from pipeline.tools.sweep_records import (
    Experiment,
    PointState,
    classify,
    dvc,
    dvc_failure,
    read_experiments,
)

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
LOCK_WAIT_S = 120
#: Looks in a row at the queue that find none of the sweep's experiments before a sweep
#: stopped by Ctrl-C says it has stopped; and that do not find one of its tasks before it
#: counts that task as gone (removed by hand).
QUIET_POLLS_TO_STOP = 3
UNSEEN_POLLS_TO_DROP = 3


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
        raise dvc_failure(command, result)


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


def run_queue(sweep: Sweep, params: dict[str, Any], jobs: int) -> bool:
    """Queue the points that are not done, run the queue with `jobs` workers and wait for
    every task to end: True. Ctrl-C stops the sweep (see `stop`): False; rerunning resumes."""
    started = time.monotonic()
    # DVC's records of many experiments take a while to read: say at once what is going on.
    print(f"sweep {sweep.name}: reading DVC's queue and experiments", flush=True)
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
        stop(sweep)
        return False
    return True


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


def stop(sweep: Sweep) -> None:
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
        return
    print(
        "stopped. Rerun the same command to resume: what finished is kept, the rest is "
        "queued again.",
        flush=True,
    )


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
