"""The jobs, and which assets a run over some shards selects."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from pipelines.defs.assets import audit, release, shard_key, shard_of_key

BUILD_JOB = "build"
PUBLISH_JOB = "publish"


def build_job(executor: dg.ExecutorDefinition | None = None) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(BUILD_JOB, selection=dg.AssetSelection.all(), executor_def=executor,
                               description="Snapshot, train every shard, sample, audit and publish.")


def publish_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        PUBLISH_JOB,
        selection=dg.AssetSelection.checks_for_assets(audit) | dg.AssetSelection.assets(release),
        description="Re-run the blocking checks on an audited build and publish it if they pass "
                    "(e.g. after a blocked release was looked into).")


def shards_selection(all_keys: Iterable[dg.AssetKey], shards: Iterable[int]) -> list[dg.AssetKey]:
    """Every asset of a build except the shard models not in `shards` (a rebuild's run)."""
    wanted = set(shards)
    return sorted(k for k in all_keys if (s := shard_of_key(k)) is None or s in wanted)


def shard_keys(shards: Iterable[int]) -> list[dg.AssetKey]:
    return [shard_key(s) for s in sorted(shards)]


def selected_shards(keys: Iterable[dg.AssetKey]) -> list[int]:
    """The shards whose models a run over `keys` (re)trains."""
    return sorted({s for k in keys if (s := shard_of_key(k)) is not None})
