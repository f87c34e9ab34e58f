"""The Dagster definitions load, and the schedule and sensor evaluate through Dagster's APIs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from consentgen.errors import ConfigError
from pipelines.defs.assets import shard_key
from pipelines.defs.definitions import defs, make_definitions
from pipelines.settings import quick_profile
from pipelines.steps.freshness import inputs_digest
from tests.pipelines.steps.published import PURPOSE, publish_rows

SHARDLESS = {"sources", "consent_snapshot", "eligible_records", "candidates", "audit", "release"}


def test_defs_can_load() -> None:
    assert defs.resolve_job_def("build") is not None
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == SHARDLESS | {f"shard_models/shard_{s}" for s in range(4)}
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


def refresh_tick(config, home: Path) -> dg.ScheduleExecutionData:
    defs = make_definitions(config, home)
    schedule = defs.resolve_schedule_def("refresh_schedule")
    with dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 24, 3, tzinfo=UTC),
                                   resources=defs.resources) as context:
        return schedule.evaluate_tick(context)


def test_schedule_requests_one_run_over_every_shard(tmp_path: Path) -> None:
    request = refresh_tick(quick_profile(shards=3), tmp_path).run_requests[0]
    selected = set(request.asset_selection)
    assert {shard_key(s) for s in range(3)} <= selected
    assert {dg.AssetKey(k) for k in SHARDLESS} <= selected
    assert request.run_key == "refresh-20261124T0300"


def test_schedule_skips_when_nothing_changed_since_the_newest_release(home: Path) -> None:
    pub = publish_rows(home)
    config = quick_profile()
    assert refresh_tick(config, home).run_requests  # releases without a digest: refresh
    digest = inputs_digest(pub.catalog, pub.ledger, config)
    with pub.catalog.write() as con:
        con.execute("UPDATE releases SET inputs_digest = ? WHERE version = 'v0002'", [digest])
    tick = refresh_tick(config, home)
    assert not tick.run_requests and tick.skip_message == "nothing changed since v0002"
    assert refresh_tick(quick_profile(images_per_shard=9), home).run_requests  # settings changed
    pub.ledger.revoke("A", PURPOSE)
    assert refresh_tick(config, home).run_requests  # consent changed


def test_each_shard_is_its_own_step(tmp_path: Path) -> None:
    """One op per shard model, all downstream of eligibility and upstream of sampling:
    what lets the multiprocess, Celery and Kubernetes executors train them side by side."""
    defs5 = make_definitions(quick_profile(shards=5), tmp_path)
    graph = defs5.resolve_asset_graph()
    for s in range(5):
        node = graph.get(shard_key(s))
        assert node.parent_keys == {dg.AssetKey("eligible_records")}
        assert dg.AssetKey("candidates") in node.child_keys
    job = defs5.resolve_job_def("build")
    ops = {n.name for n in job.graph.node_defs}
    assert {f"shard_models__shard_{s}" for s in range(5)} <= ops
    plan_steps = {s for s in job.get_subset(asset_selection={shard_key(1)}).graph.node_dict}
    assert plan_steps == {"shard_models__shard_1"}


def test_the_daemon_s_definitions_read_the_build_file_when_a_run_starts(home: Path) -> None:
    """`consentgen ui` / the daemon load `make_definitions()` once; each run and tick must
    build with the file as it is then, as `consentgen build` does."""
    from pipelines.buildfile import build_file_path

    build_file_path(home).write_text('profile = "test"\nimages_per_shard = 5\n')
    defs = make_definitions(None, home)
    settings = defs.resources["settings"]
    assert len([k for k in defs.resolve_asset_graph().get_all_asset_keys()
                if k.path[0] == "shard_models"]) == 2  # the graph's shape: the file's shards
    assert settings.config().images_per_shard == 5
    build_file_path(home).write_text('profile = "test"\nimages_per_shard = 7\n')
    assert settings.config().images_per_shard == 7  # edited after loading: read anew
    build_file_path(home).write_text('profile = "test"\n[generator]\nimagesize = 3\n')
    with pytest.raises(ConfigError, match="generator.imagesize: unknown key"):
        settings.config()  # a build refuses a bad file in one line...
    assert settings.reconcile_config().profile == "test"  # ...a withdrawal reads around it
    assert make_definitions(None, home).resources["settings"].reconcile_config().shards == 2
