"""Ingest reads what each file declares before it strips it: a folder with one file of each
kind, ingested through `pipelines.steps.ingest.ingest` and through `consentgen ingest`.

The files are real: Pillow images with XMP packets, manifests signed by c2pa-python with
a certificate made here, DICOM by pydicom. Accepted sources must come out re-encoded,
with no metadata of the file left.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.catalog import Catalog
from pipelines.cli import app
from pipelines.steps.ingest import IngestConfig, ingest
from tests import files as f
from tests import provenance_files as pf
from tests.c2pa_certs import TRAINED, created, make_credentials, sign_bytes, training_mining
from validation.release.metadata import find_identifying_metadata

runner = CliRunner()

EXPECTED_QUARANTINE = {
    "c2pa_optout.jpg": ("training_opt_out", "ProvenanceOptOut",
                        "c2pa.training-mining: c2pa.ai_training notAllowed"),
    "cawg_optout.png": ("training_opt_out", "ProvenanceOptOut",
                        "cawg.training-mining: cawg.ai_generative_training notAllowed"),
    "tampered_optout.jpg": ("training_opt_out", "ProvenanceOptOut",
                            "cawg.training-mining: cawg.data_mining notAllowed "
                            "(manifest failed validation: assertion.dataHash.mismatch)"),
    "xmp_app1.jpg": ("training_opt_out", "ProvenanceOptOut",
                     "XMP plus:DataMining DMI-PROHIBITED-AIMLTRAINING"),
    "xmp_extended.jpg": ("training_opt_out", "ProvenanceOptOut",
                         "XMP plus:DataMining DMI-PROHIBITED-AIMLTRAINING"),
    "xmp_itxt.png": ("training_opt_out", "ProvenanceOptOut",
                     "XMP plus:DataMining DMI-PROHIBITED-AIMLTRAINING"),
    "synthetic_c2pa.png": ("synthetic_input", "SyntheticInput",
                           "c2pa.actions.v2: c2pa.created digitalSourceType "
                           "trainedAlgorithmicMedia"),
    "synthetic_xmp.jpg": ("synthetic_input", "SyntheticInput",
                          "XMP Iptc4xmpExt:DigitalSourceType compositeWithTrainedAlgorithmicMedia"),
    "burned.dcm": ("burned_in_annotation", "BurnedInAnnotation",
                   "DICOM BurnedInAnnotation (0028,0301) is YES: text in the pixels"),
    "laughs.jpg": ("provenance_unreadable", "ProvenanceUnreadable",
                   "XMP unreadable: JPEG APP1: refused (DTDForbidden)"),
}
UNREADABLE_PREFIX = {  # details that quote the SDK or a byte count: checked by their start
    "garbage_cabx.png": "C2PA store unreadable: C2paVerify: ",
    "truncated_extended.jpg": "XMP unreadable: extended XMP ",
    "huge_itxt.png": "XMP unreadable: PNG iTXt: ",
}
EXPECTED_NOTES = {
    "plain.png": None,
    "plain.jpg": None,
    "allowed.jpg": "cawg.training-mining: cawg.ai_training allowed (the ledger still decides)",
    "inference.png": "c2pa.training-mining: c2pa.ai_inference notAllowed (not training)",
    "tampered_plain.jpg": "C2PA manifest failed validation: assertion.dataHash.mismatch",
    "not_burned.dcm": None,
}
BY_REASON = {"training_opt_out": 6, "synthetic_input": 2, "burned_in_annotation": 1,
             "provenance_unreadable": 4}


def write_folder(tmp_path: Path) -> tuple[Path, Path]:
    """One file of each kind, each with its own pixels, and a manifest naming them all."""
    creds = make_credentials("ingest")
    root = tmp_path / "in"
    root.mkdir()
    prohibited = pf.xmp_packet(data_mining=pf.PROHIBITED)
    junk = b"\x00\x00\x00\x28jumb\x00\x00\x00\x20jumdc2pa" + b"\x00" * 24
    makers = {
        "plain.png": lambda s: pf.png(s),
        "plain.jpg": lambda s: pf.jpeg(s),
        "c2pa_optout.jpg": lambda s: sign_bytes(
            pf.jpeg(s), "image/jpeg", [created(), training_mining("c2pa", "notAllowed")], creds),
        "cawg_optout.png": lambda s: sign_bytes(
            pf.png(s), "image/png",
            [created(), training_mining("cawg", "notAllowed", "ai_generative_training")], creds),
        "allowed.jpg": lambda s: sign_bytes(
            pf.jpeg(s), "image/jpeg", [created(), training_mining("cawg", "allowed")], creds),
        "inference.png": lambda s: sign_bytes(
            pf.png(s), "image/png",
            [created(), training_mining("c2pa", "notAllowed", "ai_inference")], creds),
        "tampered_optout.jpg": lambda s: pf.tamper(sign_bytes(
            pf.jpeg(s), "image/jpeg",
            [created(), training_mining("cawg", "notAllowed", "data_mining")], creds)),
        "tampered_plain.jpg": lambda s: pf.tamper(sign_bytes(
            pf.jpeg(s), "image/jpeg", [created()], creds)),
        "xmp_app1.jpg": lambda s: pf.jpeg_with_xmp(prohibited, s),
        "xmp_extended.jpg": lambda s: pf.jpeg_with_extended_xmp(
            pf.xmp_packet(data_mining=pf.PROHIBITED, padding=150_000), seed=s),
        "xmp_itxt.png": lambda s: pf.png_with_xmp(prohibited, compressed=True, seed=s),
        "synthetic_c2pa.png": lambda s: sign_bytes(pf.png(s), "image/png", [created(TRAINED)], creds),
        "synthetic_xmp.jpg": lambda s: pf.jpeg_with_xmp(
            pf.xmp_packet(source_type="compositeWithTrainedAlgorithmicMedia"), s),
        "burned.dcm": lambda s: pf.dicom_burned_in("YES", patient_id=f"P{s}"),
        "not_burned.dcm": lambda s: pf.dicom_burned_in("NO", patient_id=f"P{s}"),
        "laughs.jpg": lambda s: pf.jpeg_with_xmp(pf.billion_laughs(), s),
        "garbage_cabx.png": lambda s: pf.png_with_chunk(pf.png(s), b"caBX", junk),
        "truncated_extended.jpg": lambda s: pf.jpeg_with_extended_xmp(
            pf.xmp_packet(padding=150_000), drop=0, seed=s),
        "huge_itxt.png": lambda s: pf.png_with_xmp(
            pf.xmp_packet(padding=5 << 20), compressed=False, seed=s),
    }
    rows = []
    for seed, (name, make) in enumerate(makers.items()):
        (root / name).write_bytes(make(seed))
        rows.append({"path": name, "subject_id": f"s{seed:02d}", "label": seed % 2})
    return root, f.write_manifest(tmp_path / "m.csv", rows)


def check_catalog(home: Path, *, burned_accepted: bool = False) -> None:
    catalog = Catalog(home)
    rows = {Path(q.path).name: q for q in catalog.quarantined()}
    expected = dict(EXPECTED_QUARANTINE)
    if burned_accepted:
        expected.pop("burned.dcm")
    assert set(rows) == set(expected) | set(UNREADABLE_PREFIX)
    for name, (reason, error_class, detail) in expected.items():
        assert (rows[name].reason, rows[name].error_class, rows[name].detail) == \
            (reason, error_class, detail), name
        assert rows[name].file_sha256 is not None
    for name, prefix in UNREADABLE_PREFIX.items():
        assert rows[name].reason == "provenance_unreadable", name
        assert rows[name].detail.startswith(prefix), (name, rows[name].detail)
    sources = {Path(s.source_path).name: s for s in catalog.sources()}
    notes = dict(EXPECTED_NOTES)
    if burned_accepted:
        notes["burned.dcm"] = "DICOM BurnedInAnnotation YES accepted (burned_in_annotation = accept)"
    assert set(sources) == set(notes)
    for name, note in notes.items():
        if note is not None:
            assert note in sources[name].decode_notes, name
        stored = home / sources[name].image_path
        assert stored.suffix == ".png" and find_identifying_metadata(stored) == [], name
    assert "provenance" not in sources["plain.png"].decode_notes.lower()


def test_ingest_quarantines_each_declaration_with_its_reason(tmp_path: Path, home: Path) -> None:
    root, manifest = write_folder(tmp_path)
    summary = ingest(root, manifest=manifest, home=home)
    assert summary.quarantined_by_reason == dict(sorted(BY_REASON.items()))
    assert (summary.accepted, summary.quarantined) == (len(EXPECTED_NOTES), sum(BY_REASON.values()))
    check_catalog(home)
    again = ingest(root, manifest=manifest, home=home)  # the same rejections, not new rows
    assert again.quarantined_by_reason == summary.quarantined_by_reason
    assert len(Catalog(home).quarantined()) == sum(BY_REASON.values())


def test_burned_in_annotation_can_be_accepted_with_a_note(tmp_path: Path, home: Path) -> None:
    root, manifest = write_folder(tmp_path)
    summary = ingest(root, manifest=manifest, home=home,
                     config=IngestConfig(burned_in_annotation="accept"))
    assert "burned_in_annotation" not in summary.quarantined_by_reason
    check_catalog(home, burned_accepted=True)


def test_reading_can_be_turned_off_for_the_bench_only(tmp_path: Path, home: Path) -> None:
    root, manifest = write_folder(tmp_path)
    summary = ingest(root, manifest=manifest, home=home, config=IngestConfig(read_provenance=False))
    assert summary.quarantined_by_reason == {}  # which is why no command sets it
    (run,) = Catalog(home).runs()
    assert '"read_provenance": false' in run.config_json


def summary_lines(output: str) -> set[str]:
    return {" ".join(line.split()) for line in output.splitlines()}


@pytest.fixture
def initialised(home: Path) -> Path:
    assert runner.invoke(app, ["init"]).exit_code == 0
    return home


def test_the_cli_prints_the_reasons_as_written(tmp_path: Path, initialised: Path) -> None:
    root, manifest = write_folder(tmp_path)
    result = runner.invoke(app, ["ingest", str(root), "--manifest", str(manifest),
                                 "--size", "64", "--channels", "1"])
    assert result.exit_code == 0, result.output
    lines = summary_lines(result.stdout)
    assert {f"{reason} {count}" for reason, count in BY_REASON.items()} <= lines
    assert f"accepted {len(EXPECTED_NOTES)}" in lines
    check_catalog(initialised)


def test_the_cli_option_accepts_burned_in_annotation(tmp_path: Path, initialised: Path) -> None:
    root, manifest = write_folder(tmp_path)
    result = runner.invoke(app, ["ingest", str(root), "--manifest", str(manifest),
                                 "--burned-in-annotation", "accept"])
    assert result.exit_code == 0, result.output
    assert "burned_in_annotation" not in result.stdout
    check_catalog(initialised, burned_accepted=True)
    bad = runner.invoke(app, ["ingest", str(root), "--manifest", str(manifest),
                              "--burned-in-annotation", "maybe"])
    assert bad.exit_code == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: --burned-in-annotation: ")
    assert len(bad.stderr.strip().splitlines()) == 1
    shown = runner.invoke(app, ["ingest", "--help"]).stdout.replace("\u2502", " ")  # box sides
    help_text = " ".join(shown.split())
    assert "BurnedInAnnotation = YES" in help_text
