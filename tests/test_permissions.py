"""Stages run as another user than root, so that permissions bind: a read-only data folder
or store is one line naming it."""

import shutil

import pytest
from support import (
    GENERATE,
    error_line,
    names_in,
)


def test_a_read_only_data_folder_is_one_line_naming_it(nobody_workdir):
    workdir = nobody_workdir
    raw = workdir.root / "data/raw"
    raw.mkdir(parents=True)
    (raw / "fixed.parquet").write_bytes(b"the previous output")
    shutil.chown(raw, "root", "root")
    raw.chmod(0o755)
    line = error_line(workdir.run(*GENERATE, user="nobody"))
    assert "data/raw" in line, line
    assert "ermission denied" in line, line
    assert (raw / "fixed.parquet").read_bytes() == b"the previous output"
    assert names_in(raw) == ["fixed.parquet"]
    assert [run.status for run in workdir.runs()] == ["FAILED"]


@pytest.mark.parametrize("origin", ["made here", "moved here"])
def test_a_read_only_store_is_one_line_naming_it(nobody_workdir, whole_store, origin):
    workdir = nobody_workdir
    if origin == "made here":
        workdir.succeed(*GENERATE)
    else:  # its artifact locations point at the template's directory
        shutil.copy(whole_store, workdir.database)
    shutil.chown(workdir.database, "root", "root")
    workdir.database.chmod(0o644)
    shutil.chown(workdir.root, "root", "root")  # no journal can be created beside it
    runs = workdir.runs()
    output = "data/raw/other.parquet"
    line = error_line(workdir.run("generate", "fixed", output, user="nobody"))
    assert str(workdir.database) in line and "readonly database)" in line, line
    assert workdir.runs() == runs
    assert not (workdir.root / output).exists()
