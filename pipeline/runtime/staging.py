"""A stage's outputs, written under temporary names of their own, then renamed into place.

An output replaces the previous one only on commit, once the run has recorded it; a failure
or a signal discards what was staged and leaves the previous outputs as they were. Staged
names carry STAGED_MARKER, which .dvcignore skips, so DVC never hashes one.
"""

import os
import secrets
import shutil
from pathlib import Path

from pipeline.runtime.declaration import Arg
from pipeline.runtime.host import process_exists
from pipeline.runtime.record import OutputFile

STAGED_MARKER = ".staged-"


class Staging:
    """Temporary paths for a stage's outputs, renamed into place together on commit."""

    def __init__(self, arguments: tuple[Arg, ...], paths: dict[str, Path]) -> None:
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.arguments = arguments
        self.final = {argument.name: paths[argument.name] for argument in arguments}
        self.staged = {name: _staged_path(path, token) for name, path in self.final.items()}
        for argument in arguments:
            if argument.files:  # a directory of known files: the body writes into it
                self.staged[argument.name].mkdir()

    def files(self) -> list[OutputFile]:
        """Every output file, sorted by its final path.

        Artifact names are the same for every variant (`model/weights.pt`), so MLflow's
        Compare lines runs up.
        """
        found = []
        for argument in self.arguments:
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
                    found.append(OutputFile(staged_file, final_file, artifact))
        return sorted(found, key=lambda output: output.final)

    def commit(self) -> None:
        """Rename every staged output into place; a directory output is replaced whole."""
        for argument in self.arguments:
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
