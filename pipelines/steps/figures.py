"""The data card's privacy and utility figures, computed at publish time.

They come from the build's own records only (this snapshot's consented training and
holdout records, and the models the release was sampled from) and are never invented: a
figure that cannot be computed (too few holdout records, one class only) is left as None,
which the card prints as "not computed", with a note saying why. The numbers of training,
held-out and test records count people's records: under k they reach the card
suppressed. torch and the audit figures load only when this runs, i.e. at publish.

Figures that need "different images" are honest only if the images are different:
calibration negatives are drawn by group (a subject, joined with every other subject
whose images are near-identical to theirs by `duplicate_groups`), so no negative has a
twin among the reference sources, and a note says how many held-out records have a
near-identical training record (which would make the DCR share and membership AUC
read as leakage). The demo's simulated subjects are built so that there are none.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from consentgen.errors import AuditError, ConsentgenError
from pipelines.card import CalibrationRates, PrivacyFigures, UtilityFigures, public_count
from pipelines.catalog import Catalog, EligibleRecord, ShardModel, Snapshot, SourceRecord
from pipelines.settings import BuildConfig
from pipelines.steps.audit import audit_config
from pipelines.steps.eligibility import load_eligible
from pipelines.steps.images import load_gray, load_pixels
from pipelines.steps.public_manifest import StagedImage
from pipelines.steps.shard_training import load_model


def _pixels(catalog: Catalog, by_id: dict[str, SourceRecord], record_ids: list[str], size: int) -> np.ndarray:
    return load_gray([catalog.home / by_id[r].image_path for r in record_ids], size)


GROUPING_SIDE = 32
"""Side at which near-identical sources are grouped for the figures (cheap at any size)."""


def _groups(catalog: Catalog, records: list[SourceRecord],
            by_id: dict[str, SourceRecord]) -> np.ndarray:
    """int64 [N]: one label per record; records of one subject, or near-identical to one
    another (`duplicate_groups`), share a label, transitively."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from validation.audit import duplicate_groups

    n = len(records)
    if n == 0:
        return np.zeros(0, np.int64)
    dup = duplicate_groups(_pixels(catalog, by_id, [r.record_id for r in records], GROUPING_SIDE))
    subjects = np.unique([r.subject_id for r in records], return_inverse=True)[1]
    rows = np.concatenate([np.arange(n), np.arange(n)])
    cols = np.concatenate([np.unique(dup, return_index=True)[1][dup],
                           np.unique(subjects, return_index=True)[1][subjects]])
    _, labels = connected_components(coo_matrix((np.ones(2 * n), (rows, cols)), shape=(n, n)),
                                     directed=False)
    return labels.astype(np.int64)


def _twins_note(catalog: Catalog, by_id: dict[str, SourceRecord], train: list[EligibleRecord],
                holdout: list[EligibleRecord], k: int) -> str | None:
    """A note when held-out records have a near-identical training record."""
    if not train or not holdout:
        return None
    from validation.audit import duplicate_groups

    ids = [r.record_id for r in [*train, *holdout]]
    dup = duplicate_groups(_pixels(catalog, by_id, ids, GROUPING_SIDE))
    twins = int(np.isin(dup[len(train):], dup[: len(train)]).sum())
    if not twins:
        return None
    shown = public_count(twins, k)
    return (f"{shown} of the {public_count(len(holdout), k)} held-out records have a "
            "near-identical training record (another subject's copy of the same image): the "
            "DCR share and membership AUC read higher than the generator alone would make them.")


def _colour(catalog: Catalog, by_id: dict[str, SourceRecord], records: list[EligibleRecord],
            config: BuildConfig) -> np.ndarray:
    """Records as the generator saw them (its channels): what its loss is measured on."""
    return load_pixels([catalog.home / by_id[r.record_id].image_path for r in records],
                       config.generator.image_size, config.generator.channels)


def compute_figures(catalog: Catalog, snapshot: Snapshot, config: BuildConfig,
                    staged: list[StagedImage], models: dict[int, ShardModel]
                    ) -> tuple[PrivacyFigures, UtilityFigures, CalibrationRates | None, list[str]]:
    """DCR, membership inference, TSTR and calibration, each only where it can be computed."""
    from validation.audit import calibrate
    from validation.audit.privacy import dcr_figures, membership_inference_auc
    from validation.audit.utility import tstr_figures

    size = config.generator.image_size
    sources = catalog.sources()
    by_id = {s.record_id: s for s in sources}
    eligible = load_eligible(catalog, snapshot.snapshot_id)
    train, holdout = eligible.by_role("train"), eligible.by_role("holdout")
    synthetic = load_gray([catalog.home / s.candidate.image_path for s in staged], size)
    syn_labels = np.array([s.candidate.label for s in staged])
    train_px = _pixels(catalog, by_id, [r.record_id for r in train], size)
    hold_px = _pixels(catalog, by_id, [r.record_id for r in holdout], size)
    notes: list[str] = []
    privacy: dict[str, Any] = {}
    utility: dict[str, Any] = {}
    calibration = None
    figures = config.figures
    k = config.min_public_count
    if figures.dcr:
        try:
            dcr = dcr_figures(synthetic, train_px, hold_px, seed=config.seed)
            privacy.update(dcr_closer_to_train_share=dcr.share_closer_to_train, dcr_ratio=dcr.dcr_ratio,
                           n_synthetic=dcr.n_synthetic, n_train=public_count(dcr.n_train, k),
                           n_holdout=public_count(dcr.n_holdout, k))
        except AuditError as exc:
            notes.append(f"DCR not computed: {exc}")
    if figures.membership_inference and config.generator.kind == "img2img":
        notes.append("membership inference not computed: img2img trains no model (each image "
                     "is conditioned on one record; the near-duplicate audit and DCR judge it)")
    elif figures.membership_inference and models and holdout:
        shard, model = max(models.items(), key=lambda kv: kv[1].n_records)
        members = [r for r in train if r.shard == shard][: figures.mia_max_records]
        others = holdout[: figures.mia_max_records]
        try:
            from generators.membership import per_sample_loss

            generator = load_model(catalog, model)
            args = {"timestep": figures.mia_timestep, "seed": config.seed}
            m = per_sample_loss(generator, _colour(catalog, by_id, members, config),
                                eligible.classes.indices(r.label for r in members), **args)
            o = per_sample_loss(generator, _colour(catalog, by_id, others, config),
                                eligible.classes.indices(r.label for r in others), **args)
            privacy.update(membership_auc=membership_inference_auc(m, o),
                           mia_n_members=public_count(len(members), k),
                           mia_n_nonmembers=public_count(len(others), k))
        except ConsentgenError as exc:
            notes.append(f"membership inference not computed: {exc}")
    elif figures.membership_inference:
        notes.append("membership inference not computed: no held-out consented records")
    if figures.utility and not eligible.classes.conditional:
        notes.append("utility not computed: an unconditional build has no classes to predict")
    elif figures.utility and len(holdout):
        try:
            tstr = tstr_figures(synthetic, syn_labels, train_px, np.array([r.label for r in train]),
                                hold_px, np.array([r.label for r in holdout]), seed=config.seed,
                                epochs=figures.utility_epochs)
            utility.update(tstr_accuracy=tstr.tstr_accuracy, trtr_accuracy=tstr.trtr_accuracy,
                           chance_accuracy=tstr.chance_accuracy, n_train_synthetic=len(staged),
                           n_train_real=public_count(len(train), k),
                           n_test=public_count(len(holdout), k),
                           classifier=f"small CNN, {figures.utility_epochs} epoch{'s' if figures.utility_epochs != 1 else ''} "
                                      "(validation.audit.utility)")
        except AuditError as exc:
            notes.append(f"utility not computed: {exc}")
    if figures.dcr or figures.membership_inference:
        note = _twins_note(catalog, by_id, train, holdout, k)
        if note:
            notes.append(note)
    if figures.calibration:
        rng = np.random.default_rng(config.seed)
        picked = rng.choice(len(sources), min(figures.calibration_sources, len(sources)),
                            replace=False)
        sample = [sources[i] for i in sorted(picked)]  # drawn across the set, not its first N
        try:
            report = calibrate(load_gray([catalog.home / s.image_path for s in sample], size),
                               audit_config(config), seed=config.seed,
                               groups=_groups(catalog, sample, by_id),
                               n_positives=max(4, len(sample) // 4), n_negatives=max(2, len(sample) // 4))
            calibration = CalibrationRates(
                detection_rate={k: v.detected for k, v in report.detection.items()},
                false_positive_rate=report.false_positive_rate,
                n_positives=sum(v.n for v in report.detection.values()),
                n_per_transform=min((v.n for v in report.detection.values()), default=None),
                n_negatives=report.n_negatives)
        except AuditError as exc:
            notes.append(f"calibration not computed: {exc}")
    return PrivacyFigures(**privacy), UtilityFigures(**utility), calibration, notes
