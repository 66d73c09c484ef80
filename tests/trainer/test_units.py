"""Trainer pieces on the tiny model: loss masks, 4-bit counts (experts included), LoRA targets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, DeepseekV2ForCausalLM

from zelda_tui.backends.trainer import data as data_mod
from zelda_tui.backends.trainer.lora import apply_lora, resolve_targets, trainable_parameters
from zelda_tui.backends.trainer.modeling import load_model
from zelda_tui.core.errors import ZeldaError
from zelda_tui.core.train_config import RunConfig


@pytest.fixture(scope="module")
def tok(tiny_model: Path):
    return AutoTokenizer.from_pretrained(str(tiny_model))


def test_chat_template_is_deepseek_not_chatml(tok):
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == f"{tok.bos_token}User: hi\n\nAssistant:"
    assert "<|im_start|>" not in text


def test_only_the_answer_and_eos_carry_loss(tok):
    rec = {"instruction": "Write a loop", "input": "```\nLDX #$10\n```", "output": "```asm\n-\nDEX\nBNE -\n```"}
    sample = data_mod.tokenize(tok, rec)
    ids, mask = sample["input_ids"], sample["completion_mask"]
    assert len(ids) == len(mask)
    prompt = tok.decode([i for i, m in zip(ids, mask) if not m])
    answer = tok.decode([i for i, m in zip(ids, mask) if m])
    assert prompt == f"{tok.bos_token}User: Write a loop\n\n```\nLDX #$10\n```\n\nAssistant:"
    assert answer == f" ```asm\n-\nDEX\nBNE -\n```{tok.eos_token}"
    # every user-turn token is masked, every answer token (and the closing EOS) is not
    first_answer = mask.index(1)
    assert all(m == 0 for m in mask[:first_answer]) and all(m == 1 for m in mask[first_answer:])
    assert ids[-1] == tok.eos_token_id and mask[-1] == 1


def test_chat_records_mask_every_user_turn(tok):
    rec = {"messages": [
        {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"},
    ]}
    sample = data_mod.tokenize(tok, rec)
    pieces, current, flag = [], [], None
    for i, m in zip(sample["input_ids"], sample["completion_mask"]):
        if m != flag and current:
            pieces.append((flag, tok.decode(current)))
            current = []
        flag = m
        current.append(i)
    pieces.append((flag, tok.decode(current)))
    assert pieces == [
        (0, f"{tok.bos_token}User: q1\n\nAssistant:"), (1, f" a1{tok.eos_token}"),
        (0, "User: q2\n\nAssistant:"), (1, f" a2{tok.eos_token}"),
    ]


def _cfg(base: Path) -> RunConfig:
    cfg = RunConfig(name="t")
    cfg.model.base = str(base)
    cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout = 4, 8, 0.0
    return cfg


def test_experts_are_quantised_and_counted(tiny_model: Path):
    plain = DeepseekV2ForCausalLM.from_pretrained(str(tiny_model))
    linear = sum(m.weight.numel() for n, m in plain.named_modules()
                 if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head"))
    experts = sum(p.numel() for n, p in plain.named_parameters() if ".mlp.experts." in n)
    other = sum(p.numel() for p in plain.parameters()) - linear - experts
    model, report = load_model(_cfg(tiny_model), "cpu")
    assert report.expert_params_4bit == experts > 0
    moe_layers = sum(1 for layer in plain.model.layers if hasattr(layer.mlp, "experts"))
    assert (report.tensors_while_loading, report.tensors) == (2 * moe_layers, 0)  # all while loading, none after
    assert report.four_bit == linear + experts
    assert report.not_quantised == other  # embeddings, lm_head, norms, router
    ex = model.model.layers[1].mlp.experts
    assert ex.parametrizations.gate_up_proj.original.dtype == torch.uint8  # stored packed, not bf16
    cfg = _cfg(tiny_model)
    cfg.quant.quantize_experts = False
    _, unquantised = load_model(cfg, "cpu")
    assert unquantised.four_bit == linear and unquantised.not_quantised == other + experts


def test_lora_reaches_shared_and_dense_mlp_but_not_router_or_experts(tiny_model: Path):
    cfg = _cfg(tiny_model)
    model, _ = load_model(cfg, "cpu")
    plan = resolve_targets(model, cfg.lora)
    assert "model.layers.0.mlp.gate_proj" in plan.modules  # dense MLP (first_k_dense_replace)
    assert "model.layers.1.mlp.shared_experts.down_proj" in plan.modules
    assert not any(".mlp.gate" == n[-9:] or ".experts" in n for n in plan.modules)
    assert plan.by_target["q_proj"] == 2 and plan.by_target["q_a_proj"] == 0
    peft_model = apply_lora(model, cfg.lora, plan)
    shapes = {n: m for n, m in model.named_modules()}
    expected = 0
    for name in plan.modules:
        base = shapes[name].base_layer if hasattr(shapes[name], "base_layer") else shapes[name]
        expected += cfg.lora.r * (base.in_features + base.out_features)
    trainable, _ = trainable_parameters(peft_model)
    assert trainable == expected


def test_unknown_target_is_a_clear_error(tiny_model: Path):
    cfg = _cfg(tiny_model)
    cfg.lora.targets = ["q_proj", "w1"]
    model, _ = load_model(cfg, "cpu")
    with pytest.raises(ZeldaError, match="'w1' matches no linear layer"):
        resolve_targets(model, cfg.lora)


def test_expert_lora_needs_zero_dropout(tiny_model: Path):
    cfg = _cfg(tiny_model)
    cfg.lora.target_experts, cfg.lora.dropout = True, 0.1
    model, _ = load_model(cfg, "cpu")
    with pytest.raises(ZeldaError, match="dropout = 0"):
        resolve_targets(model, cfg.lora)


def test_routed_expert_lora_option_trains_the_4bit_experts(tiny_model: Path):
    cfg = _cfg(tiny_model)
    cfg.lora.target_experts = True
    model, _ = load_model(cfg, "cpu")
    plan = resolve_targets(model, cfg.lora)
    assert plan.parameters == ["model.layers.1.mlp.experts.gate_up_proj", "model.layers.1.mlp.experts.down_proj"]
    peft_model = apply_lora(model, cfg.lora, plan)
    from zelda_tui.backends.trainer.lora import adapted_modules

    assert adapted_modules(peft_model)["parameters"] == set(plan.parameters)
    ids = torch.randint(0, 200, (1, 24))
    peft_model(input_ids=ids, labels=ids).loss.backward()
    # lora_B starts at zero, so at step 0 the gradient reaches B (A's is zero by construction)
    expert_b = [p.grad for n, p in peft_model.named_parameters() if ".mlp.experts.lora_B" in n]
    assert expert_b and all(g is not None and g.abs().sum() > 0 for g in expert_b)


def test_oom_advice_comes_from_the_estimator():
    from zelda_tui.backends.trainer.program import oom_advice

    cfg = RunConfig()
    cfg.model.base = "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct"
    cfg.train.micro_batch = 8
    advice = oom_advice(cfg, 24.0)  # a 24 GB card: 8 x 4096 does not fit
    assert advice.startswith("try train.micro_batch = ") and "of 24 GiB" in advice
    small = int(advice.split("micro_batch = ")[1].split()[0])
    assert 1 <= small < 8
    cfg.model.base = "local/unknown"
    assert "lower train.micro_batch" in oom_advice(cfg, 24.0)


@pytest.mark.parametrize("error, advised", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (RuntimeError("the batch ran out of memory budget in a custom op"), False),  # told by its type, not its words
])
def test_a_run_out_of_gpu_memory_ends_with_the_estimators_advice(tmp_path: Path, monkeypatch, error, advised):
    """The trainer's last words on an OOM are the smallest setting the estimator says fits (CUDA
    cannot be made to run out here: the training step raises the error the allocator raises)."""
    from zelda_tui.backends.trainer import program
    from zelda_tui.core import runs

    cfg = RunConfig()
    cfg.model.base = "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct"
    cfg.save(tmp_path)

    def train(*_args):
        raise error

    monkeypatch.setattr(program, "train", train)
    assert program.main([str(tmp_path)]) != 0
    status = runs.read_status(tmp_path)
    assert status is not None and status.state == "failed"
    assert status.message.startswith("CUDA out of memory: ") == advised, status.message


def test_experts_are_quantised_as_they_load_never_all_in_bf16(tiny_model: Path):
    """At every moment of the load at most the tensor being quantised exists in bf16: every other
    fused expert tensor is either not loaded yet (on the meta device) or already 4-bit."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from zelda_tui.backends.trainer.modeling import EXPERT_PARAMS, experts_quantised_while_loading

    resident: list[int] = []

    def plain_experts_in_memory(model) -> None:
        count = 0
        for module in model.modules():
            for name in EXPERT_PARAMS:
                p = module._parameters.get(name) if hasattr(module, "_parameters") else None
                if isinstance(p, torch.nn.Parameter) and p.dim() == 3 and p.device.type != "meta":
                    count += 1
        resident.append(count)

    done: list[int] = []
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.bfloat16)
    with experts_quantised_while_loading("nf4", True, done, plain_experts_in_memory):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.bfloat16, device_map="cpu",
                                                     quantization_config=config)
    assert len(done) == len(resident) > 0 and resident == [0] * len(resident)
    reference = DeepseekV2ForCausalLM.from_pretrained(str(tiny_model), dtype=torch.bfloat16)
    for got, want in zip(model.model.layers[1:], reference.model.layers[1:]):  # the MoE layers
        for name in EXPERT_PARAMS:
            a, b = getattr(got.mlp.experts, name).float(), getattr(want.mlp.experts, name).float()
            assert ((a - b).abs().mean() / b.abs().mean()).item() < 0.15  # NF4 of the loaded weights, not noise
    from transformers.quantizers import auto as registry
    from transformers.quantizers.quantizer_bnb_4bit import Bnb4BitHfQuantizer

    assert registry.AUTO_QUANTIZER_MAPPING["bitsandbytes_4bit"] is Bnb4BitHfQuantizer  # restored after the load


@pytest.mark.timeout(60)
def test_sigterm_during_a_status_write_does_not_deadlock(tmp_path: Path):
    """SIGTERM lands on the main thread wherever it is, e.g. inside write_status holding its lock:
    the handler must only flag the stop (the checkpoint and the "stopping" status follow at the
    step's end), or the trainer hangs for ever."""
    import os
    import signal

    from zelda_tui.backends.trainer.callbacks import RunDirCallback, install_sigterm
    from zelda_tui.core import runs

    callback = RunDirCallback(tmp_path, runs.RunStatus(state="running"), {})
    previous = signal.getsignal(signal.SIGTERM)
    install_sigterm(callback)
    try:
        with callback._lock:  # a status write in progress
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next line
            assert callback.stop_requested
    finally:
        signal.signal(signal.SIGTERM, previous)

    class Control:
        should_save = should_training_stop = False

    control = Control()
    callback.on_step_end(None, None, control)
    assert control.should_save and control.should_training_stop
    assert runs.read_status(tmp_path).state == "stopping"
