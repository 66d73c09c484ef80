"""Peak training VRAM, tokens/s, hours and dollars for a QLoRA run, before renting anything.

The Offers screen needs a fits / tight / does-not-fit verdict and a price for every offer, so
this is arithmetic on the model's config (shipped as data in `model_specs/*.json`, the original
Hugging Face config keys) plus a few measured or documented constants. Pure stdlib; every
number below says where it comes from. Sizes are GiB (2**30 bytes); a card's nominal "80 GB"
is compared as 80 GiB, which is what NVIDIA cards actually carry (an A100 80GB has 81,920 MiB).

Parameter counts (analytic, from the config; `ModelArch.params()`)
    embeddings = vocab * hidden;  lm_head = vocab * hidden unless tied
    attention, GQA (llama, qwen2): q, k, v, o = hidden*(heads*hd) + 2*hidden*(kv_heads*hd)
        + (heads*hd)*hidden, plus q/k/v biases for qwen2
    attention, MLA (deepseek_v2): q_proj hidden -> heads*(nope+rope) (or q_a/q_b through
        q_lora_rank), kv_a_proj_with_mqa hidden -> kv_lora+rope, kv_b_proj kv_lora ->
        heads*(nope+v), o_proj heads*v -> hidden
    dense MLP = 3 * hidden * intermediate (gate, up, down); a MoE layer has n_routed experts of
        3 * hidden * moe_intermediate, the shared experts as one MLP of n_shared *
        moe_intermediate (as transformers builds them) and a router of n_routed * hidden
    norms = 2 * hidden per layer (+ MLA's kv_a / q_a norms) + the final norm
    active = total - input embeddings - routed experts * (1 - top_k / n_routed): the
        embedding is a lookup, not compute; lm_head is compute and counts.

Peak VRAM per GPU (`estimate_vram`)
    weights     dense linears (attention + dense MLP + shared experts) at `dense_bits`,
                routed experts at `expert_bits`; NF4 = 4 bits + double-quantised absmax
                (8 bits per block of 64 + one fp32 per 256 blocks = 0.127 bits), int8 = 8 bits
                + an fp32 scale per output row, 16 = bf16. Embeddings, lm_head, norms and
                router stay in `dtype_bytes` (bitsandbytes skips lm_head and non-Linear weights).
    LoRA        r * (in + out) per adapted linear; fp32 weights (4 B) + fp32 grads (4 B) +
                optimizer state (adamw 8 B, adamw_8bit / paged_adamw_8bit 2 B per param).
    activations with gradient checkpointing: every layer's input (tokens * hidden * 2 B) is
                saved, and on top of that one transient is live at a time, whichever is larger:
                  layer phase: one decoder layer's recompute working set (norms, q/k/v, RoPE
                    copies, sdpa/flash output + logsumexp, linear in seq; MLP gate/up/act/prod;
                    for MoE the router logits and the top_k routed copies of each token with
                    their expert intermediates; LoRA dropout copies and r-dim outputs), the
                    gradients flowing through it, and the bf16 copy of the weights being
                    dequantised (bitsandbytes: one Linear at a time; our 4-bit fused experts:
                    one layer's whole routed tensor, because the parametrization dequantises it
                    on access);
                  loss phase: logits, tokens * vocab * (2 B bf16 + 4 B fp32 upcast * 0.3).
                Without checkpointing every layer's working set is saved (summed), then the
                larger of the loss phase and the dequantised-weight transient on top.
    overhead    1.0 GiB CUDA context + cuBLAS/bnb workspaces (real VRAM that
                torch.cuda.max_memory_allocated does not see) + 2.2 GiB allocator slack, the
                intercept of the calibration below (cached blocks fragmented by variable-size
                MoE routing and by quantise-on-load, transients not modelled here).
    DDP         each GPU holds a full copy: per-GPU memory is the single-GPU figure at the
                per-GPU micro batch (`gpus` does not change it).

Calibration (`CALIBRATION`, tested): DeepSeek-Coder-V2-Lite, bitsandbytes NF4 through
from_pretrained (which leaves transformers 5's fused 3-D experts in bf16), LoRA r16 all-linear,
checkpointing, sdpa, one H100 80GB: 33 GiB at 1x4096 and 38 GiB at 4x4096. The slope, 5 GiB for
3 * 4096 more tokens (437 KB/token), is less than saved layer inputs (111 KB/token) + bf16
logits + a full fp32 logits copy (614 KB/token) would be, so the fp32 upcast cannot be fully
resident at the peak on that stack: we count 30 % of it (`LOSS_FP32_FRACTION`), which is what
the slope supports, and the intercept fixes the allocator slack. With the same fit our default
recipe (experts NF4 too) comes out near 18 GiB at 4x4096, i.e. 38 GiB minus the 20 GiB the bf16
experts cost over NF4. Two constants fitted on two points reproduce them by construction: the
test guards the formula against drift, and only a third measurement (another batch, seq or
model) would check its predictions. Eager attention (quadratic in seq) is modelled, uncalibrated.

Time and cost (`estimate_run`; the Offers table: `estimate_on_gpu` per offer)
    tokens/s, first that applies: our own finished runs (`measured`, from the app's SQLite) >
    `THROUGHPUT` (measured on H100, other GPUs derived through `GPUS[...].relative_to_h100`,
    interpolated linearly in micro batch and clamped at the ends) > MFU assumption:
    tokens/s = 15 % * bf16 peak / (6 * active params). 6N per token = 2N forward + 2N
    recompute (checkpointing) + 2N input gradients (frozen base weights need no weight
    gradients); attention FLOPs are left out. It matches the measured DeepSeek-Lite figure at
    micro batch 4 (9,930 tok/s is 14.8 % MFU on 2.45 B active params). Unlike the table's
    bandwidth-leaning GPU ratios, this scales with peak FLOP/s: the 32-34 B dense models run
    large matmuls that are compute-bound. Tokens/s is taken as independent of seq_len in the
    2k-8k range and, on the MFU path, of micro batch (4096 rows already fill the matmuls).
    The DeepSeek figures were measured with bf16 experts; NF4 experts add dequantisation work,
    so for our recipe they are optimistic until our own runs (`measured`) replace them.
    hours = train_tokens * epochs / (tokens/s per GPU * speedup) / 3600, speedup = 1 on one
    GPU and gpus * 0.9 under DDP (gradient all-reduce of the small LoRA state overlaps
    compute; 0.9 is the usual efficiency for data parallel on one NVLink/PCIe box).
    dollars = hours * the instance's $/h (the whole instance, as providers quote dph_total).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from .errors import ZeldaError
from .qa import CHARS_PER_TOKEN

GIB = 2**30
SPECS_DIR = Path(__file__).parent / "model_specs"
Verdict = Literal["fits", "tight", "does-not-fit"]

# --- quantisation -------------------------------------------------------------------------
NF4_BLOCKSIZE = 64  # bitsandbytes 4-bit blocksize for weights
DOUBLE_QUANT_BLOCKSIZE = 256  # absmax values are quantised to 8 bit in blocks of 256 with an fp32 scale
NF4_OVERHEAD_BITS = 8 / NF4_BLOCKSIZE + 32 / (NF4_BLOCKSIZE * DOUBLE_QUANT_BLOCKSIZE)  # 0.127 bits/param
SUPPORTED_BITS = (4, 8, 16)

# --- memory constants (see module docstring) ----------------------------------------------
CUDA_CONTEXT_GB = 1.0  # CUDA context + cuBLAS / bitsandbytes workspaces on an H100 with torch 2.x
ALLOCATOR_SLACK_GB = 2.2  # calibration intercept: fragmentation and transients not modelled
LOSS_FP32_FRACTION = 0.3  # share of the fp32 loss upcast resident at the peak (calibration slope)
LORA_DROPOUT_DEFAULT = 0.0  # as in core.train_config.LoraSection
OPTIMIZER_BYTES = {  # optimizer state bytes per trainable param
    "adamw": 8, "adamw_torch": 8, "adamw_torch_fused": 8, "paged_adamw_32bit": 8,
    "adamw_8bit": 2, "adamw_bnb_8bit": 2, "paged_adamw_8bit": 2,
    "sgd": 0,
}
LORA_GROUPS = ("attention", "dense_mlp", "shared_experts", "routed_experts")
TIGHT_MARGIN = 0.10  # "tight" = the estimate is within 10 % of the card's capacity

# --- throughput constants -----------------------------------------------------------------
MFU_ASSUMPTION = 0.15  # QLoRA: dequantisation and small matmuls keep MFU well below pretraining's 40 %
FLOPS_PER_PARAM_TOKEN = 6  # 2 forward + 2 recompute + 2 input-gradient FLOPs per active param
DDP_SCALING = 0.9


# ==========================================================================================
# Model specs
# ==========================================================================================


@dataclass(frozen=True)
class Linear:
    """One weight matrix of a decoder layer; `count` > 1 for the routed experts."""

    name: str
    in_features: int
    out_features: int
    group: str  # attention | dense_mlp | shared_experts | routed_experts
    count: int = 1
    bias: bool = False

    @property
    def weights(self) -> int:
        return self.count * self.in_features * self.out_features

    @property
    def biases(self) -> int:
        return self.count * self.out_features if self.bias else 0


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts by how they are stored in QLoRA (quantised, routed, kept in bf16)."""

    embeddings: int
    lm_head: int
    attention: int
    dense_mlp: int
    shared_experts: int
    routed_experts: int
    routed_active: int  # routed experts one token passes through (top_k of n_routed)
    router: int
    norms: int

    @property
    def dense_linear(self) -> int:
        """Attention + dense MLP + shared experts: the weights bitsandbytes quantises."""
        return self.attention + self.dense_mlp + self.shared_experts

    @property
    def embeddings_lm_head(self) -> int:
        return self.embeddings + self.lm_head

    @property
    def norms_router(self) -> int:
        return self.norms + self.router

    @property
    def total(self) -> int:
        return self.dense_linear + self.routed_experts + self.embeddings_lm_head + self.norms_router

    @property
    def active(self) -> int:
        """Per-token compute params: no input embedding (a lookup), only top_k routed experts."""
        return self.total - self.embeddings - self.routed_experts + self.routed_active


@dataclass(frozen=True)
class ModelArch:
    """A model config normalised to what the estimate needs (MLA and MoE fields may be 0)."""

    model_id: str
    family: str
    model_type: str
    source: str
    hidden: int
    layers: int
    vocab: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    qkv_bias: bool = False
    tie_embeddings: bool = False
    # MLA (deepseek_v2)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # MoE (deepseek_v2)
    n_routed_experts: int = 0
    n_shared_experts: int = 0
    moe_intermediate: int = 0
    experts_per_token: int = 0
    first_k_dense: int = 0
    moe_layer_freq: int = 1
    aliases: tuple[str, ...] = ()

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def is_moe(self) -> bool:
        return self.n_routed_experts > 0

    def layer_is_moe(self, index: int) -> bool:
        """transformers' DeepseekV2 rule: MoE from layer first_k_dense_replace on, every freq-th."""
        return self.is_moe and index >= self.first_k_dense and index % self.moe_layer_freq == 0

    @property
    def moe_layers(self) -> int:
        return sum(self.layer_is_moe(i) for i in range(self.layers))

    @property
    def dense_layers(self) -> int:
        return self.layers - self.moe_layers

    def attention_linears(self) -> list[Linear]:
        h = self.hidden
        if self.is_mla:
            qk = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                q = [Linear("q_a_proj", h, self.q_lora_rank, "attention"),
                     Linear("q_b_proj", self.q_lora_rank, self.heads * qk, "attention")]
            else:
                q = [Linear("q_proj", h, self.heads * qk, "attention")]
            return q + [
                Linear("kv_a_proj_with_mqa", h, self.kv_lora_rank + self.qk_rope_head_dim, "attention"),
                Linear("kv_b_proj", self.kv_lora_rank, self.heads * (self.qk_nope_head_dim + self.v_head_dim), "attention"),
                Linear("o_proj", self.heads * self.v_head_dim, h, "attention"),
            ]
        q_out, kv_out = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return [
            Linear("q_proj", h, q_out, "attention", bias=self.qkv_bias),
            Linear("k_proj", h, kv_out, "attention", bias=self.qkv_bias),
            Linear("v_proj", h, kv_out, "attention", bias=self.qkv_bias),
            Linear("o_proj", q_out, h, "attention"),
        ]

    def mlp_linears(self, moe: bool) -> list[Linear]:
        h = self.hidden
        if not moe:
            i = self.intermediate
            return [Linear("gate_proj", h, i, "dense_mlp"), Linear("up_proj", h, i, "dense_mlp"),
                    Linear("down_proj", i, h, "dense_mlp")]
        e, i = self.n_routed_experts, self.moe_intermediate
        out = [Linear("experts.gate_proj", h, i, "routed_experts", e), Linear("experts.up_proj", h, i, "routed_experts", e),
               Linear("experts.down_proj", i, h, "routed_experts", e)]
        if self.n_shared_experts:
            s = self.n_shared_experts * i
            out += [Linear("shared_experts.gate_proj", h, s, "shared_experts"),
                    Linear("shared_experts.up_proj", h, s, "shared_experts"),
                    Linear("shared_experts.down_proj", s, h, "shared_experts")]
        return out

    def layer_linears(self, moe: bool) -> list[Linear]:
        return self.attention_linears() + self.mlp_linears(moe)

    def layer_kinds(self) -> list[tuple[bool, int]]:
        """(is_moe, number of such layers), for the kinds present."""
        return [(moe, n) for moe, n in ((False, self.dense_layers), (True, self.moe_layers)) if n]

    def params(self) -> ParamCounts:
        groups = dict.fromkeys(LORA_GROUPS, 0)
        for moe, n in self.layer_kinds():
            for lin in self.layer_linears(moe):
                groups[lin.group] += n * (lin.weights + lin.biases)
        extra_norms = (self.kv_lora_rank + self.q_lora_rank) if self.is_mla else 0
        norms = self.layers * (2 * self.hidden + extra_norms) + self.hidden
        per_token = self.experts_per_token / self.n_routed_experts if self.is_moe else 0.0
        return ParamCounts(
            embeddings=self.vocab * self.hidden,
            lm_head=0 if self.tie_embeddings else self.vocab * self.hidden,
            attention=groups["attention"],
            dense_mlp=groups["dense_mlp"],
            shared_experts=groups["shared_experts"],
            routed_experts=groups["routed_experts"],
            routed_active=round(groups["routed_experts"] * per_token),
            router=self.moe_layers * self.n_routed_experts * self.hidden,
            norms=norms,
        )


def arch_from_config(model_id: str, family: str, config: Mapping[str, Any], source: str = "",
                     aliases: Iterable[str] = ()) -> ModelArch:
    """Normalise a Hugging Face config dict (llama, qwen2, deepseek_v2) into a ModelArch."""
    model_type = str(config.get("model_type", ""))
    try:
        hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        common: dict[str, Any] = dict(
            model_id=model_id, family=family, model_type=model_type, source=source, hidden=hidden,
            layers=int(config["num_hidden_layers"]), vocab=int(config["vocab_size"]),
            intermediate=int(config["intermediate_size"]), heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            tie_embeddings=bool(config.get("tie_word_embeddings", False)), aliases=tuple(aliases),
        )
        if model_type in ("llama", "mistral"):
            return ModelArch(**common, qkv_bias=bool(config.get("attention_bias", False)))
        if model_type == "qwen2":  # Qwen2 always has q/k/v biases; the config has no key for it
            return ModelArch(**common, qkv_bias=True)
        if model_type == "deepseek_v2":
            return ModelArch(
                **common, qkv_bias=bool(config.get("attention_bias", False)),
                q_lora_rank=int(config.get("q_lora_rank") or 0), kv_lora_rank=int(config["kv_lora_rank"]),
                qk_nope_head_dim=int(config["qk_nope_head_dim"]), qk_rope_head_dim=int(config["qk_rope_head_dim"]),
                v_head_dim=int(config["v_head_dim"]), n_routed_experts=int(config.get("n_routed_experts") or 0),
                n_shared_experts=int(config.get("n_shared_experts") or 0),
                moe_intermediate=int(config.get("moe_intermediate_size") or 0),
                experts_per_token=int(config.get("num_experts_per_tok") or 0),
                first_k_dense=int(config.get("first_k_dense_replace") or 0),
                moe_layer_freq=int(config.get("moe_layer_freq") or 1),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ZeldaError(f"model spec {model_id}: bad or missing config key {exc}") from None
    raise ZeldaError(f"model spec {model_id}: model_type {model_type!r} is not supported (llama, qwen2, deepseek_v2)")


@lru_cache(maxsize=1)
def _specs() -> dict[str, ModelArch]:
    """Every shipped spec, keyed by lower-case id and bare repo name (read once)."""
    index: dict[str, ModelArch] = {}
    for path in sorted(SPECS_DIR.glob("*.json")):
        spec = json.loads(path.read_text(encoding="utf-8"))
        ids = spec["model_ids"]
        for model_id in ids:
            arch = arch_from_config(model_id, spec["family"], spec["config"], spec.get("source", ""), ids)
            index[model_id.lower()] = arch
            index.setdefault(model_id.rsplit("/", 1)[-1].lower(), arch)
    return index


def known_models() -> list[str]:
    """The full ids of the shipped specs, sorted."""
    return sorted({arch.model_id for arch in _specs().values()})


def lookup(model_id: str) -> ModelArch:
    """The spec for `model_id` (case-insensitive; `org/name` or bare `name`), else ZeldaError."""
    key = model_id.strip().lower()
    arch = _specs().get(key) or _specs().get(key.rsplit("/", 1)[-1])
    if arch is None:
        raise ZeldaError(f"no model spec for {model_id!r}; known: {', '.join(known_models())} "
                         f"(add one to {SPECS_DIR})")
    return arch


# ==========================================================================================
# VRAM
# ==========================================================================================


def bits_per_param(bits: int, in_features: int) -> float:
    """Stored bits per weight including quantisation metadata (absmax, row scales)."""
    if bits == 4:
        return 4 + NF4_OVERHEAD_BITS
    if bits == 8:
        return 8 + 32 / in_features  # LLM.int8: one fp32 scale per output row
    if bits == 16:
        return 16.0
    raise ZeldaError(f"unsupported weight bits {bits}; use one of {SUPPORTED_BITS}")


@dataclass
class VramEstimate:
    """Peak memory per GPU; `breakdown` (GiB) sums to `total_gb`."""

    total_gb: float
    breakdown: dict[str, float]
    peak_phase: str  # which transient sets the peak: "loss" or "layer"
    phases: dict[str, float]  # GiB of each transient phase; only the larger is in the total
    params: ParamCounts
    lora_params: int
    seq_len: int
    micro_batch: int
    gpus: int = 1
    settings: dict[str, Any] = field(default_factory=dict)

    def fits(self, vram_gb_per_gpu: float) -> Verdict:
        """`tight` when the estimate is within 10 % of the card, `does-not-fit` above it."""
        if self.total_gb > vram_gb_per_gpu:
            return "does-not-fit"
        if self.total_gb >= vram_gb_per_gpu * (1 - TIGHT_MARGIN):
            return "tight"
        return "fits"


def lora_param_count(arch: ModelArch, r: int, groups: Iterable[str]) -> int:
    """r * (in + out) for every adapted linear, over all layers (experts: every expert)."""
    wanted = set(groups)
    total = 0
    for moe, n in arch.layer_kinds():
        total += n * sum(lin.count * r * (lin.in_features + lin.out_features)
                         for lin in arch.layer_linears(moe) if lin.group in wanted)
    return total


def _attention_bytes_per_token(arch: ModelArch, b: int) -> float:
    """One attention block's live tensors per token under sdpa/flash (no seq^2 term)."""
    h, nh = arch.hidden, arch.heads
    lse = nh * 4  # fp32 logsumexp kept by flash/sdpa for backward
    if arch.is_mla:
        qk = nh * (arch.qk_nope_head_dim + arch.qk_rope_head_dim)
        elems = (2 * h + 2 * arch.q_lora_rank + qk  # input norm in/out, q path
                 + arch.kv_lora_rank + arch.qk_rope_head_dim + arch.kv_lora_rank  # kv_a out + its norm
                 + nh * (arch.qk_nope_head_dim + arch.v_head_dim)  # kv_b out
                 + 2 * qk + 2 * nh * arch.v_head_dim + h)  # q/k with rope, v, attn out, o_proj out
    else:
        q, kv = nh * arch.head_dim, arch.kv_heads * arch.head_dim
        elems = 2 * h + (q + 2 * kv) + (q + kv) + q + h  # norm, projections, rope copies, attn out, o out
    return elems * b + lse


def _mlp_bytes_per_token(arch: ModelArch, moe: bool, b: int) -> float:
    """One MLP / MoE block's live tensors per token (routed: top_k copies of each token)."""
    h = arch.hidden
    if not moe:
        return (2 * h + 4 * arch.intermediate + h) * b  # norm, gate/up/act/product, down out
    k, i = arch.experts_per_token, arch.moe_intermediate
    router = arch.n_routed_experts * 4 * 2  # fp32 logits + probabilities
    routed = k * (2 * h + 4 * i) * b  # gathered input, gate/up/act/product, weighted output
    shared = (4 * arch.n_shared_experts * i + h) * b
    return 2 * h * b + router + routed + shared + h * b


def _lora_bytes_per_token(arch: ModelArch, moe: bool, r: int, groups: set[str], dropout: float, b: int) -> float:
    """LoRA dropout copies (input + bool mask) and r-dim outputs of the adapted linears."""
    total = 0.0
    for lin in arch.layer_linears(moe):
        if lin.group not in groups:
            continue
        share = arch.experts_per_token if lin.group == "routed_experts" else 1  # routed: top_k experts per token
        total += share * ((lin.in_features * (b + 1) if dropout > 0 else 0) + r * b)
    return total


def _dequant_transient_bytes(arch: ModelArch, dense_bits: int, expert_bits: int, b: int) -> float:
    """bf16 copy of the weights being dequantised for a matmul (see module docstring)."""
    dense = 0
    if dense_bits < 16:  # bitsandbytes: one Linear at a time
        dense = max((lin.in_features * lin.out_features for moe, _ in arch.layer_kinds()
                     for lin in arch.layer_linears(moe) if lin.group != "routed_experts"), default=0)
    experts = 0
    if expert_bits < 16 and arch.is_moe:  # parametrized fused experts: one layer's whole tensor
        experts = sum(lin.weights for lin in arch.mlp_linears(True) if lin.group == "routed_experts")
    return max(dense, experts) * b


def estimate_vram(
    arch: ModelArch,
    *,
    dense_bits: int = 4,
    expert_bits: int = 4,
    lora_r: int = 16,
    lora_targets: Iterable[str] = ("attention", "dense_mlp", "shared_experts"),
    lora_on_experts: bool = False,
    seq_len: int = 4096,
    micro_batch: int = 1,
    gradient_checkpointing: bool = True,
    optimizer: str = "paged_adamw_8bit",
    dtype_bytes: int = 2,
    gpus: int = 1,
    lora_dropout: float = LORA_DROPOUT_DEFAULT,
    attention: Literal["sdpa", "eager"] = "sdpa",
) -> VramEstimate:
    """Peak training memory on each GPU for one QLoRA configuration (formula: module docstring)."""
    for bits in (dense_bits, expert_bits):
        if bits not in SUPPORTED_BITS:
            raise ZeldaError(f"unsupported weight bits {bits}; use one of {SUPPORTED_BITS}")
    if optimizer not in OPTIMIZER_BYTES:
        raise ZeldaError(f"unknown optimizer {optimizer!r}; known: {', '.join(sorted(OPTIMIZER_BYTES))}")
    groups = set(lora_targets) | ({"routed_experts"} if lora_on_experts else set())
    if unknown := groups - set(LORA_GROUPS):
        raise ZeldaError(f"unknown LoRA target group(s) {sorted(unknown)}; known: {', '.join(LORA_GROUPS)}")
    if lora_r < 1 or seq_len < 1 or micro_batch < 1 or gpus < 1 or dtype_bytes not in (2, 4):
        raise ZeldaError(f"bad estimate settings: lora_r={lora_r} seq_len={seq_len} micro_batch={micro_batch} "
                         f"gpus={gpus} dtype_bytes={dtype_bytes} (all >= 1, dtype 2 or 4 bytes)")
    if attention not in ("sdpa", "eager"):
        raise ZeldaError(f"unknown attention implementation {attention!r}; use sdpa or eager")

    b = dtype_bytes
    p = arch.params()
    dense_w = expert_w = 0.0
    for moe, n in arch.layer_kinds():
        for lin in arch.layer_linears(moe):
            if lin.group == "routed_experts":
                expert_w += n * lin.weights * bits_per_param(expert_bits, lin.in_features) / 8
            else:
                dense_w += n * (lin.weights * bits_per_param(dense_bits, lin.in_features) / 8 + lin.biases * b)
    bf16_w = (p.embeddings_lm_head + p.norms_router) * b

    lora_params = lora_param_count(arch, lora_r, groups)
    lora_state = lora_params * (4 + 4 + OPTIMIZER_BYTES[optimizer])

    tokens = seq_len * micro_batch
    eager = arch.heads * micro_batch * seq_len * seq_len * (b + 4) if attention == "eager" else 0  # probs + fp32 softmax

    def layer_ws(moe: bool) -> float:
        per_token = (_attention_bytes_per_token(arch, b) + _mlp_bytes_per_token(arch, moe, b)
                     + _lora_bytes_per_token(arch, moe, lora_r, groups, lora_dropout, b))
        return tokens * per_token + eager

    grads = 2 * tokens * arch.hidden * b  # gradient w.r.t. a layer's input and output
    dequant = _dequant_transient_bytes(arch, dense_bits, expert_bits, b)
    loss = tokens * arch.vocab * (b + 4 * LOSS_FP32_FRACTION)
    if gradient_checkpointing:
        saved: float = arch.layers * tokens * arch.hidden * b
        layer = max(layer_ws(moe) for moe, _ in arch.layer_kinds()) + grads + dequant
    else:
        saved = sum(n * layer_ws(moe) for moe, n in arch.layer_kinds())
        layer = grads + dequant
    peak_phase, transient = ("loss", loss) if loss >= layer else ("layer", layer)

    breakdown = {
        "dense_weights": dense_w / GIB,
        "expert_weights": expert_w / GIB,
        "bf16_weights": bf16_w / GIB,
        "lora_state": lora_state / GIB,
        "saved_activations": saved / GIB,
        "peak_transient": transient / GIB,
        "overhead": CUDA_CONTEXT_GB + ALLOCATOR_SLACK_GB,
    }
    return VramEstimate(
        total_gb=sum(breakdown.values()), breakdown=breakdown, peak_phase=peak_phase,
        phases={"loss": loss / GIB, "layer": layer / GIB}, params=p, lora_params=lora_params,
        seq_len=seq_len, micro_batch=micro_batch, gpus=gpus,
        settings=dict(dense_bits=dense_bits, expert_bits=expert_bits, lora_r=lora_r, lora_targets=sorted(groups),
                      gradient_checkpointing=gradient_checkpointing, optimizer=optimizer, dtype_bytes=dtype_bytes,
                      lora_dropout=lora_dropout, attention=attention),
    )


def estimate_eval_vram(arch: ModelArch, *, dense_bits: int = 4, expert_bits: int = 4, batch: int = 8,
                       tokens: int = 2048, dtype_bytes: int = 2) -> float:
    """GiB an eval generator needs beside a trainer on the same GPU: the base weights as loaded for
    training, the KV cache of `batch` sequences of `tokens` (DeepseekV2 in transformers caches the
    decompressed keys and values of every head), one step's logits, and a CUDA context."""
    b = dtype_bytes
    weights = 0.0
    for moe, n in arch.layer_kinds():
        for lin in arch.layer_linears(moe):
            bits = expert_bits if lin.group == "routed_experts" else dense_bits
            weights += n * (lin.weights * bits_per_param(bits, lin.in_features) / 8 + lin.biases * b)
    p = arch.params()
    weights += (p.embeddings_lm_head + p.norms_router) * b
    if arch.is_mla:
        per_token_layer = arch.heads * (arch.qk_nope_head_dim + arch.qk_rope_head_dim + arch.v_head_dim) * b
    else:
        per_token_layer = 2 * arch.kv_heads * arch.head_dim * b
    kv = arch.layers * batch * tokens * per_token_layer
    logits = batch * arch.vocab * 4
    return (weights + kv + logits) / GIB + CUDA_CONTEXT_GB + ALLOCATOR_SLACK_GB


BREAKDOWN_LABELS = {
    "dense_weights": "dense linear weights (attention, dense MLP, shared experts)",
    "expert_weights": "routed expert weights",
    "bf16_weights": "embeddings, lm_head, norms, router (bf16)",
    "lora_state": "LoRA params + grads + optimizer (fp32)",
    "saved_activations": "saved activations",
    "peak_transient": "peak transient (loss logits or one layer's working set)",
    "overhead": "CUDA context + allocator slack",
}


@dataclass(frozen=True)
class CalibrationPoint:
    """A measured peak the formula must reproduce (tests check +-10 %)."""

    model_id: str
    gpu: str
    seq_len: int
    micro_batch: int
    measured_gb: float
    tokens_per_s: float
    settings: Mapping[str, Any]
    date: str
    source: str


PLAIN_RECIPE_SOURCE = ("measured, 2026, H100 80GB, torch 2.11, transformers 5.17, peft 0.21, bitsandbytes 0.50.2, "
                       "random weights; plain recipe: bnb NF4 via from_pretrained (fused experts stay bf16), "
                       "LoRA r16 all-linear, gradient checkpointing, sdpa")
PLAIN_RECIPE = {"dense_bits": 4, "expert_bits": 16, "lora_r": 16, "gradient_checkpointing": True,
                "optimizer": "paged_adamw_8bit", "lora_dropout": 0.05}  # the dropout the fit was made with
CALIBRATION: tuple[CalibrationPoint, ...] = (
    CalibrationPoint("deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct", "H100 80GB SXM", 4096, 1, 33.0, 5150.0,
                     PLAIN_RECIPE, "2026", PLAIN_RECIPE_SOURCE),
    CalibrationPoint("deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct", "H100 80GB SXM", 4096, 4, 38.0, 9930.0,
                     PLAIN_RECIPE, "2026", PLAIN_RECIPE_SOURCE),
)


# ==========================================================================================
# GPUs and throughput
# ==========================================================================================


@dataclass(frozen=True)
class GpuSpec:
    """Datasheet figures (bf16 dense, no sparsity) and the QLoRA speed ratio we assume vs H100 SXM."""

    name: str
    vram_gb: float
    bf16_tflops: float
    hbm_tbs: float
    relative_to_h100: float
    why: str


GPUS: dict[str, GpuSpec] = {g.name: g for g in (
    GpuSpec("H100 80GB SXM", 80, 989, 3.35, 1.0, "reference card of the measured figures"),
    GpuSpec("H100 NVL", 94, 835, 3.9, 0.85, "0.84x compute at lower clocks, more HBM bandwidth"),
    GpuSpec("H100 PCIe", 80, 756, 2.0, 0.65, "0.76x compute, 0.6x bandwidth (HBM2e)"),
    GpuSpec("H200", 141, 989, 4.8, 1.1, "same compute, 1.4x bandwidth; small steps are partly memory-bound"),
    GpuSpec("A100 80GB", 80, 312, 2.0, 0.55,
            "bf16 peak 312 vs 989 TFLOP/s (0.32x), but QLoRA steps at micro batch 1-4 are memory/launch bound "
            "(dequantisation, MoE routing, elementwise kernels), so the ratio sits near the bandwidth ratio (0.6x)"),
    GpuSpec("A100 40GB", 40, 312, 1.56, 0.5, "A100 80GB's compute, 1.56 vs 2.0 TB/s HBM"),
    GpuSpec("L40S", 48, 362, 0.86, 0.3, "0.37x compute, GDDR6 at 0.26x bandwidth"),
    GpuSpec("RTX 4090", 24, 165, 1.01, 0.28, "165 TFLOP/s with fp32 accumulate (0.17x), 0.3x bandwidth"),
    GpuSpec("A6000", 48, 155, 0.77, 0.2, "Ampere RTX A6000: 0.16x compute, 0.23x bandwidth"),
)}


def normalise_gpu_name(name: str, vram_gb: float | None = None) -> str | None:
    """Map a provider's spelling ("NVIDIA A100-SXM4-80GB", "H100_SXM5", "RTX_4090") to a GPUS key.

    None when the card is not in the table: offer lists hold many GPUs we have no figures for,
    and the caller decides whether that is an error. An A100 without its memory in the name is
    taken as 40GB (the safe side) unless `vram_gb` (the offer's GPU RAM) says otherwise; a plain
    "H100" is the SXM card, which is what clouds rent.
    """
    text = re.sub(r"[_\-/,()]+", " ", name.upper())
    words = set(text.split())
    squashed = text.replace(" ", "")
    if "GH200" in squashed:  # Grace Hopper superchip: neither an H200 nor a plain H100 box
        return None
    if "H200" in squashed:
        return "H200"
    if "H100" in squashed:
        if "NVL" in squashed:
            return "H100 NVL"
        return "H100 PCIe" if "PCIE" in squashed else "H100 80GB SXM"
    if "A100" in squashed:
        if re.search(r"80\s*G", text) or (vram_gb is not None and vram_gb >= 60):
            return "A100 80GB"
        return "A100 40GB"
    if "L40S" in words or "L40S" in squashed:
        return "L40S"
    if re.search(r"(^|\s)(RTX\s*)?A6000(\s|$)", text):
        return "A6000"
    if re.search(r"(^|\s|RTX)4090(\s|$)", text):
        return "RTX 4090"
    return None


PLAN_GPU_RAM_GB = 80  # the plan's card (offer_query.DEFAULT_QUERY: gpu_ram>=80)


def gpu_matches(name: str) -> list[str]:
    """The GPUS keys a typed name can mean: one, several when it leaves the memory size open
    ("A100": 80GB or 40GB; the plan's 80 GB card first), none when unknown."""
    if re.search(r"\d\s*G", name.upper()):  # the memory is in the name ("A100 40GB", "A100-SXM4-80GB")
        return [key] if (key := normalise_gpu_name(name)) else []
    found = [normalise_gpu_name(name, PLAN_GPU_RAM_GB), normalise_gpu_name(name)]
    return [key for i, key in enumerate(found) if key is not None and key not in found[:i]]


@dataclass(frozen=True)
class ThroughputPoint:
    """Tokens/s per GPU for one (model family, GPU, micro batch), with where it comes from."""

    family: str
    gpu: str
    seq_len: int
    micro_batch: int
    tokens_per_s: float
    source: str
    date: str


def _throughput_table() -> dict[tuple[str, str], tuple[ThroughputPoint, ...]]:
    """Measured H100 points, and the same scaled by each card's `relative_to_h100`."""
    table: dict[tuple[str, str], tuple[ThroughputPoint, ...]] = {}
    family = "deepseek-coder-v2-lite"
    measured = tuple(ThroughputPoint(family, c.gpu, c.seq_len, c.micro_batch, c.tokens_per_s, PLAIN_RECIPE_SOURCE, c.date)
                     for c in CALIBRATION)
    table[(family, "H100 80GB SXM")] = measured
    for gpu in GPUS.values():
        if gpu.name == "H100 80GB SXM":
            continue
        table[(family, gpu.name)] = tuple(
            ThroughputPoint(family, gpu.name, m.seq_len, m.micro_batch, round(m.tokens_per_s * gpu.relative_to_h100),
                            f"H100 measurement x {gpu.relative_to_h100} ({gpu.name} ratio assumption: {gpu.why})", m.date)
            for m in measured)
    return table


THROUGHPUT = _throughput_table()


def table_tokens_per_s(family: str, gpu: str, micro_batch: int) -> tuple[float, ThroughputPoint] | None:
    """Interpolated linearly in micro batch between table points, clamped outside them."""
    points = sorted(THROUGHPUT.get((family, gpu), ()), key=lambda t: t.micro_batch)
    if not points:
        return None
    if micro_batch <= points[0].micro_batch:
        return points[0].tokens_per_s, points[0]
    for lo, hi in zip(points, points[1:]):
        if micro_batch <= hi.micro_batch:
            frac = (micro_batch - lo.micro_batch) / (hi.micro_batch - lo.micro_batch)
            return lo.tokens_per_s + frac * (hi.tokens_per_s - lo.tokens_per_s), hi
    return points[-1].tokens_per_s, points[-1]


def mfu_tokens_per_s(arch: ModelArch, gpu: str, mfu: float = MFU_ASSUMPTION) -> float:
    """tokens/s = MFU * bf16 peak / (6 * active params)."""
    return mfu * GPUS[gpu].bf16_tflops * 1e12 / (FLOPS_PER_PARAM_TOKEN * arch.params().active)


def estimate_time(tokens: int, epochs: float, tokens_per_s: float, gpus: int = 1, scaling: float = DDP_SCALING) -> float:
    """Hours for `epochs` passes over `tokens`; DDP speedup is gpus * scaling (1 on one GPU)."""
    if tokens < 0 or epochs < 0 or tokens_per_s <= 0 or gpus < 1 or not 0 < scaling <= 1:
        raise ZeldaError(f"bad time estimate inputs: tokens={tokens} epochs={epochs} tokens_per_s={tokens_per_s} "
                         f"gpus={gpus} scaling={scaling}")
    speedup = 1.0 if gpus == 1 else gpus * scaling
    return tokens * epochs / (tokens_per_s * speedup) / 3600


def estimate_cost(hours: float, dollars_per_hour: float) -> float:
    """Dollars for `hours` of an instance priced per hour (the whole instance)."""
    if hours < 0 or dollars_per_hour < 0:
        raise ZeldaError(f"bad cost estimate inputs: hours={hours} dollars_per_hour={dollars_per_hour}")
    return hours * dollars_per_hour


def count_tokens_estimate(chars: int) -> int:
    """Tokens from characters at qa.CHARS_PER_TOKEN, the same estimate the QA statistics use."""
    if chars < 0:
        raise ZeldaError(f"bad character count {chars}")
    return int(chars / CHARS_PER_TOKEN)


@dataclass
class RunEstimate:
    """Everything the Offers screen shows for one (model, GPU, count, price) choice."""

    model_id: str
    gpu: str
    num_gpus: int
    vram: VramEstimate
    verdict: Verdict
    tokens_per_s: float  # per GPU
    tokens_per_s_source: str
    hours: float
    dollars: float


MeasuredThroughput = Mapping[tuple[str, str], float | tuple[float, str]]


def measured_tokens_per_s(measured: MeasuredThroughput | None, arch: ModelArch, gpu: str) -> tuple[float, str] | None:
    """Our own finished runs, keyed (model id, GPU name) in any spelling; value tokens/s or (tokens/s, date)."""
    for (model_id, gpu_name), value in (measured or {}).items():
        try:
            same_model = lookup(model_id).model_id in arch.aliases  # Instruct/Base share a spec
        except ZeldaError:
            continue
        if same_model and normalise_gpu_name(gpu_name) == gpu:
            tps, date = value if isinstance(value, tuple) else (value, "")
            return float(tps), f"measured {date}".strip() if date else "measured (own runs)"
    return None


def tokens_per_s(arch: ModelArch, gpu: str, micro_batch: int,
                 measured: MeasuredThroughput | None = None) -> tuple[float, str]:
    """Per-GPU tokens/s and where it comes from: our own runs > the table > the MFU assumption."""
    own = measured_tokens_per_s(measured, arch, gpu)
    if own:
        return own
    table = table_tokens_per_s(arch.family, gpu, micro_batch)
    if table:
        tps, point = table
        return tps, f"table {point.source} ({point.date})"
    return mfu_tokens_per_s(arch, gpu), (
        f"MFU assumption ({MFU_ASSUMPTION:.0%} of {GPUS[gpu].bf16_tflops:g} TFLOP/s bf16, "
        f"{FLOPS_PER_PARAM_TOKEN} x {arch.params().active / 1e9:.2f}B active params)")


def vram_options(run: Any) -> dict[str, Any]:
    """`estimate_vram` settings of a frozen run (train_config.RunConfig): LoRA and weight bits."""
    four_bit = run.quant.load_in_4bit
    return {"lora_r": run.lora.r, "lora_on_experts": run.lora.target_experts, "lora_dropout": run.lora.dropout,
            "dense_bits": 4 if four_bit else 16, "expert_bits": 4 if four_bit and run.quant.quantize_experts else 16}


class UnknownGpu(ZeldaError):
    """A GPU the table has no figures for: `estimate` refuses it; the Offers table shows its fit alone."""

    def __init__(self, gpu_name: str) -> None:
        super().__init__(f"no figures for GPU {gpu_name!r}; known: {', '.join(GPUS)}", exit_code=2)


def estimate_run(model_id: str, gpu_name: str, num_gpus: int, dollars_per_hour: float, train_tokens: int,
                 epochs: float, seq_len: int, micro_batch: int, measured: MeasuredThroughput | None = None,
                 **vram_options: Any) -> RunEstimate:
    """VRAM verdict, tokens/s (own runs > table > MFU), hours and dollars for one GPU choice (`estimate`).

    `micro_batch` is per GPU; `measured` maps (model id, GPU) to per-GPU tokens/s of our own
    finished runs and supersedes the table; `vram_options` go to `estimate_vram`.
    """
    arch = lookup(model_id)
    vram = estimate_vram(arch, seq_len=seq_len, micro_batch=micro_batch, gpus=num_gpus, **vram_options)
    return estimate_on_gpu(arch, vram, gpu_name, num_gpus, dollars_per_hour, train_tokens, epochs, micro_batch,
                           measured)


def estimate_on_gpu(arch: ModelArch, vram: VramEstimate, gpu_name: str, num_gpus: int, dollars_per_hour: float,
                    train_tokens: int, epochs: float, micro_batch: int, measured: MeasuredThroughput | None = None,
                    gpu_ram: float | None = None) -> RunEstimate:
    """The GPU's part of an estimate, for a VRAM estimate already made (the Offers table makes one for
    all its offers): verdict, tokens/s, hours, dollars. `gpu_ram` (an offer's GiB per GPU) tells an
    A100 40 from an 80 by memory and is what the verdict checks; without it, the table's card. Raises
    UnknownGpu for a card without figures."""
    gpu = normalise_gpu_name(gpu_name, gpu_ram)
    if gpu is None:
        raise UnknownGpu(gpu_name)
    tps, source = tokens_per_s(arch, gpu, micro_batch, measured)
    hours = estimate_time(train_tokens, epochs, tps, gpus=num_gpus)
    return RunEstimate(model_id=arch.model_id, gpu=gpu, num_gpus=num_gpus, vram=vram,
                       verdict=vram.fits(gpu_ram or GPUS[gpu].vram_gb), tokens_per_s=tps, tokens_per_s_source=source,
                       hours=hours, dollars=estimate_cost(hours, dollars_per_hour))
