"""Training is reproducible: the same normal sessions and seed give the same model and the same K."""

import numpy as np
import torch

from logwarden.core.model.config import ModelConfig, TrainConfig
from logwarden.core.pipeline.fit import FitSettings, fit_sequences


def sessions(n: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    flows = [["a", "b", "c", "d"], ["a", "c", "b", "d"], ["a", "b", "e", "d"]]
    return [flows[int(rng.integers(0, 3))] + ["f"] * int(rng.integers(0, 3)) for _ in range(n)]


def fit(seed: int):
    settings = FitSettings(
        model=ModelConfig(n_layer=1, n_head=2, n_embd=16, max_len=32),
        train=TrainConfig(epochs=3, batch_size=16, seed=seed),
        min_template_sessions=1,
    )
    return fit_sequences(sessions(200, 0), settings, progress=False)


def test_same_seed_same_model_and_calibration():
    a, b = fit(7), fit(7)
    for (name, pa), (_, pb) in zip(
        a.detector.model.named_parameters(), b.detector.model.named_parameters(), strict=True
    ):
        assert torch.equal(pa, pb), name
    assert a.detector.calibration == b.detector.calibration
    assert a.fingerprint == b.fingerprint
    assert a.train_result.history == b.train_result.history


def test_another_seed_another_model():
    a, c = fit(7), fit(8)
    assert not torch.equal(a.detector.model.transformer.wte.weight, c.detector.model.transformer.wte.weight)
