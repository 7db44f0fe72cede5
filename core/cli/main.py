"""The ``logwarden`` command: generate, train, score, evaluate, info, labels, retrain, serve."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.templates import ParserConfig

LABEL_WORDS = {"anomaly": 1, "anomalous": 1, "abnormal": 1, "1": 1, "true": 1, "normal": 0, "0": 0, "false": 0}


def read_session_labels(path: Path) -> dict[str, int]:
    """A CSV of ``session,label`` (loghub's ``BlockId,Label`` with Anomaly/Normal works as is)."""
    labels: dict[str, int] = {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for row_no, row in enumerate(csv.reader(handle), start=1):
                if len(row) < 2 or not row[0].strip():
                    continue
                word = row[1].strip().lower()
                if word not in LABEL_WORDS:
                    if row_no == 1:
                        continue  # header
                    raise LogWardenError(f"{path}:{row_no}: unknown label {row[1]!r} (use Anomaly/Normal or 1/0)")
                labels[row[0].strip()] = LABEL_WORDS[word]
    except OSError as exc:
        raise LogWardenError(f"cannot read labels file {path}: {exc.strerror}") from exc
    return labels


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="log files, globs or gzip files; '-' reads standard input")
    p.add_argument("--max-line-bytes", type=int, default=65536, help="longer lines are skipped and reported")
    p.add_argument("--json-message", default="message", help="JSON lines: field holding the message")
    p.add_argument("--json-timestamp", default=None, help="JSON lines: field holding the timestamp")
    p.add_argument("--json-session", default=None, help="JSON lines: field holding the session key")
    p.add_argument("--json-label", default=None, help="JSON lines: field holding a per-line label")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logwarden", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model version on normal logs")
    _add_input(t)
    t.add_argument(
        "--format", default="plain", help="preset (hdfs, bgl, thunderbird), json, plain or '<A> <B>: <Content>'"
    )
    t.add_argument("--out", type=Path, required=True, help="model root; a new version directory is created in it")
    t.add_argument("--labels", type=Path, help="CSV of session,label: anomalous sessions are left out of training")
    g = t.add_argument_group("sessions (default: the format preset's rule, else one session per source)")
    g.add_argument("--session-key", help="regex over the message; the match (or group 1) is the session key")
    g.add_argument("--session-field", help="a parsed field holding the session key")
    g.add_argument("--time-window", type=float, help="time windows of this many seconds")
    g.add_argument("--count-window", type=int, help="windows of this many events")
    g.add_argument("--step", type=float, help="window step (seconds or events); default: the window length")
    m = t.add_argument_group("model and training")
    m.add_argument("--layers", type=int, default=2)
    m.add_argument("--heads", type=int, default=4)
    m.add_argument("--embd", type=int, default=64)
    m.add_argument("--max-len", type=int, default=256, help="context window in events")
    m.add_argument("--epochs", type=int, default=40)
    m.add_argument("--batch-size", type=int, default=32)
    m.add_argument("--lr", type=float, default=1e-3)
    m.add_argument("--patience", type=int, default=6, help="epochs without validation improvement before stopping")
    m.add_argument(
        "--min-template-sessions",
        type=int,
        default=5,
        help="templates (and sets of templates) in fewer normal training sessions are rare and alert like new ones",
    )
    m.add_argument(
        "--no-combinations",
        dest="check_combinations",
        action="store_false",
        help="do not judge a complete session's set of templates (by default a rare combination alerts, when "
        "calibration finds that check within the target false-positive rate)",
    )
    m.add_argument("--seed", type=int, default=7)
    m.add_argument("--device", default="auto", help="auto, cpu or cuda")
    m.add_argument("--val-fraction", type=float, default=0.2)
    m.add_argument(
        "--target-fpr", type=float, default=0.005, help="share of normal validation sessions allowed to alert"
    )
    m.add_argument("--sim-th", type=float, default=ParserConfig.sim_th, help="Drain similarity threshold")
    m.add_argument("--depth", type=int, default=ParserConfig.depth, help="Drain tree depth")
    m.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    m.add_argument("--quiet", action="store_true", help="no progress bars")

    s = sub.add_parser("score", help="score logs; JSON lines out, one per event and one per session")
    _add_input(s)
    s.add_argument("--model", type=Path, required=True, help="model root or version directory")
    s.add_argument("--version", help="model version (default: the newest)")
    s.add_argument("--format", help="must match the model's format (default: the model's)")
    s.add_argument("--backend", choices=["onnx", "torch"], default="onnx")
    s.add_argument("--device", default="auto")
    s.add_argument("--output", "-o", default="-", help="output file ('-' = standard output)")
    s.add_argument("--events", choices=["all", "anomalous", "none"], default="all", help="which event lines to write")
    s.add_argument("--batch-sessions", type=int, default=512)

    e = sub.add_parser("evaluate", help="score labelled logs and report precision, recall, F1, ROC/PR")
    _add_input(e)
    e.add_argument("--model", type=Path, required=True)
    e.add_argument("--version")
    e.add_argument("--format")
    e.add_argument("--labels", type=Path, help="CSV of session,label (else the format's per-line labels)")
    e.add_argument("--backend", choices=["onnx", "torch"], default="onnx")
    e.add_argument("--report", type=Path, default=Path("reports/latest"), help="directory for report.html/json")

    i = sub.add_parser("info", help="show a model version's settings and metrics")
    i.add_argument("--model", type=Path, required=True)
    i.add_argument("--version")

    d = sub.add_parser("generate", help="write a generated HDFS-style corpus (demo data for the default model)")
    d.add_argument("--out", type=Path, required=True, help="log file to write")
    d.add_argument("--sessions", type=int, default=1000)
    d.add_argument("--anomaly-rate", type=float, default=0.0)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--labels", type=Path, help="also write a session,label CSV here")

    _register_component_commands(sub)
    return parser


def _register_component_commands(sub) -> None:
    """Commands that live with their component: labels/retrain (core.labels) and serve (grpc_server)."""
    from logwarden.core.cli.labels import register as register_labels
    from logwarden.grpc_server.cli import register as register_serve

    register_labels(sub)
    register_serve(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in COMMANDS:
            return COMMANDS[args.command](args)
        return args.func(args)
    except LogWardenError as exc:
        print(f"logwarden {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# -- commands ------------------------------------------------------------------------------------


def _format(spec: str, args):
    from logwarden.core.parsing.formats import get_format

    if spec == "json":
        return get_format(
            spec,
            message_field=args.json_message,
            timestamp_field=args.json_timestamp,
            session_field=args.json_session,
            label_field=args.json_label,
        )
    return get_format(spec)


def _records(args, fmt, stats):
    from logwarden.core.parsing.reader import read_records

    def report(source: str, line_no: int, reason: str) -> None:
        if stats.bad_lines <= 5:
            print(f"warning: {source}:{line_no}: {reason}", file=sys.stderr)

    return read_records(args.inputs, fmt, max_line_bytes=args.max_line_bytes, stats=stats, on_bad_line=report)


def _session_rule(args, fmt):
    from logwarden.core.parsing.sessions import SessionRule

    if args.session_field:
        return SessionRule(kind="field", field=args.session_field)
    if args.session_key:
        return SessionRule(kind="key", key_regex=args.session_key)
    if args.time_window:
        return SessionRule(kind="time", window_seconds=args.time_window, step_seconds=args.step or args.time_window)
    if args.count_window:
        step = int(args.step or args.count_window)
        return SessionRule(kind="count", window_size=args.count_window, step_size=step)
    return default_session_rule(fmt)


def default_session_rule(fmt):
    """The format's own session rule: a preset's key regex or window, a session field, else the source."""
    from logwarden.core.parsing.sessions import SessionRule

    preset = fmt.preset
    if fmt.session_field:
        return SessionRule(kind="field", field=fmt.session_field)
    if preset and preset.session_key_regex:
        return SessionRule(kind="key", key_regex=preset.session_key_regex)
    if preset and preset.session_window and preset.session_window.startswith("time:"):
        seconds = float(preset.session_window.split(":", 1)[1])
        return SessionRule(kind="time", window_seconds=seconds, step_seconds=seconds)
    return SessionRule(kind="source")


def cmd_train(args) -> int:
    from logwarden.core.model.gpt2 import ModelConfig
    from logwarden.core.model.training import TrainConfig
    from logwarden.core.parsing.reader import ReadStats
    from logwarden.core.parsing.templates import TemplateParser
    from logwarden.core.pipeline.fit import FitSettings, save_detector, train_from_logs

    fmt = _format(args.format, args)
    rule = _session_rule(args, fmt)
    labels = read_session_labels(args.labels) if args.labels else None
    settings = FitSettings(
        model=ModelConfig(n_layer=args.layers, n_head=args.heads, n_embd=args.embd, max_len=args.max_len),
        train=TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            patience=args.patience,
            seed=args.seed,
            device=args.device,
        ),
        val_fraction=args.val_fraction,
        target_fpr=args.target_fpr,
        min_template_sessions=args.min_template_sessions,
        check_combinations=args.check_combinations,
    )
    stats = ReadStats()
    parser = TemplateParser(ParserConfig(sim_th=args.sim_th, depth=args.depth))
    fit, data = train_from_logs(
        _records(args, fmt, stats),
        parser=parser,
        rule=rule,
        settings=settings,
        line_format=fmt.spec,
        session_labels=labels.get if labels else None,
        progress=not args.quiet,
    )
    path = save_detector(fit.detector, args.out, onnx=not args.no_onnx)
    cal = fit.detector.calibration
    print(stats.summary(), file=sys.stderr)
    print(
        json.dumps(
            {
                "model": str(path),
                "version": fit.detector.version,
                "templates": data["templates"],
                "train_sessions": fit.n_train,
                "val_sessions": fit.n_val,
                "k": cal.k,
                "end_surprisal": None if cal.end_surprisal is None else round(cal.end_surprisal, 4),
                "combinations": None if fit.detector.combinations is None else len(fit.detector.combinations),
                "combination_fpr": cal.combination_fpr,
                "validation_fpr": cal.validation_fpr,
                "best_val_loss": round(fit.train_result.best_val_loss, 5),
                "train_seconds": round(fit.train_result.seconds, 1),
            }
        )
    )
    return 0


def _load(args):
    from logwarden.core.detect.detector import Detector

    detector = Detector.load(
        args.model, version=args.version, backend=args.backend, device=getattr(args, "device", "auto")
    )
    spec = detector.line_format
    if args.format and args.format != spec:
        fmt = _format(args.format, args)
        if fmt.spec != spec:
            raise LogWardenError(f"model {detector.version} was trained on format {spec!r}, not {fmt.spec!r}")
    return detector, _format(spec, args)


def cmd_score(args) -> int:
    from logwarden.core.parsing.reader import ReadStats
    from logwarden.core.pipeline.score import score_records

    detector, fmt = _load(args)
    stats = ReadStats()
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    counts: Counter[str] = Counter()
    try:
        for item in score_records(
            detector, _records(args, fmt, stats), events=args.events, batch_sessions=args.batch_sessions
        ):
            counts[item["type"]] += 1
            counts["anomalous_" + item["type"]] += bool(item.get("anomalous"))
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    _check_input(stats, fmt)
    print(stats.summary(), file=sys.stderr)
    print(
        f"scored {counts['session']} sessions ({counts['anomalous_session']} anomalous), "
        f"{counts['event']} event lines written",
        file=sys.stderr,
    )
    return 0


def _check_input(stats, fmt) -> None:
    if stats.records == 0:
        if stats.lines == 0:
            raise LogWardenError("no input: the files are empty")
        raise LogWardenError(f"none of the {stats.lines} lines could be read as format {fmt.spec!r}: {stats.summary()}")


def cmd_evaluate(args) -> int:
    import numpy as np

    from logwarden.core.parsing.reader import ReadStats
    from logwarden.core.parsing.sessions import build_sessions
    from logwarden.core.pipeline.evaluate import compute_metrics, format_metrics_table, template_breakdown
    from logwarden.core.pipeline.report import write_report
    from logwarden.core.pipeline.score import score_sessions

    detector, fmt = _load(args)
    stats = ReadStats()
    labels = read_session_labels(args.labels) if args.labels else {}
    parsed = [detector.parse(r) for r in _records(args, fmt, stats)]
    _check_input(stats, fmt)
    sessions = build_sessions(parsed, detector.rule)
    y, pred, scores, fps, fns = [], [], [], [], []
    for session, verdict in score_sessions(detector, sessions):
        label = labels.get(session.key, session.label)
        if label is None:
            continue
        y.append(label)
        pred.append(int(verdict.anomalous))
        scores.append(verdict.score)
        if verdict.anomalous and not label:
            fps.append((verdict.reason.split(":")[0], 1.0))
        elif label and not verdict.anomalous:
            fns.append((" → ".join(detector.template(e.key) for e in session.events[:3]) + " …", 1.0))
    if not y:
        raise LogWardenError("no labelled sessions: pass --labels, or use a format with per-line labels")
    metrics = compute_metrics(np.array(y), np.array(pred), np.array(scores))
    fp_t, fn_t = template_breakdown(fps), template_breakdown(fns)
    print(format_metrics_table(metrics, f"LogWarden {detector.version}"))
    print("false positives, by reason:" if fp_t else "no false positives")
    for text, n in fp_t:
        print(f"  {int(n):6d}  {text}")
    print("false negatives, by first templates:" if fn_t else "no false negatives")
    for text, n in fn_t:
        print(f"  {int(n):6d}  {text}")
    paths = write_report(
        args.report,
        title=f"LogWarden evaluation — {detector.version}",
        metrics=metrics,
        y_true=np.array(y),
        scores=np.array(scores),
        threshold=0.5,
        false_positive_templates=fp_t,
        false_negative_templates=fn_t,
        extra={"model": str(detector.path), "k": detector.calibration.k, "input": stats.summary()},
    )
    print(f"report: {paths['html']}", file=sys.stderr)
    print(json.dumps(metrics.to_dict()))
    return 0


def cmd_info(args) -> int:
    from logwarden.core.artifact import store as artifact

    files = artifact.read_config(artifact.resolve(args.model, args.version))
    cfg = dict(files.config)
    cfg.pop("vocab", None)
    cfg.get("metrics", {}).pop("history", None)
    if cfg.get("combinations"):  # the list itself is long; its size says enough here
        combinations = cfg["combinations"]
        cfg["combinations"] = {"min_sessions": combinations["min_sessions"], "known": len(combinations["known"])}
    cfg["versions"] = artifact.list_versions(files.path.parent)
    print(json.dumps(cfg, indent=2))
    return 0


def cmd_generate(args) -> int:
    from logwarden.core.synthetic import generate

    if not 0.0 <= args.anomaly_rate <= 1.0 or args.sessions < 1:
        raise LogWardenError("--sessions must be positive and --anomaly-rate in [0, 1]")
    corpus = generate(args.sessions, anomaly_rate=args.anomaly_rate, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(corpus.lines) + "\n", encoding="utf-8")
    if args.labels:
        rows = "".join(f"{blk},{'Anomaly' if y else 'Normal'}\n" for blk, y in corpus.labels.items())
        args.labels.write_text("BlockId,Label\n" + rows, encoding="utf-8")
    print(f"wrote {len(corpus.lines):,} lines of {args.sessions:,} sessions to {args.out}", file=sys.stderr)
    return 0


COMMANDS = {
    "generate": cmd_generate,
    "train": cmd_train,
    "score": cmd_score,
    "evaluate": cmd_evaluate,
    "info": cmd_info,
}

if __name__ == "__main__":
    raise SystemExit(main())
