"""Lines shaped to hurt backtracking regex engines, for the linearity tests and ``benchmarks/adversarial.py``.

Each shape is a repeated unit (or a seeded random draw from the characters masks and formats care
about) cut to the asked length: runs of separators that many positions can start a mask at, letters
and digits that look like the start of a hex number or an IPv6 address, unbalanced brackets, and so on.
"""

from __future__ import annotations

import random

SPECIALS = ":/\\.-_+,@%~=[]()<>\"' \t\naf0x9"

UNITS: dict[str, str] = {
    "colons": ":",
    "a-colon": "a:",
    "f-colon": "f:",
    "hex-colon": "fe80:",
    "double-colon": "::1:",
    "digit-dots": "1.",
    "digit-colons": "1:",
    "digit-dashes": "1-",
    "digit-slashes": "1/",
    "digits-mixed": "12.34:56-78/90,",
    "digit-letter": "1a",
    "slashes": "/",
    "backslashes": "\\",
    "dots": ".",
    "dot-slash": "./",
    "hex-letters": "a",
    "hex-run": "ab12",
    "hex-prefix": "0xa",
    "blk": "blk_1",
    "url": "a:/",
    "signs": "+-",
    "sign-digit": "-1",
    "path-segments": "/a.",
    "colon-space": ": ",
    "colon-newline": "a: \n",
    "brackets": "a[1]: ",
    "open-bracket": "[a",
    "words": "ab ",
    "tabs": "a\t",
    "spaces": " ",
}
RANDOM_SHAPES = ("random-1", "random-2", "random-3")
SHAPES: tuple[str, ...] = (*UNITS, *RANDOM_SHAPES)


def line_of(shape: str, size: int) -> str:
    """A line of ``size`` characters of ``shape`` (one of ``SHAPES``)."""
    if shape in UNITS:
        unit = UNITS[shape]
        return (unit * (size // len(unit) + 1))[:size]
    seed = RANDOM_SHAPES.index(shape) + 1
    rng = random.Random(seed)
    return "".join(rng.choice(SPECIALS) for _ in range(size))


def fuzz_lines(seed: int, count: int, max_size: int = 4096) -> list[str]:
    """``count`` seeded random lines: mixes of the shapes' units and the special characters."""
    rng = random.Random(seed)
    units = [*UNITS.values(), *SPECIALS]
    lines = []
    for _ in range(count):
        size = rng.choice((1, 2, 8, 40, 300, max_size))
        parts: list[str] = []
        while sum(map(len, parts)) < size:
            unit = rng.choice(units)
            parts.append(unit * rng.randint(1, 40))
        lines.append("".join(parts)[:size])
    return lines
