"""A new model version from the current one, its original normal logs, and the analysts' labels.

The artifact does not keep its training sequences, so the normal logs are read again and parsed with
the version's own template miner in learning mode: template ids stay those the labels refer to.
Sessions whose latest label is ``anomaly`` leave the training data; sessions whose latest label is
``normal`` and that carry their key sequence join it, ``fp_weight`` times each (a handful of
analyst-confirmed false positives must weigh against hundreds of ordinary sessions). Everything
else (model, training, windowing and calibration settings) is the current version's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from logwarden.core.artifact import store as artifact
from logwarden.core.errors import LogWardenError
from logwarden.core.labels.label import Label
from logwarden.core.labels.store import LabelStore
from logwarden.core.records import LogRecord


@dataclass
class LabelUse:
    """Which labels a retrain used; recorded as ``labels`` in the new version's config.json."""

    count: int = 0
    max_id: int = 0
    false_positive_sessions: int = 0
    skipped_unknown_keys: int = 0
    anomalous_sessions_dropped: int = 0
    fp_weight: int = 1

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class RetrainResult:
    path: Path
    version: str
    parent_version: str
    labels: LabelUse
    train_sessions: int
    k: int


def split_labels(
    labels: Iterable[Label], known_keys: set[str], use: LabelUse
) -> tuple[list[tuple[str, ...]], set[str]]:
    """Latest label per session key → (false-positive key sequences, session keys to drop)."""
    latest: dict[str, Label] = {}
    for label in labels:
        use.count += 1
        use.max_id = max(use.max_id, label.id or 0)
        if label.session_key:  # event labels without a session name nothing to drop or fold in
            latest[label.session_key] = label
    sequences, drop = [], set()
    for key, label in latest.items():
        if label.verdict == "anomaly":
            drop.add(key)
        elif label.keys:
            if all(k in known_keys for k in label.keys):
                sequences.append(label.keys)
            else:
                use.skipped_unknown_keys += 1
    use.false_positive_sessions = len(sequences)
    return sequences, drop


def retrain(
    model: Path,
    store: LabelStore,
    records: Iterable[LogRecord],
    *,
    version: str | None = None,
    epochs: int | None = None,
    fp_weight: int = 5,
    onnx: bool = True,
    progress: bool = False,
) -> RetrainResult:
    """Fit and save a new version under the model root of ``model`` (a root or a version directory), on
    the same path as ``logwarden train`` (``train_from_logs``) with the base version's settings."""
    from logwarden.core.parsing.templates import TemplateParser
    from logwarden.core.pipeline.fit import FitSettings, save_detector, train_from_logs

    if fp_weight < 1:
        raise LogWardenError(f"fp_weight must be at least 1, got {fp_weight}")
    files = artifact.read_config(artifact.resolve(Path(model), version))
    cfg = files.config
    parser = TemplateParser.from_state(artifact.read_json(files.path / artifact.PARSER))
    use = LabelUse(fp_weight=fp_weight)
    known = {str(cid) for cid in parser.templates()}
    fp_sequences, drop = split_labels(store.iter_labels(), known, use)
    fit, stats = train_from_logs(
        records,
        parser=parser,
        rule=cfg.sessions,
        settings=FitSettings.from_config(cfg, epochs=epochs),
        line_format=cfg.line_format,
        session_labels=lambda key: 1 if key in drop else None,
        extra_normal=[seq for seq in fp_sequences for _ in range(fp_weight)],
        extra_config={"labels": use.to_dict(), "parent_version": files.version},
        progress=progress,
        level_field=(cfg.novelty or {}).get("level_field"),
    )
    use.anomalous_sessions_dropped = stats["anomalous_sessions_dropped"]
    fit.detector.config = fit.detector.config.model_copy(update={"labels": use.to_dict()})
    path = save_detector(fit.detector, files.path.parent, onnx=onnx)
    return RetrainResult(path, fit.detector.version, files.version, use, fit.n_train, fit.detector.calibration.k)
