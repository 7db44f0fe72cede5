"""Parsing benchmark: grouping accuracy and speed of TemplateParser.learn versus plain drain3.

For every loghub 2k system (``loghub_2k/loghub2_2k`` and ``loghub_2k/original``) it reads
``<S>_2k.log_structured.csv``, feeds the ``Content`` column to

* ours:   ``TemplateParser.learn`` (one combined masking regex + exact-match cache + drain3's Drain);
* drain3: ``TemplateMiner.add_log_message`` with the masking instructions of drain3's examples
          (ID, IP, SEQ, HEX, NUM, CMD; prefix ``<:``, suffix ``:>``), no persistence;

both with the same Drain parameters (sim_th, depth, max_children; defaults 0.55 / 4 / 100), and scores
the online cluster assignment of every line against ``EventId`` with the standard grouping accuracy
(a line is correct when its predicted group holds exactly the lines of its ground-truth group).

Speed: the headline figure is a fresh parser over each 2,000-line sample, timed ``--repeats`` times
(best kept, the two sides taking turns), masking included on both sides. A second figure replays
each sample 10 times into one parser, closer to production streams where masked lines repeat a lot
(the cache's effect).

    python benchmarks/parsing.py [--data DIR] [--repeats 5] [--replicate 10]

``--tuned SIM_TH DEPTH`` adds grouping accuracy at a second Drain setting, again the same for both.
The last line of output is one JSON object with the aggregate and per-system figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig
from tqdm import tqdm

from logwarden.core.parsing.templates import ParserConfig, TemplateParser

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
COLLECTIONS = ("loghub2_2k", "original")

# The masking list of drain3's example configuration (examples/drain3.ini, also in drain3/masking.py).
DRAIN3_MASKS = (
    (r"((?<=[^A-Za-z0-9])|^)(([0-9a-f]{2,}:){3,}([0-9a-f]{2,}))((?=[^A-Za-z0-9])|$)", "ID"),
    (r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})((?=[^A-Za-z0-9])|$)", "IP"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9a-f]{6,} ?){3,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9A-F]{4} ?){4,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)(0x[a-f0-9A-F]+)((?=[^A-Za-z0-9])|$)", "HEX"),
    (r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)", "NUM"),
    (r"(?<=executed cmd )(\".+?\")", "CMD"),
)


def load_system(structured_csv: Path) -> tuple[list[str], list[str]]:
    """Content lines (CRLF stripped) and ground-truth event ids of one loghub 2k sample."""
    with structured_csv.open(newline="", encoding="utf-8", errors="replace") as handle:
        rows = list(csv.DictReader(handle))
    return [r["Content"].rstrip("\r\n") for r in rows], [r["EventId"] for r in rows]


def grouping_accuracy(predicted: Sequence[object], truth: Sequence[str]) -> float:
    """Share of lines whose predicted group equals their ground-truth group as a set of lines."""
    if not truth:
        return 0.0
    truth_size = Counter(truth)
    members: dict[object, list[int]] = defaultdict(list)
    for i, p in enumerate(predicted):
        members[p].append(i)
    correct = 0
    for lines in members.values():
        events = {truth[i] for i in lines}
        if len(events) == 1 and truth_size[next(iter(events))] == len(lines):
            correct += len(lines)
    return correct / len(truth)


def ours_runner(config: ParserConfig) -> Callable[[Sequence[str]], list[int]]:
    def run(lines: Sequence[str]) -> list[int]:
        learn = TemplateParser(config).learn
        return [learn(line) for line in lines]

    return run


def drain3_runner(config: ParserConfig) -> Callable[[Sequence[str]], list[int]]:
    miner_config = TemplateMinerConfig()
    miner_config.drain_sim_th = config.sim_th
    miner_config.drain_depth = config.depth
    miner_config.drain_max_children = config.max_children
    miner_config.mask_prefix, miner_config.mask_suffix = "<:", ":>"
    miner_config.masking_instructions = [MaskingInstruction(p, name) for p, name in DRAIN3_MASKS]

    def run(lines: Sequence[str]) -> list[int]:
        add = TemplateMiner(None, miner_config).add_log_message
        return [add(line)["cluster_id"] for line in lines]

    return run


def timed_pair(
    runs: Sequence[Callable[[Sequence[str]], list[int]]], lines: Sequence[str], repeats: int
) -> list[tuple[list[int], float]]:
    """For each runner: the ids of its first run and its best (minimum) seconds over ``repeats`` fresh runs.

    The runners take turns, so a burst of load on a shared machine hits both sides alike; the minimum is
    the usual estimate of the undisturbed time (as ``timeit`` reports).
    """
    best = [float("inf")] * len(runs)
    ids: list[list[int]] = [[] for _ in runs]
    for attempt in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            result = run(lines)
            best[i] = min(best[i], time.perf_counter() - start)
            if attempt == 0:
                ids[i] = result
    return list(zip(ids, best, strict=True))


def find_systems(data: Path) -> list[tuple[str, Path]]:
    found = []
    for collection in COLLECTIONS:
        base = data / "loghub_2k" / collection
        for csv_path in sorted(base.glob("*/*_2k.log_structured.csv")):
            found.append((f"{collection}/{csv_path.parent.name}", csv_path))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared datasets folder")
    ap.add_argument("--repeats", type=int, default=5, help="fresh-parser timing runs per sample (median)")
    ap.add_argument("--replicate", type=int, default=10, help="replay factor of the repeated-stream figure")
    ap.add_argument("--sim-th", type=float, default=ParserConfig.sim_th)
    ap.add_argument("--depth", type=int, default=ParserConfig.depth)
    ap.add_argument("--only", default="", help="substring filter on system names")
    ap.add_argument(
        "--tuned",
        nargs=2,
        type=float,
        default=(0.7, 5),
        metavar=("SIM_TH", "DEPTH"),
        help="a second Drain setting, the same for both sides, for grouping accuracy only",
    )
    args = ap.parse_args(argv)

    systems = [s for s in find_systems(args.data) if args.only in s[0]] if args.data.is_dir() else []
    if not systems:
        note = f"no loghub 2k data under {args.data}: parsing benchmark skipped"
        print(note)
        print(json.dumps({"skipped": True, "note": note}))
        return 0

    config = ParserConfig(sim_th=args.sim_th, depth=args.depth)
    ours, drain3 = ours_runner(config), drain3_runner(config)
    rows = []
    for name, path in tqdm(systems, desc="systems", unit="system", file=sys.stderr):
        lines, truth = load_system(path)
        (ours_ids, ours_s), (d3_ids, d3_s) = timed_pair((ours, drain3), lines, args.repeats)
        stream = list(lines) * args.replicate
        (_, ours_rep_s), (_, d3_rep_s) = timed_pair((ours, drain3), stream, 2)
        if args.tuned:
            tuned = ParserConfig(sim_th=args.tuned[0], depth=int(args.tuned[1]))
            tuned_ga = grouping_accuracy(ours_runner(tuned)(lines), truth)
            tuned_d3_ga = grouping_accuracy(drain3_runner(tuned)(lines), truth)
        rows.append(
            {
                "system": name,
                "lines": len(lines),
                "ga": round(grouping_accuracy(ours_ids, truth), 4),
                "drain3_ga": round(grouping_accuracy(d3_ids, truth), 4),
                "seconds": ours_s,
                "drain3_seconds": d3_s,
                "replicated_seconds": ours_rep_s,
                "drain3_replicated_seconds": d3_rep_s,
                "templates": len(set(ours_ids)),
                "drain3_templates": len(set(d3_ids)),
                "truth_templates": len(set(truth)),
            }
        )
        if args.tuned:
            rows[-1].update(tuned_ga=round(tuned_ga, 4), tuned_drain3_ga=round(tuned_d3_ga, 4))

    print(
        f"\nGrouping accuracy and speed, sim_th={args.sim_th} depth={args.depth} for both; drain3 uses its "
        f"example masking. Speed: fresh parser per 2k sample, best of {args.repeats} runs (headline);"
        f" 'x{args.replicate}' = each sample replayed {args.replicate}x into one parser."
    )
    header = (
        f"{'system':<24} {'GA':>6} {'d3 GA':>6} {'tmpl':>5} {'d3':>5} {'truth':>5} "
        f"{'lines/s':>9} {'d3 l/s':>9} {'speedup':>7} {'x10 l/s':>9} {'d3 x10':>9} {'x10 sp':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        n, rep = r["lines"], r["lines"] * args.replicate
        print(
            f"{r['system']:<24} {r['ga']:>6.3f} {r['drain3_ga']:>6.3f} {r['templates']:>5} "
            f"{r['drain3_templates']:>5} {r['truth_templates']:>5} {n / r['seconds']:>9,.0f} "
            f"{n / r['drain3_seconds']:>9,.0f} {r['drain3_seconds'] / r['seconds']:>6.2f}x "
            f"{rep / r['replicated_seconds']:>9,.0f} {rep / r['drain3_replicated_seconds']:>9,.0f} "
            f"{r['drain3_replicated_seconds'] / r['replicated_seconds']:>5.2f}x"
        )

    total = sum(r["lines"] for r in rows)
    summary = {
        "ga_mean": round(statistics.mean(r["ga"] for r in rows), 4),
        "drain3_ga_mean": round(statistics.mean(r["drain3_ga"] for r in rows), 4),
        "lines_per_s": round(total / sum(r["seconds"] for r in rows)),
        "drain3_lines_per_s": round(total / sum(r["drain3_seconds"] for r in rows)),
        "replicated_lines_per_s": round(total * args.replicate / sum(r["replicated_seconds"] for r in rows)),
        "drain3_replicated_lines_per_s": round(
            total * args.replicate / sum(r["drain3_replicated_seconds"] for r in rows)
        ),
    }
    summary["speedup"] = round(summary["lines_per_s"] / summary["drain3_lines_per_s"], 2)
    summary["replicated_speedup"] = round(
        summary["replicated_lines_per_s"] / summary["drain3_replicated_lines_per_s"], 2
    )
    if args.tuned:
        summary["tuned"] = {
            "sim_th": args.tuned[0],
            "depth": int(args.tuned[1]),
            "ga_mean": round(statistics.mean(r["tuned_ga"] for r in rows), 4),
            "drain3_ga_mean": round(statistics.mean(r["tuned_drain3_ga"] for r in rows), 4),
        }
    for collection in COLLECTIONS:
        part = [r for r in rows if r["system"].startswith(collection + "/")]
        if part:
            summary[f"ga_mean_{collection}"] = round(statistics.mean(r["ga"] for r in part), 4)
            summary[f"drain3_ga_mean_{collection}"] = round(statistics.mean(r["drain3_ga"] for r in part), 4)
    print("-" * len(header))
    print(
        f"{'mean / overall':<24} {summary['ga_mean']:>6.3f} {summary['drain3_ga_mean']:>6.3f} {'':>17} "
        f"{summary['lines_per_s']:>9,} {summary['drain3_lines_per_s']:>9,} {summary['speedup']:>6.2f}x "
        f"{summary['replicated_lines_per_s']:>9,} {summary['drain3_replicated_lines_per_s']:>9,} "
        f"{summary['replicated_speedup']:>5.2f}x"
    )
    print("lines/s overall = all lines / all seconds; GA mean = unweighted mean over the samples.")
    if args.tuned:
        t = summary["tuned"]
        print(
            f"GA with sim_th={t['sim_th']} depth={t['depth']} for both sides: ours {t['ga_mean']:.4f}, "
            f"drain3 {t['drain3_ga_mean']:.4f}"
        )
    summary.update(
        {
            "settings": {
                "sim_th": args.sim_th,
                "depth": args.depth,
                "max_children": config.max_children,
                "repeats": args.repeats,
                "replicate": args.replicate,
                "headline": "fresh parser per 2k sample, best of repeats, masking included",
            },
            "systems": {
                r["system"]: {
                    "ga": r["ga"],
                    "drain3_ga": r["drain3_ga"],
                    "lines_per_s": round(r["lines"] / r["seconds"]),
                    "drain3_lines_per_s": round(r["lines"] / r["drain3_seconds"]),
                    "replicated_lines_per_s": round(r["lines"] * args.replicate / r["replicated_seconds"]),
                    "drain3_replicated_lines_per_s": round(
                        r["lines"] * args.replicate / r["drain3_replicated_seconds"]
                    ),
                    "templates": r["templates"],
                    "drain3_templates": r["drain3_templates"],
                    "truth_templates": r["truth_templates"],
                }
                for r in rows
            },
        }
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
