"""Sweeps: the summary's maths, the sweep file's checks, and real sweeps through DVC's queue.

The slow tests run small sweeps for real: DVC's queue with two workers, Ctrl-C in the middle,
a failing experiment, MLflow's SQLite store, and the GitHub workflow's job commands in clones
that share a bare git remote, a DVC remote directory and one MLflow store.
"""

import base64
import concurrent.futures
import json
import math
import os
import re
import signal
import statistics
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO, PipelineRepo, copy_of_this_repository
from mlflow import MlflowClient

from pipeline.tools.sweep_plan import SweepError, apply_overrides, load_sweep
from pipeline.tools.sweep_records import Experiment, classify, stale_targets
from pipeline.tools.sweep_summary import (
    Result,
    draw_accuracy,
    markdown_table,
    summarize,
    write_html_page,
)

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
WORKFLOW = REPO / ".github" / "workflows" / "sweep.yml"
#: Steps of the workflow that only make sense on GitHub's runners: the test's clones have
#: the environment already, and their git remote is a directory.
GITHUB_ONLY_STEPS = {
    "Set up .venv (make setup)",
    "Let git push with this job's token",
    "Let git fetch with this job's token",
}


def write_sweep(root: Path, name: str, **fields) -> Path:
    path = root / "sweeps" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"name": name, **fields}, sort_keys=False))
    return path.relative_to(root)


# ---------------------------------------------------------------------------
# The summary's maths, table and picture.


def results(rows: list[tuple[float, int, str, float]]) -> list[Result]:
    return [
        Result(f"s-{value}-seed-{seed}", value, seed, variant, accuracy)
        for value, seed, variant, accuracy in rows
    ]


def test_summary_gives_mean_and_spread_per_value_and_variant_in_order():
    spreads = summarize(
        results(
            [
                (0.6, 1, "rnn", 0.5),
                (0.1, 1, "rnn", 1.0),
                (0.1, 2, "rnn", 0.75),
                (0.1, 3, "rnn", 0.875),
                (0.1, 1, "gru", 0.9),
                (0.6, 1, "gru", 0.8),
                (0.6, 2, "gru", 0.6),
            ]
        ),
        variants=("gru", "rnn"),
    )
    assert [(s.value, s.variant, s.seeds) for s in spreads] == [
        (0.1, "gru", 1),
        (0.1, "rnn", 3),
        (0.6, "gru", 2),
        (0.6, "rnn", 1),
    ]
    rnn = spreads[1]
    assert (rnn.mean, rnn.low, rnn.high) == (0.875, 0.75, 1.0)
    assert rnn.std == statistics.stdev([1.0, 0.75, 0.875])
    assert spreads[0].std is None  # one seed has no spread to show
    assert spreads[2].mean == 0.7


def test_the_mean_is_the_same_bits_whatever_the_order_of_the_seeds():
    accuracies = [0.1, 0.2, 0.3, 0.7, 1e-16]
    forward = summarize(results([(1.0, i, "rnn", a) for i, a in enumerate(accuracies)]), ["rnn"])
    backward = summarize(
        results([(1.0, i, "rnn", a) for i, a in enumerate(reversed(accuracies))]), ["rnn"]
    )
    assert forward[0].mean == backward[0].mean == math.fsum(accuracies) / len(accuracies)


def test_markdown_table_has_a_row_per_value_and_a_dash_where_a_variant_is_missing():
    spreads = summarize(
        results([(0.1, 1, "rnn", 1.0), (0.1, 2, "rnn", 0.5), (0.6, 1, "gru", 0.75)]),
        ["rnn", "gru"],
    )
    assert markdown_table(spreads, "datasets.fixed.noise", ["rnn", "gru"]).splitlines() == [
        "| datasets.fixed.noise | rnn | gru |",
        "|---:|---:|---:|",
        "| 0.1 | 0.750 (0.500-1.000) | - |",
        "| 0.6 | - | 0.750 |",
    ]


def test_the_html_page_embeds_the_picture_and_holds_the_same_table(tmp_path):
    spreads = summarize(
        results([(0.1, 1, "rnn", 1.0), (0.1, 2, "rnn", 0.5), (0.6, 1, "gru", 0.75)]),
        ["rnn", "gru"],
    )
    picture, page = tmp_path / "accuracy.png", tmp_path / "index.html"
    draw_accuracy(spreads, "datasets.fixed.noise", ["rnn", "gru"], "A title", picture)
    write_html_page(page, "Sweep noise", picture, spreads, "datasets.fixed.noise", ["rnn", "gru"])
    text = page.read_text()
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", text)
    assert cells == ["0.1", "0.750 (0.500-1.000)", "-", "0.6", "-", "0.750"]
    embedded = re.search(r'src="data:image/png;base64,([^"]+)"', text).group(1)
    assert base64.b64decode(embedded) == picture.read_bytes()
    assert "<script" not in text


def test_the_picture_is_the_same_bytes_when_drawn_again(tmp_path):
    spreads = summarize(
        results(
            [(v, s, n, 1 - v / (s + 1)) for v in (0.1, 0.5, 1.0) for s in (1, 2) for n in "ab"]
        ),
        ["a", "b"],
    )
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    for path in (first, second):
        draw_accuracy(spreads, "datasets.fixed.noise", ["a", "b"], "A title", path)
    assert first.read_bytes() == second.read_bytes()
    from pipeline.pictures.canvas import description_of

    assert description_of(first).startswith("Test accuracy against datasets.fixed.noise")


# ---------------------------------------------------------------------------
# The sweep file.


def test_the_default_sweep_has_three_seeds_per_value_and_sets_every_variant():
    sweep = load_sweep(REPO / "sweeps" / "noise.yaml", PARAMS)
    assert sweep.param == "datasets.fixed.noise"
    assert sweep.values == (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0)
    assert len(sweep.seeds) >= 3
    fixed_data = {name for name, model in PARAMS["models"].items() if model["dataset"] == "fixed"}
    assert set(sweep.variants) == fixed_data
    assert len(sweep.points) == len(sweep.values) * len(sweep.seeds)
    point = sweep.point("noise-0.1-seed-22")
    assert point.overrides["datasets.fixed.noise"] == 0.1
    assert {point.overrides[f"models.{v}.seed"] for v in sweep.variants} == {22}
    assert point.set_params()[:2] == ["-S", "datasets.fixed.noise=0.1"]
    assert sweep.targets == [f"evaluate@{variant}" for variant in sweep.variants]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"colour": 1}, "unknown key 'colour'"),
        ({"values": []}, "values must be a non-empty list of finite numbers"),
        ({"values": [0.1, "high"]}, "values must be finite numbers, got 'high'"),
        ({"values": [0.1, 0.1]}, "values must not repeat a value"),
        (
            {"variants": ["gru", "transformer"]},
            "variants must be keys of models, got 'transformer'",
        ),
        ({"param": "datasets.fixed"}, "param must be a key of params.yaml holding one value"),
        ({"each_variant": {"seed": 3}}, "each_variant.seed must be a setting of every variant"),
        ({"set": {"split.sed": 3}}, "set.split.sed must be a key of params.yaml"),
        ({"set": {"datasets.fixed.noise": 0.2}}, "datasets.fixed.noise is set twice"),
        (
            {"values": [0.1, -1]},
            "small.yaml, small--1-seed-21: datasets.fixed.noise must be a finite number",
        ),
        # The checks of params.yaml's types, in the sweep file's words.
        ({"values": [0.1, "0.2"]}, "values must be finite numbers, got '0.2'"),
        ({"seeds": [21, True]}, "seeds must be integers 0 to 4294967295, got True"),
        ({"seeds": [2**32]}, "seeds must be integers 0 to 4294967295, got 4294967296"),
        ({"each_variant": ["epochs"]}, "each_variant must be a mapping of settings"),
        ({"each_variant": {"epochs": [1, 2]}}, "each_variant.epochs must be one value, got a list"),
        ({"set": {7: 1}}, "set.7 must be a key of params.yaml holding one value"),
    ],
)
def test_a_bad_sweep_file_gets_one_line_naming_the_file_and_the_key(tmp_path, fields, message):
    base = {"param": "datasets.fixed.noise", "values": [0.1], "variants": ["gru"], "seeds": [21]}
    path = tmp_path / write_sweep(tmp_path, "small", **(base | fields))
    with pytest.raises(SweepError) as error:
        load_sweep(path, PARAMS)
    text = str(error.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


SWEEP_TEXT = "param: datasets.fixed.noise\nvalues: [0.1]\nvariants: [gru]\nseeds: [21]\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- small\n", "must be a mapping with keys name, param, values, variants, seeds"),
        (
            "name: small\n" + SWEEP_TEXT.replace("seeds: [21]\n", ""),
            "missing key 'seeds'; the keys are name, param, values, variants, seeds, each_variant, set",
        ),
        (
            "name: Small\n" + SWEEP_TEXT,
            "name must be lower-case letters, digits, '-' or '_', got 'Small'",
        ),
    ],
)
def test_a_sweep_files_shape_and_name_are_one_line_too(tmp_path, text, message):
    path = tmp_path / "small.yaml"
    path.write_text(text)
    with pytest.raises(SweepError) as error:
        load_sweep(path, PARAMS)
    assert str(error.value) == f"{path}: {message}"


def test_swept_values_keep_their_yaml_types_in_names_and_overrides(tmp_path):
    path = write_sweep(
        tmp_path, "s", param="datasets.fixed.noise", values=[1, 0.5], variants=["gru"], seeds=[21]
    )
    sweep = load_sweep(tmp_path / path, PARAMS)
    assert [point.name for point in sweep.points] == ["s-1-seed-21", "s-0.5-seed-21"]
    assert [point.set_params()[1] for point in sweep.points] == [
        "datasets.fixed.noise=1",
        "datasets.fixed.noise=0.5",
    ]


# ---------------------------------------------------------------------------
# What counts as done: DVC's experiments and their dvc.lock.


def lock(split_md5: str, evaluated_md5: str, gru_params: dict) -> dict:
    """A dvc.lock where evaluate@gru read a test split of md5 `evaluated_md5`."""
    return {
        "stages": {
            "split@fixed": {"outs": [{"path": "data/split/fixed/test.parquet", "md5": split_md5}]},
            "evaluate@gru": {
                "params": {"params.yaml": {"models.gru": gru_params}},
                "deps": [{"path": "data/split/fixed/test.parquet", "md5": evaluated_md5}],
                "outs": [{"path": "data/predictions/gru.csv", "md5": "p"}],
            },
        }
    }


def test_a_stage_that_read_other_data_or_params_is_stale():
    gru = PARAMS["models"]["gru"]
    assert stale_targets(lock("a", "a", gru), PARAMS, ["evaluate@gru"]) == []
    assert stale_targets(lock("b", "a", gru), PARAMS, ["evaluate@gru"]) == ["evaluate@gru"]
    other_seed = gru | {"seed": gru["seed"] + 1}
    assert stale_targets(lock("a", "a", other_seed), PARAMS, ["evaluate@gru"]) == ["evaluate@gru"]
    assert stale_targets(lock("a", "a", gru), PARAMS, ["evaluate@rnn"]) == ["evaluate@rnn"]


def test_experiments_count_for_a_point_only_with_its_name_params_and_current_results(tmp_path):
    path = tmp_path / write_sweep(
        tmp_path,
        "s",
        param="datasets.fixed.noise",
        values=[0.3],
        variants=["gru"],
        seeds=[1, 2, 3, 4],
    )
    sweep = load_sweep(path, PARAMS)
    wanted = {p.name: apply_overrides(PARAMS, p.overrides) for p in sweep.points}
    locks = {
        "current": lock("a", "a", wanted["s-0.3-seed-1"]["models"]["gru"]),
        "stale": lock("b", "a", wanted["s-0.3-seed-2"]["models"]["gru"]),
    }

    def experiment(name, state, rev, params):
        return Experiment(name, state, rev, f"task-{rev}", params, {})

    states = classify(
        sweep,
        PARAMS,
        [
            experiment("s-0.3-seed-1", "success", "current", wanted["s-0.3-seed-1"]),
            experiment("s-0.3-seed-1", "failed", "old-failure", wanted["s-0.3-seed-1"]),
            experiment("s-0.3-seed-2", "success", "stale", wanted["s-0.3-seed-2"]),
            experiment("s-0.3-seed-3", "queued", "q", wanted["s-0.3-seed-3"]),
            experiment("s-0.3-seed-4", "success", "current", PARAMS),  # another noise
        ],
        lock_of=locks.__getitem__,
    )
    assert {name: state.kind for name, state in states.items()} == {
        "s-0.3-seed-1": "done",
        "s-0.3-seed-2": "missing",
        "s-0.3-seed-3": "queued",
        "s-0.3-seed-4": "missing",
    }
    assert [e.rev for e in states["s-0.3-seed-1"].obsolete] == ["old-failure"]
    assert states["s-0.3-seed-2"].reason == "evaluate@gru did not run in it"
    assert states["s-0.3-seed-4"].reason == "its params differ"


# ---------------------------------------------------------------------------
# The workflow.


def test_the_workflow_runs_one_experiment_per_job_then_gathers_them():
    # tests/test_workflows.py checks it against GitHub's schema, as every workflow.
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert list(workflow[True]) == ["workflow_dispatch"]  # YAML 1.1 reads `on` as true
    jobs = workflow["jobs"]
    matrix = jobs["experiment"]["strategy"]["matrix"]["experiment"]
    assert matrix == "${{ fromJSON(needs.plan.outputs.experiments) }}"
    assert jobs["experiment"]["strategy"]["fail-fast"] is False
    assert set(jobs["summary"]["needs"]) == {"plan", "experiment"}
    names = {step.get("name") for job in jobs.values() for step in job["steps"]}
    assert names >= GITHUB_ONLY_STEPS  # the steps the clones skip still exist


# ---------------------------------------------------------------------------
# Real sweeps.


def exp_show(repo: PipelineRepo) -> dict[str, dict]:
    """Each finished experiment's params and metrics, by name, from `dvc exp show --json`."""
    shown = json.loads(repo.run("dvc", "exp", "show", "--json").stdout)
    found = {}
    for baseline in shown[1:]:
        for experiment in baseline.get("experiments") or []:
            executor = experiment.get("executor") or {}
            if executor.get("state", "success") == "success":
                found[experiment["name"]] = experiment["revs"][0]["data"]
    return found


def read_csv(path: Path) -> list[dict[str, str]]:
    header, *rows = (line.split(",") for line in path.read_text().splitlines())
    return [dict(zip(header, row, strict=True)) for row in rows]


#: Where a sweep's runs go: an experiment of their own, beside the pipeline's.
SWEEPS = "square-sequences-sweeps"


def runs_tagged(client: MlflowClient, names: set[str]) -> list:
    return runs_in(client, client.get_experiment_by_name(SWEEPS).experiment_id, names)


def runs_in(client: MlflowClient, experiment_id: str, names: set[str]) -> list:
    runs = client.search_runs([experiment_id], run_view_type=3, max_results=10_000)
    return [run for run in runs if run.data.tags.get("dvc.exp_name") in names]


def sweep_run(client: MlflowClient, name: str):
    experiment = client.get_experiment_by_name(SWEEPS)
    (run,) = client.search_runs([experiment.experiment_id], f"tags.`dvc.sweep` = '{name}'")
    return run


@pytest.fixture
def sweep_repo(tmp_path) -> PipelineRepo:
    """A copy with two small variants, the sweep files of the test, and `make` working."""
    repo = copy_of_this_repository(tmp_path / "repo")
    repo.use_small_params(models=("gru", "conv1d"))
    (repo.root / "dvc.lock").unlink()  # it records the default params' pipeline
    (repo.root / ".venv").symlink_to(REPO / ".venv")
    with (repo.root / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("/.venv\n")
    # One value, two seeds: the fewest experiments whose summary has a spread to sum up
    # (the order of values and variants is the unit tests' above).
    fields = {"param": "datasets.fixed.noise", "values": [0.6], "variants": ["gru", "conv1d"]}
    write_sweep(repo.root, "small", **fields, seeds=[21, 22])
    write_sweep(
        repo.root, "sizes", param="datasets.fixed.n", values=[96, 20], variants=["gru"], seeds=[21]
    )
    repo.commit("small params and sweeps")
    yield repo
    repo.run("dvc", "queue", "stop", "--kill", check=False)


def interrupted_sweep(repo, signum: int, whole_group: bool) -> tuple[str, int]:
    """Run the small sweep with one worker and signal it once its first experiment runs
    (the second waits in the queue); its output and exit status. On the way, a second
    sweep of the same file is refused, naming the first."""
    sweep = subprocess.Popen(
        ["python", "-m", "pipeline.tools.sweep", "run", "sweeps/small.yaml", "-j", "1"],
        cwd=repo.root, env=repo.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    printed = []
    for line in sweep.stdout:
        printed.append(line)
        if re.search(r"\] 0 of 2 done, 1 running", line):
            second = repo.run("python", "-m", "pipeline.tools.sweep", "run", "sweeps/small.yaml",
                              check=False)  # fmt: skip
            assert second.returncode == 1, second.stdout + second.stderr
            assert second.stderr.startswith(
                f"error: sweeps/small.yaml: sweep small is already running (pid {sweep.pid} on "
            ), second.stderr
            if whole_group:
                os.killpg(sweep.pid, signum)  # what a terminal's Ctrl-C sends
            else:
                os.kill(sweep.pid, signum)  # what `kill` or a closing terminal sends
            break
    printed += sweep.stdout.readlines()
    return "".join(printed), sweep.wait(timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
def test_sigterm_and_sighup_stop_a_sweep_as_ctrl_c_does(sweep_repo, signum):
    output, status = interrupted_sweep(sweep_repo, signum, whole_group=False)
    assert status == 128 + signum, output
    # Its first line comes at once, before DVC's records are read.
    assert output.splitlines()[0] == "sweep small: reading DVC's queue and experiments", output
    assert re.search(r"^stopped\. Rerun the same command to resume", output, re.M), output
    assert not re.search(r"\b(Running|Queued)\b", sweep_repo.run("dvc", "queue", "status").stdout)


@pytest.mark.slow
def test_a_sweep_resumes_after_ctrl_c_sums_up_dvcs_records_and_reruns_nothing(sweep_repo):
    repo, names = sweep_repo, {f"small-0.6-seed-{seed}" for seed in (21, 22)}

    # Ctrl-C once the first experiment runs (one worker: the other waits in the queue). The
    # running one ends; the queued one leaves the queue.
    output, status = interrupted_sweep(repo, signal.SIGINT, whole_group=True)
    assert status == 130, output
    assert re.search(r"^stopped\. Rerun the same command to resume", output, re.M), output
    assert not re.search(r"\b(Running|Queued)\b", repo.run("dvc", "queue", "status").stdout)

    # Rerun: only what did not finish is queued again.
    resumed = repo.run("make", "sweep", "SWEEP=sweeps/small.yaml", "JOBS=2").stdout
    # The one running at Ctrl-C finished; the other did not run: the interrupt interrupted.
    assert re.search(r"^sweep small: 2 experiments; 1 done, 0 in the queue", resumed, re.M), (
        output + resumed
    )
    assert len(re.findall(r"^\$ dvc exp run --queue", resumed, re.M)) == 1, resumed
    assert "$ dvc queue start -j 2" in resumed, resumed

    # The summary holds exactly the numbers of DVC's experiment records.
    shown = exp_show(repo)
    assert set(shown) == names
    summary = repo.root / "data" / "sweeps" / "small"
    table = read_csv(summary / "accuracy.csv")
    assert [(row["datasets.fixed.noise"], row["variant"]) for row in table] == [
        ("0.6", "gru"), ("0.6", "conv1d"),
    ]  # fmt: skip
    for row in table:
        accuracies = [
            shown[f"small-{row['datasets.fixed.noise']}-seed-{seed}"]["metrics"][
                f"data/metrics/{row['variant']}.json"
            ]["data"]["test_accuracy"]
            for seed in (21, 22)
        ]
        assert float(row["mean_test_accuracy"]) == math.fsum(accuracies) / 2
        assert float(row["min_test_accuracy"]) == min(accuracies)
        assert float(row["max_test_accuracy"]) == max(accuracies)
        assert float(row["std_test_accuracy"]) == statistics.stdev(accuracies)
    for row in read_csv(summary / "experiments.csv"):
        data = shown[row["experiment"]]
        assert data["rev"] == row["rev"]
        assert (
            float(row["test_accuracy"])
            == (data["metrics"][f"data/metrics/{row['variant']}.json"]["data"]["test_accuracy"])
        )
        assert data["params"]["params.yaml"]["data"]["models"]["gru"]["seed"] == int(row["seed"])

    # MLflow: every run of these experiments is FINISHED and tagged with its name; each has
    # an evaluation per variant with DVC's number, and the sweep's run is their parent.
    client = MlflowClient(tracking_uri=f"sqlite:///{repo.root / 'mlflow.db'}")
    runs = runs_tagged(client, names)
    assert {run.info.status for run in runs} == {"FINISHED"}
    for name in names:
        for variant in ("gru", "conv1d"):
            (evaluation,) = [
                run
                for run in runs
                if run.data.tags["dvc.exp_name"] == name
                and run.data.tags["dvc.stage"] == f"evaluate@{variant}"
            ]
            metrics = shown[name]["metrics"][f"data/metrics/{variant}.json"]["data"]
            assert evaluation.data.metrics["test_accuracy"] == metrics["test_accuracy"]
    pipeline = client.get_experiment_by_name("square-sequences")
    if pipeline is not None:  # the sweep logged none of its runs among the pipeline's
        assert runs_in(client, pipeline.experiment_id, names) == []
    parent = sweep_run(client, "small")
    assert parent.info.status == "FINISHED"
    assert {run.data.tags.get("mlflow.parentRunId") for run in runs} == {parent.info.run_id}
    assert sorted(a.path for a in client.list_artifacts(parent.info.run_id)) == [
        "README.md", "accuracy.csv", "accuracy.png", "experiments.csv", "index.html",
    ]  # fmt: skip

    # Again: nothing runs, no MLflow run is added, the summary keeps its bytes.
    before = {path.name: path.read_bytes() for path in summary.iterdir()}
    count = len(
        client.search_runs([parent.info.experiment_id], run_view_type=3, max_results=10_000)
    )
    again = repo.run("make", "sweep", "SWEEP=sweeps/small.yaml", "JOBS=2").stdout
    assert "2 done, 0 in the queue, 0 to queue" in again and "$ dvc" not in again, again
    assert {path.name: path.read_bytes() for path in summary.iterdir()} == before
    after = client.search_runs([parent.info.experiment_id], run_view_type=3, max_results=10_000)
    assert len(after) == count

    # A failing experiment is named, with its error; the others finish and are summed up.
    failing = repo.run(
        "python", "-m", "pipeline.tools.sweep", "run", "sweeps/sizes.yaml", check=False
    )
    output = failing.stdout + failing.stderr
    assert failing.returncode == 1, output
    assert re.search(
        r"^failed: sizes-20-seed-21: error: .*batch_size must be at most", output, re.M
    )
    assert "not in the summary: sizes-20-seed-21 (failed)" in output
    sizes = read_csv(repo.root / "data" / "sweeps" / "sizes" / "accuracy.csv")
    assert [(row["datasets.fixed.n"], row["variant"]) for row in sizes] == [("96", "gru")]


def workflow_steps(job: str, context: dict[str, str]) -> list[tuple[str, str, dict[str, str]]]:
    """The (name, script, environment) of each `run` step of `job` that a clone runs, with
    the workflow's `${{ ... }}` expressions taken from `context`."""
    workflow = yaml.safe_load(WORKFLOW.read_text())

    def resolve(values: dict) -> dict[str, str]:
        resolved = {}
        for key, value in (values or {}).items():
            expression = re.fullmatch(r"\$\{\{ (.+) \}\}", str(value))
            resolved[key] = context[expression.group(1)] if expression else str(value)
        return resolved

    environment = resolve(workflow.get("env")) | resolve(workflow["jobs"][job].get("env"))
    steps = []
    for step in workflow["jobs"][job]["steps"]:
        if "run" in step and step["name"] not in GITHUB_ONLY_STEPS:
            assert "${{" not in step["run"], f"{step['name']}: scripts read the environment only"
            steps.append((step["name"], step["run"], environment | resolve(step.get("env"))))
    return steps


def run_job(clone: PipelineRepo, job: str, context: dict[str, str], output: Path) -> None:
    """Run a job's steps in `clone` as GitHub runs them (bash -eo pipefail), in order."""
    for name, script, environment in workflow_steps(job, context):
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=clone.root,
            env=clone.env | environment | {"GITHUB_OUTPUT": str(output)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"{job}: {name}:\n{result.stdout}\n{result.stderr}"


@pytest.mark.slow
def test_the_workflows_jobs_in_clones_give_the_summary_of_a_local_sweep(tmp_path):
    # The developer's repository, pushed to a bare remote; a DVC remote; one MLflow store
    # standing for the team's server.
    local = copy_of_this_repository(tmp_path / "local")
    local.use_small_params(models=("gru",))
    (local.root / "dvc.lock").unlink()
    sweep_file = write_sweep(
        local.root,
        "pair",
        param="datasets.fixed.noise",
        values=[0.3],
        variants=["gru"],
        seeds=[21, 22],
    )
    local.commit("a sweep of two experiments")
    origin = tmp_path / "origin.git"
    local.run("git", "init", "--quiet", "--bare", str(origin))
    local.run("git", "push", "--quiet", str(origin), "HEAD:refs/heads/main")
    local.run("git", "--git-dir", str(origin), "symbolic-ref", "HEAD", "refs/heads/main")
    store = f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}"
    context = {
        "inputs.sweep": str(sweep_file),
        "secrets.MLFLOW_TRACKING_URI": store,
        "secrets.DVC_REMOTE_URL": str(tmp_path / "dvc-remote"),
    }

    def clone(name: str) -> PipelineRepo:
        machine = PipelineRepo(tmp_path / name)
        subprocess.run(["git", "clone", "--quiet", str(origin), str(machine.root)], check=True)
        return machine

    # plan, then one job per experiment, at once, each in a clone of its own.
    planner = clone("plan")
    run_job(planner, "plan", context, tmp_path / "plan.out")
    (line,) = (tmp_path / "plan.out").read_text().splitlines()
    experiments = json.loads(line.removeprefix("experiments="))
    assert experiments == ["pair-0.3-seed-21", "pair-0.3-seed-22"]
    with concurrent.futures.ThreadPoolExecutor(len(experiments)) as pool:
        jobs = [
            pool.submit(
                run_job,
                clone(f"job-{index}"),
                "experiment",
                context | {"matrix.experiment": name},
                tmp_path / f"job-{index}.out",
            )
            for index, name in enumerate(experiments)
        ]
        for job in jobs:
            job.result()

    # The gathering job, in a clone of its own.
    gatherer = clone("summary")
    run_job(gatherer, "summary", context, tmp_path / "summary.out")

    # The same sweep, run locally through the queue.
    local.run("python", "-m", "pipeline.tools.sweep", "run", str(sweep_file), "-j", "2")
    for name in ("accuracy.csv", "accuracy.png"):
        gathered = gatherer.root / "data" / "sweeps" / "pair" / name
        assert (
            gathered.read_bytes() == (local.root / "data" / "sweeps" / "pair" / name).read_bytes()
        )

    # The summary's run in the shared store has the jobs' runs as its children.
    client = MlflowClient(tracking_uri=store)
    runs = runs_tagged(client, set(experiments))
    assert {run.data.tags["dvc.exp_name"] for run in runs} == set(experiments)
    assert {run.info.status for run in runs} == {"FINISHED"}
    parent = sweep_run(client, "pair")
    assert {run.data.tags.get("mlflow.parentRunId") for run in runs} == {parent.info.run_id}


@pytest.mark.slow
def test_queueing_waits_while_a_queue_worker_holds_dvcs_experiment_lock(sweep_repo):
    # What a worker taking a task holds for a moment: DVC's write lock on the queue's stash,
    # in the name of a live process. `dvc exp run --queue` alone fails at once.
    holder = subprocess.Popen(["python", "-c", "import time; time.sleep(300)"], env=sweep_repo.env)
    lock = sweep_repo.root / ".dvc" / "tmp" / "exps" / "rwlock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(
        json.dumps(
            {"read": {}, "write": {"refs/exps/celery/stash": {"pid": holder.pid, "cmd": "worker"}}}
        )
    )
    queueing = subprocess.Popen(
        ["python", "-m", "pipeline.tools.sweep", "run", "sweeps/sizes.yaml", "-j", "1"],
        cwd=sweep_repo.root, env=sweep_repo.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    printed = []
    for line in queueing.stdout:
        printed.append(line)
        if "locked by a queue worker: trying again" in line and holder.poll() is None:
            holder.kill()  # the worker moves on: DVC drops a dead process's lock
            holder.wait()
        if line.startswith("$ dvc queue start"):  # the first point is queued
            break
    queueing.kill()  # running the sweep is another test's
    queueing.wait()
    holder.kill()
    output = "".join(printed)
    assert "trying again" in output, output
    queued = sweep_repo.run("dvc", "queue", "status").stdout
    assert re.search(r"\bsizes-96-seed-21\b.*\b(Queued|Running|Success)\b", queued), queued
