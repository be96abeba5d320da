"""Bit-reproducible seeded CPU runs across x86-64 machines: pin the CPU kernels before torch picks its own.

    pin_cpu_kernels()        # call before the first torch operation of the process (the CLI does)

A seeded run is bit-identical from run to run on one machine, but not across machines: torch dispatches its
CPU kernels (softmax, reductions, element-wise maths) by the instruction set it finds (AVX-512 on one CPU,
AVX2 on another), and MKL picks its matrix-multiply code path the same way. Their results differ in the last
bits, and a run that samples at temperature 1 turns a flipped last bit into a different token and, 200 steps
later, a different student (measured: the demo's seed 0 ends at 79.0% with this machine's AVX-512 kernels and
at 87.0% with AVX2 kernels; see docs/distill.md). Pinning both to AVX2, which every x86-64 CPU of the last
decade has, makes the demo and the lab's contrasts give the same numbers on any of them. One torch thread
keeps parallel reductions from depending on the core count. ARM CPUs have other kernels: there the numbers
differ by about the seed-to-seed spread the docs quote.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# environment variables read once, at the first kernel dispatch (torch) and at the first BLAS call (MKL)
PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}


def has_avx2() -> bool:
    """An x86-64 CPU with AVX2 and FMA (read from /proc/cpuinfo; False where that cannot be read)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    line = next((ln for ln in flags.splitlines() if ln.startswith("flags")), "")
    return {"avx2", "fma"} <= set(line.split())


def pin_cpu_kernels() -> dict[str, str]:
    """Set the pins (a value the user already set wins) and one torch thread; returns the pins in force.

    Nothing is pinned on a CPU without AVX2 (forcing its kernels there would crash). Call it before the
    process's first torch operation: torch and MKL read these variables once.
    """
    import torch

    torch.set_num_threads(1)
    if not has_avx2():
        return {}
    for key, value in PINS.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in PINS}


def describe_kernels(pins: dict[str, str]) -> str:
    """One line for the console and the report: which kernels this run used."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if pins and capability.lower() != pins["ATEN_CPU_CAPABILITY"].lower():
        return (f"CPU kernels: {capability} (the AVX2 pin came after torch had chosen its kernels in this "
                "process: numbers may differ from other machines by the seed spread)")
    if not pins:
        return f"CPU kernels: {capability} (not pinned: numbers may differ from other machines by the seed spread)"
    return (f"CPU kernels: {capability}, pinned with " + ", ".join(f"{k}={v}" for k, v in pins.items())
            + " (same numbers on any x86-64 CPU with AVX2)")


def describe_pins(pins: dict[str, str]) -> str:
    """The recorded pins of a finished run, in words (no torch needed)."""
    if not pins:
        return "CPU kernels not pinned (numbers may differ on other machines by about the seed spread)."
    return ("CPU kernels pinned (" + ", ".join(f"{k}={v}" for k, v in pins.items())
            + "): the same numbers on any x86-64 CPU with AVX2.")
