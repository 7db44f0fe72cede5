"""A reader for Logstash pipeline configuration files (Logstash itself is in no reachable registry), enough to
check the shipped pipelines: sections, plugins, their settings (strings, numbers, booleans, arrays, hashes),
and plugins inside ``if``/``else`` blocks. It refuses what it cannot read, so an unbalanced file fails.

It also does what Logstash's ``sprintf`` does to a setting: ``%{[a][b]}`` or ``%{a}`` is the event's field,
and a reference to a field the event lacks stays as it was written (the documented behaviour the gateway
relies on), and ``${VAR:default}`` is the environment variable or its default."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

TOKEN = re.compile(
    r"""\s+|\#[^\n]*|(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<arrow>=>)|(?P<punct>[{}\[\],])"""
    r"""|(?P<op>==|!=|=~|!~|<=|>=|<|>)|(?P<word>[^\s{}\[\],"'#=]+)"""
)


@dataclass
class Plugin:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    condition: str = ""  # the enclosing if/else conditions, joined


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"cannot read the configuration at {text[pos : pos + 30]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind is None:
            continue
        value = m.group(kind)
        out.append((kind, value[1:-1].replace('\\"', '"') if kind == "str" else value))
    return out


class _Reader:
    def __init__(self, text: str) -> None:
        self.toks, self.i = _tokens(text), 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise ValueError(f"expected {value!r}, found {tok!r}")
        self.i += 1
        return tok

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            return text
        if text == "[":
            items = []
            while self.peek()[1] != "]":
                items.append(self.value())
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("]")
            return items
        if text == "{":
            out = {}
            while self.peek()[1] != "}":
                key = self.take()[1]
                self.take("=>")
                out[key] = self.value()
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("}")
            return out
        if text in ("true", "false"):
            return text == "true"
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return float(text) if "." in text else int(text)
        return text

    def plugins(self, condition: str = "") -> list[Plugin]:
        """Plugins up to the closing brace of the current block (conditionals flattened, with their conditions)."""
        out: list[Plugin] = []
        while self.peek() is not None and self.peek()[1] != "}":
            word = self.take()[1]
            if word in ("if", "else"):
                parts = [word]
                while self.peek()[1] != "{":
                    parts.append(self.take()[1])
                self.take("{")
                out += self.plugins(f"{condition} {' '.join(parts)}".strip())
                self.take("}")
                continue
            self.take("{")
            settings = {}
            while self.peek()[1] != "}":
                key = self.take()[1]
                self.take("=>")
                settings[key] = self.value()
            self.take("}")
            out.append(Plugin(word, settings, condition))
        return out


def read_pipeline(text: str) -> dict[str, list[Plugin]]:
    """``{"input": [...], "filter": [...], "output": [...]}`` of a pipeline file."""
    reader = _Reader(text)
    sections: dict[str, list[Plugin]] = {}
    while reader.peek() is not None:
        name = reader.take()[1]
        if name not in ("input", "filter", "output"):
            raise ValueError(f"unknown section {name!r}")
        reader.take("{")
        sections.setdefault(name, []).extend(reader.plugins())
        reader.take("}")
    return sections


def env(text: str, environ: dict[str, str] | None = None) -> str:
    """``${VAR}`` / ``${VAR:default}`` as Logstash substitutes them."""
    environ = os.environ if environ is None else environ
    return re.sub(r"\$\{(\w+)(?::([^}]*))?\}", lambda m: environ.get(m.group(1), m.group(2) or ""), text)


def get_field(event: dict, reference: str) -> Any:
    """``[a][b]`` or ``a`` of an event (None when absent)."""
    parts = re.findall(r"\[([^\]]+)\]", reference) or [reference]
    node: Any = event
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def sprintf(value: Any, event: dict) -> Any:
    """A setting with its ``%{...}`` references filled in from ``event`` (unresolved ones left as written)."""
    if isinstance(value, dict):
        return {k: sprintf(v, event) for k, v in value.items()}
    if isinstance(value, list):
        return [sprintf(v, event) for v in value]
    if not isinstance(value, str):
        return value

    def fill(m: re.Match) -> str:
        found = get_field(event, m.group(1))
        return m.group(0) if found is None else str(found)

    return re.sub(r"%\{([^}]+)\}", fill, value)
