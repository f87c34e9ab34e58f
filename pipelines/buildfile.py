"""`consentgen.toml`: the deployment's build settings, read and written.

One model (`BuildConfig`) validates the file for every reader: `consentgen build`, the
Dagster definitions (`consentgen ui`, the daemon's sensor and schedule) and the consent
commands (which purposes are declared). The file only says what differs from its preset
(`profile`); a key the model does not know, or a value it refuses, stops everything with
one line naming the key (`generator.imagesize: unknown key`), because a misspelt setting
that silently falls back to a default is a build nobody asked for.

The commented template `consentgen init` writes is generated from the model's own field
descriptions and defaults, so it cannot drift from what is accepted.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import tomlkit
from pydantic import BaseModel, ValidationError

from consentgen.errors import ConfigError
from consentgen.files import atomic_output
from consentgen.home import BUILD_FILE, data_home
from pipelines.settings import (
    DEFAULT_PURPOSE,
    PROFILE_ENV,
    PROFILES,
    SHARDS_ENV,
    BuildConfig,
    check_purpose,
)

__all__ = ["BUILD_FILE", "build_file_path", "declare_purposes", "declared_purposes", "load_config",
           "read_build_file", "template", "write_template"]


def build_file_path(home: str | os.PathLike[str] | None = None) -> Path:
    return data_home(home) / BUILD_FILE


def read_build_file(path: Path) -> dict[str, Any]:
    """The file's tables as plain data; a missing or unparsable file is one line."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"no build file at {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a build file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None


def load_config(config_file: str | os.PathLike[str] | None = None, *,
                home: str | os.PathLike[str] | None = None, profile: str | None = None,
                overrides: dict[str, Any] | None = None) -> BuildConfig:
    """The build config: a preset, the build file over it, `overrides` (CLI flags) on top.

    The file is `config_file` when given, else the home's `consentgen.toml` when there is
    one (no file: the preset alone). The preset is `profile` when given, else
    `$CONSENTGEN_PROFILE`, else the file's `profile` key, else `demo`; `$CONSENTGEN_SHARDS`
    sits under `overrides`. Every reader (the CLI, the Dagster runs, the daemon) comes
    through here, so they all build with the same settings.
    """
    path, data = _read(config_file, home)
    chosen = _profile(profile, data, path)
    try:
        _check_types(data, BuildConfig, [])
        return BuildConfig.model_validate(_merged(path, data, chosen, overrides))
    except ValidationError as exc:
        raise ConfigError(_where(path, data) + "; ".join(_problem(e) for e in exc.errors())) from None
    except _TypeProblem as exc:
        raise ConfigError(_where(path, data) + str(exc)) from None


def load_config_leniently(home: str | os.PathLike[str] | None = None, *,
                          profile: str | None = None) -> tuple[BuildConfig, str | None]:
    """The home's build config for what must never wait on a typo: withdrawing what consent
    no longer allows (reconcile, a revoke's withdrawal, the daemon's sensor).

    A key the file gets wrong is read at its preset's value instead, and the second value
    says so (None when the file is fine); a build still refuses the file (`load_config`).
    Reconcile reads every purpose its releases were built for, so a wrong `purpose` here
    cannot hide a revocation.
    """
    try:
        return load_config(None, home=home, profile=profile), None
    except ConfigError as exc:
        problem = str(exc)
    path = build_file_path(home)
    try:
        data = read_build_file(path) if path.is_file() else {}
    except ConfigError:
        data = {}
    chosen = profile if profile in PROFILES else (
        data.get("profile") if data.get("profile") in PROFILES else "demo")
    for _ in range(50):  # drop one offending key at a time, until the rest validates
        try:
            _check_types(data, BuildConfig, [])
            config = BuildConfig.model_validate(_merged(path, data, chosen, None))
            break
        except _TypeProblem as exc:
            data = _without(data, exc.loc)
        except ValidationError as exc:
            data = _without(data, tuple(str(p) for p in exc.errors()[0]["loc"]))
    else:  # pragma: no cover - fifty bad keys: the preset alone
        config = PROFILES[chosen]()
    return config, f"{problem}; read at the preset's values meanwhile"


def _read(config_file: str | os.PathLike[str] | None,
          home: str | os.PathLike[str] | None) -> tuple[Path, dict[str, Any]]:
    path = Path(config_file) if config_file is not None else build_file_path(home)
    data = read_build_file(path) if config_file is not None or path.is_file() else {}
    return path, data


def _profile(profile: str | None, data: dict[str, Any], path: Path) -> str:
    chosen = profile or os.environ.get(PROFILE_ENV) or data.get("profile") or "demo"
    if chosen not in PROFILES:
        raise ConfigError(f"{_where(path, data)}profile: {chosen!r} is not a preset "
                          f"(use {' or '.join(PROFILES)})")
    return chosen


def _merged(path: Path, data: dict[str, Any], profile: str,
            overrides: dict[str, Any] | None) -> dict[str, Any]:
    merged = _merge(PROFILES[profile]().model_dump(mode="json"), _anchored(data, path.parent),
                    BuildConfig)
    env_shards = os.environ.get(SHARDS_ENV)
    if env_shards and "shards" not in (overrides or {}):
        try:
            merged["shards"] = int(env_shards)
        except ValueError:
            raise ConfigError(f"{SHARDS_ENV}={env_shards!r} is not a whole number") from None
    merged = _merge(merged, overrides or {}, BuildConfig)
    merged["profile"] = profile
    return merged


def _without(data: dict[str, Any], loc: tuple[str, ...]) -> dict[str, Any]:
    """`data` without the key at `loc` (or, when the file does not hold it, without the
    whole top-level key the error is about)."""
    if not loc:
        return {k: v for k, v in data.items() if k not in ("purpose", "purposes")}
    head, rest = loc[0], loc[1:]
    if rest and isinstance(data.get(head), dict) and rest[0] in data[head]:
        return {**data, head: _without(data[head], rest)}
    return {k: v for k, v in data.items() if k != head}


class _TypeProblem(ValueError):
    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        self.loc = loc
        super().__init__(f"{'.'.join(loc)}: {message}")


_STRICT = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def _check_types(data: dict[str, Any], model: type[BaseModel], table: list[str]) -> None:
    """Refuse what pydantic's lax mode would coerce from a hand-written file: `seed = true`
    read as 1, `shards = 3.0` as 3, `epochs = "4"` as 4. A file says what it means."""
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            continue  # pydantic names unknown keys
        loc = (*table, key)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if isinstance(value, dict):
                _check_types(value, annotation, list(loc))
            continue
        origin = get_origin(annotation)
        if origin is None:
            args: tuple[Any, ...] = (annotation,)
        elif origin in (Union, UnionType):  # Optional[int] and the like
            args = get_args(annotation)
        else:
            continue  # list, dict, Literal: pydantic checks their items strictly enough
        kinds = {a for a in args if a in _STRICT}
        if not kinds or value is None:
            continue
        if not any(_is(value, kind) for kind in kinds):
            wanted = " or ".join(_STRICT[k] for k in sorted(kinds, key=str))
            raise _TypeProblem(loc, f"must be {wanted} (got {value!r})")


def _is(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


RELATIVE_PATHS = (("generator", "weights_dir"), ("audit", "embedding_model_path"),
                  ("service", "jwks_file"), ("provenance", "sign_cert"),
                  ("provenance", "sign_key"), ("provenance", "trust_anchors"))
"""Folder and file keys that a build file may give relative to itself."""


def _anchored(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The file's relative paths read from the file's folder, not from wherever the
    command happens to run (the daemon and the CLI would otherwise disagree)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for section, key in RELATIVE_PATHS:
        value = out.get(section, {}).get(key) if isinstance(out.get(section), dict) else None
        if isinstance(value, str) and value:
            given = Path(value).expanduser()  # "~/sd" is the user's folder, as in a shell
            out[section][key] = str(given if given.is_absolute() else (folder / given).resolve())
    return out


def _where(path: Path, data: dict[str, Any]) -> str:
    return f"{path}: " if data else ""


def _merge(base: dict[str, Any], top: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """`top` over `base`; a section (a nested model) is merged key by key, any other
    value (a list, a table of names) replaced whole, as written."""
    out = dict(base)
    for key, value in top.items():
        field = model.model_fields.get(key)
        sub = field.annotation if field is not None else None
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel) \
                and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, sub)
        else:
            out[key] = value
    return out


def _problem(error: Any) -> str:
    key = ".".join(str(p) for p in error["loc"])
    if not key:  # a rule across keys: its message names them
        return error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: required"
    message = error["msg"].removeprefix("Value error, ")
    given = error.get("input")
    if isinstance(given, (str, int, float, bool)) and error["type"] != "value_error":
        message += f" (got {given!r})"
    return f"{key}: {message}"


# --- declared purposes ---------------------------------------------------------------


def declared_purposes(home: str | os.PathLike[str] | None = None) -> list[str]:
    """The purposes consent may be recorded for in this home: its build file's `purposes`.

    A home made before build files existed has none: it declares the default purpose and
    every purpose already on its ledger, so it keeps working as it did. A typo elsewhere
    in the file does not stop consent from being recorded (a bad `purposes` itself falls
    back to the default purpose alone).
    """
    if build_file_path(home).is_file():
        return list(load_config_leniently(home)[0].purposes)
    from pipelines.service.client import ledger_at  # the service's, while it holds the file

    return list(dict.fromkeys([DEFAULT_PURPOSE, *ledger_at(home).purposes()]))


def declare_purposes(home: str | os.PathLike[str] | None, purposes: list[str]) -> Path:
    """Add `purposes` to the build file's `purposes`, keeping its comments and layout
    (a home without a build file gets a small one that declares what it declared before
    and these). Returns the file's path."""
    for purpose in purposes:
        try:
            check_purpose(purpose)
        except ValueError as exc:
            raise ConfigError(f"cannot declare it: {exc}") from None
    path = build_file_path(home)
    known = declared_purposes(home)
    if path.is_file():
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    else:
        doc = tomlkit.document()
        doc.add(tomlkit.comment("consentgen build settings; every other key takes its preset's value"))
        doc.add(tomlkit.comment("(`consentgen init` writes a commented file with every key)."))
    mode = path.stat().st_mode & 0o777 if path.is_file() else None
    listed = doc.get("purposes")
    if isinstance(listed, list):
        listed.extend(p for p in purposes if p not in listed)
    else:
        doc["purposes"] = [*known, *(p for p in purposes if p not in known)]
    with atomic_output(path) as handle:
        if mode is not None:  # as private as it was
            os.fchmod(handle.fileno(), mode)
        handle.write(tomlkit.dumps(doc))
    load_config(None, home=home)  # what was written reads back (else the line names the key)
    return path


# --- the commented template ------------------------------------------------------------


ALWAYS_WRITTEN = ("purpose", "purposes")
"""Keys the template writes even at their preset's value: what the home declares."""


def template(config: BuildConfig | None = None) -> str:
    """A commented `consentgen.toml` for `config` (default: the demo preset): every key,
    with what it means; those at their preset's value commented out, so the file says
    only what differs and a later `--profile` still decides the rest. `load_config` reads
    it back to exactly `config`."""
    config = config or PROFILES["demo"]()
    lines = [
        "# consentgen build settings (read by `consentgen build`, `consentgen ui` and the",
        "# daemon). Every key is optional: a commented or missing one takes the value of",
        "# the `profile` preset. Unknown keys and bad values are refused with the key named.",
        "",
    ]
    lines += _render(config, PROFILES[config.profile](), [])
    return "\n".join(lines).rstrip() + "\n"


def write_template(path: Path, config: BuildConfig | None = None) -> bool:
    """Write the template unless a build file is there already (never overwritten)."""
    if path.exists():
        return False
    with atomic_output(path) as tmp:  # an interrupted init leaves no half file behind
        tmp.write(template(config))
    return True


def _render(model: BaseModel, preset: BaseModel, table: list[str]) -> list[str]:
    lines: list[str] = []
    sections: list[tuple[str, BaseModel, BaseModel]] = []
    for name, field in type(model).model_fields.items():
        value, default = getattr(model, name), getattr(preset, name)
        if isinstance(value, BaseModel):
            sections.append((name, value, default))
            continue
        if field.description:
            lines.append(f"# {field.description}")
        rendered = _toml_value(value if value is not None else default)
        active = value != default or (not table and name in ALWAYS_WRITTEN)
        if not table and name == "profile":  # the preset itself: written unless the default
            active = value != "demo"
        if rendered is None:
            lines.append(f"# {name} = (unset)")
        else:
            lines.append(f"{'' if active and value is not None else '# '}{name} = {rendered}")
    for name, section, default in sections:
        doc = (type(section).__doc__ or "").strip().splitlines()
        lines += ["", *(f"# {d.strip()}" for d in doc[:2] if d.strip()), f"[{'.'.join([*table, name])}]"]
        lines += _render(section, default, [*table, name])
    return lines


def _toml_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) or '""' for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"no TOML for {value!r}")
