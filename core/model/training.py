"""Training loop: next-key prediction on normal sessions, early stopping on validation loss."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import GPT2LMHeadModel

from logwarden.core.model.config import TrainConfig
from logwarden.core.model.vocab import PAD


@dataclass
class TrainResult:
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    seconds: float
    device: str
    history: list[dict] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def chunk_for_training(seqs: Sequence[Sequence[int]], max_len: int) -> list[list[int]]:
    """Cut sequences longer than the context window into half-overlapping windows."""
    out: list[list[int]] = []
    stride = max(1, max_len // 2)
    for seq in seqs:
        if len(seq) <= max_len:
            out.append(list(seq))
            continue
        for start in range(0, len(seq) - 1, stride):
            out.append(list(seq[start : start + max_len]))
            if start + max_len >= len(seq):
                break
    return out


def _batches(seqs: list[list[int]], batch_size: int, order: list[int]):
    for i in range(0, len(order), batch_size):
        batch = [seqs[j] for j in order[i : i + batch_size]]
        width = max(len(s) for s in batch)
        ids = torch.full((len(batch), width), PAD, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, s in enumerate(batch):
            ids[row, : len(s)] = torch.tensor(s)
            mask[row, : len(s)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        yield ids, mask, labels


def _loss(model: GPT2LMHeadModel, ids, mask, labels, device, autocast: bool) -> tuple[torch.Tensor, int]:
    ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    targets = labels[:, 1:]
    n = int((targets != -100).sum())
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
    )
    return loss, n


@torch.no_grad()
def evaluate_loss(model: GPT2LMHeadModel, seqs: list[list[int]], batch_size: int, device, autocast) -> float:
    model.eval()
    total, count = 0.0, 0
    for ids, mask, labels in _batches(seqs, batch_size, list(range(len(seqs)))):
        loss, n = _loss(model, ids, mask, labels, device, autocast)
        total += float(loss) * n
        count += n
    return total / max(count, 1)


def train_model(
    model: GPT2LMHeadModel,
    train_seqs: Sequence[Sequence[int]],
    val_seqs: Sequence[Sequence[int]],
    config: TrainConfig,
    *,
    progress: bool = True,
) -> TrainResult:
    """Train in place on token sequences (BOS ... EOS); keeps the weights of the best validation epoch."""
    seed_everything(config.seed)
    device = resolve_device(config.device)
    autocast = config.bf16 and device.type == "cuda"
    max_len = model.config.n_positions
    train = chunk_for_training(train_seqs, max_len)
    val = chunk_for_training(val_seqs, max_len) or train
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if total_steps >= 4:  # one-cycle needs a step of warm-up and of annealing: at least 10 % of the run, or 2 steps
        pct_start = max(0.1, 2.0 / total_steps)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=pct_start
        )
    else:  # a handful of steps (a tiny training set): a constant learning rate
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)
    rng = random.Random(config.seed)
    best_loss, best_epoch, best_state, stale = math.inf, 0, None, 0
    history: list[dict] = []
    start = time.perf_counter()
    bar = tqdm(range(1, config.epochs + 1), desc="training", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        order = list(range(len(train)))
        rng.shuffle(order)
        running, seen = 0.0, 0
        for ids, mask, labels in _batches(train, config.batch_size, order):
            loss, n = _loss(model, ids, mask, labels, device, autocast)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += float(loss.detach()) * n
            seen += n
        val_loss = evaluate_loss(model, val, config.batch_size, device, autocast)
        history.append({"epoch": epoch, "train_loss": running / max(seen, 1), "val_loss": val_loss})
        bar.set_postfix(train=f"{running / max(seen, 1):.4f}", val=f"{val_loss:.4f}")
        if val_loss < best_loss - 1e-5:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    model.to("cpu")
    return TrainResult(
        best_epoch=best_epoch,
        best_val_loss=best_loss,
        epochs_run=len(history),
        seconds=time.perf_counter() - start,
        device=str(device),
        history=history,
    )
