"""The validation page a release ships: one suite's results, readable with no network.

GE's own Data Docs load ~19 scripts, stylesheets and images from CDNs (jQuery,
Bootstrap, Vega, Font Awesome, GE's logo), and GE does not ship them: on a hospital
network without internet the index shows no results at all. So the release ships this
page instead, one per suite (``expectations/<suite>/index.html``): a Jinja2 template
with inline CSS and no script, link or image from anywhere, that lists every
expectation with its column, what it expects, whether it passed and the observed
value; beside it ``results.json``, GE's own validation result (scrubbed of
tracebacks), for tools. Everything is escaped: a value in a table is text, not markup.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from consentgen.files import atomic_output

PAGE_FILE = "index.html"
RESULTS_FILE = "results.json"
_TEXT_LIMIT = 200
_HIDDEN_KWARGS = {"batch_id", "column", "result_format", "catch_exceptions", "meta",
                  "include_config", "row_condition", "condition_parser"}

_ENV = Environment(
    loader=PackageLoader("validation.release.expectations", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def short(value: Any, limit: int = _TEXT_LIMIT) -> str:
    """One line of at most `limit` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def expected_text(kwargs: dict[str, Any]) -> str:
    """What an expectation asks for, from its arguments (the column is its own cell)."""
    shown = {k: v for k, v in kwargs.items() if k not in _HIDDEN_KWARGS and v is not None}
    return short("; ".join(f"{k} {v}" for k, v in sorted(shown.items()))) or "—"


def write_page(site_dir: Path, *, suite_name: str, success: bool, evaluated: int,
               successful: int, rows: Sequence[Any], result_json: dict[str, Any]) -> Path:
    """Write ``index.html`` and ``results.json`` into `site_dir`; returns the page.

    `rows` are the suite's `ExpectationOutcome`s in GE's order.
    """
    page = _ENV.get_template("validation_page.html.j2").render(
        suite_name=suite_name, success=success, evaluated=evaluated, successful=successful,
        rows=rows)
    site_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(site_dir / RESULTS_FILE) as fh:
        fh.write(json.dumps(result_json, indent=1, sort_keys=True, default=str) + "\n")
    with atomic_output(site_dir / PAGE_FILE) as fh:
        fh.write(page)
    return site_dir / PAGE_FILE
