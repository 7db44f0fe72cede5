"""Why a verdict is anomalous: a machine-readable code beside the human reason.

Decisions (label recalibration, evaluation grouping, benchmarks) key on ``ReasonCode``; the reason text
only explains. The values are the JSON spellings of ``logwarden.v1.ReasonCode`` (its names, lower case,
without the prefix).
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    NEW_TEMPLATE = "new_template"  # the template was never seen in training
    RARE_TEMPLATE = "rare_template"  # seen in too few normal training sessions to be modelled
    UNEXPECTED_TEMPLATE = "unexpected_template"  # not among the K likeliest next templates
    ENDED_EARLY = "ended_early"  # ending here is less likely than at any normal session's end
    RARE_COMBINATION = "rare_combination"  # a set of templates (almost) no normal session had
    UNEXPECTED_END = "unexpected_end"  # the end was not among the K likeliest next keys (no end threshold)
    UNUSUAL_COUNT = "unusual_count"  # a template appears more often in the window than in any normal one


K_INDEPENDENT = frozenset(
    {
        ReasonCode.NEW_TEMPLATE,
        ReasonCode.RARE_TEMPLATE,
        ReasonCode.ENDED_EARLY,
        ReasonCode.RARE_COMBINATION,
        ReasonCode.UNUSUAL_COUNT,
    }
)
"""Alerts no top-K setting decides: a false positive of these does not move a source's K."""


def parse_reason_code(value: str | None) -> ReasonCode | None:
    """The code of a JSON/label spelling (``""``/None: no code); ``ValueError`` names an unknown one."""
    if not value:
        return None
    try:
        return ReasonCode(value)
    except ValueError:
        known = ", ".join(c.value for c in ReasonCode)
        raise ValueError(f"unknown reason code {value!r} (known: {known})") from None
