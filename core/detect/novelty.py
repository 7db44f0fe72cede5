"""How anomalous is a template the model does not know? A graded, explainable novelty score.

A line whose template was never seen in normal training (or too rarely to be modelled) is not an anomaly
by definition: systems that drift log benign new messages all the time ("... error corrected",
"temperature back to normal"). Such a line is judged by two things, both explained in its reason:

* **distance** ``d`` to the closest known normal template: 1 - the weighted Jaccard similarity of their
  word sets (words after masking, lower case; a word's weight is its IDF over the known templates, so
  shared rare words count more than shared common ones). The closest template and the words added and
  missing are reported.
* **severity** ``s`` of what is new: the line's level field when the format has one (syslog severities:
  emerg ... debug, plus FATAL/SEVERE/FAILURE, each discounted by the share of the normal training lines
  that carry it: a system whose normal lines are 40 % FATAL register dumps says less with FATAL than one
  whose normal lines never are), and the severity of the words it adds to its closest template. A word's
  severity is *learned* from the normal training lines: the share of the distinct training lines holding
  it that were severe (an error level or worse, or, without a level field, a
  word of the seed list below), smoothed toward its seed value. So "error" in a system whose normal
  INFO lines say "parity error corrected" weighs less than in one where it only appears in failures,
  and words of the system's own severe lines weigh more than the seed list knows.

The novelty is ``d * (1 + s) / 2``: a line like a known template scores near 0 however severe its words
(a known normal FATAL register dump with another register name), a line unlike anything known scores
0.5 when nothing about it is severe and 1 when it is. Calibration sets the threshold (0.5 unless normal
validation data asks for more, see ``core.detect.calibration``). Without text (models fitted on template
ids only, or a caller that passes none) nothing can be compared: the novelty is 1, as "a new template is
an anomaly" used to be; ``mode="always"`` keeps that rule for every line.
"""

from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from logwarden.core.errors import LogWardenError

WORD = re.compile(r"[a-z][a-z0-9_]*")
MAX_TEMPLATES = 50_000  # bound on the known templates a model stores
MAX_WORDS = 50_000  # bound on the learned word severities a model stores
MAX_LEVELS = 100  # bound on the level values whose share a model stores
CACHE = 20_000  # judged lines kept (identical masked lines are common)
SMOOTHING = 2.0  # pseudo-counts pulling a learned word severity toward its seed value
UNSEEN_WORD = 0.1  # severity of a word neither seen in training nor in the seed list
UNKNOWN_LEVEL = 0.3  # severity of a level value that is not a standard one
LEVEL_WORD_SHARE = 0.5  # with a level field, words count half: the system's own judgement comes first
SEVERE = 0.6  # a training line at least this severe counts as severe when learning word severities

# Standard severities (syslog RFC 5424 names and the common logger spellings).
LEVELS: dict[str, float] = {
    "emerg": 1.0,
    "emergency": 1.0,
    "panic": 1.0,
    "fatal": 1.0,
    "alert": 0.9,
    "crit": 0.9,
    "critical": 0.9,
    "severe": 0.9,
    "failure": 0.9,
    "err": 0.8,
    "error": 0.8,
    "warn": 0.4,
    "warning": 0.4,
    "notice": 0.1,
    "info": 0.0,
    "information": 0.0,
    "informational": 0.0,
    "debug": 0.0,
    "trace": 0.0,
    "fine": 0.0,
    "finer": 0.0,
    "finest": 0.0,
    "config": 0.0,
}

# Seed values only: learning from the system's own lines moves every word (see the module doc).
SEED_WORDS: dict[str, float] = {
    **dict.fromkeys(("fatal", "panic", "emergency", "catastrophic"), 1.0),
    **dict.fromkeys(("critical", "crit", "crash", "crashed", "segfault", "oops", "corrupt", "corrupted"), 0.9),
    **dict.fromkeys(("error", "errors", "err", "fail", "fails", "failed", "failure", "failures", "fault"), 0.8),
    **dict.fromkeys(("abort", "aborted", "aborting", "halt", "halted", "killed", "terminated", "died"), 0.8),
    **dict.fromkeys(("exception", "unrecoverable", "uncorrectable", "lost", "unreachable", "dead"), 0.7),
    **dict.fromkeys(("denied", "refused", "rejected", "unable", "cannot", "timeout", "timed", "invalid"), 0.6),
    **dict.fromkeys(("illegal", "violation", "overflow", "severed", "broken", "bad", "down", "missing"), 0.5),
    **dict.fromkeys(("warning", "warn", "retry", "retrying", "degraded", "unexpected"), 0.4),
}


def words(text: str) -> frozenset[str]:
    """The words of a (masked) line: lower case, starting with a letter (masked values drop out)."""
    return frozenset(WORD.findall(text.lower()))


def level_severity(level: str | None) -> float | None:
    """The severity of a level value (None when the line has no level)."""
    if level is None or not level.strip():
        return None
    return LEVELS.get(level.strip().lower(), UNKNOWN_LEVEL)


@dataclass(frozen=True, slots=True)
class Judgement:
    """Why a line the model does not know scores what it does."""

    score: float  # the novelty in [0, 1]
    has_text: bool  # False: nothing to compare (score 1)
    closest: str | None = None  # key of the closest known normal template
    similarity: float = 0.0
    added: tuple[str, ...] = ()  # words of the line its closest template lacks
    missing: tuple[str, ...] = ()  # words of the closest template the line lacks
    severe: tuple[tuple[str, float], ...] = ()  # the added words that carry severity, most severe first
    level: str | None = None
    severity: float = 0.0

    def to_dict(self, template: str | None = None) -> dict:
        out: dict = {"novelty": round(self.score, 4)}
        if not self.has_text:
            return out
        out.update(
            {
                "closest_template_id": self.closest,
                "closest_template": template,
                "similarity": round(self.similarity, 4),
                "added_words": list(self.added[:10]),
                "missing_words": list(self.missing[:10]),
                "severity": round(self.severity, 4),
            }
        )
        if self.level is not None:
            out["level"] = self.level
        return out


@dataclass
class _Known:
    key: str
    words: frozenset[str]


@dataclass
class Novelty:
    """Known normal templates (key → masked text), learned word severities, the level field's name."""

    templates: dict[str, str]
    severity: dict[str, float] = field(default_factory=dict)
    level_field: str | None = None
    level_share: dict[str, float] = field(default_factory=dict)  # level (lower case) → share of normal lines

    def __post_init__(self) -> None:
        self._known = [_Known(key, words(text)) for key, text in self.templates.items()]
        df: Counter[str] = Counter(w for known in self._known for w in known.words)
        n = max(len(self._known), 1)
        self._idf = {w: math.log(1.0 + n / c) for w, c in df.items()}
        self._unseen_idf = math.log(1.0 + n)
        self._index: dict[str, list[int]] = {}
        for i, known in enumerate(self._known):
            for w in known.words:
                self._index.setdefault(w, []).append(i)
        self._cache: OrderedDict[tuple[str, str | None], Judgement] = OrderedDict()

    # -- learning ---------------------------------------------------------------------------------
    @classmethod
    def build(
        cls, templates: Mapping[str, str], lines: Iterable[tuple[str, str | None]], level_field: str | None = None
    ) -> Novelty:
        """Known templates plus word severities learned from normal training lines ``(masked text, level)``."""
        seen: set[tuple[frozenset[str], str | None]] = set()
        count: Counter[str] = Counter()
        severe: Counter[str] = Counter()
        levels: Counter[str] = Counter()
        for text, level in lines:  # each distinct (words, level) once: frequent templates must not dominate
            item = (words(text), level)
            if item in seen:
                continue
            seen.add(item)
            if level is not None and level.strip():
                levels[level.strip().lower()] += 1
            line_words, sev = item
            level_sev = level_severity(sev)
            if level_sev is None:
                level_sev = max((SEED_WORDS.get(w, 0.0) for w in line_words), default=0.0)
            is_severe = level_sev >= SEVERE
            for w in line_words:
                count[w] += 1
                severe[w] += is_severe
        learned = {
            w: round((severe[w] + SMOOTHING * SEED_WORDS.get(w, UNSEEN_WORD)) / (n + SMOOTHING), 4)
            for w, n in count.most_common(MAX_WORDS)
        }
        known = dict(list(templates.items())[:MAX_TEMPLATES])
        total = sum(levels.values())
        share = {level: round(n / total, 4) for level, n in levels.most_common(MAX_LEVELS)} if total else {}
        return cls(known, learned, level_field, share)

    def level_severity(self, level: str | None) -> float | None:
        """The severity of a level value, discounted by its share of the normal training lines."""
        base = level_severity(level)
        if base is None or level is None:
            return None
        return base * (1.0 - self.level_share.get(level.strip().lower(), 0.0))

    def word_severity(self, word: str) -> float:
        learned = self.severity.get(word)
        return learned if learned is not None else SEED_WORDS.get(word, UNSEEN_WORD)

    # -- judging ----------------------------------------------------------------------------------
    def judge(self, text: str | None, level: str | None = None) -> Judgement:
        """The novelty of a masked line (None: no text, novelty 1) at ``level`` (None: the line has none)."""
        if text is None:
            return Judgement(1.0, has_text=False)
        key = (text, level)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        judgement = self._judge(words(text), level)
        self._cache[key] = judgement
        if len(self._cache) > CACHE:
            self._cache.popitem(last=False)
        return judgement

    def _weight(self, word: str) -> float:
        return self._idf.get(word, self._unseen_idf)

    def _judge(self, mine: frozenset[str], level: str | None) -> Judgement:
        candidates = {i for w in mine for i in self._index.get(w, ())}
        best, best_sim = None, 0.0
        for i in sorted(candidates):  # sorted: ties go to the first known template, deterministically
            other = self._known[i].words
            union = sum(self._weight(w) for w in mine | other)
            sim = sum(self._weight(w) for w in mine & other) / union if union else 0.0
            if sim > best_sim:
                best, best_sim = i, sim
        if best is None and not mine and any(not k.words for k in self._known):  # a line of values only
            best, best_sim = next(i for i, k in enumerate(self._known) if not k.words), 1.0
        closest = self._known[best] if best is not None else None
        added = tuple(sorted(mine - closest.words)) if closest else tuple(sorted(mine))
        missing = tuple(sorted(closest.words - mine)) if closest else ()
        severe = sorted(((w, self.word_severity(w)) for w in added), key=lambda item: (-item[1], item[0]))
        word_sev = severe[0][1] if severe else 0.0
        level_sev = self.level_severity(level)
        severity = word_sev if level_sev is None else max(level_sev, LEVEL_WORD_SHARE * word_sev)
        distance = 1.0 - best_sim
        return Judgement(
            score=distance * (1.0 + severity) / 2.0,
            has_text=True,
            closest=closest.key if closest else None,
            similarity=best_sim,
            added=added,
            missing=missing,
            severe=tuple((w, s) for w, s in severe if s >= SEVERE)[:5],
            level=level,
            severity=severity,
        )

    # -- storage ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "templates": self.templates,
            "severity": self.severity,
            "level_field": self.level_field,
            "level_share": self.level_share,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Novelty:
        try:
            templates = {str(k): str(v) for k, v in dict(data["templates"]).items()}
            severity = {str(k): float(v) for k, v in dict(data.get("severity") or {}).items()}
            level_field = data.get("level_field")
            level_share = {str(k): float(v) for k, v in dict(data.get("level_share") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise LogWardenError(f"bad novelty model in the model config ({exc})") from exc
        if len(templates) > MAX_TEMPLATES or len(severity) > MAX_WORDS:
            raise LogWardenError("bad novelty model in the model config (too many templates or words)")
        return cls(templates, severity, None if level_field is None else str(level_field), level_share)
