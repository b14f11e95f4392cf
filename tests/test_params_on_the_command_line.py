"""params.yaml as the client reads it: refused before anything starts, in one line naming
the key; read exactly as DVC reads it (YAML 1.2), so the values a stage uses are DVC's."""

import math
import resource

import pyarrow.parquet as pq
import pytest
from support import (
    GENERATE,
    TRAIN,
    Workdir,
    error_line,
    md5,
    params_text,
    replace_line,
    small_params,
)


def refused_before_anything(workdir: Workdir, args: tuple[str, ...], *fragments: str) -> str:
    """Run a stage that must be refused: one line naming `fragments`, no file, no run."""
    before = workdir.files()
    line = error_line(workdir.run(*args))
    for fragment in fragments:
        assert fragment in line, line
    assert workdir.files() == before, "the refused stage wrote files"
    assert workdir.runs() == []
    return line


PARAMS_REFUSED = {
    "split.val 0.0": ({"split.val": 0.0}, GENERATE, "params.yaml: split.val must be"),
    "split.test 0.0": ({"split.test": 0.0}, GENERATE, "params.yaml: split.test must be"),
    "tiny n empties a split": ({"datasets.fixed.n": 4}, GENERATE, "datasets.fixed (n = 4)"),
    "n 10000000000": ({"datasets.fixed.n": 10_000_000_000}, GENERATE, "datasets.fixed.n must"),
    "noise 1e308": ({"datasets.fixed.noise": 1e308}, GENERATE, "datasets.fixed.noise must"),
    "noise nan": ({"datasets.fixed.noise": math.nan}, GENERATE, "datasets.fixed.noise must"),
    "lr above float32": ({"models.gru.lr": 1e39}, TRAIN, "models.gru.lr must"),
    "lr inf": ({"models.gru.lr": math.inf}, TRAIN, "models.gru.lr must"),
    "split sums to 1": ({"split.val": 0.5, "split.test": 0.5}, GENERATE, "split.val + split.test"),
}


@pytest.mark.parametrize("case", PARAMS_REFUSED)
def test_params_that_used_to_crash_later_are_refused_by_validation(workdir, case):
    changes, args, fragment = PARAMS_REFUSED[case]
    workdir.write_params(small_params(**changes))
    if args == TRAIN:
        workdir.write_split()
    refused_before_anything(workdir, args, fragment)


@pytest.mark.parametrize(
    ("section", "name", "args"),
    [
        ("models", "m" * 65, ("train", "m" * 65, "s", "m", "h")),
        ("models", "-gru", ("train", "-gru", "s", "m", "h")),
        ("datasets", "d" * 65, ("generate", "d" * 65, "out.parquet")),
        ("datasets", "-fixed", ("generate", "-fixed", "out.parquet")),
    ],
    ids=["model name 65 chars", "model name -gru", "dataset name 65 chars", "dataset name -fixed"],
)
def test_names_too_long_or_starting_with_a_dash_are_refused(workdir, section, name, args):
    params = small_params()
    if section == "models":
        params["models"] = {name: params["models"]["gru"]}
    else:
        params["datasets"] = {name: params["datasets"]["fixed"]}
        params["models"]["gru"]["dataset"] = name
    workdir.write_params(params)
    refused_before_anything(workdir, args, f"{section}.", "must be a name of 1 to 64")


def test_a_stage_name_starting_with_a_dash_is_an_argument_not_an_option(workdir):
    refused_before_anything(workdir, ("train", "-gru", "s", "m", "h"), "models.-gru is missing")


def test_a_name_of_64_characters_runs_end_to_end(workdir):
    name = "d" * 64
    params = small_params()
    params["datasets"] = {name: params["datasets"]["fixed"]}
    params["models"]["gru"]["dataset"] = name
    workdir.write_params(params)
    output = f"data/raw/{name}.parquet"
    workdir.succeed("generate", name, output)
    [run] = workdir.runs()
    assert run.status == "FINISHED"
    assert run.name == f"generate@{name}"
    assert run.output_tags() == {f"output/{output}": md5(workdir.root / output)}


def test_an_output_path_longer_than_mlflow_keys_is_recorded(workdir):
    output = "data/" + "/".join(["x" * 100] * 3) + "/fixed.parquet"
    workdir.succeed("generate", "fixed", output)
    [run] = workdir.runs()
    assert run.status == "FINISHED"
    [(key, digest)] = run.output_tags().items()
    assert len(key) <= 250
    assert digest == md5(workdir.root / output)


@pytest.mark.parametrize(
    ("changes", "args", "fragments"),
    [
        ({"models.gru.hidden_dim": 100_000}, TRAIN, ("models.gru.hidden_dim", "memory")),
        ({"datasets.fixed.n": 400_000_000}, GENERATE, ("datasets.fixed.n", "memory")),
        ({"models.gru.batch_size": 500}, TRAIN, ("models.gru.batch_size", "train.parquet")),
    ],
    ids=["hidden_dim 100000", "n 400000000", "batch_size above the split"],
)
def test_sizes_the_machine_cannot_hold_are_refused_before_a_run_starts(
    workdir, changes, args, fragments
):
    workdir.write_params(small_params(**changes))
    workdir.write_split()
    refused_before_anything(workdir, args, *fragments)


def test_device_cuda_without_cuda_is_one_line_before_a_run_starts(workdir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    workdir.write_params(small_params(device="cuda"))
    workdir.write_split()
    refused_before_anything(workdir, TRAIN, "device", "CUDA")


@pytest.mark.parametrize(
    "args",
    [("train", "gru"), ("generate", "fixed", "a.parquet", "b.parquet"), ("generate",)],
    ids=["missing paths", "extra path", "no name"],
)
def test_command_line_mistakes_are_one_line(workdir, args):
    refused_before_anything(workdir, args, "python -m pipeline")


def dvc_reads(text: str) -> object:
    """What DVC's own parser makes of a params file (or the exception it raises)."""
    from dvc.utils.serialize import parse_yaml

    try:
        return parse_yaml(text, "params.yaml")
    except Exception as error:  # the refusal is the answer
        return error


def value_at(values: dict, dotted: str) -> object:
    for key in dotted.split("."):
        values = values[key]
    return values


BASE_TEXT = params_text(small_params())
#: (old line, new line, the dotted key it sets, what DVC reads there).
YAML_ACCEPTED = {
    "n: 010 is ten": ("    n: 96", "    n: 010", "datasets.fixed.n", 10),
    "noise: 1e-3 is a float": ("    noise: 0.1", "    noise: 1e-3", "datasets.fixed.noise", 0.001),
}
YAML_REFUSED = {
    "n: 17:04 is a string": ("    n: 96", "    n: 17:04", "datasets.fixed.n", "'17:04'"),
    "variable_len: no is a string": (
        "    variable_len: false",
        "    variable_len: no",
        "datasets.fixed.variable_len",
        "'no'",
    ),
}


@pytest.mark.parametrize("case", YAML_ACCEPTED)
def test_values_dvc_accepts_mean_the_same_to_the_stage(workdir, case):
    old, new, key, expected = YAML_ACCEPTED[case]
    text = replace_line(BASE_TEXT, old, new)
    assert value_at(dvc_reads(text), key) == expected
    workdir.write_params(text)
    workdir.succeed(*GENERATE)
    [run] = workdir.runs()
    assert run.params[f"data.{key.rsplit('.', 1)[1]}"] == str(expected)
    if key.endswith(".n"):
        assert pq.read_metadata(workdir.root / GENERATE[2]).num_rows == expected


@pytest.mark.parametrize("case", YAML_REFUSED)
def test_values_dvc_reads_as_strings_are_refused_naming_the_key(workdir, case):
    old, new, key, shown = YAML_REFUSED[case]
    text = replace_line(BASE_TEXT, old, new)
    assert isinstance(value_at(dvc_reads(text), key), str)
    workdir.write_params(text)
    refused_before_anything(workdir, GENERATE, f"{key} must be", f"got {shown}")


def alias_bomb(levels: int, width: int) -> str:
    """Billion laughs as one flow value: `width ** levels` strings if expanded, a few KB if
    not; `levels` lists nested through aliases."""
    nested = [f"&l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        nested.append(f"&l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return f"[{', '.join(nested)}]"


#: 10**8 strings if expanded, nested 4 deep: shallow enough for the params contract's depth.
WIDE_BOMB = alias_bomb(levels=4, width=100)


#: Broken params files (bytes) and a fragment their one line must hold.
YAML_BROKEN = {
    "duplicate key": (replace_line(BASE_TEXT, "    n: 96", "    n: 96\n    n: 97"), "duplicate"),
    "alias bomb in a value": (
        replace_line(BASE_TEXT, "    n: 96", f"    n: {WIDE_BOMB}"),
        "datasets.fixed.n must be",
    ),
    "alias bomb under an unknown key": (f"lols: {WIDE_BOMB}\n{BASE_TEXT}", "lols"),
    "alias bomb nested 9 deep": (
        replace_line(BASE_TEXT, "    n: 96", f"    n: {alias_bomb(levels=9, width=9)}"),
        "params.yaml:",
    ),
    "nested 20000 deep": (BASE_TEXT + "deep: " + "[" * 20_000 + "]" * 20_000 + "\n", "deep"),
    "a non-UTF-8 byte": (BASE_TEXT.replace("fixed:", "fix\udcffed:", 1), "UTF-8"),
    "a NUL character": (BASE_TEXT.replace("fixed:", "fix\x00ed:", 1), "params.yaml:"),
    "two documents": (BASE_TEXT + "---\n" + BASE_TEXT, "params.yaml:"),
    "a python tag": (
        replace_line(BASE_TEXT, "    n: 96", "    n: !!python/object/apply:os.system [id]"),
        "params.yaml:",
    ),
    "a list, not a mapping": ("- 1\n- 2\n", "params.yaml:"),
    "an empty file": ("", "is missing"),
    "two mebibytes": (BASE_TEXT + "#" * (2 << 20) + "\n", "params.yaml:"),
}


@pytest.mark.parametrize("case", YAML_BROKEN)
def test_a_broken_params_file_is_one_bounded_line_and_nothing_is_written(workdir, case):
    text, fragment = YAML_BROKEN[case]
    # surrogateescape: "\udcff" is the lone byte 0xff, not UTF-8.
    (workdir.root / "params.yaml").write_bytes(text.encode("utf-8", "surrogateescape"))
    before = workdir.files()
    # 1 GiB of address space: the client alone needs far less; an expanded bomb far more.
    result = workdir.run(*GENERATE, limits={resource.RLIMIT_AS: 1 << 30}, timeout=60)
    line = error_line(result)
    assert line.startswith("error: params.yaml"), line
    assert fragment in line, line
    assert len(line) < 300, f"{len(line)} characters"
    assert workdir.files() == before
    assert workdir.runs() == []


def test_dvc_refuses_what_the_stage_refuses_for_duplicate_keys():
    text, _ = YAML_BROKEN["duplicate key"]
    assert isinstance(dvc_reads(text), Exception)
