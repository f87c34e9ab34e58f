"""Plain, Dagster-free build steps, one module per stage in data-flow order:
ingest, snapshot, eligibility, shard_training, candidates, audit, checks, card, release, withdrawal."""
