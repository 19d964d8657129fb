"""config.toml -> a typed, validated Config.

Loading collects *every* problem and names its key path (``feeds[2].url``);
unknown keys are warnings, not errors, so a typo never silently changes nothing.
Secrets never live in the file: the file names the environment variable. The
options themselves are declared in ``sections``.
"""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from digest.config.sections import (
    ConfigModel,
    DkimConfig,
    FeedConfig,
    NewsletterConfig,
    ScheduleConfig,
    SelectionConfig,
    SmtpConfig,
    TopicConfig,
)
from digest.errors import ConfigError
from digest.models import Feed

# The name the unknown-key warnings always carried (JSON logs show it).
log = logging.getLogger("digest.config")


class Config:
    """A loaded config: the validated model plus where it came from."""

    def __init__(self, model: ConfigModel, path: Path) -> None:
        self.model = model
        self.path = path
        self.root = path.parent

    # Convenience accessors keep call sites short.
    @property
    def newsletter(self) -> NewsletterConfig:
        return self.model.newsletter

    @property
    def schedule(self) -> ScheduleConfig:
        return self.model.schedule

    @property
    def selection(self) -> SelectionConfig:
        return self.model.selection

    @property
    def smtp(self) -> SmtpConfig:
        return self.model.smtp

    @property
    def dkim(self) -> DkimConfig:
        return self.model.dkim

    @property
    def topics(self) -> dict[str, TopicConfig]:
        return self.model.topics

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.model.schedule.timezone)

    def resolve(self, p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else (self.root / path)

    @property
    def db_path(self) -> Path:
        return self.resolve(self.model.storage.path)

    @property
    def subscribers_dir(self) -> Path:
        return self.resolve(self.model.paths.subscribers)

    @property
    def templates_dir(self) -> Path:
        return self.resolve(self.model.paths.templates)

    @property
    def feeds(self) -> tuple[Feed, ...]:
        return tuple(self._feed(f) for f in self.model.feeds)

    def _feed(self, f: FeedConfig) -> Feed:
        url = f.url
        if not re.match(r"[A-Za-z][A-Za-z0-9+.-]+:", url):
            url = self.resolve(url).resolve().as_uri()
        name = f.name or _default_name(f.url)
        return Feed(url=url, name=name, weight=f.weight, topics=f.topics, named=bool(f.name))

    def with_overrides(self, **sections: dict[str, Any]) -> Config:
        """A copy with some sections' fields replaced (used by the demo and tests)."""
        data = self.model.model_dump(by_alias=True)
        for section, values in sections.items():
            data[section] = {**data[section], **values}
        return Config(ConfigModel.model_validate(data), self.path)


def _default_name(url: str) -> str:
    parts = urlsplit(url)
    if parts.hostname:
        return parts.hostname.removeprefix("www.")
    return Path(url).stem


def load(path: Path | str) -> Config:
    """Read and validate config.toml; raise ConfigError naming every problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found",
            hint="pass --config PATH, or run digest from the folder holding config.toml",
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return from_dict(data, path)


def from_dict(data: dict[str, Any], path: Path) -> Config:
    try:
        model = ConfigModel.model_validate(data)
    except ValidationError as e:
        lines = [f"{path}: {_key_path(err['loc'])}: {_message(err)}" for err in e.errors()]
        raise ConfigError("\n".join(lines)) from None
    for key in unknown_keys(model):
        log.warning("%s: unknown key %s (ignored; check the spelling)", path, key)
    _check_references(model, path)
    return Config(model, path.resolve())


def _check_references(model: ConfigModel, path: Path) -> None:
    known = set(model.topics)
    problems = []
    for i, sec in enumerate(model.selection.sections):
        for t in sec.topics:
            if known and t not in known:
                problems.append(f"{path}: selection.sections[{i}].topics: unknown topic {t!r}")
    if problems:
        raise ConfigError("\n".join(problems))


def unknown_keys(model: BaseModel, prefix: str = "") -> list[str]:
    found = [f"{prefix}{k}" for k in (model.model_extra or {})]
    for name, info in type(model).model_fields.items():
        key = info.alias or name
        value = getattr(model, name)
        here = f"{prefix}{key}"
        if isinstance(value, BaseModel):
            found += unknown_keys(value, here + ".")
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found += unknown_keys(item, f"{here}[{i}].")
        elif isinstance(value, dict):
            for k, item in value.items():
                if isinstance(item, BaseModel):
                    found += unknown_keys(item, f"{here}.{k}.")
    return found


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _message(err: Any) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        return "required key is missing"
    if "input" in err and err["type"].endswith(("_type", "_parsing", "literal_error")):
        return f"{msg}, got {err['input']!r}"
    return msg
