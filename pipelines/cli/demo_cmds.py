"""`consentgen demo`: the whole story on built-in data, with simulated subjects and consent.

Ingest Br35H with simulated subjects and a simulated ledger, build and publish v0001,
revoke a few subjects whose images trained one shard's model, reconcile (their images
withdrawn at once, as `consentgen consent revoke` does), let the revocation sensor ask for
a rebuild of only that shard into v0002, and say where the data card is.

The demo home's consentgen.toml is written first (`pipelines.demo.config`: class names
no_tumour / tumour, a [dataset] table saying the subjects and consent are simulated and
Br35H's licence is undocumented, not for publication) and the build reads it back, as
any build does: edit it and run the demo again to see the effect.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from consentgen.errors import ConsentgenError
from pipelines.catalog import Catalog, ModelRecord, ReleaseImage, ShardModel
from pipelines.cli.common import HomeOption, console, create_home, home_ledger
from pipelines.demo.consent import DEMO_PURPOSE, SIMULATION_NOTICE, simulate_consent

REVOKE_COUNT = 3


def demo(home: HomeOption = None) -> None:
    """Run the demo end to end on Br35H (simulated subjects and consent)."""
    from pipelines.demo.sources import br35h_root, demo_subject_ids, write_demo_manifest
    from pipelines.steps.ingest import ingest
    from pipelines.steps.release import WITHDRAWN, releases_root
    from pipelines.defs.runner import instance_for, run_build, tick_revocation_sensor
    from pipelines.steps.reconcile import reconcile

    from pipelines.buildfile import load_config
    from pipelines.demo.config import demo_config

    started = time.perf_counter()
    made = create_home(home, demo_config())  # the demo makes its own home, as `init` does
    root = made.root
    console.print(f"[bold yellow]{SIMULATION_NOTICE}[/]")
    config = load_config(None, home=root)  # what the home's build file says, as builds read it
    console.print(f"build file: {made.build_file}"
                  + (" (written for the demo)" if made.wrote_build_file else " (kept as it was)"))
    ledger = home_ledger(root)  # through the home's consent service while one runs
    catalog = Catalog(root)

    console.rule("1. consent ledger (simulated)")
    if ledger.head().seq == 0:
        sim = simulate_consent(ledger, demo_subject_ids())
        console.print(
            f"{len(demo_subject_ids())} simulated subjects: {len(sim.granted)} granted, "
            f"{len(sim.never_asked)} never asked, {len(sim.expired)} expired, "
            f"{len(sim.revoked)} revoked, {len(sim.future)} granted from a future date"
        )
    else:
        console.print(f"the ledger already holds {ledger.head().seq} events: simulation skipped")
    head = ledger.verify()
    console.print(f"ledger verified: head {head.seq} {head.hash[:16]}…; "
                  f"{len(ledger.eligible(DEMO_PURPOSE))} subjects eligible for {DEMO_PURPOSE} now")

    console.rule("2. sources (Br35H, simulated subjects)")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_demo_manifest(Path(tmp) / "br35h-manifest.csv")
        summary = ingest(br35h_root(), manifest=manifest, home=root, progress=True)
    console.print(f"accepted {summary.accepted}, already there {summary.duplicate}, "
                  f"quarantined {summary.quarantined}")

    console.rule(f"3. build: {config.shards} SISA shards, {config.generator.preset} DDPM at "
                 f"{config.generator.image_size}px, {config.generator.epochs} epochs")
    instance = instance_for(root)
    first = run_build(root, config, instance=instance, progress=True)
    if not first.success:
        raise ConsentgenError(f"the demo build did not publish: {first.failure}")
    console.print(f"published {first.version}; checks: "
                  + ", ".join(f"{k} {'passed' if v else 'FAILED'}" for k, v in sorted(first.checks.items())))

    console.rule("4. revocation")
    victims, shard = pick_victims(catalog, first.version, REVOKE_COUNT)
    for subject in victims:
        ledger.revoke(subject, DEMO_PURPOSE, actor="demo-simulation", source="simulated-consent-v1")
    console.print(f"revoked {len(victims)} simulated subjects whose images trained shard {shard}: "
                  f"{', '.join(victims)}")
    report = reconcile(catalog, ledger, config)  # what `consentgen consent revoke` runs at once
    console.print(report.line())
    if report.max_latency_s is not None:
        console.print(f"latency from revoke to withdrawal at most {report.max_latency_s:.2f}s; "
                      f"withdrawn ids listed in {releases_root(root) / first.version / WITHDRAWN}")
    tick = tick_revocation_sensor(root, config, instance=instance)
    console.print(f"the revocation sensor (which reconciles on every tick) requested a rebuild "
                  f"of shard(s) {tick.shards} only")

    console.rule("5. rebuild of the affected shard")
    second = run_build(root, config, shards=tick.shards, instance=instance, progress=True)
    if not second.success:
        raise ConsentgenError(f"the demo rebuild did not publish: {second.failure}")
    console.print(f"retrained {second.retrained} of {config.shards} shard models; published {second.version}")

    console.rule(f"6. erasure record of {victims[0]} (what a data protection officer is shown)")
    from pipelines.cli.erasure_cmds import print_record
    from pipelines.steps.erasure_record import erasure_record

    print_record(erasure_record(catalog, ledger, config, victims[0]), most_files=4)
    console.print(f"(`consentgen consent erasure {victims[0]}` prints this; --json for machines)")

    console.rule("done")
    release = releases_root(root) / second.version
    console.print(f"[bold]release:[/]   {release}")
    console.print(f"[bold]data card:[/] {release / 'data_card.html'} (and data_card.md)")
    console.print(f"first release, with its withdrawals: {releases_root(root) / first.version}")
    console.print(f"ledger: {ledger.path}   catalog: {catalog.path}")
    console.print(f"demo took {time.perf_counter() - started:.0f}s; `consentgen ui` shows the runs")


def pick_victims(catalog: Catalog, version: str, count: int) -> tuple[list[str], int]:
    """`count` subjects who trained the model of one shard that made images in `version`."""
    images = catalog.select(ReleaseImage, "WHERE version = ? ORDER BY image_id", [version])
    if not images:
        raise ConsentgenError(f"{version} has no images to revoke")
    model_version = images[0].model_version
    shard = catalog.select(ShardModel, "WHERE model_version = ?", [model_version])[0].shard
    subjects = sorted({r.subject_id for r in catalog.select(
        ModelRecord, "WHERE model_version = ?", [model_version])})
    return sorted(random.Random(0).sample(subjects, min(count, len(subjects)))), shard
