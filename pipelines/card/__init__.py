"""The data card of a release: its model (what may appear on it) and its rendering.

`model` says what a card may hold (`suppression`: no small count of people on it;
`dataset`: who publishes it on what terms), `assessment` puts every privacy and utility
figure in words with its reference and a green / amber / red flag,
`provenance` records what every image carries and how to verify it,
`plots` draws its pictures from the images `samples` chooses, `view` formats it once and
`render` lays it out through the two templates in ``templates/`` and makes its files.
This package sits above `pipelines.catalog` and below `pipelines.steps`: it imports
neither the steps nor Dagster.
"""

from pipelines.card.assessment import NOT_MEANINGFUL, Assessment, assessments
from pipelines.card.dataset import NOT_STATED, DatasetInfo
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
    WithdrawalLine,
)
from pipelines.card.provenance import TRUST_ANCHORS_FILE, ProvenanceInfo, SignerInfo
from pipelines.card.render import CARD_JSON, card_files, load_card, render_data_card
from pipelines.card.samples import SAMPLE_GRID, choose_samples
from pipelines.card.suppression import PublicCount, Suppressed, public_count
from pipelines.card.view import CARD_FOLDER

__all__ = [
    "Assessment",
    "AuditThreshold",
    "CARD_FOLDER",
    "CARD_JSON",
    "CalibrationRates",
    "ConsentSnapshotHead",
    "Counts",
    "DataCard",
    "DatasetInfo",
    "DistanceDistribution",
    "ExpectationsSummary",
    "GeneratorInfo",
    "NOT_COMPUTED",
    "NOT_MEANINGFUL",
    "NOT_STATED",
    "PrivacyFigures",
    "ProvenanceInfo",
    "PublicCount",
    "SAMPLE_GRID",
    "SignerInfo",
    "Suppressed",
    "TRUST_ANCHORS_FILE",
    "UtilityFigures",
    "WithdrawalLine",
    "assessments",
    "card_files",
    "choose_samples",
    "load_card",
    "public_count",
    "render_data_card",
]
