"""Detection on windowed syslog-like logs (BGL, Thunderbird): LogWarden beside two baselines, same windows.

    python benchmarks/windowed.py [--data DIR] [--datasets gen-bgl,gen-tb,bgl2k,tb2k,bgl-dev] [--windows time60,count20]

Protocol, per dataset and window kind: the records in time order are split chronologically, the first 80 %
for training and the last 20 % for testing (``core.pipeline.split``); windows are cut on each side (60 s
windows with a 60 s step, or 20 events with a step of 20) per input source; a window is anomalous when one
of its lines is. LogWarden trains on the normal training windows exactly as ``logwarden train`` does
(anomalous ones dropped, its own chronological validation split, K and every threshold from the normal
validation windows only), is saved, loaded back through the artifact (onnxruntime) and scores the test
windows. Two baselines run on the same windows in the same run:

* **new template**: a window is anomalous when it holds a template that no normal training window had;
* **PCA** (Xu et al., SOSP'09, as loglizer does it): TF-IDF-weighted template-count vectors of the normal
  training windows, the principal subspace that explains 95 % of their variance, the squared prediction
  error as the score; the threshold flags the target share (0.5 %) of the normal validation windows.

Reported per row: precision, recall, F1, ROC-AUC, PR-AUC, and LogWarden's validation false-positive rate
as its training reported it and as re-measured by scoring the validation windows through the saved
artifact (they must agree). Data: ``--data`` (default ``../shared/datasets``): loghub's BGL and Thunderbird
2k samples (text; the Thunderbird sample has no anomaly, so only false positives show there) and
``bgl_dev`` (the first ~100k BGL lines as template ids only: the sequence model and calibration without
text); plus corpora generated here (``core.synthetic_syslog``: drifting benign templates, injected faults).
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from logwarden.core.detect.detector import Detector
from logwarden.core.model.backends import set_torch_threads
from logwarden.core.model.config import ModelConfig, TrainConfig
from logwarden.core.parsing.formats import get_format
from logwarden.core.parsing.reader import read_records
from logwarden.core.parsing.sessions import Event, Session, SessionRule, build_sessions
from logwarden.core.parsing.templates import TemplateParser
from logwarden.core.pipeline.evaluate import compute_metrics
from logwarden.core.pipeline.fit import FitSettings, fit_sequences, save_detector, train_from_logs
from logwarden.core.pipeline.split import after, before, cut_time
from logwarden.core.records import LogRecord
from logwarden.core.synthetic_syslog import generate

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "datasets"
DATASETS = ("gen-bgl", "gen-tb", "bgl2k", "tb2k", "bgl-dev")
WINDOWS = {  # name → (session rule, per host): per-host windows run one timeline per node (the preset's field)
    "time60": (SessionRule(kind="time", window_seconds=60.0, step_seconds=60.0), False),
    "count20": (SessionRule(kind="count", window_size=20, step_size=20), False),
    "time60-host": (SessionRule(kind="time", window_seconds=60.0, step_seconds=60.0), True),
    "count20-host": (SessionRule(kind="count", window_size=20, step_size=20), True),
}
DEFAULT_WINDOWS = ("time60", "count20")
PCA_VARIANCE = 0.95


@dataclass
class Data:
    name: str
    fmt: str  # the line format's spec ("" for template ids)
    records: list[LogRecord]  # in time order
    text: bool  # False: the content is a template id


def load(name: str, data: Path, args) -> Data | None:
    """The records of a dataset in time order, or None when its files are absent."""
    if name in ("gen-bgl", "gen-tb"):
        flavour = "bgl" if name == "gen-bgl" else "thunderbird"
        corpus = generate(flavour, hours=args.hours, nodes=args.nodes, faults_per_hour=args.faults, seed=args.seed)
        fmt = get_format(flavour)
        return Data(name, fmt.spec, [fmt.parse(line, name, i + 1) for i, line in enumerate(corpus.lines)], True)
    if name in ("bgl2k", "tb2k"):
        system = "BGL" if name == "bgl2k" else "Thunderbird"
        path = data / "loghub_2k" / "loghub2_2k" / system / f"{system}_2k.log"
        if not path.is_file():
            return None
        fmt = get_format(system.lower())
        records = sorted(read_records([str(path)], fmt), key=lambda r: (r.timestamp or 0.0, r.line_no))
        return Data(name, fmt.spec, records, True)
    path = data / "bgl_dev" / "BGL_first100k_label_time_event.csv"
    if not path.is_file():
        return None
    records = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            seconds = datetime.strptime(row["Time"], "%Y-%m-%d-%H.%M.%S.%f").replace(tzinfo=UTC).timestamp()
            records.append(LogRecord(row["EventId"], name, int(row["LineId"]), seconds, {}, int(row["Label"] != "-")))
    return Data(name, "", records, False)


def settings(args) -> FitSettings:
    return FitSettings(
        model=ModelConfig(n_layer=2, n_head=4, n_embd=64, max_len=128),
        train=TrainConfig(epochs=args.epochs, batch_size=32, lr=1e-3, patience=args.patience, seed=args.seed),
        target_fpr=args.target_fpr,
        novelty=args.novelty,
        auto_min_template_sessions=not args.fixed_min_template_sessions,
        check_counts=not args.no_counts,
    )


def keys_of(sessions: Sequence[Session]) -> list[list[str | None]]:
    return [[e.key for e in s.events] for s in sessions]


# -- baselines ------------------------------------------------------------------------------------------------


def new_template_scores(known: set[str], windows: Sequence[Sequence[str | None]]) -> np.ndarray:
    """Share of a window's events whose template no normal training window had (> 0: anomalous)."""
    return np.array([np.mean([k is None or k not in known for k in w]) if w else 0.0 for w in windows])


class PCABaseline:
    """PCA on TF-IDF-weighted template counts; the score is the squared prediction error (SPE)."""

    def __init__(self, train: Sequence[Sequence[str]], variance: float = PCA_VARIANCE) -> None:
        from sklearn.decomposition import PCA

        self.columns = {k: i for i, k in enumerate(dict.fromkeys(k for w in train for k in w))}
        counts = self._counts(train)
        df = (counts > 0).sum(axis=0)
        self.idf = np.log((len(train) + 1) / (df + 1)) + 1.0
        self.idf[-1] = np.log(len(train) + 1) + 1.0  # the column of templates never seen in training
        x = counts * self.idf
        self.mean = x.mean(axis=0)
        centred = x - self.mean
        n_components = min(centred.shape) - 1
        if n_components < 1:
            self.components = np.zeros((0, x.shape[1]))
            return
        pca = PCA(n_components=n_components, svd_solver="full").fit(centred)
        keep = int(np.searchsorted(np.cumsum(pca.explained_variance_ratio_), variance) + 1)
        self.components = pca.components_[:keep]

    def _counts(self, windows: Sequence[Sequence[str | None]]) -> np.ndarray:
        out = np.zeros((len(windows), len(self.columns) + 1))
        for row, w in enumerate(windows):
            for k in w:
                out[row, self.columns.get(k, len(self.columns)) if k is not None else len(self.columns)] += 1
        return out

    def scores(self, windows: Sequence[Sequence[str | None]]) -> np.ndarray:
        y = self._counts(windows) * self.idf - self.mean
        residual = y - (y @ self.components.T) @ self.components
        return (residual**2).sum(axis=1)


def threshold_for(val_scores: np.ndarray, target: float) -> float:
    """The smallest threshold flagging at most ``target`` of the validation scores (flag when score > it)."""
    ranked = np.sort(val_scores)[::-1]
    allowed = int(np.floor(len(ranked) * target))
    return float(ranked[allowed]) if len(ranked) else 0.0


# -- one run ------------------------------------------------------------------------------------------------


def rule_for(data: Data, window: str) -> SessionRule | None:
    """The window's session rule for this dataset (None: per-host windows of data without a host field)."""
    rule, per_host = WINDOWS[window]
    if not per_host:
        return rule
    preset = get_format(data.fmt).preset if data.fmt else None
    if preset is None or preset.host_field is None:
        return None
    return replace(rule, scope="field", group_field=preset.host_field)


def run(data: Data, window: str, args, workdir: Path) -> dict | None:
    rule = rule_for(data, window)
    if rule is None:
        return None
    cut = cut_time((r.timestamp for r in data.records), 0.8)
    train_records = list(before(data.records, cut))
    test_records = list(after(data.records, cut))
    start = time.perf_counter()
    if data.text:
        fmt = get_format(data.fmt)
        fit, _ = train_from_logs(
            train_records,
            parser=TemplateParser(),
            rule=rule,
            settings=settings(args),
            line_format=fmt.spec,
            progress=False,
            level_field=fmt.level_field,
        )
    else:  # template ids: sessions of keys, no text
        windows = build_sessions([Event(r, r.content) for r in train_records], rule)
        normal = [[e.key for e in s.events] for s in windows if not s.label]
        extra = {"line_format": "plain", "sessions": rule}
        fit = fit_sequences(normal, settings(args), progress=False, extra_config=extra, windows=True)
    train_seconds = time.perf_counter() - start
    path = save_detector(fit.detector, workdir / f"{data.name}-{window}")
    detector = Detector.load(path, threads=args.threads)
    # the validation windows again, through the saved artifact: the reported rate must be what it does
    revisited = detector.score_keys(fit.val_sessions, lines=fit.val_lines)
    remeasured = float(np.mean([v.anomalous for v in revisited]))
    parse = detector.parse if data.text else (lambda r: Event(r, r.content))
    test_windows = build_sessions([parse(r) for r in test_records], rule)
    y = np.array([int(bool(s.label)) for s in test_windows])
    lines = [[detector.line(e.record) for e in s.events] for s in test_windows] if data.text else None
    verdicts = detector.score_keys(keys_of(test_windows), lines=lines)
    rows = {
        "LogWarden": (
            np.array([v.anomalous for v in verdicts], dtype=int),
            np.array([v.score for v in verdicts]),
        )
    }
    normal_train = [list(s) for s in fit.train_sessions]
    known = {k for w in normal_train + [list(s) for s in fit.val_sessions] for k in w}
    new = new_template_scores(known, keys_of(test_windows))
    rows["new template"] = ((new > 0).astype(int), new)
    pca = PCABaseline(normal_train)
    threshold = threshold_for(pca.scores(fit.val_sessions), args.target_fpr)
    pca_scores = pca.scores(keys_of(test_windows))
    rows["PCA"] = ((pca_scores > threshold).astype(int), pca_scores)
    cal = detector.calibration
    result = {
        "dataset": data.name,
        "windows": window,
        "train_windows": fit.n_train,
        "val_windows": fit.n_val,
        "test_windows": len(test_windows),
        "test_anomalous": int(y.sum()),
        "k": cal.k,
        "candidates": detector.candidates,
        "novelty_threshold": cal.novelty_threshold,
        "validation_fpr_reported": round(cal.validation_fpr, 6),
        "validation_fpr_remeasured": round(remeasured, 6),
        "train_seconds": round(train_seconds, 1),
        "notes": [n["code"] for n in detector.config.notes],
        "methods": {},
    }
    for method, (pred, scores) in rows.items():
        m = compute_metrics(y, pred, scores)
        result["methods"][method] = {
            "precision": round(m.precision, 4),
            "recall": round(m.recall, 4),
            "f1": round(m.f1, 4),
            "roc_auc": None if m.roc_auc is None else round(m.roc_auc, 4),
            "pr_auc": None if m.pr_auc is None else round(m.pr_auc, 4),
            "fp": int(m.fp),
            "fn": int(m.fn),
            "test_fpr": None if m.n_normal == 0 else round(m.fp / m.n_normal, 4),
        }
    return result


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def table(results: list[dict]) -> str:
    head = (
        f"{'dataset':<9} {'windows':<12} {'train/val/test (anom)':<24} {'method':<13} {'P':>6} {'R':>6} {'F1':>6} "
        f"{'ROC':>6} {'PR':>6} {'FP':>5} {'FN':>5}  LogWarden: K / candidates, val FPR reported = re-measured"
    )
    out = [head, "-" * len(head)]
    for r in results:
        sizes = f"{r['train_windows']}/{r['val_windows']}/{r['test_windows']} ({r['test_anomalous']})"
        for i, (method, m) in enumerate(r["methods"].items()):
            tail = ""
            if i == 0:
                same = "=" if r["validation_fpr_reported"] == r["validation_fpr_remeasured"] else "!="
                tail = (
                    f"  K {r['k']}/{r['candidates']}, {r['validation_fpr_reported']:.4f} {same} "
                    f"{r['validation_fpr_remeasured']:.4f}, train {r['train_seconds']} s"
                )
            first = i == 0
            out.append(
                f"{r['dataset'] if first else '':<9} {r['windows'] if first else '':<12} {sizes if first else '':<24} "
                f"{method:<13} {_num(m['precision']):>6} {_num(m['recall']):>6} {_num(m['f1']):>6} "
                f"{_num(m['roc_auc']):>6} {_num(m['pr_auc']):>6} {m['fp']:>5} {m['fn']:>5}{tail}"
            )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {', '.join(DATASETS)}")
    parser.add_argument(
        "--windows", default=",".join(DEFAULT_WINDOWS), help=f"comma-separated, of {', '.join(WINDOWS)}"
    )
    parser.add_argument("--hours", type=float, default=48.0, help="generated corpora: hours of logs")
    parser.add_argument("--nodes", type=int, default=16, help="generated corpora: nodes")
    parser.add_argument("--faults", type=float, default=3.0, help="generated corpora: fault episodes per hour")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--target-fpr", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads")
    parser.add_argument("--novelty", choices=["graded", "always"], default="graded", help="ablation: 'always'")
    parser.add_argument(
        "--fixed-min-template-sessions", action="store_true", help="ablation: never lower min-template-sessions"
    )
    parser.add_argument("--no-counts", action="store_true", help="ablation: no count check")
    args = parser.parse_args()
    set_torch_threads(args.threads)
    results, skipped = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in [n for n in args.datasets.split(",") if n]:
            if name not in DATASETS:
                parser.error(f"unknown dataset {name!r}")
            data = load(name, args.data, args)
            if data is None:
                skipped.append(name)
                print(f"{name}: data not found under {args.data}; skipped", file=sys.stderr)
                continue
            for window in [w for w in args.windows.split(",") if w]:
                if window not in WINDOWS:
                    parser.error(f"unknown windows {window!r}")
                result = run(data, window, args, Path(tmp))
                if result is None:
                    print(f"{name}: no host field for {window}; skipped", file=sys.stderr)
                    continue
                results.append(result)
                print(table([result]), file=sys.stderr, flush=True)
    print(table(results))
    ablations = {"novelty": args.novelty, "fixed_min": args.fixed_min_template_sessions, "no_counts": args.no_counts}
    print(
        json.dumps(
            {"results": results, "skipped": skipped, "target_fpr": args.target_fpr, "seed": args.seed, **ablations}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
