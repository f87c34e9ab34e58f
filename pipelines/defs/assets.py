"""The assets of a build, in data-flow order; each body is one call into `pipelines.steps`.

    sources ─┐
    consent_snapshot ─┴─> eligible_records ─> shard_models/shard_<k> (one asset per SISA shard)
                                              ─> candidates ─> audit ─> release

Asset values live in the catalog and the data home, not in Dagster's IO managers, so
assets depend on each other with `deps` and a run finds its snapshot by its run id.

Every body that writes holds the home's build lock (`holding_home`): nothing to take in a
run of `run_build`, which holds it for the whole run; shared among the steps of a run the
daemon launched (a sensor's rebuild, a run started in `consentgen ui`), so such a run
and a `consentgen build` never write at once, whichever starts second being refused.

Each shard's model is its own asset, hence its own step: Dagster's multiprocess, Celery
and Kubernetes executors train shards in parallel, a full build is one run over every
asset, and a rebuild is one run that leaves out the shards that need no retraining.
(A partitioned asset with a single-run backfill policy runs every partition in one op,
which no executor can parallelise.) Changing K changes the asset graph, which is right:
a new K is a new sharding of the subjects.
"""

# No `from __future__ import annotations` here: Dagster reads the context annotations
# when it builds the definitions.

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from pipelines.defs.resources import BuildSettings, CatalogResource, LedgerResource, run_snapshot

GROUP = "consentgen"
SHARD_PREFIX = "shard_models"
BUILD_TAG = "consentgen/build"
"""Set by `run_build` on its runs: the id it holds the home's build lock under."""


@contextmanager
def holding_home(context: dg.AssetExecutionContext, catalog: CatalogResource) -> Iterator[None]:
    """The home's build lock for one writing step (see the module's docstring)."""
    from pipelines.steps.locks import build_step_lock

    run = context.run
    with build_step_lock(catalog.home.root(), run_id=run.tags.get(BUILD_TAG, run.run_id),
                         step=context.op_def.name):
        yield


def shard_key(shard: int) -> dg.AssetKey:
    return dg.AssetKey([SHARD_PREFIX, f"shard_{shard}"])


def shard_of_key(key: dg.AssetKey) -> int | None:
    """The shard number of a shard model's asset key, None for any other asset."""
    path = key.path
    if len(path) == 2 and path[0] == SHARD_PREFIX and path[1].startswith("shard_"):
        return int(path[1].removeprefix("shard_"))
    return None


@dg.asset(group_name=GROUP, description="Normalised, metadata-free source images in the catalog.")
def sources(catalog: CatalogResource) -> dg.MaterializeResult:
    from pipelines.steps.sources import sources_summary

    return dg.MaterializeResult(metadata=sources_summary(catalog.catalog()))


@dg.asset(group_name=GROUP, deps=[sources], description="The verified ledger head this build honours.")
def consent_snapshot(context: dg.AssetExecutionContext, ledger: LedgerResource,
                     catalog: CatalogResource, settings: BuildSettings) -> dg.MaterializeResult:
    from pipelines.steps.snapshot import take_snapshot

    with holding_home(context, catalog):
        snap = take_snapshot(ledger.ledger(), catalog.catalog(), settings.config().purpose,
                             run_id=context.run.run_id)
    return dg.MaterializeResult(metadata={
        "snapshot_id": snap.snapshot_id, "head_seq": snap.head_seq, "head_hash": snap.head_hash,
        "taken_at": snap.taken_at.isoformat()})


@dg.asset(group_name=GROUP, deps=[consent_snapshot],
          description="Sources whose subject consents at the snapshot, split into shards.")
def eligible_records(context: dg.AssetExecutionContext, ledger: LedgerResource,
                     catalog: CatalogResource, settings: BuildSettings) -> dg.MaterializeResult:
    from pipelines.steps.eligibility import select_eligible

    cat = catalog.catalog()
    with holding_home(context, catalog):
        chosen = select_eligible(cat, ledger.ledger(), run_snapshot(context, cat), settings.config())
    return dg.MaterializeResult(metadata={
        "train_records": len(chosen.by_role("train")),
        "holdout_records": len(chosen.by_role("holdout")),
        "subjects": len({r.subject_id for r in chosen.records}),
        "per_shard": dg.MetadataValue.json({str(k): v for k, v in chosen.shard_counts().items()}),
        "excluded": dg.MetadataValue.json(chosen.exclusion_counts())})


def shard_model(shard: int) -> dg.AssetsDefinition:
    """The asset that trains shard `shard`'s generator on that shard's records only."""

    @dg.asset(key=shard_key(shard), group_name=GROUP, deps=[eligible_records],
              kinds={"pytorch"}, tags={"consentgen/step": "shard-training"},
              description=f"Shard {shard}'s generator (DDPM trained on, or img2img conditioning "
                          "set of,) that shard's records only.")
    def _train(context: dg.AssetExecutionContext, catalog: CatalogResource,
               settings: BuildSettings) -> dg.MaterializeResult:
        from pipelines.steps.shard_training import train_shard

        cat = catalog.catalog()
        with holding_home(context, catalog):
            done = train_shard(cat, run_snapshot(context, cat), shard, settings.config(),
                               progress=settings.progress)
        how = "retrained" if done.retrained else "adopted" if done.adopted else "unchanged"
        context.log.info(f"shard {shard}: {how}")
        return dg.MaterializeResult(metadata={
            "shard": shard, "retrained": int(done.retrained), "adopted": int(done.adopted),
            "model_version": done.model.model_version if done.model else "none",
            "records": done.model.n_records if done.model else 0})

    return _train


def candidates(shards: int) -> dg.AssetsDefinition:
    @dg.asset(name="candidates", group_name=GROUP, deps=[shard_key(s) for s in range(shards)],
              description="Class-balanced samples from every shard's current model, with lineage.")
    def _candidates(context: dg.AssetExecutionContext, catalog: CatalogResource,
                    settings: BuildSettings) -> dg.MaterializeResult:
        from pipelines.steps.candidates import generate_candidates

        cat = catalog.catalog()
        how: dict[str, str] = {}
        with holding_home(context, catalog):
            rows = generate_candidates(cat, run_snapshot(context, cat), settings.config(),
                                       progress=settings.progress,
                                       on_shard=lambda s, h: how.__setitem__(str(s), h))
        return dg.MaterializeResult(metadata={"candidates": len(rows),
                                              "per_shard": dg.MetadataValue.json(how)})

    return _candidates


@dg.asset(group_name=GROUP, deps=["candidates"],
          description="Near-duplicate audit against every source; flagged samples replaced.")
def audit(context: dg.AssetExecutionContext, catalog: CatalogResource,
          settings: BuildSettings) -> dg.MaterializeResult:
    from pipelines.steps.audit import audit_and_replace

    cat = catalog.catalog()
    with holding_home(context, catalog):
        out = audit_and_replace(cat, run_snapshot(context, cat), settings.config(),
                                progress=settings.progress)
    return dg.MaterializeResult(metadata={
        "kept": out.kept, "flagged": out.flagged_total, "replaced": out.replaced,
        "rounds": out.rounds, "sources": out.summary.n_sources,
        "search": out.summary.search.mode_used})


@dg.asset(group_name=GROUP, deps=[audit],
          description="A versioned release, published atomically with its data card.")
def release(context: dg.AssetExecutionContext, catalog: CatalogResource, ledger: LedgerResource,
            settings: BuildSettings) -> dg.MaterializeResult:
    from pipelines.steps.freshness import snapshot_digest
    from pipelines.steps.release import publish

    cat, led, config = catalog.catalog(), ledger.ledger(), settings.config()
    with holding_home(context, catalog):  # the lock first: another build's run is refused as such
        snapshot = run_snapshot(context, cat)
        rel = publish(cat, led, snapshot, config,
                      inputs_digest=snapshot_digest(cat, led, snapshot, config))
    path = cat.home / rel.release_path
    return dg.MaterializeResult(metadata={
        "version": rel.version, "images": rel.n_images, "path": str(path),
        "data_card": dg.MetadataValue.path(str(path / "data_card.html")),
        "consent_head_seq": rel.head_seq, "consent_head_hash": rel.head_hash,
        "inputs_digest": rel.inputs_digest or ""})


def build_assets(shards: int) -> list[dg.AssetsDefinition]:
    return [sources, consent_snapshot, eligible_records, *(shard_model(s) for s in range(shards)),
            candidates(shards), audit, release]
