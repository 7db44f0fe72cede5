"""Adversarial lines: the worst per-line masking and format-parsing time, beside normal lines/s.

A log line is untrusted input; a regex that backtracks can spend time quadratic in a line's length on
it (a 64 KiB line of colons once took 115 s to mask). This script builds lines of the shapes that hurt
backtracking engines (``core.parsing.adversarial.SHAPES``: colons, ``a:``/``f:`` alternations, digit
runs with separators, slashes, dots, hex runs, mixes, random draws from the special characters) at
1 KB, 16 KB and 64 KB, and times, per line:

* masking: ``Masker().mask`` (the built-in masks on Python's ``re``; the target is ≤ 50 ms at 64 KB);
* formats: ``LineFormat.parse`` of every preset and of a few format strings (RE2), shown for reference.

Each time is the best of ``--repeats`` runs (one line is one call: the worst shape is what counts).
Normal lines/s is ``Masker().mask`` over generated HDFS-style lines for ``--seconds``.

    python benchmarks/adversarial.py [--repeats 3] [--seconds 2] [--sizes 1024,16384,65536]

The last line of output is one JSON object; ``worst_line_ms_64k`` is the worst masking time at 64 KB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.adversarial import SHAPES, line_of
from logwarden.core.parsing.formats import PRESETS, get_format
from logwarden.core.parsing.masking import Masker
from logwarden.core.synthetic import generate

FORMAT_STRINGS = ("<A>:<B>:<C> <Content>", "<Date> <Time> [<Level>] <Component>: <Content>", "<Content> (<Pid>)")


def best_ms(call, line: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call(line)
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def normal_lines_per_s(masker: Masker, seconds: float) -> float:
    lines = generate(n_sessions=400, anomaly_rate=0.0, seed=1).lines
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for line in lines:
            masker.mask(line)
        done += len(lines)
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to time normal lines")
    parser.add_argument("--sizes", default="1024,16384,65536", help="line lengths in characters")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    masker = Masker()
    formats = {name: get_format(name) for name in PRESETS} | {f: get_format(f) for f in FORMAT_STRINGS}
    masking: dict[str, dict[int, float]] = {}
    parsing: dict[str, dict[int, float]] = {}
    for shape in SHAPES:
        masking[shape] = {}
        parsing[shape] = {}
        for size in sizes:
            line = line_of(shape, size)
            masking[shape][size] = best_ms(masker.mask, line, args.repeats)
            parsing[shape][size] = max(best_ms(_parser(fmt), line, args.repeats) for fmt in formats.values())
    rate = normal_lines_per_s(masker, args.seconds)

    print(f"{'shape':<16}" + "".join(f"{'mask ' + _kb(s):>12}" for s in sizes) + f"{'parse ' + _kb(sizes[-1]):>14}")
    for shape in SHAPES:
        print(
            f"{shape:<16}"
            + "".join(f"{masking[shape][s]:>10.2f}ms" for s in sizes)
            + f"{parsing[shape][sizes[-1]]:>12.2f}ms"
        )
    worst = {s: max(masking[shape][s] for shape in SHAPES) for s in sizes}
    worst_shape = max(SHAPES, key=lambda shape: masking[shape][sizes[-1]])
    print("worst masking per line: " + ", ".join(f"{_kb(s)} {worst[s]:.2f} ms" for s in sizes) + f" ({worst_shape})")
    print(f"normal lines (generated HDFS): {rate:,.0f} lines/s masked")
    result = {
        "sizes": sizes,
        "worst_line_ms": {str(s): round(worst[s], 3) for s in sizes},
        "worst_shape_64k": worst_shape,
        "worst_parse_ms": {str(s): round(max(parsing[shape][s] for shape in SHAPES), 3) for s in sizes},
        "normal_lines_per_s": round(rate),
        "masking_ms": {shape: {str(s): round(v, 3) for s, v in by_size.items()} for shape, by_size in masking.items()},
    }
    if 65536 in worst:
        result["worst_line_ms_64k"] = round(worst[65536], 3)
    print(json.dumps(result))


def _parser(fmt):
    def parse(line: str) -> None:
        with contextlib.suppress(LogWardenError):  # a line that does not match its format is an answer too
            fmt.parse(line)

    return parse


def _kb(size: int) -> str:
    return f"{size // 1024}KB"


if __name__ == "__main__":
    main()
