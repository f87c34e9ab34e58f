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
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._results import write_result
from pipelines.demo.sources import br35h_root, demo_slices, write_demo_manifest
from pipelines.steps.ingest import ingest

SIZE = (64, 64)


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
    }
    path = write_result("ingest", figures)
    for key, value in figures.items():
        print(f"{key:>28}: {value}")
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
