"""The language model over log keys: a small GPT-2 trained from scratch (LogGPT's recipe)."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from logwarden.core.model.config import ModelConfig
from logwarden.core.model.vocab import BOS, EOS, PAD


def build_model(config: ModelConfig, vocab_size: int) -> GPT2LMHeadModel:
    """A fresh, randomly initialised GPT-2 whose vocabulary is the log keys plus special tokens."""
    gpt2 = GPT2Config(
        vocab_size=vocab_size,
        n_positions=config.max_len,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    return GPT2LMHeadModel(gpt2)


class LogitsModule(torch.nn.Module):
    """Export wrapper: token ids and attention mask in, next-token logits out (no KV cache)."""

    def __init__(self, model: GPT2LMHeadModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
