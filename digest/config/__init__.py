"""config.toml: the options (``sections``) and reading them (``loader``).

Callers import from here (``from digest.config import Config, load``): the
package is loaded only where a config is read, never at CLI start-up, so these
re-exports cost nothing a caller did not already pay.
"""

from __future__ import annotations

from digest.config.loader import Config, from_dict, load, unknown_keys
from digest.config.sections import (
    DAYS,
    CollectConfig,
    ConfigModel,
    DkimConfig,
    FeedConfig,
    NewsletterConfig,
    PathsConfig,
    PreviewConfig,
    ScheduleConfig,
    SectionConfig,
    SelectionConfig,
    ServeConfig,
    SmtpConfig,
    StorageConfig,
    ThemeConfig,
    TopicConfig,
    check_timezone,
)

__all__ = [
    "DAYS",
    "CollectConfig",
    "Config",
    "ConfigModel",
    "DkimConfig",
    "FeedConfig",
    "NewsletterConfig",
    "PathsConfig",
    "PreviewConfig",
    "ScheduleConfig",
    "SectionConfig",
    "SelectionConfig",
    "ServeConfig",
    "SmtpConfig",
    "StorageConfig",
    "ThemeConfig",
    "TopicConfig",
    "check_timezone",
    "from_dict",
    "load",
    "unknown_keys",
]
