"""Pinned numerics: a stage writes the same bytes whatever processor runs it.

This machine imitates others. ATEN_CPU_CAPABILITY caps ATen's kernel family, MKL_CBWR picks
MKL's branch, ONEDNN_MAX_CPU_ISA caps oneDNN, NPY_DISABLE_CPU_FEATURES and OPENBLAS_CORETYPE
cap NumPy's, and threads and CPU affinity vary the rest. QEMU runs the same interpreter on an
emulated Intel Haswell (GenuineIntel, AVX2, no AVX-512) and an emulated AMD EPYC: MKL then
takes the branches it takes on those processors, and approximate instructions (rsqrtps)
come out exact, as neither Intel's nor AMD's processors compute them. The controls show
that each variation changes the bytes of unpinned code here; the stage tests show that the
stages' bytes do not move (removing a pin from pipeline/library/numerics.py, or the fused
Adam from pipeline/library/training.py, fails them).
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
#: unpinned; packed LSTMs always run ATen's own; a GRU reads MKL's vector tanh.
VARIANTS = ("lstm", "lstm_packed", "conv1d", "gru")
#: Ways this machine imitates another: (environment, CPU affinity or None).
MACHINES = [({"ATEN_CPU_CAPABILITY": ceiling}, None) for ceiling in CEILINGS] + [
    ({"MKL_CBWR": "AUTO", "ONEDNN_MAX_CPU_ISA": "SSE41", "OMP_NUM_THREADS": "2"}, None),
    ({"NPY_DISABLE_CPU_FEATURES": "", "OPENBLAS_CORETYPE": "Prescott"}, None),
    ({"OMP_NUM_THREADS": "1"}, {0}),
]
#: Processors QEMU emulates: an Intel one, and an AMD one, both with AVX2 and without AVX-512.
EMULATED = {"intel haswell": "Haswell-noTSX", "amd epyc": "EPYC-Rome"}

CONTROL = """
import hashlib, io, json, sys
import torch
from pipeline.library.models import build_model
from pipeline.library.squares import read_squares
from pipeline.library.settings import ModelSpec
from pipeline.library.training import LabelledSequences, train
torch.set_num_threads(int(sys.argv[3]))
if sys.argv[4] == "torch's default adam":  # the per-tensor Adam a chapter reader would use
    adam = torch.optim.Adam
    torch.optim.Adam = lambda parameters, lr, fused: adam(parameters, lr=lr)
spec = ModelSpec(**json.loads(sys.argv[2]))
model = build_model(spec, seed=21)
data = LabelledSequences.from_squares(read_squares(sys.argv[1]))
train(model, data, epochs=3, batch_size=16, learning_rate=0.01, shuffle_seed=42)
buffer = io.BytesIO()
torch.save(model.state_dict(), buffer)
print(hashlib.md5(buffer.getvalue()).hexdigest())
"""

NUMPY_CONTROL = """
import hashlib
import numpy as np
values = np.random.default_rng(0).standard_normal((204, 4)) * 3
_, _, directions = np.linalg.svd(values - values.mean(0), full_matrices=False)
parts = [np.exp(values), np.tanh(values), 1 / (1 + np.exp(-values)), values @ directions.T]
print(hashlib.md5(np.concatenate([part.ravel() for part in parts]).tobytes()).hexdigest())
"""


@pytest.fixture(scope="session")
def qemu() -> str:
    """QEMU's x86-64 user-mode emulator; CI's machines have it (.ci/run installs it)."""
    found = shutil.which("qemu-x86_64")
    if found is None:
        pytest.fail("qemu-x86_64 is missing: apt-get install -y qemu-user, as .ci/run does")
    return found


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


def run(
    command: list[str],
    cwd: Path,
    environment: dict,
    cpus: set[int] | None = None,
    prefix: tuple[str, ...] = (),
) -> str:
    """`command` (a Python program) in `cwd` with `environment` added, its stdout; `prefix`
    runs the interpreter under an emulator."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **environment}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{cwd / 'mlflow.db'}"
    for variable in ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE"):
        if env.get(variable) == "":
            del env[variable]  # "": this machine's own choice
    result = subprocess.run(
        [*prefix, *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def trained(
    workdir: Path,
    split: str,
    spec: ModelSpec,
    adam: str = "the pipeline's adam",
    threads: str = "1",
    prefix: tuple[str, ...] = (),
    **environment: str,
) -> str:
    """The md5 of unpinned training on `split`, in a process with `environment`."""
    arguments = [str(workdir / f"split/{split}/train.parquet"), json.dumps(spec.to_dict())]
    command = [sys.executable, "-c", CONTROL, *arguments, threads, adam]
    return run(command, workdir, environment, prefix=prefix)


PACKED = ModelSpec("lstm", 2, 1, bidirectional=True, packed=True)
PADDED = ModelSpec("lstm", 2, 1, bidirectional=False, packed=False)
GRU = ModelSpec("gru", 2, 1, bidirectional=False, packed=False)
CONV = ModelSpec("conv1d", 1, 1, bidirectional=False, packed=False)


# ---------------------------------------------------------------------------
# The controls: unpinned, each variation changes the bytes.


def test_unpinned_each_kernel_family_trains_other_bytes(workdir):
    hashes = {
        ceiling: trained(workdir, "variable", PACKED, ATEN_CPU_CAPABILITY=ceiling)
        for ceiling in CEILINGS
    }
    assert len(set(hashes.values())) == len(CEILINGS), hashes


def test_unpinned_onednns_kernels_train_other_bytes(workdir):
    """oneDNN runs unpinned LSTMs on padded input (not packed ones)."""
    by_isa = {
        isa: trained(workdir, "fixed", PADDED, ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA=isa)
        for isa in ("SSE41", "AVX2")
    }
    assert by_isa["SSE41"] != by_isa["AVX2"]


def test_unpinned_a_second_thread_trains_other_bytes(workdir):
    """A machine with more cores splits a convolution's sums differently."""
    by_threads = {threads: trained(workdir, "fixed", CONV, threads=threads) for threads in "12"}
    assert by_threads["1"] != by_threads["2"]


def test_unpinned_numpys_kernels_give_other_numbers(workdir):
    """NumPy's vector maths and its OpenBLAS (the pictures' projections) choose by CPU."""
    code = [sys.executable, "-c", NUMPY_CONTROL]
    results = {
        run(code, workdir, {"NPY_DISABLE_CPU_FEATURES": disabled, "OPENBLAS_CORETYPE": core})
        for disabled, core in (
            ("X86_V4 AVX512_ICL AVX512_SPR", "Haswell"),
            ("X86_V3 X86_V4 AVX512_ICL AVX512_SPR", "Haswell"),
            ("X86_V4 AVX512_ICL AVX512_SPR", "Prescott"),
        )
    }
    assert len(results) == 3, results


@pytest.mark.slow
def test_unpinned_mkls_branch_trains_other_bytes_on_an_intel_processor(workdir, qemu):
    """MKL gives a processor it does not know as Intel one branch; on Intel's, its fast
    branch rounds otherwise than the portable one."""
    haswell = (qemu, "-cpu", EMULATED["intel haswell"])
    by_branch = {
        branch: trained(
            workdir, "fixed", GRU, prefix=haswell, ATEN_CPU_CAPABILITY="avx2", MKL_CBWR=branch
        )
        for branch in ("AUTO", "COMPATIBLE")
    }
    assert by_branch["AUTO"] != by_branch["COMPATIBLE"]


@pytest.mark.slow
def test_torchs_default_adam_trains_other_bytes_here_than_on_an_emulated_processor(workdir, qemu):
    """Its square root comes from MKL's approximation, which processors compute each their
    own way (the emulator exactly): the same pinned training, other bytes."""
    pinned = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"}
    here = trained(workdir, "fixed", GRU, adam="torch's default adam", **pinned)
    emulated = trained(
        workdir,
        "fixed",
        GRU,
        adam="torch's default adam",
        prefix=(qemu, "-cpu", EMULATED["amd epyc"]),
        **pinned,
    )
    assert here != emulated


# ---------------------------------------------------------------------------
# The stages: pinned, none of it moves their bytes.


def stage(
    workdir: Path,
    argv: list[str],
    environment: dict,
    cpus: set[int] | None = None,
    prefix: tuple[str, ...] = (),
    warm: bool = True,
) -> None:
    command = [sys.executable, "-m", "pipeline", *argv]
    server = {"PIPELINE_STAGE_SERVER": "1" if warm and not prefix else "0"}
    run(command, workdir, {**environment, **server}, cpus, prefix)


def train_argv(workdir: Path, variant: str, target: Path) -> list[str]:
    dataset = "variable" if variant == "lstm_packed" else "fixed"
    return [
        "train",
        variant,
        str(workdir / "split" / dataset),
        f"{target}/model",
        f"{target}/history",
    ]


def written(target: Path) -> dict[str, str]:
    return {
        path.relative_to(target).as_posix(): md5(path)
        for path in sorted(target.rglob("*"))
        if path.is_file()
    }


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_train_stage_writes_the_same_bytes_on_every_imitated_machine(
    workdir, tmp_path, variant
):
    outputs = []
    for index, (environment, cpus) in enumerate(MACHINES):
        stage(workdir, train_argv(workdir, variant, tmp_path / str(index)), environment, cpus)
        outputs.append(written(tmp_path / str(index)))
    assert all(output == outputs[0] for output in outputs), outputs
    assert len(outputs[0]) == 4


@pytest.mark.slow
def test_so_does_a_stage_in_a_process_of_its_own(workdir, tmp_path):
    """The pin also holds without warm processes: the lowest and the highest family."""
    extremes = [MACHINES[0], MACHINES[len(CEILINGS) - 1]]
    outputs = []
    for index, (environment, cpus) in enumerate(extremes):
        target = tmp_path / str(index)
        stage(workdir, train_argv(workdir, "lstm_packed", target), environment, cpus, warm=False)
        outputs.append(written(target))
    assert outputs[0] == outputs[1]


@pytest.mark.slow
@pytest.mark.parametrize("processor", EMULATED)
def test_the_train_and_plot_stages_write_the_same_bytes_on_an_emulated_processor(
    workdir, tmp_path, qemu, processor
):
    """Trained and drawn here, and on an Intel or AMD processor without AVX-512 under QEMU:
    the weights, the curves and every picture of a GRU, byte for byte."""
    outputs = {}
    for where, prefix in (("here", ()), (processor, (qemu, "-cpu", EMULATED[processor]))):
        target = tmp_path / where.replace(" ", "-")
        stage(workdir, train_argv(workdir, "gru", target), {}, prefix=prefix)
        plot = ["plot", "gru", f"{target}/model", str(workdir / "split/fixed/test.parquet")]
        stage(workdir, [*plot, f"{target}/history", f"{target}/plots"], {}, prefix=prefix)
        outputs[where] = written(target)
    assert outputs["here"] == outputs[processor]
    assert len(outputs["here"]) == 4 + 6  # weights, config, 2 curves; 6 pictures


@pytest.mark.slow
def test_a_cpu_without_the_pinned_family_gets_one_line(workdir, tmp_path, qemu):
    """avx512 asked for on a processor without AVX-512 (an emulated Haswell)."""
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["cpu_capability"] = "avx512"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    train = ["train", "conv1d", str(workdir / "split/fixed"), "m", "h"]
    result = subprocess.run(
        [qemu, "-cpu", EMULATED["intel haswell"], sys.executable, "-m", "pipeline", *train],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "PIPELINE_STAGE_SERVER": "0"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("qemu")]
    assert errors == [
        "error: params.yaml: cpu_capability avx512 is not supported by this CPU (it runs: "
        "default, avx2); set cpu_capability: default to run here, which gives other bytes "
        "than dvc.lock's"
    ]


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
        run([sys.executable, *arguments], tmp_path, {})
    recorded = {out["path"]: out["md5"] for name in names for out in stages[name]["outs"]}
    assert {path: md5(tmp_path / path) for path in recorded} == recorded


def test_another_torch_build_is_named_in_one_line_and_this_one_in_none(monkeypatch):
    """GitHub's runners install PyPI's default torch, built with CUDA: other binaries than the
    CPU build dvc.lock was made with (a build this machine cannot install offline is imitated
    by its version strings)."""
    from pipeline.library import numerics

    assert numerics.build_note() is None  # this machine runs the locked build
    monkeypatch.setattr(torch, "__version__", "2.13.0")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    assert numerics.build_note() == (
        "note: torch 2.13.0 (CUDA 12.8) is not the build dvc.lock was made with (2.13.0+cpu): "
        "this stage's bytes may differ from dvc.lock's"
    )
