"""The Dagster definitions load, and the schedule and sensor evaluate through Dagster's APIs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from pipelines.defs.definitions import PARTITION_RANGE_END, PARTITION_RANGE_START, defs, make_definitions
from pipelines.settings import quick_profile


def test_defs_can_load() -> None:
    assert defs.resolve_job_def("build") is not None
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"sources", "consent_snapshot", "eligible_records", "shard_models",
                    "candidates", "audit", "release"}
    checks = {k.name for k in graph.asset_check_keys}
    assert checks == {"no_near_duplicates", "lineage_consented", "no_identifying_metadata",
                      "expectations_pass"}
    assert defs.resolve_sensor_def("revocation_sensor") is not None
    assert defs.resolve_schedule_def("refresh_schedule").cron_schedule == "0 3 * * *"


def test_release_waits_for_blocking_checks() -> None:
    graph = make_definitions(quick_profile()).resolve_asset_graph()
    release = graph.get(dg.AssetKey("release"))
    assert dg.AssetKey("audit") in release.parent_keys
    specs = graph.get(dg.AssetKey("audit")).check_keys
    assert all(graph.get_check_spec(k).blocking for k in specs) and len(specs) == 4


def test_schedule_requests_one_run_over_every_shard(tmp_path: Path) -> None:
    config = quick_profile(shards=3)
    schedule = make_definitions(config, tmp_path).resolve_schedule_def("refresh_schedule")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 24, 3, tzinfo=UTC))
    request = schedule.evaluate_tick(context).run_requests[0]
    assert request.tags[PARTITION_RANGE_START] == "0" and request.tags[PARTITION_RANGE_END] == "2"
    assert request.run_key == "refresh-20261124T0300"


def test_shards_are_the_partitions(tmp_path: Path) -> None:
    graph = make_definitions(quick_profile(shards=5), tmp_path).resolve_asset_graph()
    partitions = graph.get(dg.AssetKey("shard_models")).partitions_def
    assert partitions.get_partition_keys() == ["0", "1", "2", "3", "4"]
