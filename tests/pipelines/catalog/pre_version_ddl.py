"""The catalog's DDL before schema versioning (commit 8967c16, `pipelines/catalog/store.py`),
copied verbatim: the fixture for migrating a catalog made by that consentgen."""

PRE_VERSION_SCHEMA: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS sources (
        record_id        VARCHAR PRIMARY KEY,
        subject_id       VARCHAR NOT NULL,
        label            INTEGER,
        content_hash     VARCHAR NOT NULL,
        file_sha256      VARCHAR NOT NULL,
        original_format  VARCHAR NOT NULL,
        original_mode    VARCHAR NOT NULL,
        original_width   INTEGER NOT NULL,
        original_height  INTEGER NOT NULL,
        original_frames  INTEGER NOT NULL,
        width            INTEGER NOT NULL,
        height           INTEGER NOT NULL,
        channels         INTEGER NOT NULL,
        image_path       VARCHAR NOT NULL,
        source_path      VARCHAR NOT NULL,
        decode_notes     VARCHAR NOT NULL,
        simulated        BOOLEAN NOT NULL,
        run_id           VARCHAR NOT NULL,
        ingested_at      TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS quarantine (
        path         VARCHAR NOT NULL,
        file_sha256  VARCHAR,
        reason       VARCHAR NOT NULL,
        error_class  VARCHAR NOT NULL,
        detail       VARCHAR NOT NULL,
        run_id       VARCHAR NOT NULL,
        quarantined_at TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ingest_runs (
        run_id        VARCHAR PRIMARY KEY,
        root          VARCHAR NOT NULL,
        manifest      VARCHAR,
        subject_tag   VARCHAR,
        started_at    TIMESTAMPTZ NOT NULL,
        finished_at   TIMESTAMPTZ NOT NULL,
        files_seen    INTEGER NOT NULL,
        accepted      INTEGER NOT NULL,
        duplicate     INTEGER NOT NULL,
        quarantined   INTEGER NOT NULL,
        config_json   VARCHAR NOT NULL
    )
    """,
    # --- what builds made of the sources (issue 7): snapshots, shards, lineage, releases

    """
    CREATE TABLE IF NOT EXISTS consent_snapshots (
        snapshot_id    VARCHAR PRIMARY KEY,
        purpose        VARCHAR NOT NULL,
        head_seq       BIGINT NOT NULL,
        head_hash      VARCHAR NOT NULL,
        taken_at       TIMESTAMPTZ NOT NULL,
        run_id         VARCHAR
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS eligible_records (
        snapshot_id  VARCHAR NOT NULL,
        record_id    VARCHAR NOT NULL,
        subject_id   VARCHAR NOT NULL,
        label        INTEGER NOT NULL,
        shard        INTEGER NOT NULL,
        role         VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS exclusions (
        snapshot_id  VARCHAR NOT NULL,
        record_id    VARCHAR NOT NULL,
        subject_id   VARCHAR NOT NULL,
        reason       VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS shard_models (
        model_version  VARCHAR PRIMARY KEY,
        shard          INTEGER NOT NULL,
        snapshot_id    VARCHAR NOT NULL,
        fingerprint    VARCHAR NOT NULL,
        n_records      INTEGER NOT NULL,
        model_path     VARCHAR NOT NULL,
        epsilon        DOUBLE,
        final_loss     DOUBLE,
        trained_at     TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS model_records (
        model_version  VARCHAR NOT NULL,
        record_id      VARCHAR NOT NULL,
        subject_id     VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS candidates (
        candidate_id   VARCHAR NOT NULL,
        snapshot_id    VARCHAR NOT NULL,
        shard          INTEGER NOT NULL,
        model_version  VARCHAR NOT NULL,
        label          INTEGER NOT NULL,
        seed           BIGINT NOT NULL,
        image_path     VARCHAR NOT NULL,
        created_at     TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (snapshot_id, candidate_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS audit_results (
        snapshot_id        VARCHAR NOT NULL,
        candidate_id       VARCHAR NOT NULL,
        round              INTEGER NOT NULL,
        phash_distance     INTEGER NOT NULL,
        pixel_l2           DOUBLE NOT NULL,
        patch_l2           DOUBLE NOT NULL,
        embedding_cosine   DOUBLE NOT NULL,
        nearest_phash      VARCHAR,
        nearest_pixel      VARCHAR,
        nearest_patch      VARCHAR,
        nearest_embedding  VARCHAR,
        flagged            BOOLEAN NOT NULL,
        kept               BOOLEAN NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS releases (
        version        VARCHAR PRIMARY KEY,
        snapshot_id    VARCHAR NOT NULL,
        head_seq       BIGINT NOT NULL,
        head_hash      VARCHAR NOT NULL,
        n_images       INTEGER NOT NULL,
        release_path   VARCHAR NOT NULL,
        created_at     TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS release_images (
        version        VARCHAR NOT NULL,
        image_id       VARCHAR NOT NULL,
        candidate_id   VARCHAR NOT NULL,
        label          INTEGER NOT NULL,
        shard          INTEGER NOT NULL,
        model_version  VARCHAR NOT NULL,
        file_name      VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS withdrawals (
        version        VARCHAR NOT NULL,
        image_id       VARCHAR NOT NULL,
        subject_id     VARCHAR NOT NULL,
        event_seq      BIGINT NOT NULL,
        revoked_recorded_at TIMESTAMPTZ NOT NULL,
        withdrawn_at   TIMESTAMPTZ NOT NULL,
        latency_s      DOUBLE NOT NULL
    )
    """,
]
