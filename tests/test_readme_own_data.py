"""README "Your own data": its five commands, run exactly as written, through the console
script, on a PNG folder with class-name labels and on a DICOM folder with subjects from
PatientID and no labels."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from PIL import Image, ImageDraw

from tests.files import dicom

README = Path(__file__).resolve().parents[1] / "README.md"
SHAPES = ("circle", "square", "triangle")
N_SUBJECTS = 12

pytestmark = pytest.mark.xdist_group("readme")  # two tiny builds: keep them on one worker


def section() -> str:
    text = README.read_text()
    start = text.index("## Your own data")
    return text[start:text.index("\n## ", start + 1)]


def commands() -> list[str]:
    """The first bash block of the section, one command a line, comments dropped."""
    block = re.search(r"```bash\n(.*?)```", section(), re.S)
    assert block, "no bash block in README 'Your own data'"
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def quick_build_file() -> str:
    """The README's own example build file (the toml block of the section)."""
    block = re.search(r"```toml\n(.*?)```", section(), re.S)
    assert block, "no toml block in README 'Your own data'"
    return "\n".join(line.strip() for line in block.group(1).splitlines()) + "\n"


def dicom_ingest_command() -> str:
    found = re.search(r"`(consentgen ingest my-dicoms [^`]*)`", section())
    assert found, "README names no DICOM ingest command"
    return found.group(1)


def shape_image(shape: str, rng: np.random.Generator) -> Image.Image:
    im = Image.new("L", (48, 48), int(rng.integers(0, 40)))
    draw = ImageDraw.Draw(im)
    x, y = (int(v) for v in rng.integers(6, 20, size=2))
    r = int(rng.integers(10, 20))
    fill = int(rng.integers(150, 255))
    if shape == "circle":
        draw.ellipse((x, y, x + r, y + r), fill=fill)
    elif shape == "square":
        draw.rectangle((x, y, x + r, y + r), fill=fill)
    else:
        draw.polygon([(x, y + r), (x + r, y + r), (x + r // 2, y)], fill=fill)
    return im


def consent_csv(path: Path, subjects: list[str]) -> None:
    """Every subject but the last grants; the last never answered (no record: no consent)."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["subject_id", "purpose", "action", "effective_at"])
        for s in subjects[:-1]:
            writer.writerow([s, "synthetic-training", "grant", "2026-01-05T09:00:00Z"])


def run_readme(cwd: Path, ingest_line: str | None = None) -> list[subprocess.CompletedProcess[str]]:
    """The README's commands in `cwd`, the build file written between `init` and the rest
    (the README asks for the edit there); returns each command's result."""
    lines = commands()
    assert lines[0].startswith("export CONSENTGEN_HOME=")
    steps = lines[1:]
    assert [s.split()[1] for s in steps] == ["init", "ingest", "consent", "build", "release"]
    if ingest_line is not None:
        steps[1] = ingest_line
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("CONSENTGEN_HOME", None)
    results = []
    for step in steps:
        done = subprocess.run(["bash", "-c", f"set -euo pipefail; {lines[0]}; {step}"], cwd=cwd,
                              env=env, capture_output=True, text=True, timeout=900)
        results.append(done)
        assert done.returncode == 0, (step, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (step, done.stderr)
        if step.split()[1] == "init":
            (cwd / "my-home" / "consentgen.toml").write_text(quick_build_file())
    return results


def published(cwd: Path, results: list[subprocess.CompletedProcess[str]]) -> Path:
    release = Path(results[-1].stdout.split(":", 1)[1].split()[0])
    assert release.is_dir() and release.parent == cwd / "my-home" / "releases"
    assert str(release / "data_card.html") in results[3].stdout  # build says where the card is
    assert (release / "data_card.html").is_file()
    pages = list(release.rglob("*.html"))
    assert len(pages) >= 3  # the card and one validation page per suite
    for page in pages:  # offline, as hospital networks are: nothing the page loads is remote
        text = page.read_text()
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text, re.I), page
        assert not re.search(r"""@import|url\(\s*["']?(?:https?:)?//""", text, re.I), page
    return release


def test_readme_png_folder_with_class_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = tmp_path / "my-images"
    images.mkdir()
    subjects = [f"s{i:03d}" for i in range(N_SUBJECTS)]
    with (tmp_path / "my-images.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "subject_id", "label"])
        for s in subjects:
            for shape in SHAPES:
                shape_image(shape, rng).save(images / f"{s}_{shape}.png")
                writer.writerow([f"{s}_{shape}.png", s, shape])
    consent_csv(tmp_path / "my-consent.csv", subjects)

    results = run_readme(tmp_path)
    release = published(tmp_path, results)
    folders = sorted(p.name for p in (release / "images").iterdir())
    assert folders == sorted(SHAPES)
    manifest = pq.read_table(release / "manifest.parquet").to_pydict()
    assert set(manifest["label_name"]) == set(SHAPES)
    for name, file_name in zip(manifest["label_name"], manifest["file_name"], strict=True):
        assert file_name.startswith(f"images/{name}/") and (release / file_name).is_file()


def test_readme_dicom_folder_with_patient_ids_and_no_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "my-dicoms"
    folder.mkdir()
    subjects = [f"PAT-{i:04d}" for i in range(N_SUBJECTS)]
    yy, xx = np.mgrid[0:40, 0:40]
    for n, patient in enumerate(subjects):
        for k in range(2):
            cy, cx = rng.uniform(10, 30, size=2)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(20, 90))
            pixels = (blob * 3000 + rng.uniform(0, 200, blob.shape)).astype(np.uint16)
            ds = pydicom.dcmread(io.BytesIO(dicom(pixels)))
            ds.PatientID = patient
            ds.save_as(folder / f"{n:02d}_{k}.dcm", enforce_file_format=True)
    consent_csv(tmp_path / "my-consent.csv", subjects)

    results = run_readme(tmp_path, ingest_line=dicom_ingest_command())
    release = published(tmp_path, results)
    assert [p.name for p in (release / "images").iterdir()] == ["unlabelled"]
    manifest = pq.read_table(release / "manifest.parquet").to_pydict()
    assert set(manifest["label_name"]) == {"unlabelled"}
    text = "".join(p.read_text(errors="replace") for p in release.rglob("*")
                   if p.is_file() and p.suffix in {".csv", ".md", ".html", ".json"})
    assert not any(s in text for s in subjects)  # nothing identifying ships
