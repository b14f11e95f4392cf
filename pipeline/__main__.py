"""Run one pipeline stage: `python -m pipeline <stage> <name> [paths...]`.

dvc.yaml calls this for every stage; it runs by hand the same way. A user's mistake
(bad params, a bad input file, an unreachable tracking server) ends with one line on
stderr and exit status 1; Ctrl-C, SIGTERM and SIGHUP end the stage as interrupted
(its MLflow run KILLED, no output changed), status 128 + the signal's number.
This is the top of the layout: it names the stages (pipeline/stages/) and hands them to
the runtime (pipeline/runtime/client.py), which never names them itself.
"""

import signal
import sys
from pathlib import Path

# Until a stage exists, a signal just ends this process (no traceback from an import).
for _signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_signum, lambda signum, _frame: sys.exit(128 + signum))

#: Every stage, by the name dvc.yaml calls it, and its module.
STAGES = {
    name: f"pipeline.stages.{name}"
    for name in ("generate", "split", "train", "evaluate", "plot", "padding", "report")
}


def main(argv: list[str]) -> int:
    """Run a stage; with `--serve SOCKET FD`, be a warm process for stages instead."""
    if argv[:1] == ["--serve"]:
        from pipeline.runtime import server

        return server.serve(Path(argv[1]), int(argv[2]), list(STAGES.values()))
    from pipeline.runtime import client

    return client.main(argv, STAGES)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
