"""Signals a stage honours: Ctrl-C, SIGTERM and SIGHUP stop it cleanly whenever they land.

While the stage talks to MLflow or commits its outputs, signals are held, then acted on,
so no bookkeeping is cut in half.
"""

import signal
from collections.abc import Iterator
from contextlib import contextmanager

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: A signal whose exception was swallowed (Python ignores exceptions raised in __del__ and
#: weakref callbacks) is raised again this often until the stage unwinds.
REDELIVERY_S = 0.05


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
