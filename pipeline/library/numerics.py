"""The CPU kernels the stages run, pinned so that their bytes are the same on every machine.

Libraries pick their kernels by what the processor can do (AVX-512 here, AVX2 there), and
each family rounds differently: unpinned, the same training gives other weights on another
CPU. Each library that chooses by the CPU is pinned here, in one place, to the family that
params.yaml's `cpu_capability` names (`avx2` runs on every x86-64 CPU since about 2015,
Intel Haswell and AMD Zen; `default` on any CPU):
- ATen's own kernels: `ATEN_CPU_CAPABILITY` (torch reads it once, at its first kernel call);
- MKL, torch's BLAS and vector maths: `MKL_CBWR=COMPATIBLE`, the branch Intel gives the
  same results on every processor it recognises (AMD's get one generic branch anyway). Its
  vector square root starts from an approximation the processor computes (rsqrtps), which
  Intel and AMD round differently: the training loop uses torch's fused Adam, whose square
  root is the exact instruction (pipeline/library/training.py);
- oneDNN and NNPACK, which pick kernels by CPU with no such switch: turned off, so LSTMs
  and convolutions run ATen's kernels;
- NumPy's own vector kernels and its OpenBLAS (the pictures' projections): capped at the
  same family (`NPY_DISABLE_CPU_FEATURES`, `OPENBLAS_CORETYPE`).
One thread, because kernels split sums by thread count. `pin` must run before torch or
NumPy is imported; `configure_torch` then checks and completes the pin in the stage's
process. tests/test_numerics.py imitates other machines, an Intel one under emulation too.
"""

import os

#: The torch build the committed dvc.lock was made with. Another build (PyPI's default, with
#: CUDA's libraries, as GitHub's runners install) runs other binaries: the stages say so.
LOCKED_TORCH_BUILD = "2.13.0+cpu"


class UnsupportedCapabilityError(ValueError):
    """The pinned kernel family needs instructions this CPU lacks."""


#: NumPy's dispatch targets above each family (NumPy 2: X86_V3 is AVX2, X86_V4 AVX-512).
NUMPY_ABOVE = {
    "default": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    "avx2": "X86_V4 AVX512_ICL AVX512_SPR",
    "avx512": "AVX512_ICL AVX512_SPR",
}
#: OpenBLAS's kernels for each family (every DYNAMIC_ARCH build has them).
OPENBLAS_CORE = {"default": "Prescott", "avx2": "Haswell", "avx512": "SkylakeX"}


def pinned_environment(capability: str) -> dict[str, str]:
    """The environment variables that pin the numerics of torch and NumPy to `capability`."""
    return {
        "ATEN_CPU_CAPABILITY": capability,
        "MKL_CBWR": "COMPATIBLE",
        "NPY_DISABLE_CPU_FEATURES": NUMPY_ABOVE[capability],
        "OPENBLAS_CORETYPE": OPENBLAS_CORE[capability],
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }


def pin(capability: str) -> None:
    """Set the pinned environment in this process; call it before importing torch."""
    os.environ.update(pinned_environment(capability))


def configure_torch(capability: str) -> None:
    """Check that this CPU runs the `capability` family and that torch uses it; finish the pin.

    Raises UnsupportedCapabilityError (one line) on a CPU without it: forcing a family the
    CPU lacks would crash on an illegal instruction.
    """
    import torch

    supported = {
        "default": True,
        "avx2": torch.cpu._is_avx2_supported(),
        "avx512": torch.cpu._is_avx512_supported(),
    }
    if not supported[capability]:
        available = ", ".join(name for name, ok in supported.items() if ok)
        raise UnsupportedCapabilityError(
            f"{capability} is not supported by this CPU (it runs: {available}); set "
            "cpu_capability: default to run here, which gives other bytes than dvc.lock's"
        )
    pin(capability)
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    torch.set_num_threads(1)
    running = torch.backends.cpu.get_cpu_capability()
    if running != capability.upper():
        raise UnsupportedCapabilityError(
            f"{capability} was asked for but torch already runs {running} kernels "
            "(ATEN_CPU_CAPABILITY must be set before torch's first operation)"
        )


def torch_build() -> str:
    """The running torch's build: its version, with the CUDA it was built for, if any."""
    import torch

    cuda = f" (CUDA {torch.version.cuda})" if torch.version.cuda else ""
    return f"{torch.__version__}{cuda}"


def build_note() -> str | None:
    """One line when the running torch is not the build dvc.lock was made with, else None."""
    build = torch_build()
    if build == LOCKED_TORCH_BUILD:
        return None
    return (
        f"note: torch {build} is not the build dvc.lock was made with ({LOCKED_TORCH_BUILD}): "
        "this stage's bytes may differ from dvc.lock's"
    )
