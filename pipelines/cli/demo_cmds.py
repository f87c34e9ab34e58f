"""`consentgen demo`: the whole story on built-in data, with simulated subjects and consent."""

from __future__ import annotations

import tempfile
from pathlib import Path

from consent import Ledger
from pipelines.catalog import Catalog
from pipelines.cli.common import HomeOption, console, resolve_home
from pipelines.demo import DEMO_PURPOSE, SIMULATION_NOTICE, simulate_consent
from pipelines.demo_sources import br35h_root, demo_subject_ids, write_demo_manifest
from pipelines.ingest import ingest


def demo(home: HomeOption = None) -> None:
    """Ingest Br35H with simulated subjects, simulate their consent, and report."""
    root = resolve_home(home)
    console.print(f"[bold yellow]{SIMULATION_NOTICE}[/]")
    ledger = Ledger.at_home(root)
    ledger.init()
    Catalog(root).ensure_schema()

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
    eligible = ledger.eligible(DEMO_PURPOSE)
    console.print(f"ledger verified: head {head.seq} {head.hash[:16]}…; "
                  f"{len(eligible)} subjects eligible for {DEMO_PURPOSE} now")

    console.rule("2. sources (Br35H, simulated subjects)")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_demo_manifest(Path(tmp) / "br35h-manifest.csv")
        summary = ingest(br35h_root(), manifest=manifest, home=root, progress=True)
    console.print(
        f"accepted {summary.accepted}, duplicate {summary.duplicate}, "
        f"quarantined {summary.quarantined}"
    )
    console.rule("done")
    console.print(f"data home: {root}")
    console.print(f"ledger:    {ledger.path}")
    console.print(f"catalog:   {Catalog(root).path}")
