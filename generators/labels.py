"""Which labels to ask a class-conditional generator for: the one balancing rule.

numpy only (no torch), so the build can plan labels without loading a model.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from consentgen.errors import GeneratorError


def class_balanced_labels(n: int, classes: Iterable[int]) -> np.ndarray:
    """int64 [n]: the distinct `classes` in ascending order, over and over.

    Cycling (rather than drawing) makes every class's count differ by at most one and the
    labels a pure function of (n, classes), so a rebuild asks for the same labels.
    """
    cycle = sorted({int(c) for c in classes})
    if n and not cycle:
        raise GeneratorError(f"cannot balance {n} labels over no classes")
    return np.array([cycle[i % len(cycle)] for i in range(n)], dtype=np.int64)
