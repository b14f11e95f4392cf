"""Run one pipeline stage: `python -m pipeline <stage> <name> [paths...]`.

dvc.yaml calls this for every stage; it runs by hand the same way. A user's
mistake (bad params, a bad input file, an unreachable tracking server) ends
with one line on stderr and exit status 1; Ctrl-C and SIGTERM end the stage
as interrupted (its MLflow run KILLED, no output half-written), status 128 +
the signal's number.
"""

import importlib
import signal
import sys

from pipeline.errors import PipelineError
from pipeline.params import load_params

STAGES = ("generate", "split", "train", "evaluate", "plot", "report")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: unwind like Ctrl-C so every cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def main(argv: list[str]) -> int:
    """Dispatch to `pipeline.stages.<stage>.main` and turn failures into exit codes."""
    if not argv or argv[0] not in STAGES:
        print(f"usage: python -m pipeline {{{','.join(STAGES)}}} ...", file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        # Every stage reads params.yaml; checking it here, before a stage's heavy
        # imports (MLflow, torch), reports a mistake in a fraction of a second.
        load_params()
        stage = importlib.import_module(f"pipeline.stages.{argv[0]}")
        stage.main(argv[1:])
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Interrupted as interrupt:
        print(f"{argv[0]}: interrupted by {interrupt}", file=sys.stderr)
        return 128 + interrupt.signum
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
