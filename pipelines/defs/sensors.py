"""The revocation sensor: reconciles on every tick, requests a rebuild of stale shards."""

# No `from __future__ import annotations` here: Dagster reads the context annotations
# when it builds the definitions.

import dagster as dg

from pipelines.defs.jobs import BUILD_JOB, shards_selection
from pipelines.defs.resources import BuildSettings, CatalogResource, LedgerResource

REASON_TAG = "consentgen/reason"


def revocation_sensor(asset_keys: list[dg.AssetKey]) -> dg.SensorDefinition:
    """Each tick runs the reconcile (level-triggered: an expiry is no event, so the ledger's
    events cannot be what it follows), then asks for one run over the stale shards only.

    The cursor records the ledger head the last tick saw, for the UI; it decides nothing.
    The run key names the stale models, so ticks that find the same ones ask for one run.
    """

    @dg.sensor(name="revocation_sensor", job_name=BUILD_JOB, minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Reconciles releases with the ledger now: withdraws what consent no "
                           "longer covers and rebuilds the shards whose models saw it.")
    def _sensor(context: dg.SensorEvaluationContext, ledger: LedgerResource,
                catalog: CatalogResource, settings: BuildSettings) -> dg.SensorResult:
        from pipelines.steps.reconcile import reconcile

        report = reconcile(catalog.catalog(), ledger.ledger(), settings.reconcile_config())
        context.log.info(report.line())
        requests = []
        if report.stale_shards:
            requests.append(dg.RunRequest(run_key=report.rebuild_key(),
                                          asset_selection=shards_selection(asset_keys, report.stale_shards),
                                          tags={REASON_TAG: "revocation"}))
        return dg.SensorResult(run_requests=requests, cursor=str(report.ledger_head))

    return _sensor
