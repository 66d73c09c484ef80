"""How samples become micro-batches, and the attention each mode costs (train.packing).

trl's packing concatenates the micro-batch into one padding-free row with `position_ids` that
restart at each document. What that costs depends on the attention kernel: flex_attention
builds a block-sparse document mask and flash attention runs varlen, so each token attends only
to its own document; sdpa and eager get a dense block-diagonal mask over the whole row instead
(4 x 4096 tokens: a 16k x 16k mask, and every token attends over all 16k keys). Measured on the
tiny DeepSeek-V2 at 4 x 4096 on CPU (bench/README.md) that mask made a step ~25x slower.

  by_length (default)  no packing: one sample a row, rows of similar length batched together
                       (transformers' LengthGroupedSampler, train and eval), right-padded. With
                       right padding and a causal mask no real token ever sees a pad, so the
                       padding mask is dropped and sdpa runs its plain causal kernel per row.
  packed               trl's packed rows, only with a kernel that reads document boundaries
                       (flex_attention, flash_attention_2/3/4); anything else is an error at start.
  dense                the packed rows under sdpa/eager (the dense mask): explicit opt-in only.

Tokens/s counts real tokens: `non_padding` (the attention mask, before it is dropped) for
by_length, the packed row's length (it has no padding) for packed and dense.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from trl import SFTTrainer

from ...core.errors import ZeldaError
from ...core.train_config import RunConfig

FLASH = ("flash_attention_2", "flash_attention_3", "flash_attention_4")
PER_DOCUMENT = ("flex_attention", *FLASH)  # kernels that attend per document from position_ids


@dataclass(frozen=True)
class Batching:
    """The SFTConfig settings of one packing mode."""

    packing: bool
    sampling: str  # transformers' train_sampling_strategy
    count_tokens: str  # transformers' include_num_input_tokens_seen

    def sft_kwargs(self) -> dict:
        return {"packing": self.packing, "train_sampling_strategy": self.sampling,
                "include_num_input_tokens_seen": self.count_tokens}


def batching(cfg: RunConfig, device: str | None = None) -> Batching:
    """The settings of cfg.train.packing; a mode the attention backend cannot run per document (on
    `device`, when given: the trainer's start check) is an error."""
    mode, attn = cfg.train.packing, cfg.model.attn_implementation
    if mode == "by_length":
        return Batching(packing=False, sampling="group_by_length", count_tokens="non_padding")
    if mode == "packed":
        check_per_document_kernel(attn, device)
    return Batching(packing=True, sampling="random", count_tokens="all")


def check_per_document_kernel(attn: str, device: str | None = None) -> None:
    """train.packing = "packed" needs a kernel that keeps documents apart without a dense mask."""
    option = f'train.packing = "packed" with model.attn_implementation = "{attn}"'
    if attn == "flex_attention" and device == "cpu":  # torch raises NotImplementedError at the first backward
        raise ZeldaError(f"{option}: torch's flex_attention has no backward on the CPU (it trains on CUDA); "
                         'on the CPU use train.packing = "by_length"')
    if attn not in PER_DOCUMENT:
        raise ZeldaError(f"{option}: {attn} attends over the whole packed row through a dense block-diagonal mask; "
                         f"use flex_attention or {'/'.join(FLASH)}, or train.packing = \"by_length\"")
    if attn == "flex_attention":
        from transformers.utils import is_torch_flex_attn_available

        if not is_torch_flex_attn_available():
            raise ZeldaError(f"{option}: this torch ({torch.__version__}) has no flex_attention (needs torch >= 2.5)")
        return
    from transformers.utils import import_utils

    available = getattr(import_utils, f"is_{attn.replace('_attention', '_attn')}_available", None)
    if available is None or not available():
        package = {"flash_attention_2": "flash-attn", "flash_attention_3": "flash-attn-3",
                   "flash_attention_4": "flash-attn-4"}[attn]
        raise ZeldaError(f"{option}: {attn} is not usable here (needs CUDA and `pip install {package}`); "
                         "use flex_attention or train.packing = \"by_length\"")


class ZeldaSFTTrainer(SFTTrainer):
    """SFTTrainer whose unpacked (by_length) batches take sdpa's causal fast path."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "attention_mask" in inputs:
            inputs = causal_inputs(inputs)
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


def causal_inputs(inputs: dict) -> dict:
    """A right-padded batch without its padding mask: under a causal mask a real token only sees
    earlier tokens of its own row, all real, so the mask changes nothing but the kernel (with a
    mask, sdpa leaves its causal fast path and builds a 4-D mask). Positions run 0..L-1 in every
    row (no restart, so transformers does not take them for a packed row)."""
    mask = inputs["attention_mask"]
    if bool((mask[:, 1:] > mask[:, :-1]).any()):
        raise ZeldaError("internal: a batch is not right-padded; its padding mask cannot be dropped")
    out = {k: v for k, v in inputs.items() if k != "attention_mask"}
    out["position_ids"] = torch.arange(mask.shape[1], device=mask.device).expand(mask.shape[0], -1)
    return out
