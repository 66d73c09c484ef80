"""VRAM / time / cost estimates: parameter counts, the measured calibration, verdicts, overrides."""

from __future__ import annotations

import json

import pytest

from zelda_tui.core import estimate, qa
from zelda_tui.core.errors import ZeldaError

DEEPSEEK = "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct"
QWEN = "Qwen/Qwen2.5-Coder-32B-Instruct"
CODELLAMA = "codellama/CodeLlama-34b-Instruct-hf"


@pytest.fixture(scope="module")
def deepseek() -> estimate.ModelArch:
    return estimate.lookup(DEEPSEEK)


# --- specs and parameter counts -----------------------------------------------------------


@pytest.mark.parametrize("model_id, billions", [(DEEPSEEK, 15.7), (QWEN, 32.8), (CODELLAMA, 33.7)])
def test_total_params_match_published_sizes(model_id, billions):
    total = estimate.lookup(model_id).params().total
    assert total == pytest.approx(billions * 1e9, rel=0.02)


def test_deepseek_lite_active_params_and_breakdown(deepseek):
    p = deepseek.params()
    assert 2.40e9 <= p.active <= 2.46e9  # model card: 2.4B active
    # the parts add up, and the routed experts are the bulk a 4-bit choice acts on
    assert p.total == p.dense_linear + p.routed_experts + p.embeddings_lm_head + p.norms_router
    assert p.routed_experts == 26 * 64 * 3 * 2048 * 1408  # 26 MoE layers (first_k_dense_replace=1)
    assert p.routed_active == 26 * 6 * 3 * 2048 * 1408
    assert p.shared_experts == 26 * 3 * 2048 * 2 * 1408
    assert p.dense_mlp == 3 * 2048 * 10944
    assert p.embeddings == p.lm_head == 102400 * 2048  # untied
    assert p.router == 26 * 64 * 2048
    # MLA with q_lora_rank null: q, kv_a (kv_lora+rope), kv_b, o
    assert p.attention == 27 * (2048 * 16 * 192 + 2048 * 576 + 512 * 16 * 256 + 16 * 128 * 2048)


def test_qwen_counts_qkv_bias_and_gqa():
    p = estimate.lookup(QWEN).params()
    per_layer = 5120 * 5120 * 2 + 2 * 5120 * 1024 + (5120 + 2 * 1024)  # q, o, k, v + q/k/v biases
    assert p.attention == 64 * per_layer
    assert p.routed_experts == p.shared_experts == p.router == 0
    assert p.active == p.total - p.embeddings


def test_spec_files_keep_hf_keys_and_name_their_source():
    for path in sorted(estimate.SPECS_DIR.glob("*.json")):
        spec = json.loads(path.read_text())
        assert "huggingface.co" in spec["source"]
        assert {"hidden_size", "num_hidden_layers", "vocab_size", "model_type"} <= set(spec["config"])
    reference = json.loads(estimate.SPECS_DIR.joinpath("deepseek-coder-v2-lite.json").read_text())["config"]
    assert reference["kv_lora_rank"] == 512 and reference["q_lora_rank"] is None


def test_lookup_is_case_insensitive_and_accepts_bare_names(deepseek):
    assert estimate.lookup("DEEPSEEK-AI/deepseek-coder-v2-lite-instruct") == deepseek
    assert estimate.lookup("DeepSeek-Coder-V2-Lite-Instruct") == deepseek
    base = estimate.lookup("deepseek-coder-v2-lite-base")
    assert base.model_id == "deepseek-ai/DeepSeek-Coder-V2-Lite-Base"
    assert base.params() == deepseek.params()
    assert estimate.lookup("codellama-34b-instruct-hf").model_id == CODELLAMA


def test_unknown_model_error_lists_the_known_ids():
    with pytest.raises(ZeldaError) as info:
        estimate.lookup("meta-llama/Llama-3-70B")
    message = str(info.value)
    assert "meta-llama/Llama-3-70B" in message
    for model_id in (DEEPSEEK, QWEN, CODELLAMA):
        assert model_id in message
    assert info.value.exit_code == 1


# --- VRAM ---------------------------------------------------------------------------------


@pytest.mark.parametrize("point", estimate.CALIBRATION, ids=lambda c: f"{c.micro_batch}x{c.seq_len}")
def test_calibration_points_within_ten_percent(point):
    est = estimate.estimate_vram(estimate.lookup(point.model_id), seq_len=point.seq_len,
                                 micro_batch=point.micro_batch, **point.settings)
    assert est.total_gb == pytest.approx(point.measured_gb, rel=0.10)
    assert point.date and "H100 80GB" in point.source and "bitsandbytes 0.50.2" in point.source


def test_calibration_holds_the_measured_figures():
    measured = {(c.micro_batch, c.seq_len): (c.measured_gb, c.tokens_per_s) for c in estimate.CALIBRATION}
    assert measured == {(1, 4096): (33.0, 5150.0), (4, 4096): (38.0, 9930.0)}
    assert all(c.settings["expert_bits"] == 16 and c.settings["dense_bits"] == 4 for c in estimate.CALIBRATION)


def test_default_four_bit_experts_fit_well_under_20_gib(deepseek):
    est = estimate.estimate_vram(deepseek, seq_len=4096, micro_batch=4)
    assert est.total_gb < 20
    bf16 = estimate.estimate_vram(deepseek, seq_len=4096, micro_batch=4, expert_bits=16)
    # only the expert weights differ in the static part: 14.4B params at 16 vs 4.127 bits
    saved = (bf16.breakdown["expert_weights"] - est.breakdown["expert_weights"]) * estimate.GIB
    assert saved == pytest.approx(deepseek.params().routed_experts * (16 - 4.127) / 8, rel=1e-3)


def test_breakdown_sums_to_total_and_names_the_peak_phase(deepseek):
    est = estimate.estimate_vram(deepseek, micro_batch=2)
    assert sum(est.breakdown.values()) == pytest.approx(est.total_gb)
    assert est.peak_phase in est.phases
    assert est.breakdown["peak_transient"] == pytest.approx(max(est.phases.values()))
    assert set(est.breakdown) == set(estimate.BREAKDOWN_LABELS)


def test_nf4_costs_4_127_bits_per_weight(deepseek):
    assert estimate.bits_per_param(4, 2048) == pytest.approx(4.127, abs=1e-3)
    est = estimate.estimate_vram(deepseek)
    assert est.breakdown["dense_weights"] * estimate.GIB == pytest.approx(deepseek.params().dense_linear * 4.127 / 8, rel=1e-3)
    eight = estimate.estimate_vram(deepseek, dense_bits=8, expert_bits=8)
    sixteen = estimate.estimate_vram(deepseek, dense_bits=16, expert_bits=16)
    assert est.total_gb < eight.total_gb < sixteen.total_gb


def test_lora_state_counts_shapes_and_optimizer_bytes(deepseek):
    est = estimate.estimate_vram(deepseek, lora_r=16)
    assert est.lora_params == 13_799_424  # r16 on attention, dense MLP and shared experts
    assert est.breakdown["lora_state"] * estimate.GIB == pytest.approx(est.lora_params * (4 + 4 + 2))
    adamw = estimate.estimate_vram(deepseek, lora_r=16, optimizer="adamw")
    assert adamw.breakdown["lora_state"] * estimate.GIB == pytest.approx(est.lora_params * (4 + 4 + 8))
    experts = estimate.estimate_vram(deepseek, lora_r=16, lora_on_experts=True)
    assert experts.lora_params - est.lora_params == 26 * 64 * 3 * 16 * (2048 + 1408)


@pytest.mark.parametrize("model_id", [DEEPSEEK, QWEN, CODELLAMA])
def test_memory_never_drops_with_longer_seq_bigger_batch_or_rank(model_id):
    arch = estimate.lookup(model_id)
    for checkpointing in (True, False):
        def total(**kw):
            return estimate.estimate_vram(arch, gradient_checkpointing=checkpointing, **kw).total_gb
        seqs = [total(seq_len=s) for s in (512, 1024, 2048, 4096, 8192)]
        batches = [total(micro_batch=m) for m in (1, 2, 4, 8)]
        ranks = [total(lora_r=r) for r in (4, 8, 16, 64, 128)]
        for series in (seqs, batches, ranks):
            assert all(a < b for a, b in zip(series, series[1:])), series


def test_checkpointing_saves_memory_and_eager_attention_costs_seq_squared(deepseek):
    on = estimate.estimate_vram(deepseek, micro_batch=4)
    off = estimate.estimate_vram(deepseek, micro_batch=4, gradient_checkpointing=False)
    assert off.total_gb > on.total_gb + 10  # 27 layers' working sets instead of one
    eager = estimate.estimate_vram(deepseek, seq_len=8192, attention="eager", gradient_checkpointing=False)
    sdpa = estimate.estimate_vram(deepseek, seq_len=8192, gradient_checkpointing=False)
    extra = (eager.total_gb - sdpa.total_gb) * estimate.GIB
    assert extra == pytest.approx(27 * 16 * 8192 * 8192 * (2 + 4), rel=1e-6)


def test_ddp_per_gpu_memory_is_the_single_gpu_figure(deepseek):
    one = estimate.estimate_vram(deepseek, micro_batch=4)
    four = estimate.estimate_vram(deepseek, micro_batch=4, gpus=4)
    assert four.total_gb == pytest.approx(one.total_gb) and four.gpus == 4


def test_bad_settings_are_user_errors(deepseek):
    for kwargs in ({"expert_bits": 3}, {"optimizer": "lion"}, {"lora_targets": ("mlp",)}, {"seq_len": 0}):
        with pytest.raises(ZeldaError):
            estimate.estimate_vram(deepseek, **kwargs)


def test_verdict_thresholds(deepseek):
    est = estimate.estimate_vram(deepseek, micro_batch=4)
    total = est.total_gb
    assert est.fits(total * 2) == "fits"
    assert est.fits(total / 0.89) == "fits"  # 11 % headroom
    assert est.fits(total / 0.91) == "tight"  # 9 % headroom
    assert est.fits(total) == "tight"
    assert est.fits(total * 0.99) == "does-not-fit"
    assert estimate.estimate_vram(deepseek, micro_batch=4, expert_bits=16).fits(24) == "does-not-fit"


# --- GPUs, throughput, time and cost ------------------------------------------------------


@pytest.mark.parametrize("spelling, key", [
    ("NVIDIA A100-SXM4-80GB", "A100 80GB"),
    ("A100 80GB PCIe", "A100 80GB"),
    ("nvidia-a100-80gb", "A100 80GB"),
    ("A100-SXM4-40GB", "A100 40GB"),
    ("nvidia-tesla-a100", "A100 40GB"),  # GCP's 40GB A100
    ("A100_SXM4", "A100 40GB"),  # memory unknown: the safe side
    ("H100_SXM5", "H100 80GB SXM"),
    ("NVIDIA H100 80GB HBM3", "H100 80GB SXM"),
    ("nvidia-h100-80gb", "H100 80GB SXM"),
    ("H100 PCIE", "H100 PCIe"),
    ("H100 NVL", "H100 NVL"),
    ("RTX_4090", "RTX 4090"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ("RTX A6000", "A6000"),
    ("NVIDIA L40S", "L40S"),
    ("H200", "H200"),
])
def test_normalise_gpu_name(spelling, key):
    assert estimate.normalise_gpu_name(spelling) == key
    assert key in estimate.GPUS


def test_normalise_gpu_name_uses_vram_and_rejects_unknown_cards():
    assert estimate.normalise_gpu_name("A100_SXM4", vram_gb=80) == "A100 80GB"
    for name in ("L40", "RTX 6000 Ada", "RTX 3090", "Tesla V100", "GH200"):
        assert estimate.normalise_gpu_name(name) is None


def test_gpu_table_datasheet_figures():
    peaks = {name: gpu.bf16_tflops for name, gpu in estimate.GPUS.items()}
    assert peaks["H100 80GB SXM"] == 989 and peaks["H100 PCIe"] == 756 and peaks["A100 80GB"] == 312
    assert peaks["A100 40GB"] == 312 and peaks["L40S"] == 362 and peaks["A6000"] == 155 and peaks["RTX 4090"] == 165
    assert estimate.GPUS["A100 80GB"].relative_to_h100 == 0.55


def test_throughput_table_starts_from_the_measured_h100_points():
    h100 = estimate.THROUGHPUT[("deepseek-coder-v2-lite", "H100 80GB SXM")]
    assert [(t.micro_batch, t.tokens_per_s) for t in h100] == [(1, 5150.0), (4, 9930.0)]
    a100 = estimate.THROUGHPUT[("deepseek-coder-v2-lite", "A100 80GB")]
    assert [t.tokens_per_s for t in a100] == [round(5150 * 0.55), round(9930 * 0.55)]
    assert all("0.55" in t.source and t.date for t in a100)
    # interpolated between micro batch 1 and 4, clamped beyond
    assert estimate.table_tokens_per_s("deepseek-coder-v2-lite", "H100 80GB SXM", 2)[0] == pytest.approx(5150 + (9930 - 5150) / 3)
    assert estimate.table_tokens_per_s("deepseek-coder-v2-lite", "H100 80GB SXM", 16)[0] == 9930.0


def test_mfu_fallback_formula():
    arch = estimate.lookup(QWEN)
    expected = 0.15 * 989e12 / (6 * arch.params().active)
    assert estimate.mfu_tokens_per_s(arch, "H100 80GB SXM") == pytest.approx(expected)
    # the assumption agrees with the measured DeepSeek figure at micro batch 4 (within 5 %)
    assert estimate.mfu_tokens_per_s(estimate.lookup(DEEPSEEK), "H100 80GB SXM") == pytest.approx(9930, rel=0.05)


def test_time_and_cost_arithmetic():
    assert estimate.estimate_time(36_000_000, 1, 10_000) == pytest.approx(1.0)
    assert estimate.estimate_time(36_000_000, 2.5, 10_000) == pytest.approx(2.5)
    assert estimate.estimate_time(36_000_000, 1, 10_000, gpus=4) == pytest.approx(1 / (4 * 0.9))
    assert estimate.estimate_time(36_000_000, 1, 10_000, gpus=2, scaling=1.0) == pytest.approx(0.5)
    assert estimate.estimate_cost(2.5, 1.60) == pytest.approx(4.0)
    with pytest.raises(ZeldaError):
        estimate.estimate_time(1000, 1, 0)
    with pytest.raises(ZeldaError):
        estimate.estimate_cost(-1, 1.0)


def test_count_tokens_estimate_uses_the_qa_constant():
    assert estimate.CHARS_PER_TOKEN is qa.CHARS_PER_TOKEN  # imported, not redefined
    assert estimate.count_tokens_estimate(3200) == 1000
    assert estimate.count_tokens_estimate(int(qa.CHARS_PER_TOKEN * 250)) == 250
    assert estimate.count_tokens_estimate(0) == 0


def test_estimate_run_table_path():
    run = estimate.estimate_run("deepseek-coder-v2-lite-instruct", "NVIDIA H100 80GB HBM3", 1, 2.0,
                            train_tokens=71_496_000, epochs=1, seq_len=4096, micro_batch=4)
    assert run.model_id == DEEPSEEK and run.gpu == "H100 80GB SXM"
    assert run.tokens_per_s == 9930.0 and run.tokens_per_s_source.startswith("table measured")
    assert run.hours == pytest.approx(71_496_000 / 9930 / 3600)
    assert run.dollars == pytest.approx(run.hours * 2.0)
    assert run.verdict == "fits" and run.vram.total_gb < 20


def test_estimate_run_measured_override_beats_the_table():
    measured = {("DeepSeek-Coder-V2-Lite-Base", "H100_SXM5"): (12_000.0, "2026-03-01"),
                ("Qwen/Qwen2.5-Coder-32B-Instruct", "H100 SXM"): 900.0}
    run = estimate.estimate_run(DEEPSEEK, "H100 SXM", 2, 4.0, train_tokens=86_400_000, epochs=1, seq_len=4096,
                            micro_batch=4, measured=measured)
    assert run.tokens_per_s == 12_000.0 and run.tokens_per_s_source == "measured 2026-03-01"
    assert run.hours == pytest.approx(86_400_000 / (12_000 * 2 * 0.9) / 3600)
    qwen = estimate.estimate_run(QWEN, "H100_SXM5", 1, 2.0, 1_000_000, 1, 4096, 1, measured=measured)
    assert qwen.tokens_per_s == 900.0 and qwen.tokens_per_s_source == "measured (own runs)"
    other_gpu = estimate.estimate_run(DEEPSEEK, "A100 80GB", 1, 1.0, 1_000_000, 1, 4096, 4, measured=measured)
    assert other_gpu.tokens_per_s == round(9930 * 0.55) and other_gpu.tokens_per_s_source.startswith("table")


def test_estimate_run_mfu_path_and_verdicts():
    run = estimate.estimate_run(CODELLAMA, "RTX_4090", 1, 0.4, 10_000_000, 1, 4096, 1)
    assert run.tokens_per_s_source.startswith("MFU assumption")
    assert run.tokens_per_s == pytest.approx(0.15 * 165e12 / (6 * estimate.lookup(CODELLAMA).params().active))
    assert run.verdict == "does-not-fit"  # ~16 GiB of NF4 weights alone plus activations on 24 GB
    assert estimate.estimate_run(CODELLAMA, "A100 80GB", 1, 1.2, 10_000_000, 1, 4096, 1).verdict == "fits"
    with pytest.raises(estimate.UnknownGpu, match="no figures for GPU 'Tesla V100'; known: ") as unknown:
        estimate.estimate_run(CODELLAMA, "Tesla V100", 1, 1.0, 1, 1, 4096, 1)
    assert unknown.value.exit_code == 2


def test_an_offer_is_estimated_by_the_same_function_as_the_estimate_command(deepseek):
    """The Offers table makes one VRAM estimate and asks `estimate_on_gpu` per offer: the same figures as
    `estimate` for that card, with the offer's memory telling an A100 40 from an 80 and judging the fit."""
    vram = estimate.estimate_vram(deepseek, seq_len=4096, micro_batch=4)
    whole = estimate.estimate_run(DEEPSEEK, "H100 SXM", 2, 4.0, 86_400_000, 1, 4096, 4)
    offer = estimate.estimate_on_gpu(deepseek, vram, "H100 SXM", 2, 4.0, 86_400_000, 1, 4, gpu_ram=80)
    assert (offer.gpu, offer.tokens_per_s, offer.hours, offer.dollars, offer.verdict) == (
        whole.gpu, whole.tokens_per_s, whole.hours, whole.dollars, whole.verdict)
    small = estimate.estimate_on_gpu(deepseek, vram, "A100 PCIE", 1, 1.0, 1_000_000, 1, 4, gpu_ram=40)
    big = estimate.estimate_on_gpu(deepseek, vram, "A100 PCIE", 1, 1.0, 1_000_000, 1, 4, gpu_ram=80)
    assert (small.gpu, big.gpu) == ("A100 40GB", "A100 80GB")
    assert estimate.estimate_on_gpu(deepseek, vram, "RTX 4090", 1, 0.4, 1, 1, 4, gpu_ram=8).verdict == "does-not-fit"
    with pytest.raises(estimate.UnknownGpu):
        estimate.estimate_on_gpu(deepseek, vram, "Tesla V100", 1, 1.0, 1, 1, 4, gpu_ram=16)
