"""The card model: no room for identifiers, no link out of the release."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.card import (
    AuditThreshold,
    ConsentSnapshotHead,
    Counts,
    DistanceDistribution,
    ExpectationsSummary,
)
from tests.pipelines.card.conftest import base_card


def test_card_model_has_no_room_for_identifiers() -> None:
    with pytest.raises(ValidationError):
        base_card(source_ids=["SRC-1"])  # extra fields are forbidden
    with pytest.raises(ValidationError):
        Counts(sources_total=3, subject_ids=["S1"])
    with pytest.raises(ValidationError):
        ExpectationsSummary(suite_name="s", success=True, evaluated=1, successful=1,
                            docs_link="/srv/data/releases/v0001/expectations/index.html")
    with pytest.raises(ValidationError):
        ExpectationsSummary(suite_name="s", success=True, evaluated=1, successful=1,
                            docs_link="../internal/index.html")
    with pytest.raises(ValidationError):
        base_card(created_at=datetime(2025, 1, 1))  # naive time
    with pytest.raises(ValidationError):
        base_card(consent=ConsentSnapshotHead(seq=1, hash="xyz",
                                              snapshot_time=datetime.now(UTC)))
    with pytest.raises(ValidationError):  # a distance needs its threshold drawn
        base_card(thresholds={}, distances={"pixel_l2": DistanceDistribution(values=[1.0])})
    with pytest.raises(ValidationError):  # metric names become file names
        base_card(thresholds={"../x": AuditThreshold(direction="min", value=1.0)})
    with pytest.raises(ValidationError):
        Counts(shards=4, records_per_shard=[1, 2, 3])


def test_docs_outside_the_release_get_no_link(tmp_path: Path) -> None:
    from validation.release.expectations import ExpectationReport

    report = ExpectationReport(suite_name="release_audit", success=True, evaluated=3,
                               successful=3, failed=[],
                               docs_index=tmp_path / "elsewhere" / "index.html")
    summary = ExpectationsSummary.from_report(report, tmp_path / "v0001")
    assert summary.docs_link is None and summary.evaluated == 3
