"""Run one pipeline stage: `python -m pipeline <stage> <name> [paths...]`.

dvc.yaml calls this for every stage; it runs by hand the same way. A user's mistake
(bad params, a bad input file, an unreachable tracking server) ends with one line on
stderr and exit status 1; Ctrl-C, SIGTERM and SIGHUP end the stage as interrupted
(its MLflow run KILLED, no output changed), status 128 + the signal's number.
params.yaml is read and checked here, once, before anything heavy is imported.
"""

import signal
import sys

# Until a stage exists, a signal just ends this process (no traceback from an import).
for _signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_signum, lambda signum, _frame: sys.exit(128 + signum))

from pipeline.library.errors import PipelineError  # noqa: E402
from pipeline.runtime import server as stage_server  # noqa: E402 - after the handlers above
from pipeline.runtime.params import load_params  # noqa: E402


def main(argv: list[str]) -> int:
    """Check params.yaml, then run the stage in a warm process (or this one)."""
    client = stage_server.Client()
    for signum in stage_server.FORWARDED_SIGNALS:
        signal.signal(signum, client.on_signal)
    if not argv or argv[0] not in stage_server.STAGES:
        print(f"usage: python -m pipeline {{{','.join(stage_server.STAGES)}}} ...", file=sys.stderr)
        return 2
    try:
        params = load_params()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if stage_server.enabled():
        try:
            return stage_server.run_in_server(argv, params, client)
        except stage_server.ServerUnavailableError as reason:
            print(f"note: running {argv[0]} in this process: {reason}", file=sys.stderr)
    for signum in stage_server.FORWARDED_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    return stage_server.run_here(argv, params)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
