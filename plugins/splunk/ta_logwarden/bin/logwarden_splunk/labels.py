"""Analysts' labels from Splunk rows (``| anomalylabel``, the alert action, the workflow actions).

Each row becomes one label whose ``external_id`` names the event for good (``<splunk_server>:<index>:<_cd>``;
for session labels the session in its index), so running the same labelling again stores nothing twice.
What the model said comes from the row's ``logwarden_*`` fields (``| anomalyscore``'s output): the
prediction, its reason and reason code, the template and, for session labels, the session's template ids.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from logwarden_splunk import rows as R
from logwarden_splunk.scoring import Unavailable

VALUES = ("normal", "anomaly")
TARGETS = ("event", "session")
LABEL_FIELDS = ("logwarden_label_status", "logwarden_label_id", "logwarden_label_error")
# Label fields added by the integration contract; an older server refuses a label naming one of them in
# ``error_field``, and the labels are sent again without them.
CONTRACT_FIELDS = ("external_id", "attributes", "reason_code")
PREDICTED = {"anomalous": "anomaly", "normal": "normal"}
MAX_MESSAGE_CHARS = 64 * 1024


@dataclass
class LabelOptions:
    value: str
    target: str = "event"
    comment: str = ""
    source_field: str = "host"
    analyst: str = ""
    origin: str = ""  # the search id (or alert name) the label came from


def build(row: Mapping[str, Any], options: LabelOptions, position: int, keys: Sequence[str] = ()) -> dict:
    """The label for one row: a dict with the Label fields of the HTTP API (``problem`` says whether it can go)."""
    session = options.target == "session"
    source = R.text(row, "logwarden_source") or R.text(row, options.source_field)
    label: dict[str, Any] = {
        "id": str(position),
        "target": options.target,
        "value": options.value,
        "analyst": options.analyst,
        "source": source,
        "session_key": R.text(row, "logwarden_session_key"),
        "model_version": R.text(row, "logwarden_model_version"),
        "comment": options.comment,
    }
    verdict = R.text(row, "logwarden_session_verdict" if session else "logwarden_verdict")
    if verdict in PREDICTED:
        label["predicted"] = PREDICTED[verdict]
    label["reason"] = R.text(row, "logwarden_session_reason" if session else "logwarden_reason")
    label["reason_code"] = R.text(row, "logwarden_session_reason_code" if session else "logwarden_reason_code")
    if session:
        label["keys"] = list(keys)
    else:
        label["template_id"] = R.text(row, "logwarden_template_id")
        label["message"] = R.text(row, "_raw")[:MAX_MESSAGE_CHARS]
    event_ref = R.external_id(row)
    if session:
        index = R.text(row, "index")
        label["external_id"] = f"{index}:session:{source}:{label['session_key']}" if label["session_key"] else ""
    else:
        label["external_id"] = event_ref
        label["event_id"] = event_ref
    attributes = {"origin": options.origin}
    for name in ("index", "sourcetype", "splunk_server", "_cd"):
        attributes[name] = R.text(row, name)
    label["attributes"] = {k: v[:256] for k, v in attributes.items() if v}
    return {k: v for k, v in label.items() if v not in ("", [], {}, None)}


def problem(label: Mapping[str, Any]) -> str:
    """What makes a built label unusable ("" when nothing does)."""
    if not label.get("analyst"):
        return "no analyst: the search has no user name"
    if not label.get("source"):
        return "no source: the row has no logwarden_source nor source field"
    if label.get("target") == "session" and not label.get("session_key"):
        return "no session: label sessions on rows scored by anomalyscore (logwarden_session_key)"
    if not label.get("external_id"):
        return "no event identity: the row needs index, splunk_server and _cd (search the events directly)"
    return ""


class Labeler:
    """Labels rows with one request per call; every row comes back with ``logwarden_label_*`` fields."""

    def __init__(self, options: LabelOptions, client: Callable[[], Any]) -> None:
        self.options = options
        self._client_factory = client
        self._client: Any = None
        self._unknown: set[str] = set()  # contract fields this server refused: not sent again
        self.warned_legacy = False

    def label(self, rows: list[dict]) -> tuple[list[dict], list[str]]:
        """Every row with its ``logwarden_label_*`` fields, and what to tell the user. Rows naming the same
        thing (the same session, or the same event twice) share one label."""
        warnings: list[str] = []
        keys = session_keys(rows) if self.options.target == "session" else {}
        built: list[dict] = []
        sender: dict[int, int] = {}  # row -> position of its label in ``built``
        by_external: dict[str, int] = {}
        status: list[dict] = []
        for i, row in enumerate(rows):
            label = build(row, self.options, i, keys.get(_session(row), ()))
            why = problem(label)
            status.append(_status("refused", error=why) if why else _status("unsent"))
            if not why:
                if label["external_id"] not in by_external:
                    by_external[label["external_id"]] = len(built)
                    built.append(label)
                sender[i] = by_external[label["external_id"]]
        if built:
            try:
                if self._client is None:
                    self._client = self._client_factory()
                results = [_result_status(r) for r in self._submit(built, warnings)]
                for i, k in sender.items():
                    status[i] = results[k]
            except Exception as exc:  # Unavailable, ScorerUnavailable: nothing was stored; the rows say so
                reason = str(exc) if isinstance(exc, Unavailable) else f"{type(exc).__name__}: {exc}"
                warnings.append(f"LogWarden: {len(built)} labels not stored: {reason}")
                for i in sender:
                    status[i] = _status("unsent", error=reason)
        refused = sum(1 for s in status if s["logwarden_label_status"] == "refused")
        if refused:
            first = next(s["logwarden_label_error"] for s in status if s["logwarden_label_status"] == "refused")
            warnings.append(f"LogWarden: {refused} labels refused, e.g. {first}")
        out = []
        for row, s in zip(rows, status):
            row.update(s)
            out.append(row)
        journal(self.options, [(built[k], status[i]) for i, k in sender.items() if built[k]["id"] == str(i)])
        return out, warnings

    def _submit(self, labels: list[dict], warnings: list[str]) -> list[dict]:
        """Submit; labels refused for naming a contract field this server does not know are sent again without
        it (the server names one field per refusal), and that field is left out from then on."""
        results = self._client.submit_labels([_without(x, self._unknown) for x in labels])
        for _ in CONTRACT_FIELDS:
            refused = {j: _contract_field(r) for j, r in enumerate(results)}
            refused = {j: name for j, name in refused.items() if name}
            if not refused:
                break
            self._unknown.update(refused.values())
            retried = self._client.submit_labels([_without(labels[j], self._unknown) for j in refused])
            for j, r in zip(refused, retried):
                results[j] = r
        if "external_id" in self._unknown and not self.warned_legacy:
            self.warned_legacy = True
            warnings.append(
                "LogWarden: this server does not know label external ids yet, so it cannot tell a repeated "
                "label from a new one: running this labelling again stores these labels again"
            )
        return results


def journal(options: LabelOptions, sent: Sequence[tuple[Mapping[str, Any], Mapping[str, str]]]) -> None:
    """One JSON line per label sent to ``$SPLUNK_HOME/var/log/splunk/ta_logwarden_labels.log``, which Splunk
    indexes into ``_internal`` (the overview dashboard counts labels from it). No event content is written."""
    home = os.environ.get("SPLUNK_HOME")
    if not home or not sent:
        return
    path = os.path.join(home, "var", "log", "splunk", "ta_logwarden_labels.log")
    now = time.time()
    lines = []
    for label, status in sent:
        entry = {k: label.get(k, "") for k in ("analyst", "target", "value", "source", "session_key", "external_id")}
        entry.update(time=round(now, 3), origin=options.origin, status=status["logwarden_label_status"])
        entry["label_id"] = status["logwarden_label_id"]
        lines.append(json.dumps(entry, sort_keys=True))
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    except OSError:
        pass  # the journal is for dashboards only; the labels themselves were sent


def session_keys(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """Each scored session's template ids in time order, from the rows at hand."""
    members: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        if R.text(row, "logwarden_session_key") and R.text(row, "logwarden_template_id"):
            members.setdefault(_session(row), []).append(i)
    out = {}
    for key, idx in members.items():
        order = R.time_order([R.epoch(rows[i]) for i in idx])
        out[key] = [R.text(rows[idx[j]], "logwarden_template_id") for j in order]
    return out


def _session(row: Mapping[str, Any]) -> tuple[str, str]:
    return (R.text(row, "logwarden_source"), R.text(row, "logwarden_session_key"))


def _status(status: str, label_id: str = "", error: str = "") -> dict:
    return {"logwarden_label_status": status, "logwarden_label_id": label_id, "logwarden_label_error": error}


def _result_status(result: Mapping[str, Any]) -> dict:
    if not result.get("accepted"):
        where = result.get("error_field") or ""
        return _status("refused", error=f"{where}: {result.get('error', '')}" if where else result.get("error", ""))
    state = "duplicate" if result.get("duplicate") else "replaced" if result.get("replaced") else "accepted"
    return _status(state, label_id=str(result.get("label_id", "")))


def _contract_field(result: Mapping[str, Any]) -> str:
    """The contract field a refused label was refused for ("" when it was accepted or refused for another)."""
    if result.get("accepted"):
        return ""
    field = str(result.get("error_field") or "")
    return next((name for name in CONTRACT_FIELDS if field.endswith("." + name)), "")


def _without(label: Mapping[str, Any], names: set[str]) -> dict:
    return {k: v for k, v in label.items() if k not in names} if names else dict(label)
