"""The demo home's build file: Br35H's class names and terms that say what the demo is."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pipelines.buildfile import build_file_path, load_config
from pipelines.card import DatasetInfo, render_data_card
from pipelines.cli.common import create_home
from pipelines.demo.config import GROUPING_NOTICE, demo_config
from pipelines.demo.consent import SIMULATION_NOTICE
from tests.pipelines.card.conftest import base_card


def test_the_demo_home_gets_a_build_file_that_reads_back_to_the_demo_config(home: Path) -> None:
    made = create_home(home, demo_config())
    assert made.wrote_build_file and made.build_file == build_file_path(home)
    written = tomllib.loads(made.build_file.read_text(encoding="utf-8"))
    assert written["labels"]["names"] == {"0": "no_tumour", "1": "tumour"}
    dataset = written["dataset"]
    assert "simulated" in dataset["controller"] and "simulated" in dataset["legal_basis"]
    assert "undocumented" in dataset["licence"] and "not for publication" in dataset["licence"]
    assert any("publication" in use for use in dataset["out_of_scope_uses"])
    assert written["figures"]["calibration_sources"] == 1000
    config = load_config(None, home=home)
    assert config == demo_config() and config.profile == "demo"
    assert config.notices == [SIMULATION_NOTICE, GROUPING_NOTICE]
    # a second demo run keeps the file, edits included
    made.build_file.write_text(made.build_file.read_text().replace(
        'calibration_sources = 1000', 'calibration_sources = 400'), encoding="utf-8")
    assert not create_home(home, demo_config()).wrote_build_file
    assert load_config(None, home=home).figures.calibration_sources == 400


def test_the_demo_card_says_simulated_and_not_for_publication(tmp_path: Path) -> None:
    config = demo_config()
    card = base_card(dataset=DatasetInfo(**config.dataset.model_dump()), notices=config.notices,
                     profile=config.profile)
    md = render_data_card(card, tmp_path, sample_images=[], sample_labels=[])[0].read_text()
    assert "| Data controller | none: a demonstration on simulated subjects and simulated " \
           "consent |" in md
    assert "not for publication" in md and "not stated" not in md
    assert md.index("SIMULATED") < md.index("## Dataset and responsibilities")


def test_the_grouping_notice_claims_no_figure() -> None:
    """The notice says how the demo's subjects were cut; what the calibration and privacy
    figures come to is the card's tables' to say, from what was computed."""
    assert "whole groups" in GROUPING_NOTICE and "other groups" in GROUPING_NOTICE
    for claim in ("near 0", "by construction", "%", "rate is"):
        assert claim not in GROUPING_NOTICE
