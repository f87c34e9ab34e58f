"""A published release kept true to its withdrawals: manifests, audit table and card.

A withdrawal (`pipelines.steps.withdrawal`, the reconcile) deletes image files, appends
their ids to ``WITHDRAWN`` and records `Withdrawal` rows. `refresh_release` then
rewrites everything else in the release folder that still lists or shows those images:

- ``manifest.csv``, ``manifest.parquet`` and ``audit.csv`` lose their rows
  (``WITHDRAWN`` keeps the ids, so mirrors can delete the files too);
- the card is redrawn from its model (``card/card.json``, saved at publish) with the
  withdrawal applied: published counts and distances from the rows that remain, one
  "Withdrawn: N images on DATE (reason class)" line per UTC day and reason class, and
  every picture (``card/*.png``, the data URIs of ``data_card.html``, the links of
  ``data_card.md``) drawn again from the images still published, or a note when none
  remain.

The card is redrawn rather than drawn at publish from images that never ship: the grid
then keeps showing what the release holds, and the reader of a card can trust that its
pictures are a sample of the files beside it. Each file is replaced atomically (temp,
fsync, rename) and only when its content changes, ``card.json`` last: a crash part-way
leaves an older ``card.json``, so the next call sees the card is behind and redraws it.
A call with nothing new withdrawn changes no file and draws nothing (it compares the
card it would draw with the one saved), so the reconcile may call it for every release
on every pass. The expectations' validation pages are left as they are: they record the
validation done at publish (they name no image), which the card's note says.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pydantic import ValidationError

from consentgen.errors import ReleaseError
from consentgen.files import atomic_output
from pipelines.card import (
    CARD_JSON,
    Counts,
    DataCard,
    DistanceDistribution,
    WithdrawalLine,
    card_files,
    choose_samples,
    load_card,
    public_count,
)
from pipelines.card.render import HTML_FILE, MARKDOWN_FILE, stale_pictures
from pipelines.card.view import CARD_FOLDER, SAMPLES_FILE
from pipelines.catalog import Catalog, Withdrawal
from pipelines.catalog.reasons import WithdrawalReason
from pipelines.settings import BuildConfig
from pipelines.steps.images import load_gray
from pipelines.steps.locks import releases_lock
from pipelines.steps.release import listed_withdrawn, releases_root

log = logging.getLogger(__name__)

MANIFEST_CSV = "manifest.csv"
MANIFEST_PARQUET = "manifest.parquet"
AUDIT_CSV = "audit.csv"
_OLD_GRID_HTML = re.compile(r'<img alt="sample grid" src="data:image/png;base64,[^"]*">')
_OLD_GRID_MD = f"![sample grid]({SAMPLES_FILE})"
_GRID_REMOVED = ("Sample grid removed after a withdrawal: this card was published without "
                 "its model (card/card.json) and cannot be redrawn.")


def refresh_release(catalog: Catalog, version: str, config: BuildConfig, *,
                    lock_held: bool = False) -> None:
    """Rewrite `version`'s manifests, audit table and card without its withdrawn images.

    LOCKING: this holds `pipelines.steps.locks.releases_lock(home)` while it rewrites.
    That lock is a flock per open file: a process that already holds it and takes it
    again (another descriptor) waits on itself until the lock's timeout. A caller that
    already holds it (the reconcile, right after deleting the files under the same
    lock) MUST pass ``lock_held=True``; every other caller leaves the default.

    The withdrawn images are the ids in ``WITHDRAWN`` and the catalog's withdrawal rows
    for `version` together; the card's "Withdrawn:" lines come from those rows (day and
    reason class). Idempotent; a missing release folder or file is logged, not an error.
    """
    folder = releases_root(catalog.home) / version
    if not folder.is_dir():
        log.info("release %s: no folder at %s, nothing to rewrite", version, folder)
        return
    try:
        with nullcontext() if lock_held else releases_lock(catalog.home):
            _refresh(catalog, folder, version, config)
    except (ValidationError, pa.ArrowException, csv.Error, KeyError, ValueError) as exc:
        raise ReleaseError(f"release {version}: a file is damaged and was not rewritten "
                           f"({type(exc).__name__}: {exc})") from exc


def _refresh(catalog: Catalog, folder: Path, version: str, config: BuildConfig) -> None:
    rows = catalog.select(Withdrawal, "WHERE version = ? ORDER BY image_id", [version])
    withdrawn = set(listed_withdrawn(folder)) | {r.image_id for r in rows}
    remaining = _rewrite_tables(folder, withdrawn)
    if remaining is None or not (folder / CARD_JSON).is_file():
        missing = MANIFEST_CSV if remaining is None else CARD_JSON
        log.warning("release %s: no %s, its card cannot be redrawn%s", version, missing,
                    "; its sample grid is removed" if withdrawn else "")
        if withdrawn:
            _drop_old_grid(folder)
        return
    _redraw_card(folder, remaining, rows, config)


# --- files ---------------------------------------------------------------------------


@contextmanager
def _replacing(path: Path) -> Iterator[Any]:
    """`atomic_output` that keeps the permissions the file had (mirrors read them)."""
    kept = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    with atomic_output(path, "wb") as fh:
        yield fh
        if kept is not None:
            os.fchmod(fh.fileno(), kept)


def _put(path: Path, data: bytes) -> bool:
    """Replace `path` with `data` unless it holds exactly that already."""
    if path.exists() and path.read_bytes() == data:
        return False
    with _replacing(path) as fh:
        fh.write(data)
    return True


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]] | None:
    if not path.exists():
        log.info("%s: missing, nothing to rewrite", path)
        return None
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _keep_csv(path: Path, table: tuple[list[str], list[dict[str, str]]],
              withdrawn: set[str]) -> list[dict[str, str]]:
    """Drop the withdrawn rows of a CSV keyed by ``image_id``; the rows that remain.

    The csv module rather than pandas: the rows kept are written back as they were read,
    byte for byte (no float or id re-typed), so an unchanged table stays unchanged.
    """
    header, rows = table
    kept = [r for r in rows if r.get("image_id") not in withdrawn]
    if len(kept) < len(rows):
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        _put(path, out.getvalue().encode("utf-8"))
        log.info("%s: %d withdrawn row(s) removed", path, len(rows) - len(kept))
    return kept


def _keep_parquet(path: Path, withdrawn: set[str]) -> None:
    if not path.exists():
        log.info("%s: missing, nothing to rewrite", path)
        return
    table = pq.read_table(path)
    gone = pc.is_in(table["image_id"], value_set=pa.array(sorted(withdrawn), pa.string()))
    if pc.any(gone).as_py():
        with _replacing(path) as fh:
            pq.write_table(table.filter(pc.invert(gone)), fh)
        log.info("%s: %d withdrawn row(s) removed", path, pc.sum(gone).as_py())


def _delete_left_over(folder: Path, rows: list[dict[str, str]], withdrawn: set[str]) -> None:
    """A withdrawn image still on disk (the reconcile deletes it first; a crash may not)."""
    for row in rows:
        name = Path(row.get("file_name") or ".")
        if row.get("image_id") in withdrawn and not name.is_absolute() and ".." not in name.parts:
            if (folder / name).is_file():
                (folder / name).unlink()
                log.warning("%s: withdrawn image was still on disk, deleted", folder / name)


def _rewrite_tables(folder: Path, withdrawn: set[str]) -> list[dict[str, str]] | None:
    """Take the withdrawn rows out of the tables; the manifest rows that remain.

    None when there is no ``manifest.csv`` to read them from.
    """
    manifest = _read_csv(folder / MANIFEST_CSV)
    if manifest is not None:
        _delete_left_over(folder, manifest[1], withdrawn)
    _keep_parquet(folder / MANIFEST_PARQUET, withdrawn)
    audit = _read_csv(folder / AUDIT_CSV)
    if audit is not None:
        _keep_csv(folder / AUDIT_CSV, audit, withdrawn)
    return None if manifest is None else _keep_csv(folder / MANIFEST_CSV, manifest, withdrawn)


def _drop_old_grid(folder: Path) -> None:
    """Without its model a card cannot be redrawn: at least no sample shows any more."""
    (folder / SAMPLES_FILE).unlink(missing_ok=True)
    page, md = folder / HTML_FILE, folder / MARKDOWN_FILE
    if page.exists():
        _put(page, _OLD_GRID_HTML.sub(f"<p>{_GRID_REMOVED}</p>", page.read_text("utf-8"))
             .encode("utf-8"))
    if md.exists():
        _put(md, md.read_text("utf-8").replace(_OLD_GRID_MD, _GRID_REMOVED).encode("utf-8"))


# --- the card ------------------------------------------------------------------------


def withdrawal_lines(rows: list[Withdrawal], k: int) -> list[WithdrawalLine]:
    """One line per UTC day and reason class, N suppressed under k."""
    groups: Counter[tuple[date, WithdrawalReason | None]] = Counter()
    for row in rows:
        try:
            reason = WithdrawalReason(row.reason) if row.reason is not None else None
        except ValueError:
            log.warning("withdrawal of %s has an unknown reason %r", row.image_id, row.reason)
            reason = None
        groups[(row.withdrawn_at.astimezone(UTC).date(), reason)] += 1
    order = sorted(groups, key=lambda g: (g[0], g[1].value if g[1] is not None else ""))
    return [WithdrawalLine(images=public_count(groups[g], k), on=g[0], reason=g[1])
            for g in order]


def withdrawn_card(card: DataCard, remaining: list[dict[str, str]],
                   rows: list[Withdrawal]) -> DataCard:
    """`card` as it reads with only the `remaining` manifest rows still published."""
    labels = Counter(r["label_name"] for r in remaining)
    published = {label: labels.get(label, 0) for label in card.counts.published_per_label or {}}
    published |= {label: n for label, n in labels.items() if label not in published}
    columns = set(remaining[0]) if remaining else set(card.distances)
    distances = {
        metric: (DistanceDistribution(values=[float(r[metric]) for r in remaining])
                 if metric in columns else dist)
        for metric, dist in card.distances.items()}
    counts = Counts.model_validate(card.counts.model_dump() | {"published_per_label": published})
    return DataCard.model_validate(card.model_dump() | {
        "counts": counts.model_dump(), "distances": {m: d.model_dump() for m, d in distances.items()},
        "withdrawals": [w.model_dump() for w in withdrawal_lines(rows, card.min_public_count)]})


def _redraw_card(folder: Path, remaining: list[dict[str, str]], rows: list[Withdrawal],
                 config: BuildConfig) -> None:
    saved = load_card(folder)
    card = withdrawn_card(saved, remaining, rows)
    drawn = [folder / name for name in (MARKDOWN_FILE, HTML_FILE)]
    if card == saved and all(p.exists() for p in drawn):
        log.info("release %s: card already up to date", card.version)
        return
    present = {r["image_id"]: r for r in remaining if (folder / r["file_name"]).is_file()}
    shown = [present[i] for i in choose_samples(present, seed=config.seed)]
    size = card.generator.image_size[0] if card.generator.image_size else config.generator.image_size
    images = load_gray([folder / r["file_name"] for r in shown], size)
    files = card_files(card, sample_images=list(images),
                       sample_labels=[r["label_name"] for r in shown])
    model = files.pop(CARD_JSON)
    changed = [name for name, data in files.items() if _put(folder / name, data)]
    for stale in stale_pictures(folder / CARD_FOLDER, files):
        stale.unlink()
        changed.append(stale.relative_to(folder).as_posix())
    _put(folder / CARD_JSON, model)  # last: the card is done once its model says so
    log.info("release %s: card redrawn (%d withdrawn, %d still published; %s)", card.version,
             len(rows), len(remaining), ", ".join(changed) or "no picture changed")
