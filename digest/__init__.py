"""digest: a daily news digest generator and mailer."""

from __future__ import annotations

__version__ = "0.1.0"
