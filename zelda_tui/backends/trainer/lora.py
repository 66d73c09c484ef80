"""LoRA targets resolved by us, then applied with peft exactly as resolved.

peft 0.21 with transformers 5 rewrites `gate_proj`/`up_proj`/`down_proj` targets of
DeepSeek-V2 (plain names, full names, regexes and `all-linear` alike) into targets on the
fused routed-expert parameters, so the shared-expert and dense-MLP projections silently get
no LoRA, and `all-linear` also adapts the router (peft issue #3711). We resolve the exact
module names ourselves, switch that v4->v5 config conversion off while injecting (our names
are already v5 names), and check afterwards that peft adapted exactly our set.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch
from peft import LoraConfig, get_peft_model

from ...core.errors import ZeldaError
from ...core.train_config import LoraSection

log = logging.getLogger("zelda_tui.trainer")
Q_FAMILY = {"q_proj", "q_a_proj", "q_b_proj"}
ROUTER_NAMES = ("gate",)  # mlp.gate is the MoE router: never adapted
EXPERT_TARGET_PARAMETERS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")


@dataclass
class LoraPlan:
    modules: list[str]
    parameters: list[str]
    by_target: dict[str, int]


def _is_linear(module: torch.nn.Module) -> bool:
    import bitsandbytes as bnb

    return isinstance(module, (torch.nn.Linear, bnb.nn.Linear4bit, bnb.nn.Linear8bitLt))


def resolve_targets(model: torch.nn.Module, lora: LoraSection) -> LoraPlan:
    """Exact module names for the configured leaf names; a target that matches nothing is an error."""
    by_target = {t: 0 for t in lora.targets}
    modules = []
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in by_target and leaf not in ROUTER_NAMES and _is_linear(module):
            modules.append(name)
            by_target[leaf] += 1
    for target, count in by_target.items():
        # DeepSeek-V2 has q_proj when q_lora_rank is null, else q_a_proj/q_b_proj: the default lists both
        if not count and not (target in Q_FAMILY and any(by_target.get(q) for q in Q_FAMILY)):
            raise ZeldaError(f"lora.targets: '{target}' matches no linear layer of this model "
                             f"(linear leaf names: {', '.join(sorted(_linear_leaves(model)))})")
    parameters = []
    if lora.target_experts:
        if lora.dropout != 0:
            raise ZeldaError("lora.target_experts needs lora.dropout = 0 (peft target_parameters has no dropout)")
        parameters = [f"{n}.{p.rsplit('.', 1)[-1]}" for n, m in model.named_modules() if n.endswith("mlp.experts")
                      for p in EXPERT_TARGET_PARAMETERS]
    return LoraPlan(modules, parameters, by_target)


def _linear_leaves(model: torch.nn.Module) -> set[str]:
    return {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if _is_linear(m)}


@contextlib.contextmanager
def _no_v4_target_conversion():
    import peft.utils.transformers_weight_conversion as conversion

    original = conversion.convert_peft_config_for_transformers
    conversion.convert_peft_config_for_transformers = lambda *args, **kwargs: None
    try:
        yield
    finally:
        conversion.convert_peft_config_for_transformers = original


def apply_lora(model: torch.nn.Module, lora: LoraSection, plan: LoraPlan):
    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias="none", task_type="CAUSAL_LM",
        target_modules=plan.modules, target_parameters=plan.parameters or None,
    )
    with _no_v4_target_conversion():
        peft_model = get_peft_model(model, config)
    adapted = adapted_modules(peft_model)
    for kind, expected in (("modules", set(plan.modules)), ("parameters", set(plan.parameters))):
        if adapted[kind] != expected:
            missing = sorted(expected - adapted[kind])[:3]
            extra = sorted(adapted[kind] - expected)[:3]
            raise ZeldaError(f"peft adapted a different set of {kind} than resolved (missing {missing}, extra {extra})")
    return peft_model


def adapted_modules(peft_model) -> dict[str, set[str]]:
    """Module names (without the peft prefix) that carry a LoRA A matrix, and adapted parameters."""
    modules: set[str] = set()
    params: set[str] = set()
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and len(module.lora_A):
            clean = name.removeprefix("base_model.model.")
            base = getattr(module, "parameter_name", None)
            (params if base else modules).add(f"{clean.removesuffix('.base_layer')}.{base}" if base else clean)
    return {"modules": modules, "parameters": params}


def trainable_parameters(model: torch.nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def load_adapters(base_model: torch.nn.Module, adapter_dir: str):
    """Load saved adapters onto a base model exactly as trained (the same v4-conversion guard:
    otherwise peft would move the saved MLP targets onto the routed experts and drop them)."""
    from peft import PeftModel

    with _no_v4_target_conversion():
        return PeftModel.from_pretrained(base_model, adapter_dir)
