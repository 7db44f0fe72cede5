"""HDFS_v1 accuracy benchmark (LogGPT-style next-key detection, K chosen on normal validation data).

Headline protocol: the full HDFS_v1 population with repeats collapsed (unique sequence + count).
Train on 5,000 normal sessions drawn at random from the expanded population (seed 7), of which
a validation share chooses K; test on every other session, weighted by its count.
Second protocol: DeepLog's uncollapsed files (train ``deeplog/hdfs_train``, test all 16,838
abnormal + the normal sessions of ait ``hdfs_loghub/hdfs_train`` and logdeep's robust split).

    python benchmarks/hdfs.py [--data DIR] [--protocol headline|deeplog|both]

Prints a table per protocol, writes an HTML report with plots under ``reports/hdfs-*``, and ends
with one JSON line (the headline protocol's figures, the other protocol nested).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from logwarden.core.detect.calibration import choose_k
from logwarden.core.model.config import ModelConfig, TrainConfig
from logwarden.core.pipeline.evaluate import compute_metrics, format_metrics_table, hindsight_f1, template_breakdown
from logwarden.core.pipeline.fit import FitSettings, fit_sequences
from logwarden.core.pipeline.report import write_report

SWEEP = (0.001, 0.002, 0.005, 0.01)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "datasets"


def settings(args) -> FitSettings:
    return FitSettings(
        model=ModelConfig(n_layer=args.layers, n_head=4, n_embd=args.embd, max_len=128, dropout=0.0),
        train=TrainConfig(
            epochs=args.epochs, batch_size=16, lr=1e-3, patience=8, seed=args.train_seed, device=args.device
        ),
        val_fraction=0.2,
        target_fpr=args.target_fpr,
        min_template_sessions=args.min_template_sessions,
        check_combinations=not args.no_combinations,
    )


def read_counts(path: Path) -> list[tuple[int, list[str]]]:
    with open(path, newline="") as handle:
        return [(int(r["count"]), r["sequence"].split()) for r in csv.DictReader(handle)]


def score_all(detector, sessions) -> list:
    return [v for i in range(0, len(sessions), 2048) for v in detector.score_keys(sessions[i : i + 2048])]


def worst_surprisal(verdict) -> float:
    """The largest surprisal of any event or of the session's end (new templates: a large finite value)."""
    values = [e.surprisal for e in verdict.events] + ([verdict.end.surprisal] if verdict.end else [])
    return min(max(values, default=0.0), 1e9)


def ceilings(verdicts, y, w) -> dict:
    """Hindsight F1 (threshold picked with the test labels) of K with the model's end and combination
    checks, and of the worst surprisal alone: how far the honestly calibrated result is from what these scores allow."""
    scores = {
        "k": [1e9 if flagged_whatever_k(v) else worst_event_rank(v) for v in verdicts],
        "surprisal": [worst_surprisal(v) for v in verdicts],
    }
    ceiling = {}
    for name, values in scores.items():
        f1, threshold = hindsight_f1(y, np.array(values, dtype=float), w)
        ceiling[name] = {"f1": round(f1, 4), "threshold": round(threshold, 3)}
    print(
        "  ceiling (diagnostic: threshold chosen WITH the test labels, not a result): "
        f"best K {ceiling['k']['threshold']:g} with the end and combination checks F1 {ceiling['k']['f1']}; "
        f"worst surprisal alone F1 {ceiling['surprisal']['f1']} at > {ceiling['surprisal']['threshold']}"
    )
    return ceiling


def describe_combinations(detector) -> str:
    if detector.combinations is None:
        return "off"
    combinations, fpr = len(detector.combinations), detector.calibration.combination_fpr
    return f"{combinations} normal combinations, validation FPR {fpr:.4f}"


def worst_event_rank(verdict) -> int:
    return max((e.rank for e in verdict.events), default=0)


def flagged_whatever_k(verdict) -> bool:
    """Flagged by the end or the combination check, which K does not decide."""
    return (verdict.end is not None and verdict.end.anomalous) or bool(verdict.combination)


def target_sweep(detector, val, test_verdicts, y, w) -> list[dict]:
    """K chosen on normal validation data for several target false-positive rates, and what it gives.

    The end-of-session threshold and the combination check are the model's; K varies, chosen so that
    all checks together flag at most the target share of the validation sessions.
    """
    val_verdicts = score_all(detector, val)
    val_worst = np.array([np.inf if flagged_whatever_k(v) else worst_event_rank(v) for v in val_verdicts])
    test_worst = np.array([worst_event_rank(v) for v in test_verdicts])
    test_flagged = np.array([flagged_whatever_k(v) for v in test_verdicts])
    rows = []
    for target in SWEEP:
        k, val_fpr = choose_k(val_worst, target, len(detector.vocab))
        m = compute_metrics(y, ((test_worst > k) | test_flagged).astype(int), test_worst.astype(float), w)
        rows.append(
            {
                "target_fpr": target,
                "k": k,
                "validation_fpr": round(val_fpr, 4),
                "precision": round(m.precision, 4),
                "recall": round(m.recall, 4),
                "f1": round(m.f1, 4),
                "fp": int(m.fp),
                "fn": int(m.fn),
            }
        )
    print("  target FPR sweep (K chosen on normal validation sessions only; end and combination checks fixed):")
    print("    target     K  val FPR  precision  recall      F1       FP      FN")
    for r in rows:
        print(
            f"    {r['target_fpr']:<8} {r['k']:>3} {r['validation_fpr']:>8} {r['precision']:>10} {r['recall']:>7}"
            f" {r['f1']:>7} {r['fp']:>8} {r['fn']:>7}"
        )
    return rows


def evaluate(name: str, fit, test: list[list[str]], y: np.ndarray, w: np.ndarray, seconds: float, extra: dict):
    detector = fit.detector
    start = time.perf_counter()
    verdicts = score_all(detector, test)
    score_seconds = time.perf_counter() - start
    pred = np.array([v.anomalous for v in verdicts], dtype=int)
    scores = np.array([v.score for v in verdicts])
    metrics = compute_metrics(y, pred, scores, w)
    fps = [
        (v.reason_code or "unknown", float(wi))
        for v, yi, wi in zip(verdicts, y, w, strict=True)
        if v.anomalous and not yi
    ]
    fns = [
        (" ".join(s[:12]), float(wi))
        for s, v, yi, wi in zip(test, verdicts, y, w, strict=True)
        if yi and not v.anomalous
    ]
    print(format_metrics_table(metrics, f"HDFS — {name}"))
    print(
        f"  K = {detector.calibration.k} (validation FPR {detector.calibration.validation_fpr:.4f}, "
        f"target {detector.calibration.target_fpr}); end threshold: surprisal {detector.calibration.end_surprisal}; "
        f"combination check: {describe_combinations(detector)}; "
        f"train {seconds:.1f} s; "
        f"scored {int(sum(len(s) for s in test))} unique-sequence events in {score_seconds:.1f} s"
    )
    report = write_report(
        ROOT / "reports" / f"hdfs-{name}",
        title=f"HDFS {name}",
        metrics=metrics,
        y_true=y,
        scores=scores,
        weights=w,
        threshold=0.5,
        false_positive_templates=template_breakdown(fps),
        false_negative_templates=template_breakdown(fns),
        extra=extra,
    )
    print(f"  report: {report['html']}")
    sweep = target_sweep(detector, fit.val_sessions, verdicts, y, w)
    ceiling = ceilings(verdicts, y, w)
    return {
        "protocol": name,
        **{k: metrics.to_dict()[k] for k in ("precision", "recall", "f1", "roc_auc", "pr_auc", "tp", "fp", "tn", "fn")},
        "k": detector.calibration.k,
        "end_surprisal": detector.calibration.end_surprisal,
        "combinations": len(detector.combinations) if detector.combinations is not None else None,
        "combination_fpr": detector.calibration.combination_fpr,
        "validation_fpr": detector.calibration.validation_fpr,
        "target_fpr": detector.calibration.target_fpr,
        "train_seconds": round(seconds, 1),
        "best_epoch": detector.config.metrics["best_epoch"],
        **extra,
        "sweep": sweep,
        "hindsight_ceiling": ceiling,
    }


def headline(data: Path, args) -> dict:
    hdfs = data / "hdfs" / "derived"
    normal = read_counts(hdfs / "hdfs_v1_normal_collapsed_counts.csv")
    abnormal = read_counts(hdfs / "hdfs_v1_abnormal_collapsed_counts.csv")
    population = np.repeat(np.arange(len(normal)), [c for c, _ in normal])
    picked = population[np.random.default_rng(7).permutation(len(population))[:5000]]
    train = [normal[i][1] for i in picked]
    start = time.perf_counter()
    fit = fit_sequences(train, settings(args), progress=not args.quiet)
    seconds = time.perf_counter() - start
    left = np.bincount(population, minlength=len(normal)) - np.bincount(picked, minlength=len(normal))
    test = [s for _, s in normal] + [s for _, s in abnormal]
    y = np.r_[np.zeros(len(normal), int), np.ones(len(abnormal), int)]
    w = np.r_[left, [c for c, _ in abnormal]].astype(float)
    keep = w > 0
    test = [s for s, k in zip(test, keep, strict=True) if k]
    return evaluate(
        "headline-collapsed",
        fit,
        test,
        y[keep],
        w[keep],
        seconds,
        {
            "train_sessions": fit.n_train,
            "val_sessions": fit.n_val,
            "test_normal": int(w[keep][y[keep] == 0].sum()),
            "test_abnormal": int(w[y == 1].sum()),
        },
    )


def deeplog(data: Path, args) -> dict:
    hdfs = data / "hdfs"
    train = [line.split() for line in (hdfs / "deeplog" / "hdfs_train").read_text().splitlines() if line.strip()]
    abnormal = [
        line.split() for line in (hdfs / "deeplog" / "hdfs_test_abnormal").read_text().splitlines() if line.strip()
    ]
    normal = [
        line.split(",", 1)[1].split()
        for line in (hdfs / "ait_aecid" / "hdfs_loghub" / "hdfs_train").read_text().splitlines()
        if line.strip()
    ]
    for name in ("robust_log_train.csv", "robust_log_valid.csv"):
        with open(hdfs / "logdeep_robustlog" / name, newline="") as handle:
            normal += [r["Sequence"].split() for r in csv.DictReader(handle) if r["label"] == "0"]
    start = time.perf_counter()
    fit = fit_sequences(train, settings(args), progress=not args.quiet)
    seconds = time.perf_counter() - start
    # identical sequences get identical verdicts: score each once, weight by its count
    counts = Counter(tuple(s) for s in normal), Counter(tuple(s) for s in abnormal)
    test = [list(s) for c in counts for s in c]
    y = np.r_[np.zeros(len(counts[0]), int), np.ones(len(counts[1]), int)]
    w = np.array([n for c in counts for n in c.values()], dtype=float)
    return evaluate(
        "deeplog-uncollapsed",
        fit,
        test,
        y,
        w,
        seconds,
        {
            "train_sessions": fit.n_train,
            "val_sessions": fit.n_val,
            "test_normal": len(normal),
            "test_abnormal": len(abnormal),
        },
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--protocol", choices=["headline", "deeplog", "both"], default="both")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--embd", type=int, default=64)
    parser.add_argument("--target-fpr", type=float, default=0.005)
    parser.add_argument("--min-template-sessions", type=int, default=5)
    parser.add_argument("--no-combinations", action="store_true", help="next-key and end checks only")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train-seed", type=int, default=7, help="weights, shuffling and the validation split")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if not (args.data / "hdfs").is_dir():
        print(f"HDFS data not found under {args.data}; nothing measured.")
        print(json.dumps({"protocol": "none", "error": f"no data at {args.data}"}))
        return 0
    results = {}
    if args.protocol in ("headline", "both"):
        results["headline"] = headline(args.data, args)
    if args.protocol in ("deeplog", "both"):
        results["deeplog"] = deeplog(args.data, args)
    final = dict(results.get("headline") or results["deeplog"])
    if "headline" in results and "deeplog" in results:
        final["deeplog_protocol"] = results["deeplog"]
    print(json.dumps(final))
    return 0


if __name__ == "__main__":
    sys.exit(main())
