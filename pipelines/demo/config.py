"""The demo home's build settings: what `consentgen demo` writes into its consentgen.toml.

The demo preset with Br35H's class names, a [dataset] table that says plainly what the
demo is (simulated subjects and consent, images whose licence is undocumented: not for
publication), the notices its data card opens with, and a calibration on 1,000 sources
(250 different images, not 50) so its false-positive rate rests on a real sample.
"""

from __future__ import annotations

from pipelines.demo.consent import SIMULATION_NOTICE
from pipelines.settings import BuildConfig, DatasetSettings, FigureSettings, demo_profile

GROUPING_NOTICE = (
    "Each simulated subject holds whole groups of near-identical Br35H slices (the groups "
    "the near-duplicate audit itself finds: Br35H repeats slices mirrored, brightened and "
    "zoomed), so the calibration's different images are slices of other groups than its "
    "reference, and the holdout and the training set share no group. The figures below are "
    "measured on that split, whatever they come to; on your own data, with real subjects, "
    "the same figures measure your thresholds and your generator."
)
"""Says only what holds by construction (how subjects were cut), never a figure: the card's
tables report the calibration and privacy figures as computed."""
DEMO_DATASET = DatasetSettings(
    name="consentgen demo: synthetic brain-MRI slices from Br35H (simulated consent)",
    controller="none: a demonstration on simulated subjects and simulated consent",
    contact="none: a demonstration (no real person's consent is recorded)",
    licence="undocumented: Br35H's images ship without a documented licence, so these "
            "synthetic images are not for publication",
    legal_basis="none: the subjects and their consent events are simulated; nothing here "
                "may be published or used on people",
    intended_uses=["trying consentgen out on built-in data",
                   "reading a data card and a withdrawal end to end"],
    out_of_scope_uses=["publication or redistribution of any kind",
                       "training or evaluating models for use on people",
                       "clinical diagnosis or treatment of any person"],
    withdrawal="Simulated: the demo revokes three simulated subjects itself, then reconciles "
               "(their images are withdrawn at once) and rebuilds their shard. In a real "
               "home, `consentgen consent revoke SUBJECT` does the same.",
)


def demo_config() -> BuildConfig:
    """The demo preset with the demo's dataset terms, notices and calibration sample."""
    base = demo_profile()
    return BuildConfig.model_validate({
        **base.model_dump(),
        "notices": [SIMULATION_NOTICE, GROUPING_NOTICE],
        "dataset": DEMO_DATASET.model_dump(),
        "figures": FigureSettings(**{**base.figures.model_dump(),
                                     "calibration_sources": 1000}).model_dump(),
    })
