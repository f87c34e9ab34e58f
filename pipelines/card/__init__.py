"""The data card of a release: its model (what may appear on it) and its rendering.

`model` says what a card may hold, `plots` draws its pictures, `render` formats it once
and lays it out through the two templates in ``templates/``. This package sits above
`pipelines.catalog` and below `pipelines.steps`: it imports neither the steps nor Dagster.
"""

from pipelines.card.formatting import NOT_COMPUTED
from pipelines.card.model import (
    AuditThreshold,
    CalibrationRates,
    ConsentSnapshotHead,
    Counts,
    DataCard,
    DistanceDistribution,
    ExpectationsSummary,
    GeneratorInfo,
    PrivacyFigures,
    UtilityFigures,
)
from pipelines.card.render import CARD_FOLDER, render_data_card

__all__ = [
    "AuditThreshold",
    "CARD_FOLDER",
    "CalibrationRates",
    "ConsentSnapshotHead",
    "Counts",
    "DataCard",
    "DistanceDistribution",
    "ExpectationsSummary",
    "GeneratorInfo",
    "NOT_COMPUTED",
    "PrivacyFigures",
    "UtilityFigures",
    "render_data_card",
]
