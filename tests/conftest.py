"""Shared fixtures: a generated corpus and one tiny model trained on it (once per test session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from logwarden.core.cli import main
from logwarden.core.synthetic import generate

TRAIN_ARGS = ["--format", "hdfs", "--epochs", "30", "--patience", "6", "--quiet", "--seed", "3"]


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    train = generate(n_sessions=300, anomaly_rate=0.0, seed=1)
    (root / "train.log").write_text("\n".join(train.lines) + "\n")
    test = generate(n_sessions=240, anomaly_rate=0.25, seed=2)
    (root / "test.log").write_text("\n".join(test.lines) + "\n")
    (root / "test_labels.csv").write_text(
        "BlockId,Label\n" + "".join(f"{b},{'Anomaly' if y else 'Normal'}\n" for b, y in test.labels.items())
    )
    (root / "kinds.csv").write_text("".join(f"{b},{k}\n" for b, k in test.kinds.items()))
    return root


@pytest.fixture(scope="session")
def model_root(corpus_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models") / "hdfs-demo"
    assert main(["train", str(corpus_dir / "train.log"), "--out", str(root), *TRAIN_ARGS]) == 0
    return root


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Path:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate (see support.make_pki)."""
    from support import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))
