"""Inference backends: onnxruntime (default on CPU) and torch (bf16 on GPU). Both return logits.

torch is imported only by the torch backend and the ONNX export, so onnxruntime scoring starts fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from logwarden.core.errors import LogWardenError

if TYPE_CHECKING:
    from transformers import GPT2LMHeadModel


class Backend(Protocol):
    name: str

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """int64 [batch, length] ids and mask in, float32 [batch, length, vocab] logits out."""
        ...


def set_torch_threads(threads: int) -> None:
    """Intra-op threads of torch (0: leave torch's default, one per core; on a busy machine fewer is faster)."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


class TorchBackend:
    """Runs the GPT-2 module directly; bf16 autocast on CUDA."""

    name = "torch"

    def __init__(self, model: GPT2LMHeadModel, device: str = "auto", bf16: bool = True) -> None:
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.autocast = bf16 and self.device.type == "cuda"
        self.model = model.to(self.device).eval()

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        ids = torch.from_numpy(input_ids).to(self.device)
        mask = torch.from_numpy(attention_mask).to(self.device)
        with (
            torch.inference_mode(),
            torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.autocast),
        ):
            out = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        return out.float().cpu().numpy()


class OnnxBackend:
    """onnxruntime session over the exported ``model.onnx``; GPU providers first when installed."""

    name = "onnx"

    def __init__(self, path: Path, providers: list[str] | None = None, threads: int = 0) -> None:
        import onnxruntime as ort

        if not Path(path).is_file():
            raise LogWardenError(f"ONNX model not found: {path}")
        available = ort.get_available_providers()
        wanted = providers or ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
        chosen = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads would otherwise spin and steal the CPU that parsing and I/O need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise LogWardenError(f"cannot load ONNX model {path}: {exc}") from exc
        self.providers = self.session.get_providers()

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        (out,) = self.session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})
        return out


def export_onnx(model: GPT2LMHeadModel, path: Path) -> None:
    """Export logits(input_ids, attention_mask) with dynamic batch and length (torch.export based)."""
    import torch

    from logwarden.core.model.gpt2 import LogitsModule

    module = LogitsModule(model.to("cpu").eval()).eval()
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=model.config.n_positions)
    shapes = {"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}}
    torch.onnx.export(
        module,
        (ids, mask),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_shapes=shapes,
        dynamo=True,
        external_data=False,
        verbose=False,
    )
