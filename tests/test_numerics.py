"""Pinned CPU kernels: a stage trains the same bytes whatever kernels the machine offers.

This machine can pretend to be others: ATEN_CPU_CAPABILITY caps ATen's kernel family,
MKL_CBWR picks MKL's code branch, ONEDNN_MAX_CPU_ISA caps oneDNN, and threads and CPU
affinity vary the rest. The control test shows that each variation changes the bytes of
plain training here; the stage test shows that the stage's bytes do not move, so removing
the pin (pipeline/library/numerics.py) fails it on any machine with AVX2.
"""

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.library.settings import ModelSpec
from pipeline.library.split import stratified_split
from pipeline.library.squares import generate_squares, write_squares

REPO = Path(__file__).resolve().parents[1]
CEILINGS = ["default", "avx2"] + (["avx512"] if torch.cpu._is_avx512_supported() else [])
#: The variants whose kernels differ most: oneDNN ran padded LSTMs and convolutions
#: unpinned; packed LSTMs always run ATen's own.
VARIANTS = ("lstm", "lstm_packed", "conv1d")
#: Ways this machine imitates another: (environment, CPU affinity or None).
MACHINES = [({"ATEN_CPU_CAPABILITY": ceiling}, None) for ceiling in CEILINGS] + [
    ({"MKL_CBWR": "AUTO", "ONEDNN_MAX_CPU_ISA": "SSE41", "OMP_NUM_THREADS": "2"}, None),
    ({"OMP_NUM_THREADS": "1"}, {0}),
]

CONTROL = """
import hashlib, io, json, sys
import torch
from pipeline.library.models import build_model
from pipeline.library.squares import read_squares
from pipeline.library.settings import ModelSpec
from pipeline.library.training import LabelledSequences, train
torch.set_num_threads(int(sys.argv[3]))
spec = ModelSpec(**json.loads(sys.argv[2]))
model = build_model(spec, seed=21)
data = LabelledSequences.from_squares(read_squares(sys.argv[1]))
train(model, data, epochs=3, batch_size=16, learning_rate=0.01, shuffle_seed=42)
buffer = io.BytesIO()
torch.save(model.state_dict(), buffer)
print(hashlib.md5(buffer.getvalue()).hexdigest())
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """params.yaml with small variants, and the split files they train on."""
    root = tmp_path_factory.mktemp("numerics")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["models"] = {name: params["models"][name] for name in VARIANTS}
    for model in params["models"].values():
        model["epochs"] = 3
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for name in ("fixed", "variable"):
        dataset = params["datasets"][name]
        squares = generate_squares(96, dataset["noise"], dataset["seed"], dataset["variable_len"])
        for part, rows in stratified_split(squares.labels, 0.2, 0.2, 42).parts().items():
            write_squares(squares.take(rows), root / "split" / name / f"{part}.parquet")
    return root


def run(command: list[str], cwd: Path, environment: dict, cpus: set[int] | None) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), **environment}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{cwd / 'mlflow.db'}"
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_without_the_pin_each_imitated_machine_trains_other_bytes(workdir):
    """The control: plain training (no pin) under each ceiling, and MKL's branch."""

    def trained(split: str, spec: ModelSpec, **environment: str) -> str:
        """The md5 of plain training on `split` in a process with `environment`."""
        arguments = [str(workdir / f"split/{split}/train.parquet"), json.dumps(spec.to_dict())]
        return run([sys.executable, "-c", CONTROL, *arguments, "1"], workdir, environment, None)

    packed = ModelSpec("lstm", 2, 1, bidirectional=True, packed=True)
    hashes = {
        ceiling: trained("variable", packed, ATEN_CPU_CAPABILITY=ceiling, MKL_CBWR="AUTO")
        for ceiling in CEILINGS
    }
    assert len(set(hashes.values())) == len(CEILINGS), hashes
    compatible = trained("variable", packed, ATEN_CPU_CAPABILITY="avx2", MKL_CBWR="COMPATIBLE")
    assert compatible != hashes["avx2"]  # MKL's branch matters too
    # oneDNN runs unpinned LSTMs on padded input (not packed ones): its kernels matter too.
    padded = ModelSpec("lstm", 2, 1, bidirectional=False, packed=False)
    by_isa = {
        isa: trained(
            "fixed", padded, ATEN_CPU_CAPABILITY="avx2", MKL_CBWR="AUTO", ONEDNN_MAX_CPU_ISA=isa
        )
        for isa in ("SSE41", "AVX2")
    }
    assert by_isa["SSE41"] != by_isa["AVX2"]


def test_without_one_thread_a_convolution_trains_other_bytes(workdir):
    """The control for thread counts: a machine with more cores splits sums differently."""
    spec = json.dumps(ModelSpec("conv1d", 1, 1, bidirectional=False, packed=False).to_dict())
    train_file = str(workdir / "split/fixed/train.parquet")
    by_threads = {
        threads: run([sys.executable, "-c", CONTROL, train_file, spec, threads], workdir, {}, None)
        for threads in ("1", "2")
    }
    assert by_threads["1"] != by_threads["2"]


def train_on_each(machines: list, workdir: Path, target: Path, variant: str, warm: bool) -> set:
    """(weights md5, loss.csv md5) of the train stage run once on each imitated machine."""
    dataset = "variable" if variant == "lstm_packed" else "fixed"
    outputs = set()
    for index, (environment, cpus) in enumerate(machines):
        run(
            [sys.executable, "-m", "pipeline", "train", variant, str(workdir / "split" / dataset),
             str(target / f"{index}/model"), str(target / f"{index}/history")],
            workdir,
            {**environment, "PIPELINE_STAGE_SERVER": "1" if warm else "0"},
            cpus,
        )  # fmt: skip
        model, history = target / f"{index}/model", target / f"{index}/history"
        outputs.add((md5(model / "weights.pt"), md5(history / "loss.csv")))
    return outputs


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_train_stage_writes_the_same_bytes_on_every_imitated_machine(
    workdir, tmp_path, variant
):
    assert len(train_on_each(MACHINES, workdir, tmp_path, variant, warm=True)) == 1


@pytest.mark.slow
def test_so_does_a_stage_in_a_process_of_its_own(workdir, tmp_path):
    """The pin also holds without warm processes (PIPELINE_STAGE_SERVER=0): the lowest and
    the highest kernel family this CPU offers (each run imports torch afresh: kept short)."""
    extremes = [MACHINES[0], MACHINES[len(CEILINGS) - 1]]
    assert len(train_on_each(extremes, workdir, tmp_path, "lstm_packed", warm=False)) == 1


def test_a_cpu_without_the_pinned_family_gets_one_line(workdir, tmp_path):
    if torch.cpu._is_avx512_supported():
        pytest.skip("this CPU runs every family; the refusal needs one that lacks AVX-512")
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["cpu_capability"] = "avx512"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "train",
            "conv1d",
            str(workdir / "split/fixed"),
            "m",
            "h",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: params.yaml: cpu_capability avx512 is not supported")


@pytest.mark.slow
def test_this_machine_trains_the_bytes_the_committed_lock_records(tmp_path):
    """The shipped params, through the committed dvc.lock's own commands: the data stages
    and the training of the variants whose kernels differ most write exactly the md5s the
    lock records, on whatever machine runs this (the lock was made on another one)."""
    stages = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    names = [
        f"{kind}@{dataset}" for dataset in ("fixed", "variable") for kind in ("generate", "split")
    ]
    names += [f"train@{variant}" for variant in VARIANTS]
    for name in names:
        _, *arguments = shlex.split(stages[name]["cmd"])  # python -m pipeline ...
        run([sys.executable, *arguments], tmp_path, {}, None)
    recorded = {out["path"]: out["md5"] for name in names for out in stages[name]["outs"]}
    written = {path: md5(tmp_path / path) for path in recorded}
    assert written == recorded
