"""Privacy figures for the data card: distance to closest record, and membership inference.

DCR share: is a synthetic image more often closest to a TRAINING image than to a
held-out consented image? With equally many of each, a generator that learned the
distribution and not the records scores ~0.5; memorising pushes it towards 1. The DCR
ratio compares how close synthetic images come to training images with how close
fresh real images (the holdout) come to them: well below 1 means closer than real data.

Train and holdout must not share a slice (split by subject, or by `duplicate_groups`):
otherwise a holdout image's twin sits in train and both figures mislead.

Distances are the audit's standardised pixel RMS (`pixel_l2`), exact, over every pair.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy.stats import rankdata

from consentgen.errors import AuditError

from .arrays import check_images, luminance, same_size, standardise
from .exact import nearest_pixel


class DcrFigures(BaseModel):
    """DCR share and ratio with the sample sizes they rest on (`.model_dump()` for a dict)."""

    model_config = ConfigDict(frozen=True)

    share_closer_to_train: float
    """Fraction of synthetic images nearer a training image than a holdout one (ties 1/2),
    with train subsampled to the holdout's size (or the other way round) so 0.5 = none."""
    dcr_ratio: float
    """median synthetic->train DCR / median holdout->train DCR, over the whole train set."""
    n_synthetic: int
    n_train: int
    n_holdout: int
    n_balanced: int
    """Images per side in the share's comparison: min(n_train, n_holdout)."""
    median_synthetic_dcr: float
    median_holdout_dcr: float
    metric: str = "pixel_l2"


def _nearest(queries: np.ndarray, base: np.ndarray, block: int) -> np.ndarray:
    return nearest_pixel(standardise(luminance(queries)), luminance(base), 1, block).pixel_l2


def dcr_figures(
    synthetic: np.ndarray, train: np.ndarray, holdout: np.ndarray, seed: int = 0,
    block_size: int = 1024,
) -> DcrFigures:
    """DCR share (balanced train vs holdout) and DCR ratio, with their sample sizes."""
    for arr, name in ((synthetic, "synthetic"), (train, "train"), (holdout, "holdout")):
        check_images(arr, name)
        if len(arr) == 0:
            raise AuditError(f"{name}: DCR needs at least one image")
    same_size(synthetic, train, "synthetic", "train")
    same_size(holdout, train, "holdout", "train")
    rng = np.random.default_rng(seed)
    n_bal = min(len(train), len(holdout))
    train_bal = train[np.sort(rng.choice(len(train), n_bal, replace=False))]
    hold_bal = holdout[np.sort(rng.choice(len(holdout), n_bal, replace=False))]
    to_train = _nearest(synthetic, train_bal, block_size)
    to_hold = _nearest(synthetic, hold_bal, block_size)
    share = float(np.mean((to_train < to_hold) + 0.5 * (to_train == to_hold)))

    syn_dcr = to_train if n_bal == len(train) else _nearest(synthetic, train, block_size)
    hold_dcr = _nearest(holdout, train, block_size)
    med_syn = float(np.median(syn_dcr))
    med_hold = float(np.median(hold_dcr))
    return DcrFigures(
        share_closer_to_train=share,
        dcr_ratio=med_syn / med_hold if med_hold > 0 else float("inf"),
        n_synthetic=len(synthetic), n_train=len(train), n_holdout=len(holdout),
        n_balanced=n_bal, median_synthetic_dcr=med_syn, median_holdout_dcr=med_hold,
    )


def membership_inference_auc(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> float:
    """ROC AUC of the loss-threshold attack: "member" when the loss is low (Yeom et al.).

    The losses are the generator's own per-sample denoising losses on training records
    (members) and held-out records (non-members); 0.5 = the model does not tell them
    apart, 1.0 = every member has a lower loss than every non-member. Ties count half.
    """
    members = np.asarray(member_losses, dtype=np.float64).ravel()
    others = np.asarray(nonmember_losses, dtype=np.float64).ravel()
    if len(members) == 0 or len(others) == 0:
        raise AuditError("membership AUC needs at least one member and one non-member loss")
    if not (np.isfinite(members).all() and np.isfinite(others).all()):
        raise AuditError("membership AUC: losses must be finite")
    # Mann-Whitney U on the attack score (-loss): P(score_member > score_other)
    ranks = rankdata(np.concatenate([-members, -others]))
    u = ranks[: len(members)].sum() - len(members) * (len(members) + 1) / 2
    return float(u / (len(members) * len(others)))
