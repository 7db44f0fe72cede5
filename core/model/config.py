"""The model's size and the optimiser's settings: plain dataclasses (no torch), so configs load fast."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class ModelConfig:
    """Size of the GPT-2 decoder. Log keys are a small vocabulary, so the model stays tiny."""

    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    max_len: int = 256  # context window in events, BOS included
    dropout: float = 0.0  # the training data is repetitive; dropout cost accuracy on HDFS

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainConfig:
    """Optimisation settings; every run with the same config, data and seed gives the same model."""

    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    patience: int = 6  # epochs without validation improvement before stopping
    seed: int = 7
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = True  # autocast to bfloat16 on GPU

    def to_dict(self) -> dict:
        return asdict(self)
