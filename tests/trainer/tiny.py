"""A tiny DeepSeek-V2 model + tokenizer built in-process (no hub download), and run dirs for it.

Same architecture family as DeepSeek-Coder-V2-Lite (MLA attention, one dense layer then MoE
layers with shared + routed fused experts), a few hundred KB; the tokenizer is a small BPE
trained on generated 65816 text with the real DeepSeek-V2 chat template and special tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "reference" / "deepseek-coder-v2-lite"


def build_tokenizer(out: Path, texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = json.loads((REFERENCE / "tokenizer_special_tokens.json").read_text())
    bos, eos = special["bos_token"]["content"], special["eos_token"]["content"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=[bos, eos],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=eos)
    fast.chat_template = (REFERENCE / "chat_template.jinja").read_text()
    fast.save_pretrained(str(out))
    return fast


def build_tiny_model(out: Path, texts: list[str], seed: int = 0, q_lora_rank: int | None = None) -> Path:
    """q_lora_rank=None is the Lite's attention (q_proj); a rank gives DeepSeek-V2's q_a_proj/q_b_proj, which
    llama.cpp needs to load a 2-layer model (it tells the Lite attention by its 26 or 27 layers)."""
    import torch
    from transformers import DeepseekV2Config, DeepseekV2ForCausalLM

    tok = build_tokenizer(out, texts)
    torch.manual_seed(seed)
    cfg = DeepseekV2Config(
        # every linear in/out dim a multiple of 64: bitsandbytes' CPU 4-bit inference kernel packs 64-wide blocks
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, moe_intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, n_routed_experts=8, n_shared_experts=1,
        num_experts_per_tok=2, first_k_dense_replace=1, kv_lora_rank=64, q_lora_rank=q_lora_rank, qk_nope_head_dim=64,
        qk_rope_head_dim=64, v_head_dim=64, max_position_embeddings=1024, n_group=1, topk_group=1,
        topk_method="greedy", bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
    )
    DeepseekV2ForCausalLM(cfg).save_pretrained(str(out))
    return out
