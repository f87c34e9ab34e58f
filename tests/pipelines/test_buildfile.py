"""consentgen.toml: the issue's keys work as written, presets sit under the file, and each
bad key, value or type is refused in one line naming the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from consentgen.errors import ConfigError
from pipelines.buildfile import load_config, load_config_leniently, template, write_template
from pipelines.settings import PROFILES

ISSUE_EXAMPLE = """\
purpose = "synthetic-training"
shards = 2
images_per_shard = 6
[generator]
preset = "tiny"
image_size = 24
epochs = 1
sample_steps = 4
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "consentgen.toml"
    path.write_text(text)
    return path


def test_the_issue_keys_work_exactly_as_written(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ISSUE_EXAMPLE))
    assert (config.purpose, config.shards, config.images_per_shard) == ("synthetic-training", 2, 6)
    g = config.generator
    assert (g.preset, g.image_size, g.epochs, g.sample_steps) == ("tiny", 24, 1, 4)
    # what the file leaves out comes from its preset (demo)
    assert g.batch_size == PROFILES["demo"]().generator.batch_size
    assert config.profile == "demo"


def test_the_home_file_is_read_and_flags_go_on_top(home: Path) -> None:
    write(home, ISSUE_EXAMPLE + '\n[figures]\nutility = false\n')
    config = load_config(None, home=home, overrides={"shards": 3})
    assert (config.shards, config.images_per_shard, config.figures.utility) == (3, 6, False)
    assert config.figures.dcr is True  # a section is merged key by key


def test_the_profile_is_a_preset_under_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'profile = "test"\nimages_per_shard = 5\n')
    config = load_config(path)
    test = PROFILES["test"]()
    assert config.profile == "test" and config.images_per_shard == 5
    assert config.generator == test.generator and config.shards == test.shards
    assert load_config(path, profile="demo").generator == PROFILES["demo"]().generator


def test_no_file_is_the_preset(home: Path) -> None:
    assert load_config(None, home=home) == PROFILES["demo"]()
    assert load_config(None, home=home, profile="test") == PROFILES["test"]()


def test_the_template_reads_back_to_its_config_and_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "consentgen.toml"
    assert write_template(path)
    assert load_config(path) == PROFILES["demo"]()
    assert "# " in path.read_text() and "# kind = \"ddpm\"" in path.read_text()
    assert set(tomllib.loads(path.read_text())) >= {"purpose", "purposes"}
    assert "shards" not in tomllib.loads(path.read_text())  # at its preset's value: commented
    assert load_config(path, profile="test") == PROFILES["test"]()  # so --profile still decides
    custom = PROFILES["test"]().model_copy(update={"images_per_shard": 3, "seed": 7})
    other = tmp_path / "other.toml"
    other.write_text(template(custom))
    assert tomllib.loads(other.read_text())["profile"] == "test"
    assert load_config(other) == custom
    path.write_text("shards = 3\n")
    assert not write_template(path)
    assert path.read_text() == "shards = 3\n"


@pytest.mark.parametrize(("text", "message"), [
    ("[generator]\nimagesize = 24\n", "generator.imagesize: unknown key"),
    ("shard = 2\n", "shard: unknown key"),
    ("[generatr]\npreset = 'tiny'\n", "generatr: unknown key"),
    ("[audit]\nphash_max = 3\n", "audit.phash_max: unknown key"),
    ("shards = 0\n", "shards: Input should be greater than or equal to 1 (got 0)"),
    ("shards = 65\n", "shards: Input should be less than or equal to 64 (got 65)"),
    ("shards = 'two'\n", "shards: must be a whole number (got 'two')"),
    ("[generator]\nimage_size = 512\n", "generator.image_size: Input should be less than or equal to 256"),
    ("[generator]\nimage_size = 30\n", "image_size 30 must be divisible by 4 for preset 'small'"),
    ("[generator]\nkind = 'gan'\n", "generator.kind: Input should be 'ddpm' or 'img2img'"),
    ("[generator]\nkind = 'img2img'\n", "weights_dir is required when kind = \"img2img\""),
    ("[generator]\nchannels = 2\n", "generator.channels: Input should be 1 or 3"),
    ("[labels]\nmode = 'maybe'\n", "labels.mode: Input should be"),
    ("[labels]\nunlabelled = '../x'\n", "cannot name a class folder"),
    ("[labels]\nnames = { 0 = 'a/b' }\n", "cannot name a class folder"),
    ("[schedule]\ncron = 'daily'\n", "schedule.cron: 'daily' is not a five-field cron expression"),
    ("expiry_policy = 'forget'\n", "expiry_policy: Input should be 'withdraw' or 'keep'"),
    ("purpose = 'research'\n", "purpose 'research' is not declared in purposes"),
    ("purposes = []\n", "purposes: declare at least one purpose"),
    ("purpose = 'Synthetic Training'\n", "is not a purpose"),
    ("profile = 'fast'\n", "profile: 'fast' is not a preset (use demo or test)"),
    ("[generator]\nepochs = 1.5\n", "generator.epochs: must be a whole number (got 1.5)"),
    ("figures = 3\n", "figures: Input should be a valid dictionary"),
    ("shards = \n", "not valid TOML"),
    ("seed = true\n", "seed: must be a whole number (got True)"),
    ("shards = 3.0\n", "shards: must be a whole number (got 3.0)"),
    ("[generator]\nepochs = \"4\"\n", "generator.epochs: must be a whole number (got '4')"),
    ("[figures]\ndcr = 1\n", "figures.dcr: must be true or false (got 1)"),
    ("[generator]\nlr = \"fast\"\n", "generator.lr: must be a number (got 'fast')"),
    ("[generator]\nprompt = 3\n", "generator.prompt: must be a string (got 3)"),
])
def test_a_bad_key_value_or_type_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    line = str(caught.value)
    assert "\n" not in line and message in line and str(path) in line, line


def test_a_missing_explicit_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no build file at"):
        load_config(tmp_path / "nope.toml")


def test_relative_paths_are_read_from_the_file_s_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf", '[generator]\nkind = "img2img"\nweights_dir = "sd"\nimage_size = 16\n')
    monkeypatch.chdir(tmp_path)
    assert load_config(path).generator.weights_dir == tmp_path / "conf" / "sd"


def test_a_whole_number_is_also_a_number(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "[generator]\nlr = 1\nstrength = 1\n")).generator.lr == 1.0


def test_the_environment_picks_the_preset_and_shards_under_the_flags(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTGEN_PROFILE", "test")
    assert load_config(None, home=home) == PROFILES["test"]()
    monkeypatch.setenv("CONSENTGEN_SHARDS", "3")
    assert load_config(None, home=home).shards == 3
    assert load_config(None, home=home, overrides={"shards": 5}).shards == 5
    assert load_config(None, home=home, profile="demo").generator == PROFILES["demo"]().generator
    monkeypatch.setenv("CONSENTGEN_SHARDS", "three")
    with pytest.raises(ConfigError, match="CONSENTGEN_SHARDS='three' is not a whole number"):
        load_config(None, home=home)


def test_read_leniently_a_bad_key_takes_its_preset_value_and_says_so(home: Path) -> None:
    write(home, 'shards = 3\n[generator]\nimagesize = 24\nepochs = 2\n[figures]\ndcr = "yes"\n')
    config, warning = load_config_leniently(home)
    assert (config.shards, config.generator.epochs) == (3, 2)  # the good keys are kept
    assert config.figures.dcr is PROFILES["demo"]().figures.dcr
    assert warning and "figures.dcr: must be true or false" in warning and "preset" in warning
    write(home, 'shards = 3\n[generator]\nimagesize = 24\nepochs = 2\n')
    config, warning = load_config_leniently(home)
    assert (config.shards, config.generator.epochs) == (3, 2)
    assert warning and "generator.imagesize: unknown key" in warning
    write(home, "shards = \n")
    config, warning = load_config_leniently(home)
    assert config == PROFILES["demo"]() and warning and "not valid TOML" in warning
    write(home, "shards = 2\n")
    assert load_config_leniently(home) == (load_config(None, home=home), None)
