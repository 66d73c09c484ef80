"""Loading the base model in 4-bit, fused MoE experts included, and counting what is 4-bit.

bitsandbytes' `load_in_4bit` replaces nn.Linear only. In transformers 5 the routed experts of
DeepSeek-V2 are fused 3-D nn.Parameters (~92 % of the weights), which would silently stay
bf16 (bitsandbytes issue #1849). We quantise them to NF4 with
`bitsandbytes.nn.parametrize.replace_parameter_4bit`, one layer at a time after loading.
Known gap: the load itself still materialises every layer's experts in bf16 on the device
first (~30 GB transiently for DeepSeek-Coder-V2-Lite on an 80 GB card) before they shrink to
~9 GB; streaming them in quantised is open work that needs a GPU to validate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from ...core.errors import ZeldaError
from ...core.train_config import RunConfig

log = logging.getLogger("zelda_tui.trainer")
EXPERT_PARAMS = ("gate_up_proj", "down_proj")


@dataclass
class QuantReport:
    four_bit: int
    not_quantised: int
    expert_params_4bit: int

    def line(self) -> str:
        total = self.four_bit + self.not_quantised
        return (f"parameters: {total:,} total, {self.four_bit:,} in 4-bit ({self.four_bit / max(total, 1):.1%}; "
                f"{self.expert_params_4bit:,} of them routed experts), {self.not_quantised:,} not quantised "
                "(embeddings, lm_head, norms, router)")


def pick_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ZeldaError("run.toml asks for device = \"cuda\" but no CUDA GPU is visible")
    return requested


def load_tokenizer(cfg: RunConfig):
    source = cfg.model.tokenizer or cfg.model.base
    try:
        tok = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ZeldaError(f"cannot load tokenizer from '{source}': {str(exc).splitlines()[0]}") from None
    if not tok.chat_template:
        raise ZeldaError(f"tokenizer '{source}' has no chat template; refusing to guess one (no ChatML fallback)")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _expert_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in model.named_modules()
            if all(isinstance(getattr(m, p, None), torch.nn.Parameter) and getattr(m, p).dim() == 3 for p in EXPERT_PARAMS)]


def load_model(cfg: RunConfig, device: str, local_rank: int = 0) -> tuple[torch.nn.Module, QuantReport]:
    """The model on this process's device (one full 4-bit copy per GPU under DDP)."""
    q = cfg.quant
    compute = getattr(torch, q.compute_dtype)
    try:
        AutoConfig.from_pretrained(cfg.model.base)  # a clear error for a wrong id/dir before the heavy load
    except (OSError, ValueError) as exc:
        raise ZeldaError(f"cannot load model config from '{cfg.model.base}': {str(exc).splitlines()[0]}") from None
    kwargs: dict = {"dtype": compute, "attn_implementation": cfg.model.attn_implementation}
    if q.load_in_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=q.quant_type, bnb_4bit_use_double_quant=q.double_quant,
            bnb_4bit_compute_dtype=compute,
        )
    kwargs["device_map"] = {"": local_rank} if device == "cuda" else "cpu"
    model = AutoModelForCausalLM.from_pretrained(cfg.model.base, **kwargs)
    report = (quantise_experts(model, device, q.quant_type, q.double_quant, local_rank)
              if q.load_in_4bit and q.quantize_experts else None)
    return model, count_quantised(model, report.expert_params_4bit if report else 0)


def quantise_experts(model: torch.nn.Module, device: str, quant_type: str, double_quant: bool,
                     local_rank: int = 0) -> QuantReport:
    from bitsandbytes.nn.parametrize import replace_parameter_4bit

    target = torch.device("cuda", local_rank) if device == "cuda" else torch.device("cpu")
    done = 0
    for _, module in _expert_modules(model):
        for name in EXPERT_PARAMS:
            param = getattr(module, name)
            done += param.numel()
            if param.device != target:
                setattr(module, name, torch.nn.Parameter(param.data.to(target), requires_grad=False))
            replace_parameter_4bit(module, name, compress_statistics=double_quant, quant_type=quant_type)
        if device == "cuda":
            torch.cuda.empty_cache()
    return QuantReport(0, 0, done)


def count_quantised(model: torch.nn.Module, expert_params_4bit: int) -> QuantReport:
    """Count by logical shape: Params4bit stores two values a byte, parametrized experts keep their shape."""
    import bitsandbytes as bnb

    four_bit = expert_params_4bit
    other = 0
    seen: set[int] = set()
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            w = module.weight
            seen.add(id(w))
            shape = getattr(getattr(w, "quant_state", None), "shape", None)
            four_bit += int(torch.Size(shape).numel()) if shape is not None else w.numel() * 2
    parametrized = {id(p) for m in model.modules() if hasattr(m, "parametrizations")
                    for plist in m.parametrizations.values() for p in plist.parameters()}
    for p in model.parameters():
        if id(p) in seen or id(p) in parametrized:
            continue
        other += p.numel()
    return QuantReport(four_bit, other, expert_params_4bit)

