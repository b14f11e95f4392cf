"""Running one stage: what it declares, the signals it honours, outputs staged then committed.

A stage module declares `STAGE = Stage(...)` (its params, input and output paths) and
defines `run(context)`, its own work. `execute` does the rest, the same for every stage:

1. parse the paths; check what can be checked before a run starts (inputs exist, the
   CPU kernels, the stage's own `check`);
2. start the MLflow run; run the body, which writes every output under a temporary name
   of its own (`context.outputs`) and notes what to record (`context.record`);
3. record the run (params, md5 tags, artifacts, metrics, model), then commit: rename the
   outputs into place, then end the run FINISHED. An output replaces the previous one
   only once its run has recorded it; a failure leaves the previous outputs.

Signals (Ctrl-C, SIGTERM, SIGHUP) stop the stage cleanly whenever they land: the run ends
KILLED, no output changes, exit status 128 + the signal's number. While the stage talks
to MLflow or commits, signals are held, then acted on, so no bookkeeping is cut in half; a
signal that lands after the commit cannot undo it, but the exit status still says it came.
"""

import argparse
import os
import secrets
import shutil
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline.library import numerics
from pipeline.library.errors import InputError, ParamsError, PipelineError
from pipeline.library.settings import DatasetParams, ModelParams, ModelSpec
from pipeline.runtime.params import Params

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: A signal whose exception was swallowed (Python ignores exceptions raised in __del__ and
#: weakref callbacks) is raised again this often until the stage unwinds.
REDELIVERY_S = 0.05
#: Staged files carry this marker (.dvcignore skips them, so DVC never hashes one).
STAGED_MARKER = ".staged-"


@dataclass(frozen=True)
class Arg:
    """A path argument of a stage: one file or directory, or a directory of `files`."""

    name: str
    help: str
    files: tuple[str, ...] = ()

    def paths(self, value: Path) -> list[Path]:
        """The paths DVC tracks for this argument given `value`."""
        return [value / file for file in self.files] if self.files else [value]


@dataclass(frozen=True)
class Stage:
    """What a stage reads and writes: dvc.yaml must say the same (a test compares them).

    `item` is the params section whose key the stage takes first (`train gru`: models),
    `params` the dotted keys DVC tracks, `{name}` standing for that key.
    """

    name: str
    doc: str
    item: str | None
    params: tuple[str, ...]
    inputs: tuple[Arg, ...]
    outputs: tuple[Arg, ...]
    uses_torch: bool = False

    def tracked_keys(self, name: str | None) -> list[str]:
        """The dotted params DVC tracks for the stage of item `name`."""
        return [key.format(name=name) for key in self.params]

    def run_name(self, name: str | None) -> str:
        """The stage as DVC names it: `train@gru`, or `report`."""
        return f"{self.name}@{name}" if name else self.name


@dataclass
class LoggedModel:
    """A trained model to log: its directory (config.json + weights.pt) and what made it."""

    name: str
    directory: Path
    settings: dict[str, Any]
    example_file: Path  # a Parquet file of the dataset schema; its first row is the example


@dataclass
class Record:
    """What a stage's MLflow run records beyond params, tags and outputs."""

    datasets: list[tuple[Path, str]] = field(default_factory=list)  # (file, context)
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_dataset: Path | None = None  # the dataset the metrics were measured on
    scored_model: Path | None = None  # the weights the metrics belong to
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch
    model: LoggedModel | None = None

    def dataset(self, path: Path, context: str) -> None:
        self.datasets.append((Path(path), context))


@dataclass
class Context:
    """What a stage body gets: params, its paths, and where to note what to record."""

    stage: Stage
    name: str | None
    params: Params
    inputs: dict[str, Path]
    outputs: dict[str, Path]  # staged: write here; renamed into place after the run records
    record: Record = field(default_factory=Record)

    @property
    def model(self) -> ModelParams:
        return self.params.model(self.name)

    @property
    def dataset(self) -> DatasetParams:
        name = self.model.dataset if self.stage.item == "models" else self.name
        return self.params.dataset(name)


class Interrupted(KeyboardInterrupt):
    """A signal asked the stage to stop: unwind like Ctrl-C so every cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalGate:
    """Turns SIGINT, SIGTERM and SIGHUP into Interrupted, except while held.

    The gate is a flag its handlers read, not a signal mask: a signal the kernel delivers
    to another thread still runs its Python handler in the main thread, mask or not.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.raising = True  # False once the stage unwinds or has committed
        self.holding = 0

    def install(self) -> None:
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGALRM, self._redeliver)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.received = self.received or signum
        if self.raising and not self.holding:
            signal.setitimer(signal.ITIMER_REAL, REDELIVERY_S, REDELIVERY_S)
            raise Interrupted(self.received)

    def _redeliver(self, _signum: int, _frame: object) -> None:
        if self.received and self.raising and not self.holding:
            raise Interrupted(self.received)

    def stop_raising(self) -> None:
        """The stage is unwinding or has committed: note later signals, raise nothing more."""
        self.raising = False
        signal.setitimer(signal.ITIMER_REAL, 0)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold signals back for the block (MLflow calls, the commit); act on them after it."""
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1
        self.check()

    def check(self) -> None:
        """Raise Interrupted if a signal came, even one whose exception was swallowed."""
        if self.received and self.raising and not self.holding:
            raise Interrupted(self.received)


class Staging:
    """Temporary paths for a stage's outputs, renamed into place together on commit."""

    def __init__(self, arguments: tuple[Arg, ...], paths: dict[str, Path]) -> None:
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.final = {argument.name: paths[argument.name] for argument in arguments}
        self.staged = {name: _staged_path(path, token) for name, path in self.final.items()}
        for argument in arguments:
            if argument.files:  # a directory of known files: the body writes into it
                self.staged[argument.name].mkdir()

    def files(self, arguments: tuple[Arg, ...]) -> list[tuple[Path, Path, str]]:
        """(staged file, final file, artifact name) of every output file, sorted by final file.

        Artifact names are the same for every variant (`model/weights.pt`), so MLflow's
        Compare lines runs up.
        """
        found = []
        for argument in arguments:
            staged, final = self.staged[argument.name], self.final[argument.name]
            if argument.files:
                pairs = [(staged / file, final / file) for file in argument.files]
            elif staged.is_dir():
                pairs = [(file, final / file.relative_to(staged)) for file in staged.rglob("*")]
            else:
                pairs = [(staged, final)]
            for staged_file, final_file in pairs:
                if not staged_file.exists():
                    raise RuntimeError(f"stage finished without writing {final_file}")
                if staged_file.is_file():
                    if argument.files or staged.is_dir():
                        artifact = f"{argument.name}/{final_file.relative_to(final).as_posix()}"
                    else:
                        artifact = f"{argument.name}{final.suffix}"
                    found.append((staged_file, final_file, artifact))
        return sorted(found, key=lambda entry: entry[1])

    def commit(self, arguments: tuple[Arg, ...]) -> None:
        """Rename every staged output into place; a directory output is replaced whole."""
        for argument in arguments:
            staged, final = self.staged[argument.name], self.final[argument.name]
            if argument.files:
                final.mkdir(parents=True, exist_ok=True)
                for file in argument.files:
                    (staged / file).replace(final / file)
                staged.rmdir()
            elif staged.is_dir():
                previous = staged.with_name(staged.name + "-previous")
                if final.exists():
                    final.replace(previous)
                staged.replace(final)
                shutil.rmtree(previous, ignore_errors=True)
            else:
                staged.replace(final)

    def final_name(self, path: Path) -> Path:
        """Where a staged path will be once committed (any other path is returned as it is)."""
        for name, staged in self.staged.items():
            if path == staged or staged in path.parents:
                return self.final[name] / path.relative_to(staged)
        return path

    def unstaged(self, text: str) -> str:
        """`text` with every staged path replaced by its final path."""
        for name, staged in self.staged.items():
            text = text.replace(str(staged), str(self.final[name]))
        return text

    def discard(self) -> None:
        """Delete what was staged; the previous outputs stay as they were."""
        for path in self.staged.values():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _staged_path(final: Path, token: str) -> Path:
    """A sibling of `final` that no other process uses; it keeps the suffix (writers read it)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(final)
    return final.with_name(f".{final.stem}{STAGED_MARKER}{token}{final.suffix}")


def _remove_abandoned(final: Path) -> None:
    """Delete staged copies of `final` whose process is gone (killed outright)."""
    for leftover in final.parent.glob(f".{final.stem}{STAGED_MARKER}*"):
        pid = leftover.name.removeprefix(f".{final.stem}{STAGED_MARKER}").split("-")[0]
        if pid.isdigit() and not process_exists(int(pid)):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def process_exists(pid: int) -> bool:
    """Whether a process `pid` runs on this host (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: Peak memory per square of generating, splitting or training (measured: about 450 bytes).
BYTES_PER_SQUARE = 1024
#: Weights, gradients and Adam's two moments: four float32 numbers per parameter.
BYTES_PER_PARAMETER = 16


def require_memory(context: Context, key: str, squares: int, spec: ModelSpec | None = None) -> None:
    """Refuse, before a run starts, sizes whose memory this machine does not have."""
    needed = squares * BYTES_PER_SQUARE
    if spec is not None:
        needed += spec.parameter_count() * BYTES_PER_PARAMETER
    available = _available_memory()
    if available and needed > available:
        raise ParamsError(
            f"{context.params.source}: {key} asks for about {_size(needed)} of memory; this "
            f"machine has {_size(available)} available"
        )


def _available_memory() -> int | None:
    """Bytes of memory available now (Linux's MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{count} B"
        count /= 1000
    raise AssertionError("unreachable")


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (a PipelineError), not usage plus exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise PipelineError(f"{self.prog}: {message} (usage: {self.format_usage().strip()[7:]})")


def parse_arguments(stage: Stage, argv: list[str]) -> tuple[str | None, dict[str, Path]]:
    """The item name and every path argument of `python -m pipeline <stage> ...`."""
    parser = _ArgumentParser(prog=f"python -m pipeline {stage.name}", description=stage.doc)
    if stage.item:
        parser.add_argument("name", help=f"a key of `{stage.item}` in params.yaml")
    for argument in (*stage.inputs, *stage.outputs):
        parser.add_argument(argument.name, type=Path, help=argument.help)
    # `--` first: a name or path that starts with '-' is an argument, not an option.
    parsed = vars(parser.parse_args(["--", *argv] if "--" not in argv else argv))
    return parsed.pop("name", None), parsed


def execute(
    module: ModuleType,
    argv: list[str],
    params: Params,
    package_dir: Path,
    gate: SignalGate,
) -> int:
    """Run stage `module` with `argv` (after the stage name); the process's exit status."""
    stage: Stage = module.STAGE
    staging: Staging | None = None
    run = None
    try:
        name, paths = parse_arguments(stage, argv)
        if stage.item == "models":
            params.model(name)
        elif stage.item == "datasets":
            params.dataset(name)
        inputs = [path for arg in stage.inputs for path in arg.paths(paths[arg.name])]
        for path in inputs:
            if not path.exists():
                raise InputError(f"{path}: not found (is the stage that writes it done?)")
        context = Context(
            stage, name, params, {arg.name: paths[arg.name] for arg in stage.inputs}, {}
        )
        if stage.uses_torch:
            try:
                numerics.configure_torch(params.cpu_capability)
            except numerics.UnsupportedCapabilityError as error:
                raise ParamsError(f"{params.source}: cpu_capability {error}") from None
        check: Callable[[Context], None] | None = getattr(module, "check", None)
        if check is not None:
            check(context)

        from pipeline.runtime import tracking  # MLflow: imported once the stage is sure to run

        with gate.held():
            run = tracking.StageRun.start(
                stage=stage,
                name=name,
                params=params,
                inputs=inputs,
                package_dir=package_dir,
            )
        staging = Staging(stage.outputs, paths)
        context.outputs = dict(staging.staged)
        module.run(context)
        gate.check()
        with gate.held():
            run.record(context.record, staging.files(stage.outputs), staging.final_name)
        with gate.held():
            gate.stop_raising()  # the decision is made: commit
            staging.commit(stage.outputs)
            run.end("FINISHED")
        if gate.received:
            return _interrupted(stage.name, gate.received, committed=True)
        return 0
    except Interrupted as interrupt:
        gate.raising = False  # first, before any call: a second signal must not escape here
        gate.stop_raising()
        with gate.held():
            _abandon(staging, run, "KILLED")
        return _interrupted(stage.name, interrupt.signum, committed=False)
    except BaseException as error:
        gate.raising = False
        gate.stop_raising()
        with gate.held():
            _abandon(staging, run, "FAILED")
        message = _one_line(error, stage)
        if staging is not None:  # name outputs as the user wrote them, not as staged
            message = staging.unstaged(message)
        print(f"error: {message}{_restore_hint()}", file=sys.stderr)
        if not isinstance(error, PipelineError | MemoryError | OSError | SystemExit):
            traceback.print_exc()
        return 128 + gate.received if gate.received else 1


def _one_line(error: BaseException, stage: Stage) -> str:
    """A failure as one line for a person: the message, or what and where for OS errors."""
    if isinstance(error, PipelineError):
        return str(error)
    if isinstance(error, MemoryError):
        return f"{stage.name}: out of memory"
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return (
        f"{stage.name}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    )


def _restore_hint() -> str:
    """Under DVC the previous outputs are gone: DVC removes them before it runs a stage."""
    stage = os.environ.get("DVC_STAGE")
    if not stage:
        return ""
    return f" (DVC removed this stage's previous outputs; `dvc checkout {stage}` restores them)"


def _abandon(staging: Staging | None, run: Any, status: str) -> None:
    """Throw the staged outputs away and end the run, where there are any."""
    if staging is not None:
        staging.discard()
    if run is not None:
        with suppress(Exception):
            run.end(status)


def _interrupted(stage: str, signum: int, committed: bool) -> int:
    what = "after its outputs were in place" if committed else "no output written"
    hint = "" if committed else _restore_hint()
    print(f"{stage}: interrupted by {signal.Signals(signum).name}, {what}{hint}", file=sys.stderr)
    return 128 + signum
