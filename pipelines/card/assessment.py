"""Every privacy and utility figure in plain words: what it measures, its reference, a flag.

A data protection officer should not need to know what a DCR is to read the card. So
each figure gets one row: its value, the value it is judged against, a green / amber /
red flag (as MOSTLY AI's QA report does), the sample it rests on, and one sentence on
what it measures and which direction is good. The bands are fixed here, in one table
(`BANDS`), and printed on the card's legend, so a flag can be checked by hand.

A figure on too few images (fewer than `MIN_MEANINGFUL`, or a count suppressed on the
card) is flagged "not meaningful" instead: TSTR on 2 test images is a coin toss, not a
result. A figure that was not computed has no flag.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.card.formatting import NOT_COMPUTED, count, number, percent
from pipelines.card.model import DataCard
from pipelines.card.suppression import Suppressed

GREEN, AMBER, RED = "green", "amber", "red"
NOT_MEANINGFUL = "not meaningful"
NO_FLAG = "—"
MIN_MEANINGFUL = 20
"""Fewer images than this on either side of a comparison: the figure is not meaningful."""

BANDS: dict[str, str] = {
    "copies caught": "green ≥ 95 %, amber ≥ 70 %, red below",
    "false positives": "green ≤ 5 %, amber ≤ 15 %, red above",
    "DCR share": "green ≤ 55 %, amber ≤ 60 %, red above",
    "DCR ratio": "green ≥ 0.9, amber ≥ 0.7, red below",
    "membership AUC": "green within 0.05 of 0.5, amber within 0.1, red beyond",
    "TSTR": "green ≥ 90 % of TRTR, amber ≥ 70 %, red below or at chance",
    "ε": "green ≤ 1, amber ≤ 10 or no differential privacy, red above 10",
}
_TRANSFORMS = {"crop": "cropped by 10 %", "flip": "mirrored", "noise": "with added noise",
               "brightness": "brightened", "jpeg": "re-encoded as JPEG"}


@dataclass(frozen=True)
class Assessment:
    """One figure's row on the card."""

    figure: str
    value: str
    reference: str
    flag: str
    sample: str
    meaning: str

    def row(self) -> tuple[str, ...]:
        return (self.figure, self.value, self.reference, self.flag, self.sample, self.meaning)


HEAD = ("Figure", "Value", "Reference", "Flag", "Sample", "What it measures")


def _too_few(*sizes: int | Suppressed | None) -> bool:
    """A suppressed count is under k: too few to show, too few to judge. None: unknown
    (a card from before sample sizes were recorded), judged by the value alone."""
    return any(isinstance(n, Suppressed) or (n is not None and n < MIN_MEANINGFUL)
               for n in sizes)


def _sample(*parts: tuple[int | Suppressed | None, str]) -> str:
    """E.g. "400 synthetic, 436 held-out"; the sizes that are known, "—" if none is."""
    known = [f"{count(n)} {what}" for n, what in parts if n is not None]
    return ", ".join(known) or NO_FLAG


def _flag(value: float | None, sizes: tuple[int | Suppressed | None, ...],
          green: bool, amber: bool) -> str:
    if value is None:
        return NO_FLAG
    if _too_few(*sizes):
        return NOT_MEANINGFUL
    return GREEN if green else AMBER if amber else RED


def _calibration(card: DataCard) -> list[Assessment]:
    cal = card.calibration
    if cal is None:
        return [Assessment("Calibration", NOT_COMPUTED, NO_FLAG, NO_FLAG, NO_FLAG,
                           "How well the near-duplicate audit catches known copies and spares "
                           "different images (not computed for this release).")]
    per = cal.n_per_transform
    if per is None and cal.n_positives is not None and cal.detection_rate:
        per = cal.n_positives // len(cal.detection_rate)
    rows = []
    for name, rate in sorted(cal.detection_rate.items()):
        what = _TRANSFORMS.get(name, name)
        rows.append(Assessment(
            f"Copies caught: {name}", percent(rate), "100 %",
            _flag(rate, (per,), rate is not None and rate >= 0.95,
                  rate is not None and rate >= 0.70),
            _sample((per, "copies")),
            f"Share of known copies (source images {what}) that the audit flags as "
            "near-duplicates. Higher is better: a copy it misses could be published."))
    fpr = cal.false_positive_rate
    rows.append(Assessment(
        "False positives (different images flagged)", percent(fpr), "0 %",
        _flag(fpr, (cal.n_negatives,), fpr is not None and fpr <= 0.05,
              fpr is not None and fpr <= 0.15),
        _sample((cal.n_negatives, "different images")),
        "Share of different images (other subjects' sources, none a copy) that the audit "
        "flags anyway. Lower is better: a high rate means the thresholds cannot tell a copy "
        "from a similar-looking image."))
    return rows


def _privacy(card: DataCard) -> list[Assessment]:
    p = card.privacy
    sizes = (p.n_synthetic, p.n_holdout)
    sample = _sample((p.n_synthetic, "synthetic images"), (p.n_train, "training records"),
                     (p.n_holdout, "held-out records"))
    share, ratio, auc = p.dcr_closer_to_train_share, p.dcr_ratio, p.membership_auc
    mia_sample = _sample((p.mia_n_members, "training records"),
                         (p.mia_n_nonmembers, "held-out records"))
    gap = None if auc is None else abs(auc - 0.5)
    return [
        Assessment(
            "DCR share (closer to training than to unseen)", percent(share), "≈ 50 %",
            _flag(share, sizes, share is not None and share <= 0.55,
                  share is not None and share <= 0.60), sample,
            "Share of synthetic images that are closer to a training image than to an unseen "
            "(held-out) one. About 50 %: synthetic images are no closer to training images "
            "than to unseen ones; towards 100 %: they reproduce training images."),
        Assessment(
            "DCR ratio", NOT_COMPUTED if ratio is None else number(ratio), "≥ 1",
            _flag(ratio, sizes, ratio is not None and ratio >= 0.9,
                  ratio is not None and ratio >= 0.7), sample,
            "Median distance from a synthetic image to its nearest training image, over the "
            "same for an unseen real image. 1 or more: synthetic images sit no closer to the "
            "training records than new real data does; well below 1: closer, a sign of copying."),
        Assessment(
            "Membership-inference AUC", NOT_COMPUTED if auc is None else number(auc), "0.5",
            _flag(auc, (p.mia_n_members, p.mia_n_nonmembers), gap is not None and gap <= 0.05,
                  gap is not None and gap <= 0.10), mia_sample,
            "How well an attacker who measures the generator's own loss on an image tells its "
            "training records from unseen ones. 0.5: no better than a coin toss (the model "
            "does not give away who was trained on); 1.0: every training record recognised."),
    ]


def _utility(card: DataCard) -> list[Assessment]:
    u = card.utility
    tstr, trtr, chance = u.tstr_accuracy, u.trtr_accuracy, u.chance_accuracy
    if tstr is None or trtr is None:  # no value, or nothing to hold it to
        flag = NOT_MEANINGFUL if tstr is not None and _too_few(u.n_test) else NO_FLAG
    else:
        above_chance = chance is None or tstr > chance + 0.02
        flag = _flag(tstr, (u.n_test,), above_chance and tstr >= 0.9 * trtr,
                     above_chance and tstr >= 0.7 * trtr)
    reference = ("TRTR " + percent(trtr) + ("" if chance is None else f"; chance {percent(chance)}")
                 if trtr is not None else NO_FLAG)
    sample = _sample((u.n_test, "real test images"), (u.n_train_synthetic, "synthetic training"),
                     (u.n_train_real, "real training records"))
    return [
        Assessment(
            "TSTR accuracy (train synthetic, test real)", percent(tstr), reference, flag, sample,
            "Accuracy on unseen real images of a classifier trained only on the synthetic "
            "images. Close to TRTR (the same classifier trained on real images): the synthetic "
            "images teach what the real ones do; near chance: they teach little."),
        Assessment(
            "TRTR accuracy (train real, test real)", percent(trtr), "reference for TSTR",
            NOT_MEANINGFUL if trtr is not None and _too_few(u.n_test) else NO_FLAG, sample,
            "The same classifier trained on the real training images: the bar TSTR is held to."
            + (f" Classifier: {u.classifier}." if u.classifier else "")),
    ]


def _dp(card: DataCard) -> Assessment:
    g = card.generator
    meaning = ("Differential-privacy budget of training (DP-SGD): bounds how much any one "
               "record can change the model. Smaller is stronger: ε ≤ 1 is strong, up to 10 "
               "is common in practice.")
    if g.dp_epsilon is None:
        return Assessment("Differential privacy (ε)", "none", "ε ≤ 1 strong, ≤ 10 common",
                          AMBER, NO_FLAG, meaning + " Trained without it: there is no such "
                          "bound, only the audit and the figures above.")
    eps = g.dp_epsilon
    value = f"ε = {number(eps)}" + (f", δ = {g.dp_delta:.1e}" if g.dp_delta else "")
    return Assessment("Differential privacy (ε)", value, "ε ≤ 1 strong, ≤ 10 common",
                      GREEN if eps <= 1 else AMBER if eps <= 10 else RED, NO_FLAG, meaning)


def assessments(card: DataCard) -> list[Assessment]:
    """Every privacy and utility figure of `card`, in print order."""
    return [*_calibration(card), *_privacy(card), *_utility(card), _dp(card)]


def legend() -> str:
    """The bands behind the flags, in one line for the card."""
    return (f"Flags: {'; '.join(f'{k}: {v}' for k, v in BANDS.items())}. "
            f"\"{NOT_MEANINGFUL}\": fewer than {MIN_MEANINGFUL} images on a side (or a count "
            "too small to show), too few for the figure to mean anything.")
