"""Signals swept across a stage's whole life: Ctrl-C, SIGTERM and SIGHUP stop it cleanly
whenever they land (run KILLED, no output changed, 128 + n), or let it finish."""

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import (
    GENERATE,
    HANDLED_SIGNALS,
    TRAIN,
    TRAIN_OUTPUTS,
    Run,
    Workdir,
    holds_a_socket,
    process_alive,
    processes_in,
    small_params,
    wait_for,
)


@dataclass(frozen=True)
class Moment:
    """When a trial's signal goes: at `fraction` of a clean run's duration, or on `event`."""

    fraction: float | None = None
    event: str | None = None  # a key of EVENTS

    def __str__(self) -> str:
        return f"{self.fraction:.2f} D" if self.event is None else self.event


@dataclass
class Outcome:
    """What one trial did, and what is wrong with it."""

    signals: tuple[int, ...]
    moment: Moment
    delivered: list[bool | None]  # True: to a live process; None: it may have exited
    status: int
    statuses: list[str]
    outputs: str
    stderr: str
    problems: list[str] = field(default_factory=list)

    def row(self) -> str:
        names = "+".join(signal.Signals(s).name for s in self.signals)
        return (
            f"{names:<15} {self.moment!s:<13} delivered={self.delivered!s:<14} "
            f"exit={self.status:<4} runs={self.statuses!s:<14} outputs={self.outputs:<8} "
            f"{'; '.join(self.problems) or 'ok'}"
        )


@dataclass
class SignalSubject:
    """A stage to signal, with its previous outputs and a clean run's outputs and duration."""

    workdir: Workdir
    args: tuple[str, ...]
    outputs: tuple[str, ...]
    previous: dict[str, str | None]
    new: dict[str, str | None]
    duration: float
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def prepare(
        cls,
        workdir: Workdir,
        args: tuple[str, ...],
        outputs: tuple[str, ...],
        previous_params: dict,
        params: dict,
        env: dict[str, str] | None = None,
    ) -> "SignalSubject":
        env = env or {}
        workdir.write_params(previous_params)
        workdir.succeed(*args, env=env)
        previous = workdir.digests(outputs)
        for path in outputs:
            saved = workdir.root / "previous" / path
            saved.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(workdir.root / path, saved)
        workdir.write_params(params)
        duration = workdir.succeed(*args, env=env)
        new = workdir.digests(outputs)
        assert new != previous
        subject = cls(workdir, args, outputs, previous, new, duration, env)
        subject.restore_previous()
        return subject

    def restore_previous(self) -> None:
        for path in self.outputs:
            shutil.copy2(self.workdir.root / "previous" / path, self.workdir.root / path)

    def outputs_state(self) -> str:
        found = self.workdir.digests(self.outputs)
        if found == self.previous:
            return "previous"
        if found == self.new:
            return "new"
        return "MIXED:" + ",".join(
            Path(p).name
            for p, digest in found.items()
            if digest not in (self.previous[p], self.new[p])
        )


#: Moments of a stage's life seen from outside: its run and its outputs.
EVENTS: dict[str, Callable[[list[Run], "SignalSubject"], bool]] = {
    # The client has connected to its stage server (a socket among its descriptors).
    "client connected": lambda _, subject: any(
        map(holds_a_socket, processes_in(subject.workdir.root))
    ),
    # The client and the stage's own process (a server's child, once it took the client's
    # working directory) are both there.
    "stage process started": lambda _, subject: len(processes_in(subject.workdir.root)) >= 2,
    "run started": lambda runs, _: bool(runs),
    "run recording": lambda runs, _: any(run.metric_count for run in runs),
    "outputs committed": lambda _, subject: subject.outputs_state() != "previous",
    "run finished": lambda runs, _: any(run.status == "FINISHED" for run in runs),
}


def signal_process(process: subprocess.Popen, signum: int) -> bool | None:
    """Send `signum`; True if it reached a live process, False if it had exited, None if
    it exited so close to the signal that which came first cannot be told."""
    if process.poll() is not None:
        return False
    os.kill(process.pid, signum)
    return True if process_alive(process.pid) else None


def trial(subject: SignalSubject, signals: tuple[int, ...], moment: Moment) -> Outcome:
    """Run the stage once, signal it at `moment` (then 5 ms apart), and judge the result."""
    workdir = subject.workdir
    subject.restore_previous()
    known = {run.id for run in workdir.runs()}

    def new_runs() -> list[Run]:
        return [run for run in workdir.runs() if run.id not in known]

    process = workdir.start(*subject.args, env=subject.env)
    started = time.monotonic()
    if moment.event is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(
                timeout=max(0.0, moment.fraction * subject.duration - (time.monotonic() - started))
            )
    else:
        happened = EVENTS[moment.event]
        wait_for(
            lambda: process.poll() is not None or happened(new_runs(), subject),
            120,
            moment.event,
        )
    delivered = []
    for index, signum in enumerate(signals):
        if index:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.005)
        delivered.append(signal_process(process, signum))
    _, stderr = process.communicate(timeout=300)
    wait_for(lambda: not processes_in(workdir.root), 60, "the stage's processes to end")
    runs = new_runs()
    outcome = Outcome(
        signals,
        moment,
        delivered,
        process.returncode,
        [r.status for r in runs],
        subject.outputs_state(),
        stderr,
    )
    judge(outcome, subject, runs)
    return outcome


def judge(outcome: Outcome, subject: SignalSubject, runs: list[Run]) -> None:
    """Note every way the trial broke the contract in stage.py's docstring."""
    problems = outcome.problems
    allowed = {0} | {128 + s for s in outcome.signals} | {-s for s in outcome.signals}
    if outcome.status not in allowed:
        problems.append(f"exit {outcome.status}")
    # Python's own Ctrl-C before the client installs its handler (its first imports) is a
    # KeyboardInterrupt traceback and exit -2; nothing of the stage ran. Any other traceback
    # is a failure to stop cleanly.
    interpreter_start = outcome.status == -signal.SIGINT and not runs
    if "Traceback" in outcome.stderr and not (
        interpreter_start and outcome.stderr.rstrip().endswith("KeyboardInterrupt")
    ):
        problems.append("a traceback on stderr")
    if outcome.status == 0 and True in outcome.delivered:
        problems.append("exit 0 after a signal reached the live process")
    if "RUNNING" in outcome.statuses:
        problems.append("run left RUNNING")
    if len(runs) > 1:
        problems.append(f"{len(runs)} runs")
    if "FAILED" in outcome.statuses:
        problems.append("run FAILED, not KILLED")
    if outcome.outputs not in ("previous", "new"):
        problems.append("partial outputs")
    if outcome.statuses == ["FINISHED"]:
        if outcome.outputs != "new":
            problems.append("FINISHED but outputs not the new ones")
        tags = {k.removeprefix("output/"): v for k, v in runs[0].output_tags().items()}
        if tags != subject.new:
            problems.append("FINISHED run's output tags are not the outputs' md5s")
    elif outcome.outputs != "previous":
        problems.append(f"outputs changed though the run is {outcome.statuses}")
    if outcome.status == 0 and outcome.statuses != ["FINISHED"]:
        problems.append("exit 0 without a FINISHED run")
    if subject.workdir.leftovers():
        problems.append(f"leftovers {subject.workdir.leftovers()}")


def assert_all_clean(outcomes: list[Outcome]) -> None:
    table = "\n".join(outcome.row() for outcome in outcomes)
    print(table)  # shown with -rP; the failure message holds it too
    broken = [outcome for outcome in outcomes if outcome.problems]
    details = "\n\n".join(f"{o.row()}\nstderr:\n{o.stderr[-1500:]}" for o in broken)
    assert not broken, f"{len(broken)} of {len(outcomes)} trials broke:\n{table}\n\n{details}"


def sweep(offset: float, count: int) -> list[Moment]:
    """`count` moments spread over 0 to 1.05 clean-run durations, shifted by `offset` (0-1)."""
    return [Moment(fraction=1.05 * (index + offset) / count) for index in range(count)]


@pytest.fixture(scope="session")
def train_subject(session_workdir) -> SignalSubject:
    """train@gru, 100 epochs: a body long enough for most trials to land in it."""
    workdir = session_workdir("train-signals")
    workdir.write_split()
    return SignalSubject.prepare(
        workdir,
        TRAIN,
        TRAIN_OUTPUTS,
        small_params(**{"models.gru.epochs": 100, "models.gru.seed": 7}),
        small_params(**{"models.gru.epochs": 100}),
    )


@pytest.fixture(scope="session")
def generate_subject(session_workdir) -> SignalSubject:
    """generate@fixed: the short path (no torch, a body of a fraction of a second)."""
    workdir = session_workdir("generate-signals")
    return SignalSubject.prepare(
        workdir,
        GENERATE,
        (GENERATE[2],),
        small_params(**{"datasets.fixed.n": 20_000, "datasets.fixed.seed": 1}),
        small_params(**{"datasets.fixed.n": 20_000}),
    )


def signal_ids(signum: int) -> str:
    return signal.Signals(signum).name


@pytest.mark.slow
@pytest.mark.parametrize("signum", HANDLED_SIGNALS, ids=signal_ids)
def test_a_signal_at_any_moment_of_training_stops_it_cleanly_or_lets_it_finish(
    train_subject, signum
):
    offset = (HANDLED_SIGNALS.index(signum) + 1) / (len(HANDLED_SIGNALS) + 1)
    moments = [*sweep(offset, 4), *(Moment(event=event) for event in EVENTS)]
    outcomes = [trial(train_subject, (signum,), moment) for moment in moments]
    assert_all_clean(outcomes)
    assert any(o.statuses == ["KILLED"] for o in outcomes), "no trial landed in the body"


@pytest.mark.slow
@pytest.mark.parametrize("signum", HANDLED_SIGNALS, ids=signal_ids)
def test_a_signal_at_any_moment_of_a_short_stage_stops_it_cleanly_or_lets_it_finish(
    generate_subject, signum
):
    offset = (HANDLED_SIGNALS.index(signum) + 1) / (len(HANDLED_SIGNALS) + 1)
    events = ("stage process started", "run started", "outputs committed")
    moments = [*sweep(offset, 2), *(Moment(event=event) for event in events)]
    assert_all_clean([trial(generate_subject, (signum,), moment) for moment in moments])


@pytest.mark.slow
def test_a_signal_as_the_stage_process_starts_is_honoured(generate_subject):
    """The child of the stage server sets itself up before `execute` runs: a signal the
    client forwards then must end the stage as interrupted too (128 + n, no traceback)."""
    moments = [Moment(event=e) for e in ("client connected", "stage process started")] * 4
    assert_all_clean([trial(generate_subject, (signal.SIGTERM,), moment) for moment in moments])


@pytest.mark.slow
def test_a_client_killed_outright_stops_its_stage(train_subject):
    """SIGKILL reaches only the client; its stage must stop as if sent SIGTERM."""
    moments = [Moment(fraction=0.5), Moment(event="run recording")]
    assert_all_clean([trial(train_subject, (signal.SIGKILL,), moment) for moment in moments])


@pytest.mark.slow
@pytest.mark.parametrize(
    "signals",
    [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGINT)],
    ids=["SIGINT twice", "SIGTERM then SIGINT"],
)
def test_a_second_signal_5_ms_after_the_first_still_ends_the_run(train_subject, signals):
    moments = [Moment(event="run started"), Moment(event="run recording")]
    assert_all_clean([trial(train_subject, signals, moment) for moment in moments])


@pytest.mark.slow
def test_a_signal_early_in_a_stage_run_in_its_own_process_is_honoured(workdir):
    """PIPELINE_STAGE_SERVER=0: the start-up (imports) is long; signals land in it too."""
    subject = SignalSubject.prepare(
        workdir,
        GENERATE,
        (GENERATE[2],),
        small_params(**{"datasets.fixed.seed": 1}),
        small_params(),
        env={"PIPELINE_STAGE_SERVER": "0"},
    )
    moments = [Moment(fraction=0.05), Moment(fraction=0.2), Moment(event="run started")]
    outcomes = [
        trial(subject, (signum,), moment)
        for signum, moment in zip(HANDLED_SIGNALS, moments, strict=True)
    ]
    assert_all_clean(outcomes)


FINALIZER_HOOK = '''\
"""Test hook: when the stage stages its first output, a signal lands in a weakref callback."""
import os
import signal
import sys
import weakref

_SIGNUM = int(os.environ["HARDENING_SIGNAL"])
_fired = []


class _Doomed:
    pass


def _finalizer(_reference):
    signal.raise_signal(_SIGNUM)
    total = 0
    for step in range(200_000):  # the handler runs here: Python swallows what it raises
        total += step


def _hook(event, args):
    if event == "os.mkdir" and ".staged-" in str(args[0]) and not _fired:
        _fired.append(True)
        doomed = _Doomed()
        _fired.append(weakref.ref(doomed, _finalizer))
        del doomed


sys.addaudithook(_hook)
'''


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=signal_ids)
def test_a_signal_swallowed_in_a_finalizer_still_stops_the_stage(workdir, tmp_path, signum):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(FINALIZER_HOOK)
    workdir.write_split()
    workdir.write_params(small_params(**{"models.gru.epochs": 100}))
    env = {"PIPELINE_STAGE_SERVER": "0", "PYTHONPATH": str(hooks), "HARDENING_SIGNAL": str(signum)}
    result = workdir.run(*TRAIN, env=env)
    assert "Exception ignored" in result.stderr, f"the hook did not fire:\n{result.stderr}"
    assert result.returncode == 128 + signum, result.stderr
    assert [run.status for run in workdir.runs()] == ["KILLED"]
    assert workdir.digests(TRAIN_OUTPUTS) == dict.fromkeys(TRAIN_OUTPUTS)
    assert workdir.leftovers() == []
