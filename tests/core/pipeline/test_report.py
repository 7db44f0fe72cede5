"""The evaluation report: files written, HTML self-contained and escaped, JSON matching the metrics."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from logwarden.core.pipeline.evaluate import compute_metrics
from logwarden.core.pipeline.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert(1)</script>"


def _data(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(400) < 0.1
    scores = np.clip(rng.normal(0.2 + 0.5 * y, 0.15), 0, 1)
    weights = rng.integers(1, 30, 400)
    return y, scores, weights


def test_report_writes_all_files_and_html_is_self_contained(tmp_path: Path) -> None:
    y, scores, weights = _data()
    metrics = compute_metrics(y, scores >= 0.5, scores, weights)
    paths = write_report(
        tmp_path / "out",
        title="HDFS <test> & co",
        metrics=metrics,
        y_true=y,
        scores=scores,
        weights=weights,
        threshold=0.5,
        false_positive_templates=[(EVIL, 12.0), ("Receiving block <*>", 3.0)],
        false_negative_templates=[("PacketResponder <*> terminating", 2.5)],
        extra={"model": "v1", "k": np.int64(7)},
    )
    assert set(paths) == {"score_distribution", "roc", "pr", "json", "html"}
    for name in ("score_distribution", "roc", "pr"):
        assert paths[name].read_bytes().startswith(PNG_MAGIC)
        assert paths[name].name == f"{name}.png"

    page = paths["html"].read_text(encoding="utf-8")
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "HDFS &lt;test&gt; &amp; co" in page
    for value in (metrics.precision, metrics.recall, metrics.f1, metrics.roc_auc, metrics.pr_auc):
        assert f"{value:.4f}" in page
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing external
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3
    assert all(base64.b64decode(img).startswith(PNG_MAGIC) for img in images)
    assert "Only" not in page

    report = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert report["metrics"] == metrics.to_dict()
    assert report["threshold"] == 0.5
    assert report["extra"] == {"model": "v1", "k": 7}
    assert report["false_positive_templates"][0] == {"template": EVIL, "weight": 12.0}
    assert report["false_negative_templates"] == [{"template": "PacketResponder <*> terminating", "weight": 2.5}]


def test_report_with_one_class_skips_curves_and_says_so(tmp_path: Path) -> None:
    y = np.zeros(50, dtype=bool)
    scores = np.linspace(0, 1, 50)
    metrics = compute_metrics(y, scores > 0.9, scores)
    paths = write_report(
        tmp_path,
        title="normal only",
        metrics=metrics,
        y_true=y,
        scores=scores,
        threshold=None,
        false_positive_templates=[],
        false_negative_templates=[],
    )
    assert set(paths) == {"score_distribution", "json", "html"}
    assert not (tmp_path / "roc.png").exists()
    page = paths["html"].read_text(encoding="utf-8")
    assert "Only normal rows are present" in page
    assert page.count("data:image/png;base64,") == 1
    report = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert report["metrics"]["roc_auc"] is None and report["threshold"] is None


def test_report_rejects_non_finite_threshold(tmp_path: Path) -> None:
    y, scores, _ = _data()
    metrics = compute_metrics(y, scores > 2, scores)
    with pytest.raises(ValueError, match="threshold"):
        write_report(
            tmp_path,
            title="t",
            metrics=metrics,
            y_true=y,
            scores=scores,
            threshold=float("inf"),
            false_positive_templates=[],
            false_negative_templates=[],
        )
