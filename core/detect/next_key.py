"""Next-key statistics for token sequences: rank, log-probability, top-K margin, expected keys.

A sequence is ``[BOS, k1, ..., kn]`` (plus ``EOS`` when the session is complete). Position ``t`` is
scored from the model's prediction given tokens ``< t``. Sequences longer than the context window are
scored in half-overlapping windows, so every event keeps at least half a window of context. Requests
from many callers are packed into padded batches sorted by length (see ``score_sequences``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from logwarden.core.model.backends import Backend
from logwarden.core.model.vocab import BOS, PAD, UNK

NEG_INF = np.float32(-1e9)


@dataclass(slots=True)
class SequenceScores:
    """Per scored position of one sequence (arrays share their first axis)."""

    positions: np.ndarray  # int: index in the sequence of each scored token
    ranks: np.ndarray  # int: 1 = the model's most likely next key; new templates get vocab size
    logp: np.ndarray  # float: log p(observed | previous)
    margin: np.ndarray  # float: log p(K-th likeliest) - log p(observed); > 0 means outside the top K
    expected: np.ndarray  # int [n, E]: the E likeliest tokens
    expected_logp: np.ndarray  # float [n, E]


@dataclass(slots=True)
class _Job:
    seq: int
    window: np.ndarray
    offset: int  # position of window[0] in the sequence
    first: int  # first window index to score
    last: int  # one past the last window index to score


def _plan(seqs: Sequence[Sequence[int]], starts: Sequence[int], max_len: int) -> list[_Job]:
    jobs: list[_Job] = []
    stride = max(1, max_len // 2)
    for i, seq in enumerate(seqs):
        arr = np.asarray(seq, dtype=np.int64)
        n, done = len(arr), max(1, starts[i])
        if n <= max_len:
            if done < n:
                jobs.append(_Job(i, arr, 0, done, n))
            continue
        offset = 0
        while done < n:
            # The window ending at position `done` with as much history as fits, stepping by half a window.
            offset = max(offset, done - stride) if done >= max_len else 0
            end = min(offset + max_len, n)
            jobs.append(_Job(i, arr[offset:end], offset, done - offset, end - offset))
            done = end
    return jobs


def score_sequences(
    backend: Backend,
    seqs: Sequence[Sequence[int]],
    *,
    max_len: int,
    k: int | Sequence[int],
    starts: Sequence[int] | None = None,
    n_expected: int = 3,
    max_batch_tokens: int = 16384,
) -> list[SequenceScores]:
    """Score positions ``starts[i]..end`` (default: every event) of each token sequence."""
    starts = list(starts) if starts is not None else [1] * len(seqs)
    ks = [k] * len(seqs) if isinstance(k, int) else list(k)
    jobs = _plan(seqs, starts, max_len)
    jobs.sort(key=lambda j: len(j.window))
    parts: list[list[tuple[np.ndarray, ...]]] = [[] for _ in seqs]
    i = 0
    while i < len(jobs):
        width = len(jobs[i].window)
        j = i + 1
        while j < len(jobs) and len(jobs[j].window) * (j - i + 1) <= max_batch_tokens:
            j += 1
        batch = jobs[i:j]
        width = len(batch[-1].window)
        ids = np.full((len(batch), width), PAD, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, job in enumerate(batch):
            ids[row, : len(job.window)] = job.window
            mask[row, : len(job.window)] = 1
        logits = backend.logits(ids, mask)
        rows = np.concatenate([np.full(job.last - job.first, r) for r, job in enumerate(batch)])
        cols = np.concatenate([np.arange(job.first, job.last) for job in batch])
        batch_k = np.concatenate([np.full(job.last - job.first, ks[job.seq]) for job in batch])
        stats = _position_stats(logits[rows, cols - 1], ids[rows, cols], batch_k, n_expected)
        at = 0
        for job in batch:
            n = job.last - job.first
            parts[job.seq].append((np.arange(job.first, job.last) + job.offset, *(s[at : at + n] for s in stats)))
            at += n
        i = j
    return [_merge(p, n_expected) for p in parts]


def _position_stats(logits: np.ndarray, targets: np.ndarray, ks: np.ndarray, n_expected: int):
    logits = logits.astype(np.float32, copy=True)
    logits[:, [PAD, BOS, UNK]] = NEG_INF  # never "expect" a special token other than EOS
    logp = logits - _logsumexp(logits)
    vocab = logp.shape[1]
    observed = np.take_along_axis(logp, targets[:, None], axis=1)[:, 0]
    new = targets == UNK
    observed = np.where(new, NEG_INF, observed)
    ranks = (logp > observed[:, None]).sum(axis=1) + 1
    ranks = np.where(new, vocab, ranks)
    order = np.argsort(-logp, axis=1)
    rows = np.arange(len(ks))
    kth = logp[rows, order[rows, np.clip(ks, 1, vocab) - 1]]
    margin = np.where(new, np.inf, kth - observed)
    expected = order[:, :n_expected]
    expected_logp = np.take_along_axis(logp, expected, axis=1)
    return ranks, observed, margin, expected, expected_logp


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1, keepdims=True)
    return top + np.log(np.exp(x - top).sum(axis=1, keepdims=True))


def _merge(parts: list[tuple[np.ndarray, ...]], n_expected: int) -> SequenceScores:
    if not parts:
        empty = np.zeros(0)
        return SequenceScores(
            empty.astype(np.int64),
            empty.astype(np.int64),
            empty,
            empty,
            np.zeros((0, n_expected), np.int64),
            np.zeros((0, n_expected)),
        )
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    order = np.argsort(cols[0], kind="stable")
    return SequenceScores(*(c[order] for c in cols))
