"""From normal sessions to a saved model version: split, train, calibrate, export.

``fit_sequences`` works on log-key sequences (benchmarks feed pre-parsed datasets there);
``train_from_logs`` adds reading, template mining and sessions in front of it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydantic_core import to_jsonable_python
from safetensors.torch import save_file

from logwarden.core.artifact import store as artifact
from logwarden.core.artifact.config import FIT, ArtifactConfig, Fingerprint, package_version
from logwarden.core.detect.calibration import Calibration, choose_k, end_threshold, margin_temperature
from logwarden.core.detect.combinations import Combinations
from logwarden.core.detect.detector import TIED, Detector
from logwarden.core.detect.next_key import score_sequences
from logwarden.core.errors import LogWardenError
from logwarden.core.model.backends import TorchBackend, export_onnx
from logwarden.core.model.config import ModelConfig, TrainConfig
from logwarden.core.model.gpt2 import build_model
from logwarden.core.model.training import TrainResult, seed_everything, train_model
from logwarden.core.model.vocab import BOS, EOS, Vocab
from logwarden.core.parsing.sessions import Event, SessionRule, build_sessions
from logwarden.core.parsing.templates import TemplateParser
from logwarden.core.records import LogRecord


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
        )


@dataclass
class FitResult:
    detector: Detector
    train_result: TrainResult
    n_train: int
    n_val: int
    fingerprint: str
    val_sessions: list[Sequence[str]]


def fingerprint(sequences: Iterable[Sequence[str]], extra: dict | None = None) -> str:
    digest = hashlib.sha256(json.dumps(extra or {}, sort_keys=True, default=to_jsonable_python).encode())
    for seq in sequences:
        digest.update(" ".join(seq).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def split_train_val(
    sessions: Sequence[Sequence[str]], val_fraction: float, seed: int
) -> tuple[list[Sequence[str]], list[Sequence[str]]]:
    """Shuffle (seeded) and hold out ``val_fraction`` of the normal sessions for calibration."""
    if len(sessions) < 2:
        raise LogWardenError(f"need at least 2 normal sessions to train and calibrate, got {len(sessions)}")
    order = list(range(len(sessions)))
    random.Random(seed).shuffle(order)
    n_val = min(len(sessions) - 1, max(1, round(len(sessions) * val_fraction)))
    return [sessions[i] for i in order[n_val:]], [sessions[i] for i in order[:n_val]]


def calibrate(
    backend,
    vocab: Vocab,
    val: Sequence[Sequence[str]],
    settings: FitSettings,
    max_len: int,
    combinations: Combinations | None = None,
) -> tuple[Calibration, Combinations | None]:
    """Choose the end threshold, keep or drop the combination check, then choose K and the score scale,
    all on normal validation sessions. Returns the calibration and the combinations kept (or None)."""
    tokens = [[BOS, *vocab.encode(s), *([EOS] if settings.score_end else [])] for s in val]
    first = score_sequences(backend, tokens, max_len=max_len, k=1)
    if settings.score_end:  # the last scored position of each sequence is its end
        ends = [float(-r.logp[-1]) for r in first if len(r.logp)]
        event_ranks = [r.ranks[:-1] for r in first]
    else:
        ends, event_ranks = [], [r.ranks for r in first]
    end_surprisal = end_threshold(ends)
    worst = [float(r.max()) if len(r) else 0.0 for r in event_ranks]
    combination_fpr = None
    if combinations is not None and settings.score_end:  # only complete sessions are judged as a whole
        rare = [combinations.is_rare(s) for s in val]
        combination_fpr = float(np.mean(rare)) if rare else 0.0
        if combination_fpr <= settings.target_fpr:
            worst = [math.inf if r else w for w, r in zip(worst, rare, strict=True)]
        else:  # too many normal sessions vary their templates: the check would cost the whole budget
            combinations = None
    else:
        combinations = None
    k, achieved = choose_k(worst, settings.target_fpr, len(vocab))
    at_k = score_sequences(backend, tokens, max_len=max_len, k=k)
    margins = np.concatenate([r.margin for r in at_k]) if at_k else np.zeros(0)
    calibration = Calibration(
        k=k,
        target_fpr=settings.target_fpr,
        validation_fpr=achieved,
        temperature=margin_temperature(margins),
        n_sessions=len(val),
        n_events=int(sum(len(s) for s in val)),
        end_surprisal=end_surprisal,
        combination_fpr=combination_fpr,
    )
    return calibration, combinations


def fit_sequences(
    sessions: Sequence[Sequence[str]], settings: FitSettings, *, progress: bool = True, extra_config: dict | None = None
) -> FitResult:
    """Train on normal key sequences and calibrate on a held-out part of them."""
    train, val = split_train_val(sessions, settings.val_fraction, settings.train.seed)
    vocab = Vocab.build(train, settings.min_template_sessions)
    seed_everything(settings.train.seed)  # the initial weights too: the same data and seed give the same model
    model = build_model(settings.model, len(vocab))
    encode = lambda seq: [BOS, *vocab.encode(seq), *([EOS] if settings.score_end else [])]  # noqa: E731
    result = train_model(model, [encode(s) for s in train], [encode(s) for s in val], settings.train, progress=progress)
    backend = TorchBackend(model, device="cpu")
    combinations = Combinations.build(train, settings.min_template_sessions) if settings.check_combinations else None
    calibration, combinations = calibrate(backend, vocab, val, settings, settings.model.max_len, combinations)
    fp = fingerprint(sessions, extra_config)
    config = ArtifactConfig(
        logwarden_version=package_version(),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        model=settings.model,
        train=settings.train,
        vocab=vocab.keys,
        calibration=calibration,
        score_end=settings.score_end,
        val_fraction=settings.val_fraction,
        min_template_sessions=settings.min_template_sessions,
        check_combinations=settings.check_combinations,
        combinations=combinations.to_dict() if combinations is not None else None,
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
    detector = Detector(model=model, config=config, backend=backend)
    return FitResult(detector, result, len(train), len(val), fp, val)


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
) -> tuple[FitResult, dict]:
    """Mine templates, build sessions, keep the normal ones, fit. Returns the fit and data stats.

    A session is left out when ``session_labels(key)`` (else its lines' own labels) says 1 (anomalous);
    ``extra_normal`` key sequences join the normal data (``retrain`` folds analyst-confirmed false
    positives in this way); ``extra_config`` adds to the version's config (``retrain``: labels, parent).
    """
    events = mine_events(records, parser)
    if not events:
        raise LogWardenError("no log lines to train on (empty input, or every line was rejected)")
    sessions = build_sessions(events, rule)
    normal, dropped = [], 0
    for session in sessions:
        label = session_labels(session.key) if session_labels else None
        label = session.label if label is None else label
        if label == 1:
            dropped += 1
            continue
        normal.append([e.key for e in session.events if e.key is not None])
    normal = [s for s in normal if s]
    normal.extend(list(seq) for seq in extra_normal)
    stats = {
        "events": len(events),
        "sessions": len(sessions),
        "anomalous_sessions_dropped": dropped,
        "templates": parser.num_templates,
    }
    extra = {
        "line_format": line_format,
        "sessions": rule,
        "parser": {"templates": parser.num_templates},
        "data": stats,
        **(extra_config or {}),
    }
    fit = fit_sequences(normal, settings, progress=progress, extra_config=extra)
    fit.detector.parser = parser
    return fit, stats
