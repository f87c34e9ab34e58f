"""The revocation sensor: follows the ledger, withdraws at once, requests a rebuild."""

# No `from __future__ import annotations` here: Dagster reads the context annotations
# when it builds the definitions.

import dagster as dg

from pipelines.defs.jobs import BUILD_JOB, shards_selection
from pipelines.defs.resources import BuildSettings, CatalogResource, LedgerResource

REASON_TAG = "consentgen/reason"


def revocation_sensor(asset_keys: list[dg.AssetKey]) -> dg.SensorDefinition:
    """Withdraws what a revocation taints, then asks for one run over its shards only."""

    @dg.sensor(name="revocation_sensor", job_name=BUILD_JOB, minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Follows the ledger; withdraws what a revocation taints and rebuilds its shards.")
    def _sensor(context: dg.SensorEvaluationContext, ledger: LedgerResource,
                catalog: CatalogResource, settings: BuildSettings) -> dg.SensorResult:
        from pipelines.steps.withdrawal import follow_ledger

        step = follow_ledger(ledger.ledger(), catalog.catalog(), settings.config(),
                             cursor=int(context.cursor or 0))
        requests = []
        if step.shards:
            requests.append(dg.RunRequest(run_key=f"revocations-{step.first_seq}-{step.cursor}",
                                          asset_selection=shards_selection(asset_keys, step.shards),
                                          tags={REASON_TAG: "revocation"}))
        for line in step.log:
            context.log.info(line)
        return dg.SensorResult(run_requests=requests, cursor=str(step.cursor))

    return _sensor
