"""Template failures as one clear line naming file and line, before anything is sent.

Jinja reports syntax errors with a line; errors while rendering are found in the
traceback Jinja rewrites to point at template lines. mjml-python does not validate
(an unknown <mj-*> tag is copied into the HTML), so tags are checked against the
list of elements MRML implements.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from mjml import mjml2html

from digest.errors import TemplateError

# Every element mjml-python (MRML) understands. It copies an unknown <mj-*> tag
# straight into the HTML instead of failing, so render checks against this list.
MJML_TAGS: frozenset[str] = frozenset(
    {
        "mjml", "mj-head", "mj-body", "mj-include",
        "mj-attributes", "mj-all", "mj-class", "mj-breakpoint", "mj-font",
        "mj-preview", "mj-raw", "mj-style", "mj-title",
        "mj-accordion", "mj-accordion-element", "mj-accordion-title", "mj-accordion-text",
        "mj-button", "mj-carousel", "mj-carousel-image", "mj-column", "mj-divider",
        "mj-group", "mj-hero", "mj-image", "mj-navbar", "mj-navbar-link", "mj-section",
        "mj-social", "mj-social-element", "mj-spacer", "mj-table", "mj-text", "mj-wrapper",
    }
)  # fmt: skip
_MJ_TAG = re.compile(r"</?(mj(?:ml|-[a-z0-9-]+))\b", re.IGNORECASE)


def _template_error(e: Exception, templates_dir: Path, file_name: str) -> TemplateError:
    """A TemplateError naming file:line, for a syntax error or a failure while rendering."""
    where = file_name
    if isinstance(e, jinja2.TemplateSyntaxError):
        where = f"{e.filename or e.name or file_name}:{e.lineno}"
    else:
        # Jinja rewrites tracebacks so template frames carry the template's file and line.
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.endswith(".j2")]
        if frames:
            where = f"{frames[-1].filename}:{frames[-1].lineno}"
    if isinstance(e, jinja2.UndefinedError):
        hint = "check the variable's spelling; available: newsletter, day, date, lead, " \
               "sections, selection, personal, when, t, subject, preheader"
    elif isinstance(e, jinja2.TemplateSyntaxError):
        hint = "fix the Jinja syntax there ({% %} and {{ }} must be balanced and closed)"
    else:
        hint = "fix the template; `digest preview` shows the result"
    if not where.startswith("/") and not where.startswith(str(templates_dir)):
        where = str(templates_dir / where)
    return TemplateError(f"{where}: {type(e).__name__}: {e}", hint=hint)


def render_jinja(env: jinja2.Environment, templates_dir: Path, name: str, ctx: Mapping[str, Any]
                  ) -> str:
    try:
        return env.get_template(name).render(ctx)
    except jinja2.TemplateNotFound as e:
        raise TemplateError(
            f"{templates_dir / str(e.name)}: template not found",
            hint="set paths.templates / paths.template in config.toml, or create the file",
        ) from None
    except jinja2.TemplateError as e:
        raise _template_error(e, templates_dir, name) from None
    except Exception as e:  # a filter or global failing on odd input is a template problem too
        raise _template_error(e, templates_dir, name) from e


def _locate(tag: str, templates_dir: Path, fallback: str, output: str, pos: int) -> str:
    """file:line of the first use of ``tag`` in the template sources (or in the output)."""
    pattern = re.compile(rf"<{re.escape(tag)}\b", re.IGNORECASE)
    for path in sorted(templates_dir.glob("*.j2")):
        for no, line in enumerate(path.read_text("utf-8", "replace").splitlines(), 1):
            if pattern.search(line):
                return f"{path}:{no}"
    return f"{fallback} (rendered output, line {output.count(chr(10), 0, pos) + 1})"


def check_mjml_tags(mjml_src: str, templates_dir: Path, file_name: str) -> None:
    for m in _MJ_TAG.finditer(mjml_src):
        tag = m.group(1).lower()
        if tag not in MJML_TAGS:
            where = _locate(tag, templates_dir, str(templates_dir / file_name), mjml_src,
                            m.start())
            raise TemplateError(
                f"{where}: unknown MJML tag <{tag}>",
                hint="MJML would copy it into the email unchanged; see https://documentation.mjml.io"
                     " for the tags, e.g. mj-text, mj-section, mj-column, mj-image",
            )


def compile_mjml(mjml_src: str, templates_dir: Path, file_name: str) -> str:
    check_mjml_tags(mjml_src, templates_dir, file_name)
    try:
        out = mjml2html(mjml_src, disable_comments=True, fonts={})
    except Exception as e:  # mjml-python raises plain ValueError/RuntimeError
        raise TemplateError(
            f"{templates_dir / file_name}: MJML does not compile: {e}",
            hint="check the MJML structure (mj-section > mj-column > content) and that "
                 "mj-preview holds plain text only",
        ) from None
    return str(out)
