"""A stage's progress on a terminal: one line that updates in place, then stays.

`train@gru: epoch 37/100, loss 0.0123`. Written only where stderr is a terminal (dvc repro in
a shell); in DVC's logs, CI's output or a test's pipe, a stage says nothing until it ends.
"""

import sys
from typing import TextIO


class Progress:
    """The progress line of one stage, on `stream` if it is a terminal."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.shown = self.stream.isatty()
        self.written = False

    def update(self, text: str) -> None:
        """Show `text` in place of the line's last text."""
        if self.shown:
            self.stream.write(f"\r\x1b[K{self.label}: {text}")
            self.stream.flush()
            self.written = True

    def done(self) -> None:
        """End the line, so that what comes next starts on a line of its own."""
        if self.written:
            self.stream.write("\n")
            self.stream.flush()
            self.written = False
