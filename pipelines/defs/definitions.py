"""The Dagster definitions of consentgen: thin wiring over plain functions.

    sources ─┐
    consent_snapshot ─┴─> eligible_records ─> shard_models[shard] ─> candidates ─> audit ─> release
                                                                                  (4 blocking checks)

Every asset body is one call into `pipelines.*` (tested without Dagster). Asset values
live in the catalog and the data home, not in Dagster's IO managers, so assets depend on
each other with `deps` and a run finds its snapshot by its run id. `shard_models` is
partitioned by SISA shard with a single-run backfill policy: a full build is one run
over every shard, a revocation's rebuild one run over the affected shards only.
"""


import warnings
from pathlib import Path
from typing import Any

import dagster as dg

from consent import Ledger
from consentgen.home import data_home
from pipelines.catalog import Catalog, Snapshot
from pipelines.settings import CRON_ENV, DEFAULT_CRON, BuildConfig, config_from_env

# The single-run backfill policy is what makes a rebuild one run over several shards;
# we rely on it knowingly, so its "beta" notice is not news to print on every command.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

PARTITION_RANGE_START = "dagster/asset_partition_range_start"
PARTITION_RANGE_END = "dagster/asset_partition_range_end"


# --- resources --------------------------------------------------------------------------


class DataHome(dg.ConfigurableResource):
    """The deployment's data home ("" = $CONSENTGEN_HOME, else ./data)."""

    path: str = ""

    def root(self) -> Path:
        return data_home(self.path or None)


class LedgerResource(dg.ConfigurableResource):
    """The consent ledger, opened briefly per call (read-only for readers)."""

    home: DataHome
    max_wait_s: float = 60.0

    def ledger(self) -> Ledger:
        return Ledger.at_home(self.home.root(), max_wait_s=self.max_wait_s)


class CatalogResource(dg.ConfigurableResource):
    """The pipeline catalog (sources, snapshots, lineage, releases)."""

    home: DataHome
    max_wait_s: float = 60.0

    def catalog(self) -> Catalog:
        return Catalog(self.home.root(), max_wait_s=self.max_wait_s)


class BuildSettings(dg.ConfigurableResource):
    """The build configuration as JSON ("" = from $CONSENTGEN_PROFILE / $CONSENTGEN_SHARDS)."""

    config_json: str = ""
    progress: bool = False

    def config(self) -> BuildConfig:
        return BuildConfig.model_validate_json(self.config_json) if self.config_json else config_from_env()


# --- helpers ----------------------------------------------------------------------------


def shard_keys(shards: int) -> list[str]:
    return [str(i) for i in range(shards)]


def range_tags(shards: list[int] | range) -> dict[str, str]:
    """Tags for one run over the shard partitions from min to max."""
    keys = sorted(shards)
    return {PARTITION_RANGE_START: str(keys[0]), PARTITION_RANGE_END: str(keys[-1])}


def run_snapshot(context: Any, catalog: Catalog) -> Snapshot:
    """The snapshot this run took, else the newest one (a partial re-run of later assets)."""
    return catalog.snapshot_for_run(context.run.run_id)


def _meta(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --- assets -----------------------------------------------------------------------------


def make_definitions(config: BuildConfig | None = None, home: str | Path | None = None,
                     *, progress: bool = False) -> dg.Definitions:
    """Definitions for `config` (default: from the environment) over `home`."""
    config = config or config_from_env()
    shards_def = dg.StaticPartitionsDefinition(shard_keys(config.shards))
    home_res = DataHome(path=str(home) if home else "")
    resources = {
        "ledger": LedgerResource(home=home_res),
        "catalog": CatalogResource(home=home_res),
        "settings": BuildSettings(config_json=config.model_dump_json(), progress=progress),
    }

    @dg.asset(group_name="consentgen", description="Normalised, metadata-free source images in the catalog.")
    def sources(catalog: CatalogResource) -> dg.MaterializeResult:
        from pipelines.steps.sources import sources_summary

        return dg.MaterializeResult(metadata=sources_summary(catalog.catalog()))

    @dg.asset(group_name="consentgen", deps=[sources],
              description="The verified ledger head this build honours.")
    def consent_snapshot(context: dg.AssetExecutionContext, ledger: LedgerResource,
                         catalog: CatalogResource, settings: BuildSettings) -> dg.MaterializeResult:
        from pipelines.steps.snapshot import take_snapshot

        snap = take_snapshot(ledger.ledger(), catalog.catalog(), settings.config().purpose,
                             run_id=context.run.run_id)
        return dg.MaterializeResult(metadata={
            "snapshot_id": snap.snapshot_id, "head_seq": snap.head_seq, "head_hash": snap.head_hash,
            "taken_at": snap.taken_at.isoformat()})

    @dg.asset(group_name="consentgen", deps=[consent_snapshot],
              description="Sources whose subject consents at the snapshot, split into shards.")
    def eligible_records(context: dg.AssetExecutionContext, ledger: LedgerResource,
                         catalog: CatalogResource, settings: BuildSettings) -> dg.MaterializeResult:
        from pipelines.steps.eligibility import select_eligible

        cat = catalog.catalog()
        chosen = select_eligible(cat, ledger.ledger(), run_snapshot(context, cat), settings.config())
        return dg.MaterializeResult(metadata={
            "train_records": len(chosen.by_role("train")),
            "holdout_records": len(chosen.by_role("holdout")),
            "subjects": len({r.subject_id for r in chosen.records}),
            "per_shard": dg.MetadataValue.json({str(k): v for k, v in chosen.shard_counts().items()}),
            "excluded": dg.MetadataValue.json(chosen.exclusion_counts())})

    @dg.asset(group_name="consentgen", deps=[eligible_records], partitions_def=shards_def,
              backfill_policy=dg.BackfillPolicy.single_run(),
              description="One class-conditional DDPM per SISA shard, on that shard's records only.")
    def shard_models(context: dg.AssetExecutionContext, catalog: CatalogResource,
                     settings: BuildSettings) -> dg.MaterializeResult:
        from pipelines.steps.shard_training import train_shard

        cat = catalog.catalog()
        snap = run_snapshot(context, cat)
        outcome = {}
        for key in context.partition_keys:
            done = train_shard(cat, snap, int(key), settings.config(), progress=settings.progress)
            outcome[key] = {"retrained": done.retrained,
                            "model_version": done.model.model_version if done.model else None,
                            "records": done.model.n_records if done.model else 0}
            context.log.info(f"shard {key}: {'retrained' if done.retrained else 'unchanged'}")
        return dg.MaterializeResult(metadata={
            "shards": dg.MetadataValue.json(outcome),
            "retrained": sum(v["retrained"] for v in outcome.values())})

    @dg.asset(group_name="consentgen", deps=[shard_models],
              description="Class-balanced samples from every shard's current model, with lineage.")
    def candidates(context: dg.AssetExecutionContext, catalog: CatalogResource,
                   settings: BuildSettings) -> dg.MaterializeResult:
        from pipelines.steps.candidates import generate_candidates

        cat = catalog.catalog()
        how: dict[str, str] = {}
        rows = generate_candidates(cat, run_snapshot(context, cat), settings.config(),
                                   progress=settings.progress,
                                   on_shard=lambda s, h: how.__setitem__(str(s), h))
        return dg.MaterializeResult(metadata={"candidates": len(rows),
                                              "per_shard": dg.MetadataValue.json(how)})

    @dg.asset(group_name="consentgen", deps=[candidates],
              description="Near-duplicate audit against every source; flagged samples replaced.")
    def audit(context: dg.AssetExecutionContext, catalog: CatalogResource,
              settings: BuildSettings) -> dg.MaterializeResult:
        from pipelines.steps.audit import audit_and_replace

        cat = catalog.catalog()
        out = audit_and_replace(cat, run_snapshot(context, cat), settings.config(),
                                progress=settings.progress)
        return dg.MaterializeResult(metadata={
            "kept": out.kept, "flagged": out.flagged_total, "replaced": out.replaced,
            "rounds": out.rounds, "sources": out.summary.n_sources,
            "search": out.summary.search.mode_used})

    def _check(name: str, description: str):
        def wrap(fn):
            return dg.asset_check(asset=audit, name=name, blocking=True, description=description)(fn)
        return wrap

    def _result(outcome) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=outcome.passed, description=outcome.description,
                                   metadata={k: dg.MetadataValue.json(v) if isinstance(v, (dict, list))
                                             else v for k, v in outcome.metadata.items()})

    @_check("no_near_duplicates", "Re-audits the files that would ship against every source.")
    def no_near_duplicates(context: dg.AssetCheckExecutionContext, catalog: CatalogResource,
                           settings: BuildSettings) -> dg.AssetCheckResult:
        from pipelines.steps.checks import check_no_near_duplicates

        cat = catalog.catalog()
        return _result(check_no_near_duplicates(cat, run_snapshot(context, cat), settings.config()))

    @_check("lineage_consented", "Every subject behind every image still consents (fresh ledger read).")
    def lineage_consented(context: dg.AssetCheckExecutionContext, catalog: CatalogResource,
                          ledger: LedgerResource) -> dg.AssetCheckResult:
        from pipelines.steps.checks import check_lineage_consented

        cat = catalog.catalog()
        return _result(check_lineage_consented(cat, ledger.ledger(), run_snapshot(context, cat)))

    @_check("no_identifying_metadata", "No EXIF, XMP, ICC, text chunks or DICOM tags in any file.")
    def no_identifying_metadata(context: dg.AssetCheckExecutionContext,
                                catalog: CatalogResource) -> dg.AssetCheckResult:
        from pipelines.steps.checks import check_no_identifying_metadata

        cat = catalog.catalog()
        return _result(check_no_identifying_metadata(cat, run_snapshot(context, cat)))

    @_check("expectations_pass", "Great Expectations suites on the manifest and the audit table.")
    def expectations_pass(context: dg.AssetCheckExecutionContext, catalog: CatalogResource,
                          settings: BuildSettings) -> dg.AssetCheckResult:
        from pipelines.steps.checks import check_expectations

        cat = catalog.catalog()
        return _result(check_expectations(cat, run_snapshot(context, cat), settings.config()))

    @dg.asset(group_name="consentgen", deps=[audit],
              description="A versioned release, published atomically with its data card.")
    def release(context: dg.AssetExecutionContext, catalog: CatalogResource, ledger: LedgerResource,
                settings: BuildSettings) -> dg.MaterializeResult:
        from pipelines.steps.release import publish

        cat = catalog.catalog()
        rel = publish(cat, ledger.ledger(), run_snapshot(context, cat), settings.config())
        path = cat.home / rel.release_path
        return dg.MaterializeResult(metadata={
            "version": rel.version, "images": rel.n_images, "path": str(path),
            "data_card": dg.MetadataValue.path(str(path / "data_card.html")),
            "consent_head_seq": rel.head_seq, "consent_head_hash": rel.head_hash})

    assets = [sources, consent_snapshot, eligible_records, shard_models, candidates, audit, release]
    checks = [no_near_duplicates, lineage_consented, no_identifying_metadata, expectations_pass]
    build_job = dg.define_asset_job("build", selection=dg.AssetSelection.all(),
                                    description="Snapshot, train, sample, audit and publish.")

    @dg.sensor(job=build_job, minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Follows the ledger; withdraws what a revocation taints and rebuilds its shards.")
    def revocation_sensor(context: dg.SensorEvaluationContext, ledger: LedgerResource,
                          catalog: CatalogResource, settings: BuildSettings) -> dg.SensorResult:
        from pipelines.steps.withdrawal import follow_ledger

        step = follow_ledger(ledger.ledger(), catalog.catalog(), settings.config(),
                             cursor=int(context.cursor or 0))
        requests = []
        if step.shards:
            requests.append(dg.RunRequest(run_key=f"revocations-{step.first_seq}-{step.cursor}",
                                          tags={**range_tags(step.shards), "consentgen/reason": "revocation"}))
        for line in step.log:
            context.log.info(line)
        return dg.SensorResult(run_requests=requests, cursor=str(step.cursor))

    @dg.schedule(job=build_job, cron_schedule=_cron(), execution_timezone="UTC",
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="Refreshes the whole dataset (new snapshot, expiries honoured).")
    def refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return dg.RunRequest(run_key=f"refresh-{context.scheduled_execution_time:%Y%m%dT%H%M}",
                             tags={**range_tags(range(config.shards)), "consentgen/reason": "refresh"})

    publish_job = dg.define_asset_job(
        "publish",
        selection=dg.AssetSelection.checks_for_assets(audit) | dg.AssetSelection.assets(release),
        description="Re-run the blocking checks on an audited build and publish it if they pass "
                    "(e.g. after a blocked release was looked into).")

    return dg.Definitions(assets=assets, asset_checks=checks, jobs=[build_job, publish_job],
                          sensors=[revocation_sensor], schedules=[refresh_schedule],
                          resources=resources)


def _cron() -> str:
    import os

    return os.environ.get(CRON_ENV, DEFAULT_CRON)


defs = make_definitions()
