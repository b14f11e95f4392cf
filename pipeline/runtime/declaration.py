"""What a stage declares: its params and its path arguments (dvc.yaml must say the same).

A stage module declares `STAGE = Stage(...)` and defines `run(context)`, its own work;
`pipeline.runtime.stage` runs it. tests/test_dvc_contract.py holds every declaration to
dvc.yaml.
"""

from dataclasses import dataclass
from pathlib import Path


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
    """What a stage reads and writes.

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
