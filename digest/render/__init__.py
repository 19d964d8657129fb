"""Render: a `Selection` -> `Rendered` (subject, preheader, HTML, text) per variant.

Jinja2 fills the MJML template and mjml-python compiles it once per variant
(templating, variant); theme and fixed strings come from theme and strings. Personal
fields stay placeholders; mail splices each subscriber in. Hands on `Rendered`.
"""
