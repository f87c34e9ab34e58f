"""The classes a build trains on, and the one mapping from labels to class indices.

Labels are text end to end (class names, or integers' decimal text); a generator sees
class indices only. Which index stands for which label is decided once per snapshot, by
the eligible_records step (`plan_classes`), and recorded in the catalog
(`snapshot_classes`), so shard training, candidates, the audit's replacements, the
figures and the release all read the same mapping, and a shard model's fingerprint holds
it (a model trained under another mapping is never reused).

- `labels.classes` set: those classes, in that order; a record with another label is
  excluded (`LabelNotInClasses`).
- otherwise every label the catalog's sources carry, sorted (integers numerically, then
  names): the list changes only when sources with a new label are ingested or erased, not
  when consent changes, so an unrelated revocation retrains no other shard.
- `labels.mode`: auto is conditional when a consenting subject's record carries a label,
  else unconditional; conditional excludes unlabelled records (`UnknownLabel`);
  unconditional ignores labels and has the one class `labels.unlabelled`.
- A class name is published (class folders, the manifest, the expectations' label set),
  so a class that some but fewer than `labels.min_subjects_per_class` eligible subjects
  stand behind is left out of a conditional build (`small_classes`): its records are
  excluded as `SmallClass` and it leaves the class list. That is decided from the
  snapshot's eligible subjects alone (consent and label, never holdout or shard), so the
  same snapshot and build file always give the same list; the list then changes with
  consent only when a class crosses the floor. A class no eligible subject stands
  behind at all is not small but missing: the build refuses it, saying what to change.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from consentgen.errors import CatalogError, ConfigError
from consentgen.labels import sorted_labels
from pipelines.catalog import Catalog, SnapshotClass, SourceRecord
from pipelines.catalog.lineage import class_list, eligible_records
from pipelines.settings import BuildConfig


@dataclass(frozen=True)
class ClassList:
    """A build's classes in index order; `conditional` False: one class, no labels."""

    labels: tuple[str, ...]
    conditional: bool

    @property
    def num_classes(self) -> int | None:
        """What the generator is built with: None for an unconditional model."""
        return len(self.labels) if self.conditional else None

    def indices(self, labels: Iterable[str]) -> np.ndarray:
        """int64 class indices of `labels`; CatalogError for a label not in the list."""
        where = {label: i for i, label in enumerate(self.labels)}
        out = []
        for label in labels:
            if label not in where:
                raise CatalogError(f"label {label!r} is not one of this build's classes "
                                   f"({', '.join(self.labels)})")
            out.append(where[label])
        return np.array(out, dtype=np.int64)

    def labels_at(self, indices: Iterable[int]) -> list[str]:
        return [self.labels[int(i)] for i in indices]

    def without(self, labels: Collection[str]) -> ClassList:
        """The same list, in the same order, less `labels`."""
        return ClassList(tuple(label for label in self.labels if label not in labels),
                         self.conditional)

    def rows(self, snapshot_id: str) -> list[SnapshotClass]:
        return [SnapshotClass(snapshot_id=snapshot_id, class_index=i, label=label,
                              conditional=self.conditional) for i, label in enumerate(self.labels)]


def plan_classes(sources: Sequence[SourceRecord], consenting: Collection[str],
                 config: BuildConfig) -> ClassList:
    """The class list of a build over `sources`, `consenting` being the subjects whose
    consent holds (they decide what `labels.mode = "auto"` means)."""
    settings = config.labels
    mode = settings.mode
    if mode == "auto":
        labelled = any(s.label is not None for s in sources if s.subject_id in consenting)
        mode = "conditional" if labelled else "unconditional"
    if mode == "unconditional":
        return ClassList((settings.unlabelled,), False)
    labels = tuple(settings.classes) or tuple(sorted_labels(s.label for s in sources
                                                            if s.label is not None))
    folders: dict[str, str] = {}
    for label in labels:
        folder = settings.name_of(label)
        if folder in folders:
            raise ConfigError(f"labels.names: classes {folders[folder]!r} and {label!r} would "
                              f"share the folder {folder!r}; give them different names")
        folders[folder] = label
    return ClassList(labels, True)


def small_classes(subjects_by_label: Mapping[str, Collection[str]], minimum: int) -> frozenset[str]:
    """The labels that at least one but fewer than `minimum` eligible subjects stand behind
    (`subjects_by_label`: each class's eligible subjects, every role): published, such a
    class would point at those few people."""
    return frozenset(label for label, subjects in subjects_by_label.items()
                     if 0 < len(set(subjects)) < minimum)


def snapshot_classes(catalog: Catalog, snapshot_id: str) -> ClassList:
    """The class list the snapshot's eligible_records step recorded; for a snapshot from
    before class lists were recorded, its eligible records' labels, sorted."""
    rows = class_list(catalog, snapshot_id)
    if rows:
        return ClassList(tuple(r.label for r in rows), rows[0].conditional)
    return ClassList(tuple(sorted_labels(r.label for r in eligible_records(catalog, snapshot_id))),
                     True)
