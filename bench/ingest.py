"""Ingest throughput on the 3,000 Br35H demo images, next to a bare Pillow loop.

    .venv/bin/python bench/ingest.py            # from the repository root

Figures (one JSON line appended to bench/results/ingest.jsonl):
- `bare_images_per_s`: Image.open -> convert("L") -> resize 64x64 (Lanczos) -> save PNG,
  the least any ingest has to do, with no checks, hashing or catalog.
- `bare_draft_images_per_s`: the same with JPEG DCT-domain downscaling (`draft`), which
  ingest also uses, so the two ratios separate "our overhead" from "our decoding trick".
- `ingest_images_per_s`: `pipelines.steps.ingest.ingest` of the demo manifest into a fresh
  home (decode checks, normalise, content hash, PNG write, catalog rows).
- `reingest_images_per_s`: the same ingest again: every file a duplicate (no-op).
- `ratio_ingest_vs_bare`, `ratio_ingest_vs_bare_draft`: ingest rate over the bare rates.

What reading provenance costs (C2PA, XMP, BurnedInAnnotation; `validation.sources.provenance`),
as ingest throughput with it over throughput without it (`IngestConfig.read_provenance =
False`, a switch that exists for this bench only), each run into a fresh home, the two
alternated and the best of `REPEATS` (`DECLARED_REPEATS`) kept:
- `plain_*`: the demo images, which declare nothing: the cost of the byte searches.
- `declared_*`: `DECLARED` demo images re-saved (JPEG, and PNG every third one) with an
  XMP packet (DataMining allowed, digitalCapture) and a signed C2PA manifest (created,
  CAWG training-mining allowed): every file is accepted either way, so the difference is
  the SDK call (which hashes the whole file and checks the signature) and the XMP parse.
- `read_provenance_{plain,declared}_us`: the function alone, mean microseconds a file, and
  `_share`: that over the whole per-file ingest cost (steadier than the ratios on a busy
  machine, where runs of the same ingest differ by 20 %).

What our provenance adds to each published image (`bench/provenance.py`, which has the
per-size table): `published_added_bytes_{16,32,64}px`, the stamped file (XMP + signed C2PA
manifest, and the watermark from 64 px) over the plain PNG of the same pixels, mean bytes
per image on demo slices, and `published_stamped_vs_plain_size_*` as a ratio.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, PngImagePlugin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._results import write_result
from bench.provenance import measure
from pipelines.demo.sources import br35h_root, demo_slices, write_demo_manifest
from pipelines.steps.ingest import IngestConfig, ingest
from tests.c2pa_certs import CAPTURE, created, make_credentials, sign_bytes, training_mining
from tests.provenance_files import ALLOWED, xmp_packet
from validation.sources.provenance import read_provenance

SIZE = (64, 64)
DECLARED = 600
REPEATS = 3
DECLARED_REPEATS = 7
"""Runs of the small declared set are short, so more of them: a busy machine makes the
same ingest vary by 20 % and more."""


def bare_loop(paths: list[Path], out: Path, *, draft: bool) -> float:
    """Seconds for the minimal open/resize/save loop over `paths`."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            if draft:
                im.draft("L", (2 * SIZE[0], 2 * SIZE[1]))
            im.convert("L").resize(SIZE, Image.Resampling.LANCZOS).save(out / f"{i}.png")
    return time.perf_counter() - t0


def declared_set(paths: list[Path], out: Path) -> tuple[Path, Path]:
    """`paths` re-saved with an XMP packet and a signed manifest, and their manifest CSV."""
    out.mkdir(parents=True)
    creds = make_credentials("bench")
    packet = xmp_packet(data_mining=ALLOWED, source_type=CAPTURE)
    assertions = [created(CAPTURE), training_mining("cawg", "allowed")]
    rows = ["path,subject_id"]
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            buf = io.BytesIO()
            if i % 3 == 2:
                info = PngImagePlugin.PngInfo()
                info.add_itxt("XML:com.adobe.xmp", packet.decode(), zip=True)
                im.convert("RGB").save(buf, format="PNG", pnginfo=info)
                name, mime = f"{i:04d}.png", "image/png"
            else:
                im.convert("RGB").save(buf, format="JPEG", quality=90, xmp=packet)
                name, mime = f"{i:04d}.jpg", "image/jpeg"
        (out / name).write_bytes(sign_bytes(buf.getvalue(), mime, assertions, creds))
        rows.append(f"{name},bench-{i:04d}")
    manifest = out.parent / f"{out.name}.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out, manifest


def with_and_without(root: Path, manifest: Path, work: Path, n: int,
                     repeats: int = REPEATS) -> dict[str, float]:
    """Ingest throughput with and without provenance reading (best of `repeats`, alternated)."""
    best = {True: float("inf"), False: float("inf")}
    outcome: dict[bool, tuple[int, int]] = {}
    for rep in range(repeats):
        for reading in (True, False) if rep % 2 == 0 else (False, True):  # no order bias
            t0 = time.perf_counter()
            done = ingest(root, manifest=manifest, home=work / f"home-{reading}-{rep}",
                          config=IngestConfig(read_provenance=reading))
            best[reading] = min(best[reading], time.perf_counter() - t0)
            outcome[reading] = (done.accepted, done.quarantined)
    assert outcome[True] == outcome[False] == (n, 0), outcome  # the same work either way
    return {"with_images_per_s": round(n / best[True], 1),
            "without_images_per_s": round(n / best[False], 1),
            "ratio_with_vs_without": round(best[False] / best[True], 3)}


def function_alone(paths: list[Path]) -> float:
    """Mean microseconds of `read_provenance` over the files' bytes (read beforehand)."""
    blobs = [p.read_bytes() for p in paths]
    fmts = ["PNG" if b.startswith(b"\x89PNG") else "JPEG" for b in blobs]
    t0 = time.perf_counter()
    for data, fmt in zip(blobs, fmts, strict=True):
        read_provenance(data, fmt)
    return round((time.perf_counter() - t0) / len(blobs) * 1e6, 1)


def provenance_figures(paths: list[Path], manifest: Path, work: Path) -> dict[str, object]:
    figures: dict[str, object] = {}
    plain = with_and_without(br35h_root(), manifest, work / "plain", len(paths))
    figures |= {f"plain_{k}": v for k, v in plain.items()}
    root, declared_csv = declared_set(paths[:DECLARED], work / "declared")
    declared = with_and_without(root, declared_csv, work / "declared-homes", DECLARED,
                                DECLARED_REPEATS)
    figures |= {"declared_images": DECLARED} | {f"declared_{k}": v for k, v in declared.items()}
    for kind, files in (("plain", paths), ("declared", sorted(root.iterdir()))):
        alone = function_alone(files)
        per_file_us = 1e6 / float(figures[f"{kind}_with_images_per_s"])  # type: ignore[arg-type]
        figures[f"read_provenance_{kind}_us"] = alone
        figures[f"read_provenance_{kind}_share"] = round(alone / per_file_us, 3)
    return figures


def main() -> None:
    paths = [s.path for s in demo_slices()]
    n = len(paths)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        tmp_path = Path(tmp)
        manifest = write_demo_manifest(tmp_path / "demo.csv")
        bare_loop(paths[:50], tmp_path / "warm", draft=False)  # page cache and imports warm
        bare_s = bare_loop(paths, tmp_path / "bare", draft=False)
        draft_s = bare_loop(paths, tmp_path / "bare_draft", draft=True)
        t0 = time.perf_counter()
        first = ingest(br35h_root(), manifest=manifest, home=tmp_path / "home")
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = ingest(br35h_root(), manifest=manifest, home=tmp_path / "home")
        reingest_s = time.perf_counter() - t0
        provenance = provenance_figures(paths, manifest, tmp_path)
        for size in (16, 32, 64):  # the test preset's, the demo's and the first marked size
            row = measure(tmp_path, paths[:60], size, "L")
            provenance[f"published_added_bytes_{size}px"] = row["added_bytes_per_image"]
            provenance[f"published_stamped_vs_plain_size_{size}px"] = row["stamped_vs_plain_size"]
    figures = {
        "images": n,
        "accepted": first.accepted,
        "quarantined": first.quarantined,
        "reingest_duplicates": again.duplicate,
        "bare_images_per_s": round(n / bare_s, 1),
        "bare_draft_images_per_s": round(n / draft_s, 1),
        "ingest_images_per_s": round(n / ingest_s, 1),
        "reingest_images_per_s": round(n / reingest_s, 1),
        "ratio_ingest_vs_bare": round(bare_s / ingest_s, 3),
        "ratio_ingest_vs_bare_draft": round(draft_s / ingest_s, 3),
        **provenance,
    }
    path = write_result("ingest", figures)
    for key, value in figures.items():
        print(f"{key:>28}: {value}")
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
