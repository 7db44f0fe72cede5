"""From normal sessions to a saved model version: split, train, calibrate, export.

``fit_sequences`` works on log-key sequences (benchmarks feed pre-parsed datasets there; with ``lines``
and a ``parser`` the templates the model does not know are judged by their text, see
``core.detect.novelty``); ``train_from_logs`` adds reading, template mining and sessions in front of it.

What training decided on its own, and what looks degenerate, is recorded as *notes* (``{"code", "kind",
"message"}``; ``kind`` is ``decision`` or ``warning``) in the version's config and the training summary:
decisions never depend on their text, only on the code.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic_core import to_jsonable_python
from safetensors.torch import save_file

from logwarden.core.artifact import store as artifact
from logwarden.core.artifact.config import FIT, ArtifactConfig, Fingerprint, package_version
from logwarden.core.detect.calibration import (
    COUNT_PRIOR,
    NOVELTY_PRIOR,
    Calibration,
    choose_k,
    end_threshold,
    margin_temperature,
    novelty_threshold,
    threshold_within,
)
from logwarden.core.detect.combinations import Combinations
from logwarden.core.detect.counts import Counts
from logwarden.core.detect.detector import TIED, Detector, Line
from logwarden.core.detect.next_key import score_sequences
from logwarden.core.detect.novelty import Novelty
from logwarden.core.errors import LogWardenError
from logwarden.core.model.backends import TorchBackend, export_onnx
from logwarden.core.model.config import ModelConfig, TrainConfig
from logwarden.core.model.gpt2 import build_model
from logwarden.core.model.training import TrainResult, seed_everything, train_model
from logwarden.core.model.vocab import BOS, EOS, UNK, Vocab
from logwarden.core.parsing.sessions import Event, Session, SessionRule, build_sessions, capped
from logwarden.core.parsing.templates import TemplateParser
from logwarden.core.records import LogRecord

MIN_TRAIN_SESSIONS = 100  # fewer normal training sessions: warned about (a model of very little data)


@dataclass
class FitSettings:
    """What a training run needs besides the data (all of it lands in the model's config.json; the
    defaults are ``FitDefaults``'s)."""

    model: ModelConfig
    train: TrainConfig
    val_fraction: float = FIT.val_fraction
    target_fpr: float = FIT.target_fpr
    score_end: bool = FIT.score_end
    min_template_sessions: int = FIT.min_template_sessions
    check_combinations: bool = FIT.check_combinations
    novelty: Literal["graded", "always"] = FIT.novelty
    val_split: Literal["auto", "random", "chronological"] = FIT.val_split
    auto_min_template_sessions: bool = FIT.auto_min_template_sessions
    check_counts: bool = FIT.check_counts

    @classmethod
    def from_config(cls, cfg: ArtifactConfig, *, epochs: int | None = None) -> FitSettings:
        """The settings a saved version was trained with (``retrain`` reuses them; ``epochs`` may change)."""
        return cls(
            model=replace(cfg.model),
            train=replace(cfg.train, epochs=epochs) if epochs else replace(cfg.train),
            val_fraction=cfg.val_fraction,
            target_fpr=cfg.calibration.target_fpr,
            score_end=cfg.score_end,
            min_template_sessions=cfg.min_template_sessions,
            check_combinations=cfg.check_combinations,
            novelty=cfg.novelty_mode,
            val_split=cfg.val_split,
            check_counts=cfg.check_counts,
        )


@dataclass
class FitResult:
    detector: Detector
    train_result: TrainResult
    n_train: int
    n_val: int
    fingerprint: str
    val_sessions: list[Sequence[str]]
    val_lines: list[Sequence[Line | None] | None] | None = None
    notes: list[dict[str, str]] = field(default_factory=list)
    train_sessions: list[Sequence[str]] = field(default_factory=list)


def note(code: str, kind: Literal["decision", "warning"], message: str) -> dict[str, str]:
    """One note of a training run (see the module doc)."""
    return {"code": code, "kind": kind, "message": message}


def fingerprint(sequences: Iterable[Sequence[str]], extra: dict | None = None) -> str:
    digest = hashlib.sha256(json.dumps(extra or {}, sort_keys=True, default=to_jsonable_python).encode())
    for seq in sequences:
        digest.update(" ".join(seq).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def split_indices(n: int, val_fraction: float, seed: int, chronological: bool = False) -> tuple[list[int], list[int]]:
    """Indices of the training and the validation sessions: a seeded shuffle, or (``chronological``, the
    sessions being in time order) the last ``val_fraction`` held out, as a test period would be."""
    if n < 2:
        raise LogWardenError(f"need at least 2 normal sessions to train and calibrate, got {n}")
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    if chronological:
        return list(range(n - n_val)), list(range(n - n_val, n))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order[n_val:], order[:n_val]


def split_train_val(
    sessions: Sequence[Sequence[str]], val_fraction: float, seed: int, chronological: bool = False
) -> tuple[list[Sequence[str]], list[Sequence[str]]]:
    """Hold out ``val_fraction`` of the normal sessions for calibration (see ``split_indices``)."""
    train, val = split_indices(len(sessions), val_fraction, seed, chronological)
    return [sessions[i] for i in train], [sessions[i] for i in val]


def choose_min_sessions(
    train: Sequence[Sequence[str]], val: Sequence[Sequence[str]], requested: int, target_fpr: float
) -> tuple[int, float, float]:
    """The rarity bar for modelled templates: ``requested``, lowered (down to 1) while more than ``target_fpr``
    of the validation sessions hold a template seen in training but in too few sessions to be modelled.
    Returns (bar, share of validation sessions with such a template at ``requested``, at the bar)."""
    counts: Counter[str] = Counter(k for s in train for k in set(s))

    def share(bar: int) -> float:
        rare = {k for k, n in counts.items() if n < bar}
        return float(np.mean([any(k in rare for k in s) for s in val])) if val and rare else 0.0

    first = share(requested)
    bar, now = requested, first
    while now > target_fpr and bar > 1:
        bar -= 1
        now = share(bar)
    return bar, first, now


def calibrate(
    detector: Detector,
    val: Sequence[Sequence[str]],
    val_lines: Sequence[Sequence[Line | None] | None] | None,
    settings: FitSettings,
    combinations: Combinations | None = None,
    windows: bool = False,
) -> tuple[Calibration, Combinations | None, list[dict[str, str]]]:
    """Choose the end threshold, keep or drop the combination check, set the novelty threshold, then choose K
    and the score scale, all on normal validation sessions; finally score them with the finished detector
    and report that false-positive rate. Returns the calibration, the combinations kept (or None), notes.
    ``windows``: the sessions are time or count windows, complete as cut (their set of templates is judged
    although their end is not)."""
    notes: list[dict[str, str]] = []
    vocab, backend, max_len = detector.vocab, detector.backend, detector.model_config.max_len
    target = settings.target_fpr
    tokens = [[BOS, *vocab.encode(s), *([EOS] if settings.score_end else [])] for s in val]
    first = score_sequences(backend, tokens, max_len=max_len, k=1)
    ends: list[float] = []
    worst: list[float] = []
    for toks, r in zip(tokens, first, strict=True):
        n = len(r.ranks)
        if settings.score_end and n:  # the last scored position is the end: judged by its surprisal
            ends.append(float(-r.logp[-1]))
            n -= 1
        modelled = r.ranks[:n][np.asarray(toks)[r.positions[:n]] != UNK]  # the novelty check judges the rest
        worst.append(float(modelled.max()) if modelled.size else 0.0)
    end_surprisal = end_threshold(ends)
    flagged = np.zeros(len(val), dtype=bool)
    combination_fpr = None
    if combinations is not None and (settings.score_end or windows):  # only complete sessions are judged whole
        rare = np.array([combinations.is_rare(s) for s in val], dtype=bool)
        combination_fpr = float(rare.mean()) if rare.size else 0.0
        if combination_fpr <= target:
            flagged |= rare
        else:  # too many normal sessions vary their templates: the check would cost the whole budget
            notes.append(
                note(
                    "combinations_off",
                    "decision",
                    f"the template-combination check is off: {combination_fpr:.2%} of the normal validation "
                    f"sessions have a combination of templates that training had in fewer than "
                    f"{combinations.min_sessions} sessions (target {target:.2%})",
                )
            )
            combinations = None
    else:
        combinations = None
    lines = val_lines if val_lines is not None else [None] * len(val)
    judged = [detector.novelty_of(keys, ls) for keys, ls in zip(val, lines, strict=True)]
    novelty = np.array([max((j.score for j in js), default=-math.inf) for js in judged])
    graded = any(j.has_text for js in judged for j in js) or not any(judged)
    if settings.novelty == "always":
        threshold = None
        by_novelty = novelty > -math.inf
    elif not graded:  # no text to grade unknown templates by: a higher threshold could only switch them off
        threshold = NOVELTY_PRIOR
        by_novelty = novelty > threshold
        if float(by_novelty.mean()) > target:
            notes.append(
                note(
                    "novelty_ungraded",
                    "warning",
                    f"{float(by_novelty.mean()):.2%} of the normal validation sessions hold a template the model "
                    f"does not know (target {target:.2%}), and without their text (template ids only) they cannot be "
                    "graded: every one still alerts",
                )
            )
    else:
        threshold = novelty_threshold(novelty, target)
        by_novelty = novelty > threshold
        if threshold > NOVELTY_PRIOR:
            notes.append(
                note(
                    "novelty_threshold_raised",
                    "decision",
                    f"the novelty threshold is {threshold:.3f}, not {NOVELTY_PRIOR}: at {NOVELTY_PRIOR}, "
                    f"{float((novelty > NOVELTY_PRIOR).mean()):.2%} of the normal validation sessions hold a "
                    f"template the model does not know (target {target:.2%}); at {threshold:.3f}, "
                    f"{float(by_novelty.mean()):.2%}, leaving the rest of the budget to the next-template check",
                )
            )
    flagged |= by_novelty
    count_threshold = count_fpr = None
    if detector.counts is not None:
        ratios = np.array([e.ratio if (e := detector.excess(s)) else -math.inf for s in val])
        count_threshold = threshold_within(ratios, COUNT_PRIOR, target)
        by_counts = ratios > count_threshold
        count_fpr = float(by_counts.mean()) if len(val) else 0.0
        flagged |= by_counts
        if count_threshold > COUNT_PRIOR:
            notes.append(
                note(
                    "count_threshold_raised",
                    "decision",
                    f"the count threshold is {count_threshold:.2f} times the most in one normal training window: "
                    f"{float((ratios > COUNT_PRIOR).mean()):.2%} of the normal validation windows have a template "
                    f"more often than any training window (target {target:.2%})",
                )
            )
    k, _ = choose_k(np.where(flagged, math.inf, worst), target, detector.candidates)
    at_k = score_sequences(backend, tokens, max_len=max_len, k=k)
    margins = np.concatenate([r.margin for r in at_k]) if at_k else np.zeros(0)
    calibration = Calibration(
        k=k,
        target_fpr=target,
        validation_fpr=0.0,
        temperature=margin_temperature(margins),
        n_sessions=len(val),
        n_events=int(sum(len(s) for s in val)),
        end_surprisal=end_surprisal,
        combination_fpr=combination_fpr,
        novelty_threshold=threshold,
        novelty_fpr=float(by_novelty.mean()) if len(val) else 0.0,
        count_threshold=count_threshold,
        count_fpr=count_fpr,
    )
    detector.calibration, detector.combinations = calibration, combinations
    verdicts = detector.score_keys(val, lines=val_lines)  # what the finished detector does, exactly
    calibration.validation_fpr = float(np.mean([v.anomalous for v in verdicts])) if verdicts else 0.0
    notes.extend(_warnings(detector, calibration, len(val)))
    return calibration, combinations, notes


def _warnings(detector: Detector, cal: Calibration, n_val: int) -> list[dict[str, str]]:
    out = []
    modelled = len(detector.vocab.keys)
    if cal.k >= modelled:
        out.append(
            note(
                "k_covers_vocabulary",
                "warning",
                f"K = {cal.k} accepts every one of the {modelled} modelled templates: the next-template check "
                "flags nothing, only the end, novelty and combination checks alert",
            )
        )
    if cal.validation_fpr > cal.target_fpr:
        out.append(
            note(
                "validation_fpr_above_target",
                "warning",
                f"the model flags {cal.validation_fpr:.2%} of the normal validation sessions, above the target "
                f"{cal.target_fpr:.2%}: no setting of the checks meets it on this data",
            )
        )
    if cal.target_fpr > 0 and n_val * cal.target_fpr < 1:
        out.append(
            note(
                "coarse_validation",
                "warning",
                f"only {n_val} validation sessions: one flagged session is already {1 / n_val:.2%}, above the "
                f"target {cal.target_fpr:.2%}, so thresholds are set coarsely (more training data helps)",
            )
        )
    return out


def fit_sequences(
    sessions: Sequence[Sequence[str]],
    settings: FitSettings,
    *,
    progress: bool = True,
    extra_config: dict | None = None,
    lines: Sequence[Sequence[Line | None] | None] | None = None,
    parser: TemplateParser | None = None,
    level_field: str | None = None,
    windows: bool = False,
) -> FitResult:
    """Train on normal key sequences and calibrate on a held-out part of them.

    ``lines`` (parallel to ``sessions``) and ``parser`` let templates the model does not know be judged by
    their text; ``windows`` says the sessions are time or count windows in time order (the ``auto`` validation
    split then holds out the last ones, and the count check judges them, see ``core.detect.counts``)."""
    if windows and settings.score_end:  # a window ends where the clock or the count says: nothing to judge
        settings = replace(settings, score_end=False)
    by_time = settings.val_split == "chronological" or (settings.val_split == "auto" and windows)
    train_idx, val_idx = split_indices(len(sessions), settings.val_fraction, settings.train.seed, by_time)
    train, val = [sessions[i] for i in train_idx], [sessions[i] for i in val_idx]
    val_lines = [lines[i] for i in val_idx] if lines is not None else None
    notes: list[dict[str, str]] = []
    bar = settings.min_template_sessions
    if settings.auto_min_template_sessions:
        bar, before, after = choose_min_sessions(train, val, settings.min_template_sessions, settings.target_fpr)
        if bar != settings.min_template_sessions:
            notes.append(
                note(
                    "min_template_sessions_lowered",
                    "decision",
                    f"min_template_sessions lowered from {settings.min_template_sessions} to {bar}: at "
                    f"{settings.min_template_sessions}, {before:.2%} of the normal validation sessions hold a "
                    f"template too rare to be modelled (target {settings.target_fpr:.2%}); at {bar}, {after:.2%}",
                )
            )
    vocab = Vocab.build(train, bar)
    seed_everything(settings.train.seed)  # the initial weights too: the same data and seed give the same model
    model = build_model(settings.model, len(vocab))
    encode = lambda seq: [BOS, *vocab.encode(seq), *([EOS] if settings.score_end else [])]  # noqa: E731
    result = train_model(model, [encode(s) for s in train], [encode(s) for s in val], settings.train, progress=progress)
    backend = TorchBackend(model, device="cpu")
    combinations = Combinations.build(train, settings.min_template_sessions) if settings.check_combinations else None
    counts = Counts.build(train) if settings.check_counts and windows else None
    novelty = build_novelty(parser, train, [lines[i] for i in train_idx] if lines is not None else None, level_field)
    if len(train) < MIN_TRAIN_SESSIONS:
        notes.append(
            note(
                "tiny_training_set",
                "warning",
                f"only {len(train)} normal training sessions (and {len(val)} for validation): the model and "
                "its thresholds rest on very little data",
            )
        )
    fp = fingerprint(sessions, extra_config)
    config = ArtifactConfig(
        logwarden_version=package_version(),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        model=settings.model,
        train=settings.train,
        vocab=vocab.keys,
        calibration=Calibration(
            k=1, target_fpr=settings.target_fpr, validation_fpr=0.0, temperature=1.0, n_sessions=len(val), n_events=0
        ),
        score_end=settings.score_end,
        val_fraction=settings.val_fraction,
        min_template_sessions=bar,
        check_combinations=settings.check_combinations,
        check_counts=settings.check_counts,
        counts=counts.to_dict() if counts is not None else None,
        novelty_mode=settings.novelty,
        novelty=novelty.to_dict() if novelty is not None else None,
        val_split="chronological" if by_time else "random",
        fingerprint=Fingerprint(sha256=fp, train_sessions=len(train), val_sessions=len(val)),
        metrics={
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "epochs_run": result.epochs_run,
            "train_seconds": round(result.seconds, 2),
            "device": result.device,
            "history": result.history,
        },
        **(extra_config or {}),
    )
    detector = Detector(model=model, config=config, backend=backend, parser=parser)
    calibration, combinations, calibration_notes = calibrate(detector, val, val_lines, settings, combinations, windows)
    notes = [*config.notes, *notes, *calibration_notes]
    detector.config = config.model_copy(
        update={
            "calibration": calibration,
            "combinations": combinations.to_dict() if combinations is not None else None,
            "notes": notes,
        }
    )
    return FitResult(detector, result, len(train), len(val), fp, val, val_lines, notes, train)


def build_novelty(
    parser: TemplateParser | None,
    train: Sequence[Sequence[str]],
    train_lines: Sequence[Sequence[Line | None] | None] | None,
    level_field: str | None,
) -> Novelty | None:
    """The known normal templates (every template of the normal training sessions, by its text) and word
    severities learned from their lines; None without a parser (template ids only: nothing to compare)."""
    if parser is None:
        return None
    keys = dict.fromkeys(k for s in train for k in s)
    templates = {k: parser.template(int(k)) for k in keys if k.isdigit() and int(k) in parser.drain.id_to_cluster}
    mask = parser.masker.mask
    lines = (
        (mask(line[0]), line[1]) for session in (train_lines or ()) if session for line in session if line is not None
    )
    return Novelty.build(templates, lines, level_field)


def save_detector(detector: Detector, root: Path, *, onnx: bool = True) -> Path:
    """Write ``detector`` as a new immutable version under ``root``; returns the version directory."""
    templates = detector.parser.num_templates if detector.parser else 0
    config = detector.config.model_copy(
        update={
            "version": artifact.new_version(detector.config.fingerprint.sha256),
            "parser": detector.config.parser or {"templates": templates},
        }
    )
    parser_state = (detector.parser or TemplateParser()).to_state()

    def write(tmp: Path) -> None:
        state = {k: v.contiguous() for k, v in detector.model.state_dict().items() if k != TIED}
        save_file(state, str(tmp / artifact.WEIGHTS))
        (tmp / artifact.PARSER).write_text(json.dumps(parser_state), "utf-8")
        if onnx:
            export_onnx(detector.model, tmp / artifact.ONNX)
        (tmp / artifact.CONFIG).write_text(config.to_json(), "utf-8")

    path = artifact.write_version(Path(root), config.version, write)
    detector.config = config
    detector.path = path
    return path


def mine_events(records: Iterable[LogRecord], parser: TemplateParser) -> list[Event]:
    """Training-time parsing: every record teaches the miner, then gets the id serving will give it.

    drain3 may move a line to a newer, better-fitting cluster after it was learned, so the ids are
    taken from a second, read-only ``match`` pass: training and serving then agree exactly.
    """
    records = list(records)
    for record in records:
        parser.learn(record.content)
    events = []
    for record in records:
        cluster = parser.match(record.content)
        events.append(Event(record, None if cluster is None else str(cluster)))
    return events


def normal_windows(
    events: Sequence[Event],
    rule: SessionRule,
    session_labels: Callable[[str], int | None] | None = None,
    level_field: str | None = None,
) -> tuple[list[list[str]], list[list[Line | None] | None], int, list[Session]]:
    """The normal sessions of parsed events as training sees them: key sequences and their lines, windows put in
    time order; returns (keys, lines, anomalous sessions dropped, every session).

    A session is left out when ``session_labels(key)`` (else its lines' own labels) says 1 (anomalous)."""
    sessions = build_sessions(events, rule)
    if rule.windowed:
        sessions.sort(key=lambda s: (s.start is None, s.start or 0.0))  # stable: count windows keep their order
    normal: list[list[str]] = []
    lines: list[list[Line | None] | None] = []
    dropped = 0
    for session in sessions:
        label = session_labels(session.key) if session_labels else None
        label = session.label if label is None else label
        if label == 1:
            dropped += 1
            continue
        kept = [e for e in session.events if e.key is not None]
        if kept:
            normal.append([e.key for e in kept])  # type: ignore[misc]
            lines.append([(e.record.content, e.record.fields.get(level_field) if level_field else None) for e in kept])
    return normal, lines, dropped, sessions


def train_from_logs(
    records: Iterable[LogRecord],
    *,
    parser: TemplateParser,
    rule: SessionRule,
    settings: FitSettings,
    line_format: str,
    session_labels: Callable[[str], int | None] | None = None,
    extra_normal: Sequence[Sequence[str]] = (),
    extra_config: dict | None = None,
    progress: bool = True,
    level_field: str | None = None,
) -> tuple[FitResult, dict]:
    """Mine templates, build sessions, keep the normal ones, fit. Returns the fit and data stats.

    A session is left out when ``session_labels(key)`` (else its lines' own labels) says 1 (anomalous);
    ``extra_normal`` key sequences join the normal data (``retrain`` folds analyst-confirmed false
    positives in this way); ``extra_config`` adds to the version's config (``retrain``: labels, parent).
    ``level_field`` names the records' level field (its values count toward the novelty's severity).
    Windows (time or count) are put in time order, so the ``auto`` validation split holds out the last.
    """
    events = mine_events(records, parser)
    if not events:
        raise LogWardenError("no log lines to train on (empty input, every line rejected, or none before --until)")
    normal, normal_lines, dropped, sessions = normal_windows(events, rule, session_labels, level_field)
    for seq in extra_normal:
        normal.append(list(seq))
        normal_lines.append(None)
    stats = {
        "events": len(events),
        "sessions": len(sessions),
        "anomalous_sessions_dropped": dropped,
        "templates": parser.num_templates,
        "windows_capped": capped(sessions),
    }
    extra = {
        "line_format": line_format,
        "sessions": rule,
        "parser": {"templates": parser.num_templates},
        "data": stats,
        **(extra_config or {}),
    }
    if stats["windows_capped"]:
        extra["notes"] = [
            note(
                "windows_capped",
                "decision",
                f"{stats['windows_capped']} windows held more than {rule.max_events} events and were cut into parts "
                f"of at most {rule.max_events} (set max_events to change this)",
            )
        ]
    fit = fit_sequences(
        normal,
        settings,
        progress=progress,
        extra_config=extra,
        lines=normal_lines,
        parser=parser,
        level_field=level_field,
        windows=rule.windowed,
    )
    return fit, stats
