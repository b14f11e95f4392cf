"""The CPU kernels torch runs, pinned so that trained bytes are the same on every machine.

torch picks its CPU kernels by what the processor can do (AVX-512 here, AVX2 there), and
each family rounds differently: the same training gives other weights on another CPU.
Three libraries choose by the CPU, and each is pinned here, in one place:
- ATen's own kernels: `ATEN_CPU_CAPABILITY`, the family named by params.yaml's
  `cpu_capability` (torch reads it once, at its first kernel call): `avx2` runs on every
  x86-64 CPU since about 2015 (Intel Haswell, AMD Zen), `default` on any CPU;
- MKL, torch's BLAS: `MKL_CBWR=COMPATIBLE`, the one branch Intel guarantees to give the
  same results on every x86-64 processor, Intel or not;
- oneDNN and NNPACK, which pick kernels by CPU with no such switch: turned off, so LSTMs
  and convolutions run ATen's kernels, which the first pin covers.
One thread, because kernels split sums by thread count. `pin` must run before torch is
imported; `configure_torch` then checks and completes the pin in the stage's process.
"""

import os


class UnsupportedCapabilityError(ValueError):
    """The pinned kernel family needs instructions this CPU lacks."""


def pinned_environment(capability: str) -> dict[str, str]:
    """The environment variables that pin torch's numerics to `capability`."""
    return {
        "ATEN_CPU_CAPABILITY": capability,
        "MKL_CBWR": "COMPATIBLE",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
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
