"""The whole pipeline under real DVC and MLflow, in temporary copies of the repository.

The reproduced template (tests/conftest.py) holds two variants, `gru` on `fixed` and
`lstm_packed` on `variable`, with small params; each test works on a private copy.
"""

import json
import re
import shutil

import mlflow
import numpy as np
import pytest
from conftest import REPO
from params_editing import set_key

from pipeline.library.squares import generate_squares, read_squares

pytestmark = pytest.mark.slow

ALL_STAGES = {
    "generate@fixed", "generate@variable", "split@fixed", "split@variable",
    "train@gru", "evaluate@gru", "plot@gru",
    "train@lstm_packed", "evaluate@lstm_packed", "plot@lstm_packed",
    "padding", "report",
}  # fmt: skip


def flat_lock_params(stage: dict) -> dict:
    """A dvc.lock stage's params with dotted names, as each run's dvc_params.json holds them."""
    flat = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        else:
            flat[prefix] = value

    for values in stage.get("params", {}).values():  # keyed by params file
        walk("", values)
    return flat


def test_every_stage_ran_once_as_one_mlflow_run_matching_dvc_lock(reproduced_template):
    repo = reproduced_template
    lock = repo.lock()["stages"]
    assert set(lock) == ALL_STAGES

    runs = repo.mlflow_runs()
    assert sorted(run.info.run_name for run in runs) == sorted(ALL_STAGES)
    commit = repo.run("git", "rev-parse", "HEAD~1").stdout.strip()  # HEAD is the result
    for run in runs:
        assert run.data.tags["pipeline.kind"] == "pipeline"
        assert run.data.tags["mlflow.note.content"].startswith(f"{run.info.run_name}: ")
        if run.info.run_name.split("@")[0] in ("train", "evaluate", "plot"):
            assert run.data.tags["torch.build"] == "2.13.0+cpu"
        stage = lock[run.info.run_name]
        assert run.info.status == "FINISHED"
        dvc_params = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/dvc_params.json")
        assert dvc_params == flat_lock_params(stage)
        assert run.data.tags["dvc.stage"] == run.info.run_name
        assert run.data.tags["mlflow.source.git.commit"] == commit
        for dep in stage["deps"]:
            if dep["path"].startswith("data/") and "md5" in dep and not dep["md5"].endswith(".dir"):
                assert run.data.tags[f"input/{dep['path']}"] == dep["md5"]
        for out in stage["outs"]:
            if not out["md5"].endswith(".dir"):
                assert run.data.tags[f"output/{out['path']}"] == out["md5"]

    params = repo.params()
    for name, dataset in params["datasets"].items():
        raw = read_squares(repo.root / f"data/raw/{name}.parquet")
        expected = generate_squares(
            dataset["n"], dataset["noise"], dataset["seed"], dataset["variable_len"]
        )
        assert np.array_equal(raw.points, expected.points)
        parts = [
            read_squares(repo.root / f"data/split/{name}/{part}.parquet")
            for part in ("train", "val", "test")
        ]
        assert sorted(np.concatenate([part.seq_ids for part in parts]).tolist()) == list(
            range(dataset["n"])
        )
    assert (repo.root / "data/report/index.html").is_file()


def change(dotted: str, value):
    """An edit of the copy's params.yaml: `dotted` set to `value`."""

    def apply(repo):
        repo.write_params(set_key(repo.params(), dotted, value))

    return apply


def thicken_the_axes(repo):
    """A change to the figures module only, one that changes every picture."""
    module = repo.root / "pipeline/pictures/canvas.py"
    module.write_text(module.read_text() + '\nSTYLE["axes.linewidth"] = 2.0\n')


def edit(path: str):
    """A change to a module that writes nothing DVC tracks (a comment is enough)."""

    def apply(repo):
        module = repo.root / path
        module.write_text(module.read_text() + "\n# edited\n")

    return apply


VARIABLE_BRANCH = {
    "generate@variable",
    "split@variable",
    "train@lstm_packed",
    "evaluate@lstm_packed",
    "plot@lstm_packed",
    "padding",  # it reads every model and split, to find packed variants with a padded twin
    "report",
}
FIXED_BRANCH = {
    "generate@fixed", "split@fixed", "train@gru", "evaluate@gru", "plot@gru", "padding", "report"
}  # fmt: skip
GRU_STAGES = {"train@gru", "evaluate@gru", "plot@gru", "padding", "report"}
PICTURE_STAGES = {"plot@gru", "plot@lstm_packed", "padding", "report"}
#: change -> (what `dvc status` reports before the run: the stages whose own params or
#: code changed; what `dvc repro` then runs: those and everything whose inputs change)
SELECTIVE_RERUNS = {
    "variable noise": (
        change("datasets.variable.noise", 0.2),
        {"generate@variable", "report"},
        VARIABLE_BRANCH,
    ),
    "fixed seed": (change("datasets.fixed.seed", 5), {"generate@fixed", "report"}, FIXED_BRANCH),
    "split seed": (
        change("split.seed", 7),
        {"split@fixed", "split@variable", "report"},  # the report names the split
        ALL_STAGES - {"generate@fixed", "generate@variable"},
    ),
    "gru seed": (change("models.gru.seed", 7), GRU_STAGES, GRU_STAGES),
    "figures module": (thicken_the_axes, PICTURE_STAGES, PICTURE_STAGES),
    "tracking module": (edit("pipeline/runtime/tracking/run.py"), set(), set()),
    "stage runtime": (edit("pipeline/runtime/stage.py"), set(), set()),
    "warm processes": (edit("pipeline/runtime/server.py"), set(), set()),
    "nothing": (lambda _repo: None, set(), set()),
}


def stale_stages(repo) -> set[str]:
    """The stages `dvc status` reports as changed."""
    return set(json.loads(repo.run("dvc", "status", "--json").stdout))


@pytest.mark.parametrize("case", SELECTIVE_RERUNS)
def test_a_change_reruns_exactly_the_stages_it_can_affect(reproduced_repo, case):
    apply, stale, expected = SELECTIVE_RERUNS[case]
    apply(reproduced_repo)
    assert stale_stages(reproduced_repo) == stale
    ran = reproduced_repo.repro()
    assert sorted(ran) == sorted(expected)
    assert sorted(run.info.run_name for run in reproduced_repo.mlflow_runs()) == sorted(expected)
    assert all(run.info.status == "FINISHED" for run in reproduced_repo.mlflow_runs())
    assert stale_stages(reproduced_repo) == set()


def test_a_value_changed_and_changed_back_is_restored_from_the_run_cache(reproduced_repo):
    original = reproduced_repo.params()["models"]["gru"]["seed"]
    change("models.gru.seed", 7)(reproduced_repo)
    assert sorted(reproduced_repo.repro()) == sorted(
        ["train@gru", "evaluate@gru", "plot@gru", "padding", "report"]
    )
    runs_after_change = len(reproduced_repo.mlflow_runs())

    change("models.gru.seed", original)(reproduced_repo)
    result = reproduced_repo.run("dvc", "repro")
    assert "Running stage" not in result.stdout
    assert result.stdout.count("is cached - skipping run, checking out outputs") == 5
    assert len(reproduced_repo.mlflow_runs()) == runs_after_change  # nothing ran, nothing logged
    assert reproduced_repo.run("git", "status", "--porcelain").stdout == ""  # the committed bytes


def test_verify_reruns_the_committed_pipeline_from_scratch_and_finds_the_same_bytes(
    reproduced_repo,
):
    result = reproduced_repo.run("python", "-m", "pipeline.tools.verify", "rerun")
    assert "every output matches dvc.lock" in result.stdout


def test_an_experiment_in_a_temporary_workspace_logs_to_the_repository_store(reproduced_repo):
    reproduced_repo.run("dvc", "exp", "run", "--temp", "-S", "models.gru.seed=7")
    runs = reproduced_repo.mlflow_runs()
    assert sorted(run.data.tags["dvc.stage"] for run in runs) == sorted(
        ["train@gru", "evaluate@gru", "plot@gru", "padding", "report"]
    )
    assert all(run.info.status == "FINISHED" for run in runs)
    root_artifacts = str(reproduced_repo.root / "mlruns")
    assert all(run.info.artifact_uri.startswith(root_artifacts) for run in runs)
    [name] = {run.data.tags["dvc.exp_name"] for run in runs}  # one experiment, named
    # Named and described apart from the pipeline's own runs.
    assert {run.data.tags["pipeline.kind"] for run in runs} == {"experiment"}
    for run in runs:
        assert run.info.run_name == f"{run.data.tags['dvc.stage']} [{name}]"
        assert run.data.tags["mlflow.note.content"].endswith(f"; DVC experiment {name}.")
    assert name in reproduced_repo.run("dvc", "exp", "list", "--name-only").stdout.split()
    baseline = reproduced_repo.run("git", "rev-parse", "HEAD").stdout.strip()
    assert {run.data.tags["dvc.exp_baseline"] for run in runs} == {baseline}

    # The README's `dvc exp show` recipe: one row per experiment; columns for the params
    # that changed and test accuracies only; narrow enough for a terminal.
    readme = (REPO / "README.md").read_text()
    recipe = re.search(r"```sh\n(dvc exp show --only-changed.*?)\n```", readme, re.S).group(1)
    table = reproduced_repo.run("bash", "-c", recipe).stdout
    header = next(line for line in table.splitlines() if "Experiment" in line).split()
    assert header[0] == "Experiment" and "models.gru.seed" in header, table
    assert all(
        column.startswith("models.") or column.endswith(":test_accuracy") for column in header[1:]
    ), table
    assert f"[{name}]" in table
    assert max(map(len, table.splitlines())) <= 120, table


def test_a_stage_failing_in_a_temporary_workspace_says_the_workspace_is_untouched(
    reproduced_repo,
):
    result = reproduced_repo.run(
        "dvc", "exp", "run", "--temp", "-S", "models.gru.batch_size=100000", check=False
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "models.gru.batch_size must be at most the training split's size" in output, output
    assert "in DVC's temporary copy of the workspace: the workspace is untouched" in output
    assert "dvc checkout" not in output
    assert reproduced_repo.run("dvc", "status").stdout.strip().endswith("up to date.")


def test_outputs_that_resolve_outside_the_repository_are_refused_before_a_run(
    reproduced_repo, tmp_path
):
    outside = tmp_path / "elsewhere"
    shutil.move(reproduced_repo.root / "data/raw", outside)
    (reproduced_repo.root / "data/raw").symlink_to(outside)
    result = reproduced_repo.run("dvc", "repro", "-f", "-s", "generate@fixed", check=False)
    assert result.returncode != 0
    assert "outside the repository" in result.stdout + result.stderr
    assert reproduced_repo.mlflow_runs() == []  # no run, let alone a FINISHED one
