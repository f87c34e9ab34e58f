"""`consentgen ingest` through the real command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from consentgen.errors import ConfigError
from pipelines.catalog import Catalog
from pipelines.cli import app
from pipelines.steps.ingest import ingest as run_ingest
from tests import files as f

runner = CliRunner()


@pytest.fixture(autouse=True)
def initialised(home: Path) -> None:
    """Only `consentgen init` creates a home: every test here ingests into one."""
    assert runner.invoke(app, ["init"]).exit_code == 0


def make_folder(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(f.encode(f.pattern(), "PNG"))
    (folder / "b.jpg").write_bytes(f.encode(f.pattern(), "JPEG"))
    (folder / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    manifest = f.write_manifest(
        tmp_path / "m.csv",
        [
            {"path": n, "subject_id": f"s{i}", "label": i % 2}
            for i, n in enumerate(["a.png", "b.jpg", "c.png"])
        ],
    )
    return folder, manifest


def test_ingest_prints_the_summary(tmp_path: Path, home: Path) -> None:
    folder, manifest = make_folder(tmp_path)
    result = runner.invoke(app, ["ingest", str(folder), "--manifest", str(manifest)])
    assert result.exit_code == 0, result.output
    lines = {" ".join(line.split()) for line in result.stdout.splitlines()}
    assert {"accepted 2", "quarantined 1", "corrupt_image 1", "duplicate (already in) 0"} <= lines
    assert len(Catalog(home).sources()) == 2  # CONSENTGEN_HOME from the fixture
    again = runner.invoke(
        app, ["ingest", str(folder), "--manifest", str(manifest), "--home", str(home)]
    )
    assert "duplicate (already in) 2" in {
        " ".join(line.split()) for line in again.stdout.splitlines()
    }


def test_subject_from_tag_option(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "dicom"
    folder.mkdir()
    (folder / "x.dcm").write_bytes(f.dicom(np.arange(16).reshape(4, 4)))
    result = runner.invoke(app, ["ingest", str(folder), "--subject-from-tag", "PatientID"])
    assert result.exit_code == 0, result.output
    assert [r.subject_id for r in Catalog(home).sources()] == ["PAT-0001"]


def test_errors_are_one_line_on_stderr(tmp_path: Path, home: Path) -> None:
    folder, _ = make_folder(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("path,subject_id\na.png,s1\nb.jpg,\n", encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(folder), "--manifest", str(bad)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error:") and "line 3: empty subject_id" in result.stderr
    size = runner.invoke(app, ["ingest", str(folder), "--manifest", str(bad), "--size", "big"])
    assert size.exit_code == 1 and size.stderr.startswith("error: --size")


def test_installed_console_script(tmp_path: Path, home: Path) -> None:
    folder, manifest = make_folder(tmp_path)
    script = Path(sys.executable).parent / "consentgen"
    done = subprocess.run(
        [str(script), "ingest", str(folder), "--manifest", str(manifest), "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "accepted" in done.stdout
    failed = subprocess.run(
        [str(script), "ingest", str(folder), "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert failed.returncode == 1
    assert failed.stderr.strip().count("\n") == 0 and "--manifest" in failed.stderr


def _mr_slice(path: Path, subject: str, body_part: str | list[str] | None) -> None:
    """pydicom-data's MR slice under another PatientID, with or without BodyPartExamined."""
    ds = pydicom.dcmread(f.testdata("MR_small.dcm"))
    ds.PatientID = subject
    if body_part is not None:
        ds.BodyPartExamined = body_part
    elif "BodyPartExamined" in ds:
        del ds.BodyPartExamined
    ds.save_as(path)


def test_label_from_tag_option(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "dicom"
    folder.mkdir()
    _mr_slice(folder / "head.dcm", "p1", "HEAD")
    _mr_slice(folder / "untagged.dcm", "p2", None)
    _mr_slice(folder / "two.dcm", "p3", ["HEAD", "NECK"])  # read as HEAD\\NECK: no folder name
    result = runner.invoke(app, ["ingest", str(folder), "--subject-from-tag", "PatientID",
                                 "--label-from-tag", "BodyPartExamined"])
    assert result.exit_code == 0, result.output
    catalog = Catalog(home)
    # a file without the tag is a source without a label, not a quarantined file
    assert {r.subject_id: r.label for r in catalog.sources()} == {"p1": "HEAD", "p2": None}
    (two,) = catalog.quarantined()
    assert two.reason == "invalid_label" and "HEAD\\\\NECK" in two.detail
    assert catalog.runs()[-1].label_tag == "BodyPartExamined"
    unknown = runner.invoke(app, ["ingest", str(folder), "--subject-from-tag", "PatientID",
                                  "--label-from-tag", "BodyPartExamind"])
    assert unknown.exit_code == 1 and "unknown DICOM tag 'BodyPartExamind'" in unknown.stderr


def test_sources_are_stored_at_the_build_files_size_by_default(tmp_path: Path, home: Path) -> None:
    folder, manifest = make_folder(tmp_path)
    text = (home / "consentgen.toml").read_text(encoding="utf-8")
    assert "image_size = 32" in text  # the default build asks for less than 64: 64 it is
    first = runner.invoke(app, ["ingest", str(folder / "a.png"), "--manifest", str(manifest)])
    assert first.exit_code == 0, first.output
    assert Catalog(home).source_shapes() == {(64, 64, 1)}

    other = tmp_path / "other-home"  # a home holds sources of one size
    assert runner.invoke(app, ["init", "--home", str(other)]).exit_code == 0
    (other / "consentgen.toml").write_text(text.replace("# image_size = 32", "image_size = 128"),
                                           encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(folder / "a.png"), "--manifest", str(manifest),
                                 "--home", str(other)])
    assert result.exit_code == 0, result.output
    assert Catalog(other).source_shapes() == {(128, 128, 1)}


@pytest.mark.parametrize("tag", ["PatientName", "PatientBirthDate", "AccessionNumber", "StudyDate",
                                 "InstitutionName", "ReferringPhysicianName", "StudyDescription",
                                 "0010,0020", "0029,1010"])
def test_an_identifying_label_tag_is_refused_before_anything_is_read(
        tmp_path: Path, home: Path, tag: str) -> None:
    """Labels are published as class folders: an identifying attribute (PS3.15 Annex E) or a
    private tag is refused in one line, before the folder (here: none) is even looked at."""
    result = runner.invoke(app, ["ingest", str(tmp_path / "no-such-folder"), "--subject-from-tag",
                                 "PatientID", "--label-from-tag", tag])
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    shown = {"0010,0020": "PatientID", "0029,1010": "(0029,1010)"}.get(tag, tag)
    assert line.startswith(f"error: --label-from-tag {shown}: ")
    assert "no such file" not in line
    assert line.endswith("such as BodyPartExamined, Modality, ViewPosition or Laterality")
    assert Catalog(home).runs() == []


def test_the_step_refuses_an_identifying_label_tag_too(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "dicom"
    folder.mkdir()
    _mr_slice(folder / "head.dcm", "p1", "HEAD")
    with pytest.raises(ConfigError, match=r"^--label-from-tag PatientName: an identifying"):
        run_ingest(folder, subject_from_tag="PatientID", label_from_tag="PatientName", home=home)
    assert Catalog(home).sources() == [] and Catalog(home).runs() == []


def test_a_home_with_sources_ingests_more_at_their_shape(tmp_path: Path, home: Path) -> None:
    """After generator.image_size is edited, a routine ingest without --size still fits the
    home (one shape per home), and says what the build will need."""
    folder, manifest = make_folder(tmp_path)
    first = runner.invoke(app, ["ingest", str(folder / "a.png"), "--manifest", str(manifest),
                                "--size", "48", "--channels", "3"])
    assert first.exit_code == 0, first.output
    build_file = home / "consentgen.toml"
    text = build_file.read_text(encoding="utf-8")
    build_file.write_text(text.replace("# image_size = 32", "image_size = 128"), encoding="utf-8")

    more = runner.invoke(app, ["ingest", str(folder / "b.jpg"), "--manifest", str(manifest)])
    assert more.exit_code == 0, more.output
    assert Catalog(home).source_shapes() == {(48, 48, 3)} and len(Catalog(home).sources()) == 2
    assert " ".join(more.stderr.split()) == (
        "note: this home's sources are stored at 48x48 px, so these are too; "
        "generator.image_size = 128 is larger: set generator.image_size <= 48, or ingest into a "
        "new home with `consentgen ingest DIR --size 128`")

    asked = runner.invoke(app, ["ingest", str(folder / "b.jpg"), "--manifest", str(manifest),
                                "--size", "128"])  # an explicit other size is still refused
    assert asked.exit_code == 1 and "holds sources of shape 48x48x3" in asked.stderr
    grey = runner.invoke(app, ["ingest", str(folder / "b.jpg"), "--manifest", str(manifest),
                               "--channels", "1"])
    assert grey.exit_code == 1 and "48x48x1" in grey.stderr

    build_file.write_text(text.replace("# image_size = 32", "image_size = 40"), encoding="utf-8")
    quiet = runner.invoke(app, ["ingest", str(folder / "b.jpg"), "--manifest", str(manifest)])
    assert quiet.exit_code == 0 and "note:" not in quiet.stderr  # 40 <= 48: nothing to say
