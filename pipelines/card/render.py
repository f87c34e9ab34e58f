"""Writing a release's data card: the view laid out through two templates, and its files.

`pipelines.card.view` formats every figure once into a `CardView`;
``templates/data_card.md.j2`` and ``templates/data_card.html.j2`` only lay that view
out. So the two files cannot drift apart: a value on one is the same text on the other.

The HTML is self-contained (plots and the sample grid embedded as data URIs), so it can
be mailed or archived alone; the Markdown links the same PNGs, written under ``card/``
with the card model itself (``card/card.json``), from which a withdrawal redraws it all.
`card_files` makes every file's bytes without touching the disk, so a caller can put
each in place atomically (`pipelines.steps.release_files`); `render_data_card` writes
them into a folder. Jinja escapes everything in the HTML (a notice or an expectation's
reason is text, not markup) and refuses a name the view does not have
(`StrictUndefined`) instead of printing an empty cell. The templates are package data
(pyproject.toml), found through the package, whatever the working directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from consentgen.errors import ConfigError
from pipelines.card.assessment import AMBER, GREEN, NOT_MEANINGFUL, RED
from pipelines.card.dataset import NOT_STATED
from pipelines.card.formatting import NOT_COMPUTED
from pipelines.card.model import DataCard
from pipelines.card.plots import histogram_png, sample_grid_png
from pipelines.card.provenance import TRUST_ANCHORS_FILE
from pipelines.card.view import CARD_FOLDER, SAMPLES_FILE, Picture, card_view, picture

MARKDOWN_FILE = "data_card.md"
HTML_FILE = "data_card.html"
CARD_JSON = f"{CARD_FOLDER}/card.json"
"""The card model the files were drawn from (no identifiers: the model has none)."""


def _md_cell(text: object) -> str:
    """Text that stays inside one Markdown table cell (or one quoted line)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


_ENV = Environment(
    loader=PackageLoader("pipelines.card", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False,
                                 default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.filters["md"] = _md_cell
_ENV.globals["NOT_COMPUTED"] = NOT_COMPUTED
_ENV.globals["NOT_STATED"] = NOT_STATED
_ENV.globals["FLAG_CLASS"] = {GREEN: "flag-green", AMBER: "flag-amber", RED: "flag-red",
                              NOT_MEANINGFUL: "flag-nm"}


def _pictures(card: DataCard, sample_images: Sequence[np.ndarray],
              sample_labels: Sequence[object]) -> tuple[dict[str, bytes], list[Picture],
                                                         Picture | None]:
    files: dict[str, bytes] = {}
    histograms = []
    for metric in sorted(card.distances):
        name = f"{CARD_FOLDER}/hist_{metric}.png"
        files[name] = histogram_png(metric, card.distances[metric], card.thresholds[metric])
        histograms.append(picture(f"{metric} distribution", metric, name, files[name]))
    samples = None
    if len(sample_images):
        files[SAMPLES_FILE] = sample_grid_png(sample_images, sample_labels)
        samples = picture("sample grid", "sample grid", SAMPLES_FILE, files[SAMPLES_FILE])
    return files, histograms, samples


def card_files(card: DataCard, *, sample_images: Sequence[np.ndarray],
               sample_labels: Sequence[object]) -> dict[str, bytes]:
    """Every file of the card, by its path relative to the release, ``card.json`` last.

    The PNGs under ``card/``, ``data_card.md``, ``data_card.html``, the trust anchors the
    images verify against (``card/trust-anchors.pem``, when the card records provenance)
    and the model as ``card/card.json``: a reader that finds the model finds the files
    drawn from it.
    """
    if len(sample_images) != len(sample_labels):
        raise ConfigError(
            f"{len(sample_images)} sample images but {len(sample_labels)} sample labels"
        )
    files, histograms, samples = _pictures(card, sample_images, sample_labels)
    view = card_view(card, histograms, samples)
    for name in (MARKDOWN_FILE, HTML_FILE):
        files[name] = _ENV.get_template(f"{name}.j2").render(view=view).encode("utf-8")
    if card.provenance is not None:  # what the card's verification steps point at
        files[TRUST_ANCHORS_FILE] = card.provenance.trust_anchors_pem.encode("ascii")
    files[CARD_JSON] = card.model_dump_json(indent=2).encode("utf-8") + b"\n"
    return files


def stale_pictures(card_dir: Path, files: dict[str, bytes]) -> list[Path]:
    """PNGs in `card_dir` that `files` no longer has (another metric's plot, a grid)."""
    keep = {PurePosixPath(name).name for name in files}
    return [p for p in [*card_dir.glob("hist_*.png"), card_dir / "samples.png"]
            if p.exists() and p.name not in keep]


def load_card(release_dir: Path) -> DataCard:
    """The card model a release was drawn from (``card/card.json``)."""
    return DataCard.model_validate_json((Path(release_dir) / CARD_JSON).read_bytes())


def render_data_card(
    card: DataCard,
    out_dir: Path,
    *,
    sample_images: Sequence[np.ndarray],
    sample_labels: Sequence[object],
) -> tuple[Path, Path]:
    """Write ``data_card.md`` and ``data_card.html`` (and ``card/*``) into `out_dir`.

    One histogram PNG per metric in ``card.distances`` (``card/hist_<metric>.png``) with
    the threshold drawn, ``card/samples.png``, a captioned grid of `sample_images`
    (uint8, HxW or HxWxC, of published images only), and ``card/card.json``. The HTML
    embeds the same PNGs and stands alone. Returns (markdown path, html path).
    """
    files = card_files(card, sample_images=sample_images, sample_labels=sample_labels)
    out_dir = Path(out_dir)
    (out_dir / CARD_FOLDER).mkdir(parents=True, exist_ok=True)
    for stale in stale_pictures(out_dir / CARD_FOLDER, files):
        stale.unlink()  # a re-render must not keep another metric's plot
    for name, data in files.items():
        (out_dir / name).write_bytes(data)
    return out_dir / MARKDOWN_FILE, out_dir / HTML_FILE
