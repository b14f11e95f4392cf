"""Running one stage, the same for every stage: check, start the run, work, record, commit.

A stage module declares `STAGE = Stage(...)` (pipeline/runtime/declaration.py) and defines
`run(context)`, its own work. `execute` does the rest:

1. parse the paths; check what can be checked before a run starts (inputs exist, the
   CPU kernels, the stage's own `check`);
2. start the MLflow run; run the body, which writes every output under a temporary name
   of its own (`context.outputs`, pipeline/runtime/staging.py) and notes what to record
   (`context.record`, pipeline/runtime/record.py);
3. record the run, then commit: rename the outputs into place, then end the run FINISHED.
   An output replaces the previous one only once its run has recorded it; a failure
   leaves the previous outputs.

Signals (Ctrl-C, SIGTERM, SIGHUP) stop the stage cleanly whenever they land
(pipeline/runtime/signals.py): the run ends KILLED, no output changes, exit status 128 +
the signal's number; a signal that lands after the commit cannot undo it, but the exit
status still says it came.
"""

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline.library import numerics
from pipeline.library.errors import InputError, ParamsError, PipelineError
from pipeline.library.settings import DatasetParams, ModelParams, ModelSpec
from pipeline.runtime.declaration import Stage
from pipeline.runtime.identity import Snapshot, changed, source_snapshot
from pipeline.runtime.params import Params, load_params
from pipeline.runtime.progress import Progress
from pipeline.runtime.record import Record, describe_run
from pipeline.runtime.signals import Interrupted, SignalGate
from pipeline.runtime.staging import Staging


@dataclass
class Context:
    """What a stage body gets: params, its paths, and where to note what to record."""

    stage: Stage
    name: str | None
    params: Params
    inputs: dict[str, Path]
    outputs: dict[str, Path]  # staged: write here; renamed into place after the run records
    record: Record = field(default_factory=Record)
    progress: Progress = field(default_factory=lambda: Progress("stage"))

    @property
    def model(self) -> ModelParams:
        return self.params.model(self.name)

    @property
    def dataset(self) -> DatasetParams:
        name = self.model.dataset if self.stage.item == "models" else self.name
        return self.params.dataset(name)


#: Where DVC runs `dvc exp run --temp` and queued experiments: copies of the workspace.
TEMPORARY_WORKSPACE = "/.dvc/tmp/exps/"
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


def stage_parser(stage: Stage) -> argparse.ArgumentParser:
    """The command line of `python -m pipeline <stage> ...`: the item's name, then its paths."""
    parser = _ArgumentParser(prog=f"python -m pipeline {stage.name}", description=stage.doc)
    if stage.item:
        parser.add_argument("name", help=f"a key of `{stage.item}` in params.yaml")
    for argument in (*stage.inputs, *stage.outputs):
        parser.add_argument(argument.name, type=Path, help=argument.help)
    return parser


def parse_arguments(stage: Stage, argv: list[str]) -> tuple[str | None, dict[str, Path]]:
    """The item name and every path argument of `python -m pipeline <stage> ...`."""
    # `--` first: a name or path that starts with '-' is an argument, not an option.
    parsed = vars(stage_parser(stage).parse_args(["--", *argv] if "--" not in argv else argv))
    return parsed.pop("name", None), parsed


def require_inside_repository(outputs: list[Path]) -> None:
    """Under DVC, refuse outputs that resolve outside the repository (a `data/` linked
    elsewhere): DVC would fail the stage after it ran, its run recorded as FINISHED."""
    root = os.environ.get("DVC_ROOT")
    if not root:
        return
    root_path = Path(root).resolve()
    for output in outputs:
        resolved = output.resolve()
        if not resolved.is_relative_to(root_path):
            raise InputError(
                f"{output}: resolves to {resolved}, outside the repository {root_path}; "
                "DVC cannot track an output there"
            )


def shaping_source(stage: Stage, snapshot: Snapshot) -> Snapshot:
    """The part of a source snapshot that can shape the stage's bytes (dvc.yaml's code deps:
    the library, the pictures, the stage's own module)."""
    own = f"stages/{stage.name}.py"
    return {
        path: digest
        for path, digest in snapshot.items()
        if path.startswith(("library/", "pictures/")) or path == own
    }


def require_unchanged(stage: Stage, name: str | None, params: Params, code: Snapshot) -> None:
    """Refuse to record a stage whose code or tracked params changed while it ran.

    DVC reads params and code again when it saves dvc.lock: an edit that landed during the
    run would be recorded beside outputs made without it (and cached in the run cache).
    """
    run_name = stage.run_name(name)
    moved = changed(shaping_source(stage, code), shaping_source(stage, source_snapshot()))
    if moved:
        raise InputError(
            f"pipeline/{moved[0]} changed while {run_name} ran: nothing was written; run it again"
        )
    keys = stage.tracked_keys(name)
    started, now = params.tracked(*keys), load_params(params.source).tracked(*keys)
    edited = changed(started, now)
    if edited:
        key = edited[0]
        raise ParamsError(
            f"{params.source}: {key} changed while {run_name} ran ({started.get(key)!r} -> "
            f"{now.get(key)!r}): nothing was written; run it again"
        )


def execute(
    module: ModuleType,
    argv: list[str],
    params: Params,
    package_dir: Path,
    gate: SignalGate,
    code: Snapshot,
) -> int:
    """Run stage `module` with `argv` (after the stage name); the process's exit status.

    `code` is the pipeline's source as this process imported it: the stage fails, writing
    and recording nothing, if the code it can be shaped by or its tracked params differ at
    its end.
    """
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
        require_inside_repository(
            [path for arg in stage.outputs for path in arg.paths(paths[arg.name])]
        )
        context = Context(
            stage,
            name,
            params,
            {arg.name: paths[arg.name] for arg in stage.inputs},
            {},
            progress=Progress(stage.run_name(name)),
        )
        if stage.uses_torch:
            try:
                numerics.configure_torch(params.cpu_capability)
            except numerics.UnsupportedCapabilityError as error:
                raise ParamsError(f"{params.source}: cpu_capability {error}") from None
            note = numerics.build_note()
            if note:
                print(note, file=sys.stderr)
        check: Callable[[Context], None] | None = getattr(module, "check", None)
        if check is not None:
            check(context)
        described = describe_run(stage, name, params, inputs)
        if stage.uses_torch:
            described.tags["torch.build"] = numerics.torch_build()

        from pipeline.runtime import tracking  # MLflow: imported once the stage is sure to run

        with gate.held():
            run = tracking.StageRun.start(described, package_dir)
        staging = Staging(stage.outputs, paths)
        context.outputs = dict(staging.staged)
        try:
            module.run(context)
        finally:
            context.progress.done()
        gate.check()
        require_unchanged(stage, name, params, code)
        with gate.held():
            run.record(context.record.renamed(staging.final_name), staging.files())
        with gate.held():
            gate.stop_raising()  # the decision is made: commit
            staging.commit()
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
    """Under DVC the previous outputs are gone: DVC removes them before it runs a stage, but
    in a temporary copy (`dvc exp run --temp`, queued experiments) the workspace is whole."""
    stage = os.environ.get("DVC_STAGE")
    if not stage:
        return ""
    if TEMPORARY_WORKSPACE in Path.cwd().as_posix():
        return " (in DVC's temporary copy of the workspace: the workspace is untouched)"
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
