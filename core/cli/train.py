"""``logwarden train``: a new model version from normal logs (template mining, sessions, GPT-2, calibration)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logwarden.core.cli.common import (
    InputSettings,
    alias,
    check_input,
    line_format,
    read_inputs,
    read_session_labels,
    subcommand,
)
from logwarden.core.errors import LogWardenError
from logwarden.integrations.elasticsearch.settings import EsConnectionSettings


class TrainSettings(InputSettings, EsConnectionSettings):
    """Inputs, sessions, model size, training and calibration; everything lands in the version's config.json."""

    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_TRAIN_", extra="forbid", validate_default=True)
    from_es: str | None = Field(
        None,
        description="read the lines from this Elasticsearch index pattern instead of files (the --json-message "
        "field of each document, oldest first by --json-timestamp, default @timestamp; --es-url and credentials)",
    )
    es_exclude_labelled: bool = Field(True, description="--from-es: leave out documents labelled anomaly")
    format: str = Field(
        "plain",
        description="preset (hdfs, bgl, thunderbird), json, plain or a format string "
        "such as '<Date> <Time> <Level>: <Content>'",
    )
    out: Path = Field(description="model root; a new version directory is created in it")
    labels: Path | None = Field(None, description="CSV of session,label: anomalous sessions are left out of training")
    # sessions (default: the format preset's rule, else one session per source)
    session_key: str | None = Field(
        None, description="regex over the message; the match (or group 1) is the session key"
    )
    session_field: str | None = Field(None, description="a parsed field holding the session key")
    time_window: float | None = Field(None, gt=0, description="sessions are time windows of this many seconds")
    count_window: int | None = Field(None, ge=1, description="sessions are windows of this many events")
    step: float | None = Field(None, gt=0, description="window step (seconds or events); default: the window length")
    window_by: str = Field(
        "source",
        description="windows' timelines: 'source' (each input file or stream), 'global' (all inputs together) "
        "or a field naming a node or host (e.g. Node for bgl, User for thunderbird): one timeline per value",
    )
    max_window_events: int = Field(
        1000, ge=0, description="windows holding more events are cut into parts of this many (0: never)"
    )
    until: str | None = Field(
        None,
        description="train on the lines before this time only (epoch seconds or ISO 8601, e.g. 2005-11-09T12:00); "
        "evaluate on the rest with `evaluate --from` the same time",
    )
    # model and training
    layers: int = Field(2, ge=1, description="GPT-2 layers")
    heads: int = Field(4, ge=1, description="attention heads")
    embd: int = Field(64, ge=8, description="embedding size")
    max_len: int = Field(256, ge=4, description="context window in events")
    epochs: int = Field(40, ge=1, description="training epochs (at most; see patience)")
    batch_size: int = Field(32, ge=1, description="sessions per training batch")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    patience: int = Field(6, ge=1, description="epochs without validation improvement before stopping")
    min_template_sessions: int = Field(
        5,
        ge=1,
        description="templates (and sets of templates) in fewer normal "
        "training sessions are rare and alert like new ones",
    )
    check_combinations: bool = Field(
        True,
        validation_alias=alias("check_combinations", "combinations"),
        description="judge a complete session's set of templates (a rare combination "
        "alerts when calibration finds that check within the target FPR)",
    )
    novelty: Literal["graded", "always"] = Field(
        "graded",
        description="templates the model does not know: 'graded' judges how unlike known templates and how "
        "severe they are (threshold from validation data), 'always' makes every one an anomaly",
    )
    check_counts: bool = Field(
        True, description="windows: also flag a template appearing more often than in any normal training window"
    )
    auto_min_template_sessions: bool = Field(
        True,
        description="lower --min-template-sessions when templates too rare to model fill more than the target "
        "share of the validation sessions",
    )
    val_split: Literal["auto", "random", "chronological"] = Field(
        "auto", description="how validation sessions are held out: auto = the last ones for windows, else random"
    )
    seed: int = Field(7, description="random seed: the same data and seed give the same model")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="training device")
    threads: int = Field(0, ge=0, description="torch threads (0: one per core; fewer is faster on a busy machine)")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="share of normal sessions held out for calibration")
    target_fpr: float = Field(0.005, ge=0, lt=1, description="share of normal validation sessions allowed to alert")
    sim_th: float = Field(0.55, ge=0, le=1, description="Drain similarity threshold")
    depth: int = Field(4, ge=3, description="Drain tree depth")
    onnx: bool = Field(True, description="also export model.onnx (the default serving backend)")
    quiet: bool = Field(False, description="no progress bars")


def register(subparsers) -> None:
    subcommand(subparsers, "train", TrainSettings, run, help="train a model version on normal logs", extra=_inputs)


def _inputs(parser) -> None:
    parser.add_argument("inputs", nargs="*", help="log files, globs or gzip files; '-' reads standard input")


def session_rule(s: TrainSettings, fmt):
    """The session rule the flags ask for, else the format's own (windows cut per ``--window-by``)."""
    from dataclasses import replace

    from logwarden.core.parsing.sessions import SessionRule, default_session_rule

    if s.session_field:
        return SessionRule(kind="field", field=s.session_field)
    if s.session_key:
        return SessionRule(kind="key", key_regex=s.session_key)
    if s.time_window:
        rule = SessionRule(kind="time", window_seconds=s.time_window, step_seconds=s.step or s.time_window)
    elif s.count_window:
        step = int(s.step or s.count_window)
        rule = SessionRule(kind="count", window_size=s.count_window, step_size=step)
    else:
        rule = default_session_rule(fmt)
    if not rule.windowed:
        return rule
    if s.window_by in ("source", "global"):
        return replace(rule, scope=s.window_by, max_events=s.max_window_events)
    fields = getattr(fmt, "fields", ())
    if fields and s.window_by not in fields:
        raise LogWardenError(
            f"--window-by {s.window_by!r}: the format has no such field (its fields: {', '.join(fields)}; "
            "or use source or global)"
        )
    return replace(rule, scope="field", group_field=s.window_by, max_events=s.max_window_events)


def run(s: TrainSettings, args) -> int:
    from logwarden.core.model.backends import set_torch_threads
    from logwarden.core.model.config import ModelConfig, TrainConfig
    from logwarden.core.parsing.reader import ReadStats
    from logwarden.core.parsing.templates import ParserConfig, TemplateParser
    from logwarden.core.pipeline.fit import FitSettings, save_detector, train_from_logs
    from logwarden.core.pipeline.split import before, parse_time

    set_torch_threads(s.threads)
    fmt = line_format(s.format, s)
    rule = session_rule(s, fmt)
    labels = read_session_labels(s.labels) if s.labels else None
    settings = FitSettings(
        model=ModelConfig(n_layer=s.layers, n_head=s.heads, n_embd=s.embd, max_len=s.max_len),
        train=TrainConfig(
            epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, patience=s.patience, seed=s.seed, device=s.device
        ),
        val_fraction=s.val_fraction,
        target_fpr=s.target_fpr,
        min_template_sessions=s.min_template_sessions,
        check_combinations=s.check_combinations,
        novelty=s.novelty,
        val_split=s.val_split,
        auto_min_template_sessions=s.auto_min_template_sessions,
        check_counts=s.check_counts,
    )
    stats = ReadStats()
    parser = TemplateParser(ParserConfig(sim_th=s.sim_th, depth=s.depth))
    if s.from_es and args.inputs:
        raise LogWardenError("give log files or --from-es, not both")
    if s.from_es:
        from logwarden.integrations.elasticsearch.training import index_records

        records = index_records(
            s.es_client(),
            s.from_es,
            fmt,
            message_field=s.json_message,
            time_field=s.json_timestamp or "@timestamp",
            exclude_labelled=s.es_exclude_labelled,
            max_line_bytes=s.max_line_bytes,
            stats=stats,
            progress=not s.quiet,
        )
    elif args.inputs:
        records = read_inputs(args.inputs, fmt, s, stats)
    else:
        raise LogWardenError("no input: give log files or --from-es INDEX")
    if s.until is not None:
        records = before(records, parse_time(s.until))
    fit, data = train_from_logs(
        records,
        parser=parser,
        rule=rule,
        settings=settings,
        line_format=fmt.spec,
        session_labels=labels.get if labels else None,
        progress=not s.quiet,
        level_field=fmt.level_field,
    )
    check_input(stats, fmt)
    path = save_detector(fit.detector, s.out, onnx=s.onnx)
    print(stats.summary(), file=sys.stderr)
    for item in fit.notes:
        print(f"{'warning' if item['kind'] == 'warning' else 'decided'}: {item['message']}", file=sys.stderr)
    print(json.dumps(training_summary(fit, data, path)))
    return 0


def training_summary(fit, data: dict, path) -> dict:
    """What ``train`` prints (one JSON object): sizes, the vocabulary beside K, every check's threshold and
    share of the validation sessions, the validation FPR of the saved model, and the notes (codes)."""
    detector = fit.detector
    cal = detector.calibration

    def rounded(value, digits=4):
        return None if value is None else round(value, digits)

    return {
        "model": str(path),
        "version": detector.version,
        "templates": data["templates"],
        "vocabulary": len(detector.vocab.keys),
        "min_template_sessions": detector.config.min_template_sessions,
        "train_sessions": fit.n_train,
        "val_sessions": fit.n_val,
        "val_split": detector.config.val_split,
        "k": cal.k,
        "k_effective": min(cal.k, detector.candidates),
        "k_candidates": detector.candidates,
        "end_surprisal": rounded(cal.end_surprisal),
        "combinations": None if detector.combinations is None else len(detector.combinations),
        "combination_fpr": rounded(cal.combination_fpr),
        "novelty_threshold": rounded(cal.novelty_threshold),
        "novelty_fpr": rounded(cal.novelty_fpr),
        "count_threshold": rounded(cal.count_threshold),
        "count_fpr": rounded(cal.count_fpr),
        "target_fpr": cal.target_fpr,
        "validation_fpr": rounded(cal.validation_fpr, 6),
        "windows_capped": data.get("windows_capped", 0),
        "notes": [n["code"] for n in fit.notes],
        "best_val_loss": round(fit.train_result.best_val_loss, 5),
        "train_seconds": round(fit.train_result.seconds, 1),
    }
