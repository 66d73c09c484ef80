"""Loading the base model in 4-bit, fused MoE experts included, and counting what is 4-bit.

bitsandbytes' `load_in_4bit` replaces nn.Linear only. In transformers 5 the routed experts of
DeepSeek-V2 are fused 3-D nn.Parameters (~92 % of the weights), which would silently stay
bf16 (bitsandbytes issue #1849). We quantise them to NF4 with
`bitsandbytes.nn.parametrize.replace_parameter_4bit` *while loading*: transformers loads a
quantised model synchronously, one target parameter at a time (each layer's per-expert
checkpoint tensors merged into the fused 3-D tensor, then handed to the quantizer's op); our
op quantises each fused expert tensor as soon as it exists, so the device never holds more
than one layer's experts in bf16 (~0.7 GB for DeepSeek-Coder-V2-Lite) next to what is
already 4-bit, instead of all of them (~30 GB) before a pass over the loaded model. Any expert
tensor the load left in bf16 (another transformers version, another checkpoint layout) is
still quantised after loading, and train.log says which path ran.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, PreTrainedModel

from ...core.errors import ZeldaError
from ...core.train_config import RunConfig

log = logging.getLogger("zelda_tui.trainer")
EXPERT_PARAMS = ("gate_up_proj", "down_proj")


@dataclass
class QuantReport:
    four_bit: int
    not_quantised: int
    expert_params_4bit: int
    tensors: int = 0  # expert tensors quantised after loading (a fallback: normally 0)
    tensors_while_loading: int = 0  # expert tensors quantised as the load produced them

    def line(self) -> str:
        total = self.four_bit + self.not_quantised
        return (f"parameters: {total:,} total, {self.four_bit:,} in 4-bit ({self.four_bit / max(total, 1):.1%}; "
                f"{self.expert_params_4bit:,} of them routed experts), {self.not_quantised:,} not quantised "
                "(embeddings, lm_head, norms, router)")


BIG_MODEL_PARAMS = 500_000_000  # above this, training on a CPU takes days: never by accident
CUDA_WHEELS = "https://download.pytorch.org/whl/cu128"


def pick_device(cfg: RunConfig) -> str:
    """cuda when usable; cpu only when asked for, or for a small model on a box without GPUs.

    A 16B model on a CPU would "train" for weeks at a few tokens/s: on a box with GPUs, or for a
    model over BIG_MODEL_PARAMS, an unusable CUDA is an error with its reason, unless
    train.device = "cpu" says the CPU is meant.
    """
    requested = cfg.train.device
    if requested == "cpu":
        return "cpu"
    why = cuda_unusable()
    if why is None:
        return "cuda"
    if requested == "cuda":
        raise ZeldaError(f"run.toml asks for device = \"cuda\" but CUDA is not usable: {why}")
    gpus = gpus_on_box()
    params = model_parameters(cfg.model.base) if not gpus else 0
    if gpus or params > BIG_MODEL_PARAMS:
        reason = (f"this box has {gpus} NVIDIA GPU(s)" if gpus else
                  f"{cfg.model.base} has {params / 1e9:.1f}B parameters")
        raise ZeldaError(f"refusing to train on the CPU: {reason} but CUDA is not usable ({why}); "
                         f"set train.device = \"cpu\" to train on the CPU anyway")
    return "cpu"


def cuda_unusable() -> str | None:
    """Why torch cannot use a CUDA GPU here, with what to install (None: it can)."""
    if torch.version.cuda is None:
        return (f"torch {torch.__version__} is a CPU-only build; install a CUDA build: "
                f"pip install torch=={torch.__version__.split('+')[0]} --index-url {CUDA_WHEELS}")
    try:
        torch.cuda.init()
    except Exception as exc:  # driver too old, no driver, CUDA_VISIBLE_DEVICES empty: torch says which
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (f"{first} (torch {torch.__version__} built for CUDA {torch.version.cuda}: "
                "update the NVIDIA driver or install a torch build for the driver's CUDA)")
    if torch.cuda.device_count() == 0:
        return f"no visible CUDA device (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')!r})"
    return None


def gpus_on_box() -> int:
    """NVIDIA GPUs the kernel driver reports, whatever torch can see."""
    root = Path("/proc/driver/nvidia/gpus")
    return len(list(root.iterdir())) if root.is_dir() else 0


def model_parameters(base: str) -> int:
    """The parameter count of a model from its config alone (built on the meta device: nothing allocated)."""
    try:
        config = AutoConfig.from_pretrained(base)
    except (OSError, ValueError) as exc:
        raise ZeldaError(f"cannot load model config from '{base}': {str(exc).splitlines()[0]}") from None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


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
    """Modules still holding a fused expert tensor as a plain (not yet 4-bit) parameter."""
    return [(n, m) for n, m in model.named_modules() if any(_is_fused_expert(m, p) for p in EXPERT_PARAMS)]


def load_model(cfg: RunConfig, device: str, local_rank: int = 0) -> tuple[PreTrainedModel, QuantReport]:
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
    if not (q.load_in_4bit and q.quantize_experts):
        model = AutoModelForCausalLM.from_pretrained(cfg.model.base, **kwargs)
        return model, count_quantised(model, 0)
    on_load: list[int] = []
    with experts_quantised_while_loading(q.quant_type, q.double_quant, on_load):
        model = AutoModelForCausalLM.from_pretrained(cfg.model.base, **kwargs)
    after = quantise_experts(model, device, q.quant_type, q.double_quant, local_rank)  # whatever loading left bf16
    log.info("routed experts: %d fused tensors (%s parameters) quantised to %s while loading, %d after",
             len(on_load), f"{sum(on_load):,}", q.quant_type, after.tensors)
    report = count_quantised(model, sum(on_load) + after.expert_params_4bit)
    report.tensors_while_loading, report.tensors = len(on_load), after.tensors
    return model, report


def _is_fused_expert(module: torch.nn.Module, attr: str) -> bool:
    """A fused expert tensor still plain (not 4-bit). Reads the raw parameter: `getattr` on a
    parametrized (4-bit) one would dequantise the whole tensor just to look at it."""
    p = module._parameters.get(attr)
    return attr in EXPERT_PARAMS and isinstance(p, torch.nn.Parameter) and p.dim() == 3


@contextmanager
def experts_quantised_while_loading(quant_type: str, double_quant: bool, done: list[int],
                                    after_each: Callable[[torch.nn.Module], None] | None = None) -> Iterator[None]:
    """Within the block, transformers' bitsandbytes 4-bit quantizer also quantises fused expert
    tensors as they are loaded (each one's element count is appended to `done`; `after_each`
    sees the model after each one, which is how the tests check what is resident meanwhile).

    transformers picks the quantizer class from its registry by quantization method; the
    4-bit bitsandbytes entry is swapped for a subclass for the duration of one load (the
    trainer is its own process and loads once), so every other behaviour stays bitsandbytes'.
    """
    from bitsandbytes.nn.parametrize import replace_parameter_4bit
    from transformers.integrations.bitsandbytes import Bnb4bitQuantize
    from transformers.quantizers import auto as quantizer_registry
    from transformers.quantizers.quantizer_bnb_4bit import Bnb4BitHfQuantizer
    from transformers.quantizers.quantizers_utils import get_module_from_name

    class QuantiseExperts(Bnb4bitQuantize):
        def convert(self, input_dict, full_layer_name=None, model=None, missing_keys=None, **kwargs):
            linear = {}
            for name, value in input_dict.items():
                tensor = value[0] if isinstance(value, list) else value
                module, attr = get_module_from_name(model, name)
                if not (attr in EXPERT_PARAMS and tensor.dim() == 3):
                    linear[name] = value
                    continue
                setattr(module, attr, torch.nn.Parameter(tensor, requires_grad=False))
                replace_parameter_4bit(module, attr, compress_statistics=double_quant, quant_type=quant_type)
                module._is_hf_initialized = True  # loaded: transformers must not re-initialise it
                if missing_keys is not None:
                    missing_keys.discard(name)
                done.append(tensor.numel())
                if after_each is not None:
                    after_each(model)
            if not linear:
                return {}  # nothing left for transformers to set: the module holds the 4-bit tensor
            return super().convert(linear, full_layer_name=full_layer_name, model=model, missing_keys=missing_keys,
                                   **kwargs)

    class ExpertsToo(Bnb4BitHfQuantizer):
        def param_needs_quantization(self, model, param_name: str, **kwargs) -> bool:
            module, attr = get_module_from_name(model, param_name)
            return _is_fused_expert(module, attr) or super().param_needs_quantization(model, param_name, **kwargs)

        def get_quantize_ops(self):
            return QuantiseExperts(self)

    key = "bitsandbytes_4bit"
    original = quantizer_registry.AUTO_QUANTIZER_MAPPING[key]
    quantizer_registry.AUTO_QUANTIZER_MAPPING[key] = ExpertsToo
    try:
        yield
    finally:
        quantizer_registry.AUTO_QUANTIZER_MAPPING[key] = original


def _bnb_quant_type(name: str) -> Literal["nf4", "fp4"]:
    """[quant] quant_type as one of bitsandbytes' two 4-bit formats."""
    if name == "nf4":
        return "nf4"
    if name == "fp4":
        return "fp4"
    raise ZeldaError(f"[quant] quant_type must be nf4 or fp4, got {name!r}")


def quantise_experts(model: torch.nn.Module, device: str, quant_type: str, double_quant: bool,
                     local_rank: int = 0) -> QuantReport:
    from bitsandbytes.nn.parametrize import replace_parameter_4bit

    target = torch.device("cuda", local_rank) if device == "cuda" else torch.device("cpu")
    done = tensors = 0
    for _, module in _expert_modules(model):
        for name in EXPERT_PARAMS:
            if not _is_fused_expert(module, name):
                continue  # already 4-bit (quantised while loading)
            param = getattr(module, name)
            done += param.numel()
            tensors += 1
            if param.device != target:
                setattr(module, name, torch.nn.Parameter(param.data.to(target), requires_grad=False))
            replace_parameter_4bit(module, name, compress_statistics=double_quant, quant_type=_bnb_quant_type(quant_type))
        if device == "cuda":
            torch.cuda.empty_cache()
    return QuantReport(0, 0, done, tensors)


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
    parametrized = {id(p) for m in model.modules()
                    if isinstance(plists := getattr(m, "parametrizations", None), torch.nn.ModuleDict)
                    for plist in plists.values() for p in plist.parameters()}
    for p in model.parameters():
        if id(p) in seen or id(p) in parametrized:
            continue
        other += p.numel()
    return QuantReport(four_bit, other, expert_params_4bit)

