"""What a person at a terminal sees: a stage's progress on one line that updates in place,
and nothing of it where the output is not a terminal (DVC's logs, CI, a pipe)."""

import os
import pty
import re
import subprocess
import sys

import pytest
from support import REPO, TRAIN, small_params


def run_on_a_terminal(workdir, *args: str) -> tuple[int, str]:
    """Run the client with a pseudo-terminal as its stdout and stderr; status, output."""
    main, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        cwd=workdir.root,
        env=workdir.env,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal's last writer closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    return process.wait(timeout=300), b"".join(chunks).decode()


@pytest.mark.slow
def test_training_shows_its_epochs_on_one_line_that_updates(make_workdir, template):
    workdir = make_workdir()
    workdir.copy_data_from(template)
    workdir.write_params(small_params(**{"models.gru.epochs": 5}))
    status, output = run_on_a_terminal(workdir, *TRAIN)
    assert status == 0, output
    updates = output.split("\r")
    shown = [update.removeprefix("\x1b[K") for update in updates if "epoch" in update]
    assert [line.split(",")[0] for line in shown] == [
        f"train@gru: epoch {epoch}/5" for epoch in range(1, 6)
    ], output
    assert output.endswith("\r\n")  # the line stays, ended


def test_nothing_of_the_progress_reaches_a_pipe(make_workdir, template):
    workdir = make_workdir()
    workdir.copy_data_from(template)
    result = workdir.run(*TRAIN)
    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ""


def test_make_help_lists_every_target_with_what_it_does():
    makefile = (REPO / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY: (.*)$", makefile, re.M).group(1).split())
    # As typed in a terminal: not as a sub-make of `make test`, which would name its directory.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    result = subprocess.run(
        ["make", "help"], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    listed = dict(line.removeprefix("make ").split(None, 1) for line in result.stdout.splitlines())
    assert set(listed) == phony | {"setup"}
    assert all(text.strip() for text in listed.values())
    assert max(map(len, result.stdout.splitlines())) <= 100  # a terminal of 100 columns
