"""One place that writes benchmark figures: a JSON line per run under bench/results/.

Figures are ratios against a baseline measured in the same process, because these
machines are noisy; the machine facts travel with every line so figures can be compared
only where they were taken on the same kind of machine.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "host_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["device"] = (
            torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        )
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # consent-only environments have no torch
        info["device"] = "cpu"
    return info


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, cwd=RESULTS_DIR.parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def write_result(bench: str, figures: dict[str, Any]) -> Path:
    """Append one JSON line for `bench` and return the file it went to."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    line = {
        "bench": bench,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git_commit(),
        "machine": machine(),
        "figures": figures,
    }
    path = RESULTS_DIR / f"{bench}.jsonl"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, sort_keys=True) + "\n")
    return path


def timed(fn, *args, repeat: int = 3, **kwargs) -> tuple[float, Any]:
    """Best wall time of `repeat` calls (seconds) and the last result."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best, result
