"""Writing outputs so that a reader never sees half a file, and hashing them.

Every file goes through `atomic_output`: it is written under a temporary name
of its own beside its destination and renamed into place only once complete. A
crash, Ctrl-C or kill leaves the old file or no file, never a truncated one, and
two processes writing one path each rename a whole file.
"""

import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_output(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix: some writers (matplotlib, Pillow) pick the format from it.
    temporary = path.with_name(
        f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}"
    )
    try:
        yield temporary
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path | str, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_output(path) as temporary:
        temporary.write_text(text)


def write_json(path: Path | str, data: Any) -> None:
    """Write `data` as stable JSON (sorted keys, two-space indent, final newline)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def md5_of(path: Path | str) -> str:
    """The md5 of a file's bytes, as DVC records it in dvc.lock."""
    digest = hashlib.md5()
    with Path(path).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_csv(path: Path | str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write rows as CSV atomically; floats keep every digit (shortest exact repr)."""
    lines = [",".join(columns)]
    lines += [
        ",".join(repr(value) if isinstance(value, float) else str(value) for value in row)
        for row in rows
    ]
    write_text(path, "\n".join(lines) + "\n")


def linked_tree(files: dict[str, Path], directory: Path | str) -> Path:
    """`files` laid out under `directory` by their relative names: hard links, else copies."""
    root = Path(directory)
    for name, source in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:  # another file system
            target.write_bytes(source.read_bytes())
    return root
