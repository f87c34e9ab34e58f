"""The data card of a release: its model (what may appear on it) and its rendering."""

from pipelines.card.datacard import (
    AuditThreshold,
    CARD_FOLDER,
    CalibrationRates,
    ConsentSnapshotHead,
    Counts,
    DataCard,
    DistanceDistribution,
    ExpectationsSummary,
    GeneratorInfo,
    NOT_COMPUTED,
    PrivacyFigures,
    UtilityFigures,
    render_data_card,
)

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
