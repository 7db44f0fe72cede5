"""The detector: a loaded model version that turns parsed sessions into verdicts and explanations.

Per event it reports the rank of the observed key among the model's predictions, its surprisal,
a score in [0, 1] (0.5 is the decision boundary) and, when anomalous, the reason and the templates
the model expected instead. A template the model does not know (new, or too rare to be modelled) is
judged by its novelty (``core.detect.novelty``: how unlike the known normal templates it is and how
severe its new words and level are), which names the closest known template. A complete session's end
is judged too (could it end here?), and so is its set of templates (is it an established normal
combination?). A session is anomalous when any of its events, its end or its combination is.

Only the torch backend needs torch: a detector loaded for onnxruntime builds the torch network the first
time ``model`` is read (saving, the torch backend), so scoring starts without importing torch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from logwarden.core.artifact import store as artifact
from logwarden.core.artifact.config import ArtifactConfig
from logwarden.core.detect.calibration import novelty_scores, scores_from_margins
from logwarden.core.detect.combinations import RARE_COMBINATION, Combinations
from logwarden.core.detect.counts import Counts, Excess
from logwarden.core.detect.next_key import score_sequences
from logwarden.core.detect.novelty import Judgement, Novelty
from logwarden.core.detect.reasons import ReasonCode
from logwarden.core.errors import LogWardenError
from logwarden.core.model.vocab import BOS, EOS, SPECIAL_TOKENS, UNK, Vocab
from logwarden.core.parsing.sessions import Event
from logwarden.core.parsing.templates import TemplateParser
from logwarden.core.records import LogRecord

if TYPE_CHECKING:
    from transformers import GPT2LMHeadModel

    from logwarden.core.model.backends import Backend

NEW_TEMPLATE = "new template (never seen in training)"
RARE_TEMPLATE = "rare template (in too few normal training sessions to be modelled)"
ENDED_EARLY = "session ended early"  # the end is judged by probability, not by K (see calibration)

Line = tuple[str, str | None]
"""What the novelty of an event is judged from: its content and its level (None: the line has no level)."""


@dataclass(slots=True)
class Expected:
    key: str
    template: str
    probability: float

    def to_dict(self) -> dict:
        return {"template_id": self.key, "template": self.template, "probability": round(self.probability, 6)}


@dataclass(slots=True)
class EventVerdict:
    key: str | None
    template: str
    rank: int
    surprisal: float  # -ln p(observed key | previous keys); inf for a new template
    score: float
    anomalous: bool
    reason: str = ""
    expected: list[Expected] = field(default_factory=list)
    reason_code: ReasonCode | None = None  # set when anomalous
    novelty: dict[str, Any] | None = None  # a template the model does not know: how it was judged

    def to_dict(self) -> dict:
        out = {
            "template_id": self.key,
            "template": self.template,
            "rank": self.rank,
            "surprisal": None if math.isinf(self.surprisal) else round(self.surprisal, 4),
            "score": round(self.score, 6),
            "anomalous": self.anomalous,
        }
        if self.novelty is not None:
            out["novelty"] = self.novelty
        if self.anomalous:
            out["reason"] = self.reason
            out["reason_code"] = self.reason_code.value if self.reason_code else None
            out["expected"] = [e.to_dict() for e in self.expected]
        return out


@dataclass(slots=True)
class SessionVerdict:
    events: list[EventVerdict]
    end: EventVerdict | None  # the end-of-session prediction, when the session is complete
    score: float
    anomalous: bool
    reason: str
    combination: str = ""  # why the session's set of templates is anomalous ("" when it is not, or unjudged)
    reason_code: ReasonCode | None = None  # the first anomalous event's (or end's), else RARE_COMBINATION

    @property
    def n_anomalous(self) -> int:
        return sum(e.anomalous for e in self.events) + int(bool(self.end and self.end.anomalous))

    @property
    def first_anomalous(self) -> int | None:
        """Index in the session of the first anomalous event (None: no event is; the end or combination is)."""
        return next((i for i, e in enumerate(self.events) if e.anomalous), None)


class Detector:
    """Everything needed to score: the network and its backend, the typed artifact config (vocabulary,
    calibration, session rule, combinations, novelty), and the template parser."""

    def __init__(
        self,
        *,
        config: ArtifactConfig,
        model: GPT2LMHeadModel | None = None,
        parser: TemplateParser | None = None,
        backend: Backend | None = None,
        path: Path | None = None,
        weights: Path | None = None,
    ) -> None:
        if model is None and weights is None:
            raise LogWardenError("a detector needs its network or the path of its weights")
        self._model = model
        self._weights = weights
        self.config = config
        self.model_config = config.model
        self.vocab = Vocab(config.vocab)
        self.calibration = config.calibration
        self.rule = config.sessions
        self.combinations = Combinations.from_dict(config.combinations) if config.combinations else None
        self.novelty = Novelty.from_dict(config.novelty) if config.novelty else None
        self.counts = Counts.from_dict(config.counts) if config.counts else None
        self.parser = parser
        if backend is None:
            from logwarden.core.model.backends import TorchBackend

            backend = TorchBackend(self.model)
        self.backend = backend
        self.path = path

    @property
    def model(self) -> GPT2LMHeadModel:
        """The torch network (built and loaded on first use when the detector was loaded for onnxruntime)."""
        if self._model is None:
            self._model = build_network(self.config, self._weights)
        return self._model

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        version: str | None = None,
        backend: str = "onnx",
        device: str = "auto",
        threads: int = 0,
    ):
        """Load a model version (the newest under ``path`` unless ``version`` is given).

        ``threads``: intra-op threads of the backend (0: the library's default)."""
        files = artifact.read_config(artifact.resolve(Path(path), version))
        cfg = files.config
        parser = TemplateParser.from_state(artifact.read_json(files.path / artifact.PARSER))
        weights = files.path / artifact.WEIGHTS
        if backend == "onnx":
            from logwarden.core.model.backends import OnnxBackend

            check_weights_file(weights)
            engine: Backend = OnnxBackend(files.path / artifact.ONNX, threads=threads)
            return cls(config=cfg, parser=parser, backend=engine, path=files.path, weights=weights)
        if backend == "torch":
            from logwarden.core.model.backends import TorchBackend, set_torch_threads

            set_torch_threads(threads)
            model = build_network(cfg, weights)
            engine = TorchBackend(model, device=device)
            return cls(config=cfg, model=model, parser=parser, backend=engine, path=files.path, weights=weights)
        raise LogWardenError(f"unknown backend {backend!r}: use onnx or torch")

    @property
    def version(self) -> str:
        return self.config.version

    @property
    def line_format(self) -> str:
        return self.config.line_format

    # -- parsing ---------------------------------------------------------------------------------
    def parse(self, record: LogRecord) -> Event:
        """Match a record against the trained templates (never learns; unseen → key None)."""
        if self.parser is None:
            raise LogWardenError("this detector has no template parser (it was built from key sequences)")
        cluster = self.parser.match(record.content)
        return Event(record, None if cluster is None else str(cluster))

    def line(self, record: LogRecord) -> Line:
        """What the novelty of ``record`` is judged from: its content and its level field's value."""
        level_field = self.novelty.level_field if self.novelty is not None else None
        return record.content, (record.fields.get(level_field) if level_field else None)

    def new_template_text(self, content: str) -> str:
        """What an unseen line looks like as a template: its content with the variables masked as ``<*>``."""
        return self.parser.masker.mask(content) if self.parser is not None else content

    @property
    def parser(self) -> TemplateParser | None:
        return self._parser

    @parser.setter
    def parser(self, parser: TemplateParser | None) -> None:
        self._parser = parser
        self._templates: dict[str, str] = {}  # key → template text; bounded by the number of templates

    def template(self, key: str | None) -> str:
        """The template text of a log key (the key itself when the parser does not know it)."""
        if key is None:
            return ""
        text = self._templates.get(key)
        if text is None:
            text = key
            if self._parser is not None and key.isdigit():
                with contextlib.suppress(KeyError):
                    text = self._parser.template(int(key))
            self._templates[key] = text
        return text

    @property
    def candidates(self) -> int:
        """How many next keys the model can predict: the modelled templates and the end of a session."""
        return len(self.vocab.keys) + 1

    # -- scoring ---------------------------------------------------------------------------------
    def score_keys(
        self,
        sessions: Sequence[Sequence[str | None]],
        *,
        complete: bool | Sequence[bool] = True,
        k: int | Sequence[int] | None = None,
        starts: Sequence[int] | None = None,
        n_expected: int = 3,
        whole: Sequence[bool] | None = None,
        lines: Sequence[Sequence[Line | None] | None] | None = None,
    ) -> list[SessionVerdict]:
        """Verdicts for sessions given as key sequences (None = new template).

        ``complete`` sessions also get their end checked (did the session stop where normal ones
        do?) and their set of templates (is it an established combination?). ``k`` overrides the
        calibrated K, per session when a sequence is given. ``starts`` (stream mode) gives per session
        the index of the first event to score: earlier events are context only and get no verdict.
        ``whole`` says per session whether its keys are all of it (stream mode: not once its window
        dropped early keys); a complete session's combination is judged only then (default: all are).
        ``lines`` gives per session and event the ``Line`` (content, level) a template the model does not
        know is judged from (None: a rare template is judged from its template text, a new one has none).
        """
        cal = self.calibration
        ks = [cal.k] * len(sessions) if k is None else ([k] * len(sessions) if isinstance(k, int) else list(k))
        ends = [complete] * len(sessions) if isinstance(complete, bool) else list(complete)
        score_end = self.config.score_end
        tokens = [
            [BOS, *self.vocab.encode(keys), *([EOS] if score_end and end else [])]
            for keys, end in zip(sessions, ends, strict=True)
        ]
        first = None if starts is None else [s + 1 for s in starts]
        raw = score_sequences(
            self.backend, tokens, max_len=self.model_config.max_len, k=ks, starts=first, n_expected=n_expected
        )
        judge = ends if whole is None else [end and all_keys for end, all_keys in zip(ends, whole, strict=True)]
        per_session = lines if lines is not None else [None] * len(sessions)
        return [
            self._verdict(keys, toks, r, kk, combination, session_lines)
            for keys, toks, r, kk, combination, session_lines in zip(
                sessions, tokens, raw, ks, judge, per_session, strict=True
            )
        ]

    def judge_novel(self, key: str | None, line: Line | None) -> Judgement:
        """How novel an event the model does not know is (see ``core.detect.novelty``)."""
        if self.novelty is None:
            return Judgement(1.0, has_text=False)
        if line is not None:
            return self.novelty.judge(self.new_template_text(line[0]), line[1])
        if key is not None and self._parser is not None and self.template(key) != key:
            return self.novelty.judge(self.template(key), None)
        return Judgement(1.0, has_text=False)

    def novelty_of(self, keys: Sequence[str | None], lines: Sequence[Line | None] | None) -> list[Judgement]:
        """How each event of a session that the model does not know was judged (calibration reads these)."""
        return [
            self.judge_novel(key, lines[i] if lines is not None else None)
            for i, key in enumerate(keys)
            if self.vocab.token(key) == UNK
        ]

    def _verdict(self, keys, tokens, raw, k: int, judge_combination: bool, lines) -> SessionVerdict:
        cal = self.calibration
        margins = raw.margin
        if cal.end_surprisal is not None and len(margins) and tokens[raw.positions[-1]] == EOS:
            # Could the session end here? Judged by probability (see calibration): the end's margin is
            # how far its surprisal exceeds the least likely normal end.
            margins = margins.copy()
            margins[-1] = -raw.logp[-1] - cal.end_surprisal
        scores = scores_from_margins(margins, cal.temperature)
        verdicts: list[EventVerdict] = []
        for i, pos in enumerate(raw.positions):
            token = tokens[pos]
            key = keys[pos - 1] if pos - 1 < len(keys) else None
            anomalous = bool(margins[i] > 0)
            score = float(scores[i])
            judgement = None
            if token == UNK:
                judgement = self.judge_novel(key, lines[pos - 1] if lines is not None else None)
                score = float(novelty_scores(np.array([judgement.score]), cal.novelty_threshold)[0])
                anomalous = cal.novelty_threshold is None or judgement.score > cal.novelty_threshold
            verdict = EventVerdict(
                key=key,
                template="<end of session>" if token == EOS else self.template(key),
                rank=int(raw.ranks[i]),
                surprisal=float(-raw.logp[i]) if raw.logp[i] > -1e8 else math.inf,
                score=score,
                anomalous=anomalous,
            )
            if judgement is not None:
                closest = self.template(judgement.closest) if judgement.closest is not None else None
                verdict.novelty = judgement.to_dict(closest)
            if anomalous:
                verdict.reason_code, verdict.reason = self._reason(keys, pos, token, verdict, k, judgement)
                verdict.expected = [
                    Expected(self.vocab.key(int(t)) or "<end>", self._token_template(int(t)), float(math.exp(lp)))
                    for t, lp in zip(raw.expected[i], raw.expected_logp[i], strict=True)
                ]
            verdicts.append(verdict)
        if judge_combination:
            self._judge_counts(keys, raw.positions, verdicts)
        end = verdicts.pop() if verdicts and tokens[-1] == EOS and raw.positions[-1] == len(tokens) - 1 else None
        everything = [*verdicts, *([end] if end else [])]
        worst = max(everything, key=lambda v: v.score, default=None)
        first = next((v for v in everything if v.anomalous), None)
        combination = self._combination_reason(keys) if judge_combination else ""
        return SessionVerdict(
            events=verdicts,
            end=end,
            score=1.0 if combination else (worst.score if worst else 0.0),
            anomalous=first is not None or bool(combination),
            reason=first.reason if first else combination,
            combination=combination,
            reason_code=first.reason_code if first else (ReasonCode.RARE_COMBINATION if combination else None),
        )

    def excess(self, keys: Sequence[str | None]) -> Excess | None:
        """The template of a complete window furthest above its normal count (None: no count check)."""
        return self.counts.excess(keys) if self.counts is not None else None

    def _judge_counts(self, keys, positions, verdicts: list[EventVerdict]) -> None:
        """Flag the event at which a template's count in the window passes the calibrated threshold."""
        threshold = self.calibration.count_threshold
        excess = self.excess(keys) if threshold is not None else None
        if excess is None or excess.ratio <= threshold:
            return
        limit = math.floor(threshold * excess.most) + 1  # the first occurrence past the threshold
        at = [i for i, k in enumerate(keys) if k == excess.key][limit - 1]
        index = next((j for j, pos in enumerate(positions) if pos - 1 == at), None)
        if index is None:  # that event was context only (stream mode): nothing of this call to flag
            return
        verdict = verdicts[index]
        verdict.score = max(verdict.score, 0.5 + 0.5 * (1.0 - threshold / excess.ratio))
        if not verdict.anomalous:
            verdict.anomalous = True
            verdict.reason_code = ReasonCode.UNUSUAL_COUNT
            verdict.reason = (
                f"unusual count: '{verdict.template}' {excess.count} times in this window, at most {excess.most} "
                f"in any normal training window (threshold {threshold:.2f} times that)"
            )

    def _combination_reason(self, keys) -> str:
        """Why a complete session's set of templates is anomalous, or "" when it is an established one."""
        if self.combinations is None or not keys or not self.combinations.is_rare(keys):
            return ""
        n = len({k for k in keys if k is not None})
        text = (
            f"{RARE_COMBINATION}: fewer than {self.combinations.min_sessions} normal training sessions had "
            f"these {n} templates together"
        )
        closest = self.combinations.closest(keys)
        if closest is None:
            return text
        parts = [f"with {self._quote(closest.extra)}" if closest.extra else ""]
        parts.append(f"without {self._quote(closest.missing)}" if closest.missing else "")
        closest_text = " and ".join(p for p in parts if p)
        return f"{text}; the closest normal combination ({closest.sessions} sessions) differs: {closest_text}"

    def _quote(self, keys: Sequence[str], limit: int = 3) -> str:
        shown = ", ".join(f"'{self.template(k)}'" for k in keys[:limit])
        return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")

    def _token_template(self, token: int) -> str:
        return "<end of session>" if token == EOS else self.template(self.vocab.key(token))

    def _reason(
        self, keys, pos: int, token: int, verdict: EventVerdict, k: int, judgement: Judgement | None
    ) -> tuple[ReasonCode, str]:
        if token == UNK:
            new = verdict.key is None
            code, text = (ReasonCode.NEW_TEMPLATE, NEW_TEMPLATE) if new else (ReasonCode.RARE_TEMPLATE, RARE_TEMPLATE)
            return code, f"{text}: {self._novelty_text(judgement)}"
        previous = self.template(keys[pos - 2]) if pos >= 2 else "<start of session>"
        if token == EOS and self.calibration.end_surprisal is not None:
            return ReasonCode.ENDED_EARLY, (
                f"{ENDED_EARLY} after '{previous}': p(end) {math.exp(-verdict.surprisal):.2g}, below that of every "
                f"normal session's end in calibration (>= {math.exp(-self.calibration.end_surprisal):.2g})"
            )
        if token == EOS:
            return ReasonCode.UNEXPECTED_END, (
                f"session ended after '{previous}': rank {verdict.rank}, not among the {k} likeliest next templates"
            )
        return ReasonCode.UNEXPECTED_TEMPLATE, (
            f"unexpected template '{verdict.template}' after '{previous}': rank {verdict.rank}, not among the {k} "
            "likeliest next templates"
        )

    def _novelty_text(self, judgement: Judgement | None) -> str:
        threshold = self.calibration.novelty_threshold
        if judgement is None or threshold is None:
            return "every template the model does not know alerts (novelty mode 'always')"
        if not judgement.has_text:
            return f"no text to compare with known templates (novelty 1 > threshold {threshold:.2f})"
        head = f"novelty {judgement.score:.2f} > threshold {threshold:.2f}"
        if judgement.closest is None:
            head += "; no known template shares a word with it"
        else:
            closest = self.template(judgement.closest)
            head += f"; closest known template '{closest}' (similarity {judgement.similarity:.2f})"
        if judgement.added:
            head += "; new words: " + ", ".join(judgement.added[:6]) + (" ..." if len(judgement.added) > 6 else "")
        if judgement.missing:
            head += "; missing: " + ", ".join(judgement.missing[:4]) + (" ..." if len(judgement.missing) > 4 else "")
        if judgement.severe:
            head += "; severe words: " + ", ".join(f"{w} ({s:.2f})" for w, s in judgement.severe)
        if judgement.level is not None:
            head += f"; level {judgement.level}"
        return head


TIED = "lm_head.weight"  # the output layer shares the token embedding's weights: not saved


def build_network(config: ArtifactConfig, weights: Path) -> GPT2LMHeadModel:
    """The torch network of a version, its weights loaded strictly."""
    from logwarden.core.model.gpt2 import build_model

    model = build_model(config.model, len(config.vocab) + len(SPECIAL_TOKENS))
    load_weights(model, weights)
    return model


def check_weights_file(path: Path) -> None:
    """A readable ``model.safetensors`` (onnxruntime does not read it; the torch network is built from it
    only when needed, and checked strictly then)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            handle.keys()
    except Exception as exc:  # safetensors raises several types for damaged files
        raise LogWardenError(f"corrupt model {path.parent}: cannot read {path.name} ({exc})") from exc


def load_weights(model: GPT2LMHeadModel, path: Path) -> None:
    """Load ``model.safetensors`` strictly: a missing, extra or misshapen tensor is a clear error."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for damaged files
        raise LogWardenError(f"corrupt model {path.parent}: cannot read {path.name} ({exc})") from exc
    expected = set(model.state_dict()) - {TIED}
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        raise LogWardenError(
            f"corrupt model {path.parent}: {path.name} does not fit the config's model "
            f"(missing tensors: {', '.join(missing[:5]) or 'none'}; unexpected: {', '.join(extra[:5]) or 'none'})"
        )
    try:
        model.load_state_dict(state, strict=False)  # the tied output layer is the only key left out
    except RuntimeError as exc:  # shapes that do not match the config
        raise LogWardenError(
            f"corrupt model {path.parent}: {path.name} does not fit the config's model ({exc})"
        ) from None
    model.tie_weights()
    model.eval()
