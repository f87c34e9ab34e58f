"""Where every candidate is born, whichever generator drew it: banned pixels drawn again,
PNGs written, rows made.

What was withdrawn never comes back (`pipelines.steps.bans`): a fresh image whose pixels
are banned is dropped and drawn again with a new seed, a bounded number of times, for a
DDPM sample and an img2img output alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, MutableMapping, Sequence
from typing import TypeVar

import numpy as np

from consent.events import utc_now
from consentgen.errors import GeneratorError
from consentgen.home import CANDIDATES_DIR
from pipelines.catalog import Candidate, Catalog, ShardModel, Snapshot
from pipelines.steps.bans import pixel_hash
from pipelines.steps.images import write_png

MAX_BANNED_REDRAWS = 3

Wanted = TypeVar("Wanted")


class BannedPixelsError(GeneratorError):
    """A model keeps drawing pixels that were withdrawn and banned."""


def redraw_banned(pixels: MutableMapping[int, np.ndarray], banned: set[str],
                  redraw: Callable[[list[int], int], Sequence[np.ndarray]],
                  model: ShardModel) -> None:
    """Replace, in place, every image of `pixels` whose hash is banned by
    `redraw(positions, attempt)` (attempt 1, 2, ...), until none is or the bound is hit."""
    redo = [i for i in pixels if pixel_hash(pixels[i]) in banned]
    for attempt in range(1, MAX_BANNED_REDRAWS + 1):
        if not redo:
            return
        for i, image in zip(redo, redraw(redo, attempt), strict=True):
            pixels[i] = image
        redo = [i for i in redo if pixel_hash(pixels[i]) in banned]
    if redo:
        raise BannedPixelsError(
            f"{model.model_version} drew {len(redo)} withdrawn (banned) image(s) again after "
            f"{MAX_BANNED_REDRAWS} redraws; rebuild shard {model.shard}")


def store_candidates(catalog: Catalog, snapshot: Snapshot, model: ShardModel,
                     images: Sequence[np.ndarray], labels: Sequence[str], seeds: Sequence[int],
                     conditioned_on: Sequence[str | None] | None = None) -> list[Candidate]:
    """Write each image as a PNG under `candidates/` and return its (unrecorded) row."""
    now = utc_now()
    sources = conditioned_on if conditioned_on is not None else [None] * len(images)
    rows = []
    for image, label, seed, record_id in zip(images, labels, seeds, sources, strict=True):
        candidate_id = uuid.uuid4().hex
        rel = f"{CANDIDATES_DIR}/{candidate_id}.png"
        write_png(image, catalog.home / rel)
        rows.append(Candidate(
            candidate_id=candidate_id, snapshot_id=snapshot.snapshot_id, shard=model.shard,
            model_version=model.model_version, label=label, seed=seed, image_path=rel,
            created_at=now, conditioned_on=record_id))
    return rows


def unfilled(wanted: Sequence[Wanted], kept: Sequence[Candidate],
             matches: Sequence[Callable[[Wanted, Candidate], bool]]) -> list[Wanted]:
    """What of `wanted` (a shard's slots or labels, in order) the `kept` candidates leave
    to draw. Each test of `matches` in turn lets every kept candidate not placed yet take
    the first wanted item it matches; one that matches none takes the last item left. So
    `len(kept) + len(result) == len(wanted)` whenever `kept` is no longer than `wanted`.

    A shard short of reusable candidates (one was withdrawn) keeps the rest and draws only
    these, rather than redrawing every slot on the same inputs.
    """
    left = list(wanted)
    waiting = list(kept)
    for match in matches:
        unplaced = []
        for c in waiting:
            at = next((i for i, w in enumerate(left) if match(w, c)), None)
            if at is None:
                unplaced.append(c)
            else:
                del left[at]
        waiting = unplaced
    return left[:max(0, len(left) - len(waiting))]
