"""The email's palette: fixed colours plus the user's brand colour, kept readable.

WCAG AA asks 4.5:1 for body text. The brand colour comes from config.toml and may
be anything, so it is only used as *text* when it passes on the card background;
otherwise it is darkened until it does (and lightened for dark mode), and it keeps
its exact value for rules and bars, where contrast does not matter.

Colours are mid-tones on off-white/near-black rather than pure #fff/#000: clients
that invert a light email (Outlook.com, Gmail's apps) then land on readable greys
instead of glaring extremes, and the ``prefers-color-scheme`` styles give clients
that honour them a designed dark version.
"""

from __future__ import annotations

from digest.config import ThemeConfig

AA = 4.5

LIGHT = {
    "page": "#f3f1ec",  # body background around the cards
    "card": "#ffffff",
    "ink": "#1a1a1a",
    "muted": "#595959",
    "link": "#0b57a4",
    "rule": "#dddddd",
    "footer": "#4a4a4a",  # on page
}
DARK = {
    "page": "#121212",
    "card": "#1e1e1e",
    "ink": "#ececec",
    "muted": "#c4c4c4",
    "link": "#8ab4f8",
    "rule": "#3a3a3a",
    "footer": "#c4c4c4",
}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(max(0.0, min(255.0, c))):02x}" for c in rgb)


def luminance(hex_colour: str) -> float:
    """Relative luminance (WCAG 2.x)."""
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in _rgb(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours (1..21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def readable(colour: str, background: str, minimum: float = AA) -> str:
    """``colour``, mixed towards black or white just enough to reach ``minimum``."""
    if contrast(colour, background) >= minimum:
        return colour
    target = (0, 0, 0) if luminance(background) > 0.5 else (255, 255, 255)
    base = _rgb(colour)
    for step in range(1, 21):
        f = step / 20
        mixed = _hex(tuple(c + (t - c) * f for c, t in zip(base, target, strict=True)))  # type: ignore[arg-type]
        if contrast(mixed, background) >= minimum:
            return mixed
    return _hex(target)


def palette(theme: ThemeConfig) -> dict[str, dict[str, str]]:
    """{'light': {...}, 'dark': {...}}: fixed colours plus brand (bars) and brand_text."""
    brand = theme.brand_color
    light = {**LIGHT, "brand": brand, "brand_text": readable(brand, LIGHT["card"])}
    dark = {**DARK, "brand": brand, "brand_text": readable(brand, DARK["card"])}
    return {"light": light, "dark": dark}
