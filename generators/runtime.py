"""Where the generators run: device choice, CPU thread count, bf16 support, seeds.

Torch sizes its thread pool from the host's core count, which inside a container or a
CPU-limited cgroup is more than the process may use; oversubscribed threads make CPU
training several times slower. `configure_threads` sizes the pool from what this process
is actually allowed.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import torch


def torch_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota."""
    count = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


def configure_threads() -> int:
    """Size torch's intra-op pool to `available_cpus()` (or CONSENTGEN_TORCH_THREADS)."""
    wanted = os.environ.get("CONSENTGEN_TORCH_THREADS")
    threads = int(wanted) if wanted and wanted.isdigit() and int(wanted) > 0 else available_cpus()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively (AVX-512 BF16 / AMX on CPU; Ampere+ on CUDA).

    Without native support bf16 is emulated and slower than float32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def derive_seed(seed: int, *parts: str | int) -> int:
    """A 63-bit seed from `seed` and labels (a shard, a record id), stable everywhere.

    SHA-256 rather than Python's `hash`, which is salted per process.
    """
    text = "\x1f".join(str(p) for p in (seed, *parts)).encode("utf-8")
    return int.from_bytes(hashlib.sha256(b"consentgen/seed/v1\x00" + text).digest()[:8], "big") >> 1
