"""train.packing on the tiny model: documents never see each other, positions restart per document,
the loss is the token-weighted mean of the samples', tokens/s counts real tokens, eval runs the same
path, and a mode the attention backend cannot run per document is an error at start."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer

from zelda_tui.backends.trainer.batching import ZeldaSFTTrainer, batching
from zelda_tui.backends.trainer.data import tokenize
from zelda_tui.backends.trainer.lora import apply_lora, resolve_targets
from zelda_tui.backends.trainer.modeling import load_model
from zelda_tui.backends.trainer.program import Distributed, sft_config
from zelda_tui.core.errors import ZeldaError
from zelda_tui.core.train_config import RunConfig

from .conftest import short_records


def _cfg(base: Path, packing: str, attn: str = "sdpa") -> RunConfig:
    cfg = RunConfig(name="t")
    cfg.model.base, cfg.model.max_seq_len, cfg.model.attn_implementation = str(base), 1024, attn
    cfg.quant.compute_dtype = "float32"  # exact comparisons: the packed and one-by-one runs must agree to 1e-5
    cfg.lora.r, cfg.lora.alpha = 4, 8
    cfg.train.packing, cfg.train.micro_batch, cfg.train.grad_accum, cfg.train.max_steps = packing, 4, 1, 1
    cfg.train.warmup_ratio, cfg.train.gradient_checkpointing = 0.0, False
    return cfg


def _samples(tok) -> list[dict]:
    recs = short_records("asm_gold_asar_pass_20260102", 12)
    samples = [tokenize(tok, r) for r in recs]
    picked = sorted(samples, key=lambda s: len(s["input_ids"]))
    return [picked[0], picked[4], picked[8], picked[-1]]  # four different lengths: padding in a by_length batch


def _trainer(cfg: RunConfig, tmp_path: Path, samples: list[dict]) -> ZeldaSFTTrainer:
    tok = AutoTokenizer.from_pretrained(cfg.model.base)
    model, _ = load_model(cfg, "cpu")
    model.config.use_cache = False
    model = apply_lora(model, cfg.lora, resolve_targets(model, cfg.lora))
    args = sft_config(cfg, tmp_path / "out", "cpu", Distributed())
    ds = Dataset.from_list(samples)
    return ZeldaSFTTrainer(model=model, args=args, train_dataset=ds, eval_dataset=ds, processing_class=tok)


def _one_by_one(model, samples: list[dict]) -> float:
    """Each sample alone (positions 0..n-1, nothing else to attend to): the token-weighted mean loss."""
    total = tokens = 0.0
    with torch.no_grad():
        for s in samples:
            ids = torch.tensor([s["input_ids"]])
            labels = torch.tensor([[t if m else -100 for t, m in zip(s["input_ids"], s["completion_mask"])]])
            n = int((labels[0, 1:] != -100).sum())
            total += model(input_ids=ids, labels=labels).loss.item() * n
            tokens += n
    return total / tokens


def _attention_masks(model) -> list:
    """The attention_mask each attention layer receives on the next forward (what sdpa is given)."""
    seen: list = []
    for name, module in model.named_modules():
        if name.endswith("self_attn"):
            module.register_forward_pre_hook(lambda m, a, kw: seen.append(kw.get("attention_mask")), with_kwargs=True)
    return seen


@pytest.fixture(scope="module")
def tok(tiny_model: Path):
    return AutoTokenizer.from_pretrained(str(tiny_model))


def test_by_length_batch_loss_is_the_token_weighted_mean_of_its_samples(tiny_model: Path, tok, tmp_path: Path):
    samples = _samples(tok)
    assert len({len(s["input_ids"]) for s in samples}) == 4
    trainer = _trainer(_cfg(tiny_model, "by_length"), tmp_path, samples)
    model = trainer.model.eval()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    assert (batch["attention_mask"] == 0).any()  # rows of different lengths: right padding
    masks = _attention_masks(model)
    with torch.no_grad():
        packed = trainer.compute_loss(model, batch).item()
    assert masks and all(m is None for m in masks)  # no 4-D mask: sdpa's causal fast path
    assert packed == pytest.approx(_one_by_one(model, samples), rel=1e-5)
    # eval takes the same path: one eval batch of the same four samples gives the same loss
    assert trainer.evaluate()["eval_loss"] == pytest.approx(packed, rel=1e-5)
    assert all(m is None for m in masks)


def test_by_length_counts_real_tokens_not_padding(tiny_model: Path, tok, tmp_path: Path):
    samples = _samples(tok)
    trainer = _trainer(_cfg(tiny_model, "by_length"), tmp_path, samples)
    trainer.train()
    real = sum(len(s["input_ids"]) for s in samples)
    padded = 4 * max(len(s["input_ids"]) for s in samples)
    assert trainer.state.num_input_tokens_seen == real < padded


def test_dense_mode_is_the_old_packed_row_with_a_4d_mask(tiny_model: Path, tok, tmp_path: Path):
    """The legacy mode, kept for comparison: one packed row, a dense block-diagonal mask, same loss."""
    samples = _samples(tok)
    trainer = _trainer(_cfg(tiny_model, "dense"), tmp_path, samples)
    model = trainer.model.eval()
    assert len(trainer.train_dataset) == 1  # all four samples in one row of max_seq_len
    masks = _attention_masks(model)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    assert batch["position_ids"][0].tolist().count(0) == 4  # positions restart per document
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch).item()
    assert masks and all(m is not None and m.dim() == 4 for m in masks)
    assert loss == pytest.approx(_one_by_one(model, samples), rel=1e-5)
    trainer.train()
    assert trainer.state.num_input_tokens_seen == sum(len(s["input_ids"]) for s in samples)


@pytest.mark.timeout(300)
def test_packed_with_flex_attention_keeps_documents_apart(tiny_model: Path, tok, tmp_path: Path):
    """flex_attention gets a block mask built from the document boundaries (no dense mask), on CPU too."""
    samples = _samples(tok)
    trainer = _trainer(_cfg(tiny_model, "packed", "flex_attention"), tmp_path, samples)
    model = trainer.model.eval()
    masks = _attention_masks(model)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch).item()
    from torch.nn.attention.flex_attention import BlockMask

    assert masks and all(isinstance(m, BlockMask) for m in masks)
    assert loss == pytest.approx(_one_by_one(model, samples), rel=1e-4)
    assert trainer.evaluate()["eval_loss"] == pytest.approx(loss, rel=1e-4)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_without_a_per_document_kernel_is_an_error(tiny_model: Path, attn: str):
    with pytest.raises(ZeldaError) as info:
        batching(_cfg(tiny_model, "packed", attn))
    message = str(info.value)
    assert f'train.packing = "packed" with model.attn_implementation = "{attn}"' in message
    assert "dense block-diagonal mask" in message and "\n" not in message


def test_packed_with_flash_attention_not_installed_is_an_error(tiny_model: Path):
    with pytest.raises(ZeldaError, match=r'"flash_attention_2": flash_attention_2 is not usable here .*pip install flash-attn'):
        batching(_cfg(tiny_model, "packed", "flash_attention_2"))


def test_packed_flex_on_the_cpu_is_an_error_at_start(tiny_model: Path):
    """torch's flex_attention has no backward on the CPU: say so at start, not at the first step."""
    cfg = _cfg(tiny_model, "packed", "flex_attention")
    batching(cfg, "cuda")  # fine where it can train
    with pytest.raises(ZeldaError, match=r'"flex_attention": torch\'s flex_attention has no backward on the CPU'):
        batching(cfg, "cpu")
