"""The generation program of an eval: `python -m zelda_tui.backends.trainer.generate RUN_DIR ...`.

A separate program (not a function the app calls) so torch stays out of the TUI and the same
command can run on the GPU box beside the trainer. It loads the base model of run.toml the
way the trainer does (4-bit NF4 when configured), formats every prompt with the model's own
chat template and generation prompt, and for each requested checkpoint (`base` = no
adapter, `checkpoint-N`, `final`) writes RUN_DIR/evals/<set>/<checkpoint>.jsonl atomically:
the greedy answer (sample 0) and K sampled answers (1..K, seeded) per prompt.

Resumable per checkpoint: a checkpoint whose answers file matches the request is skipped.
One failing checkpoint is reported and the others still run (exit code 1 at the end).
Progress goes to stdout as JSON lines (`{"event": "progress", ...}`); logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core import eval_worker, evals, runs
from ...core.errors import ZeldaError
from ...core.train_config import RunConfig, load_run_config

log = logging.getLogger("zelda_tui.generate")


@dataclass
class GenerateArgs:
    run_dir: Path
    prompt_set: str
    checkpoints: list[str]
    options: evals.GenerateOptions
    follow: str = ""  # "" | alongside | after
    poll_s: float = 10.0


def emit(event: str, **values) -> None:
    sys.stdout.write(json.dumps({"event": event, "pid": os.getpid(), **values}) + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None) -> GenerateArgs:
    p = argparse.ArgumentParser(prog="python -m zelda_tui.backends.trainer.generate")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--prompt-set", required=True, help="name of RUN_DIR/evals/<set>/ (holding prompts.jsonl)")
    p.add_argument("--checkpoints", default="all", help="comma list: base, checkpoint-N, final; or all")
    p.add_argument("--samples", type=int, default=0, help="sampled answers per prompt (pass@k), besides the greedy one")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--device", default="", choices=["", "auto", "cuda", "cpu"])
    p.add_argument("--follow", default="", choices=["", "alongside", "after"],
                   help="evaluate every checkpoint of the run as it lands (alongside) or once training ends (after)")
    p.add_argument("--poll-s", type=float, default=10.0, help="how often --follow looks for new checkpoints")
    a = p.parse_args(argv)
    return GenerateArgs(a.run_dir.resolve(), a.prompt_set, [c for c in a.checkpoints.split(",") if c],
                        evals.GenerateOptions(a.samples, a.max_new_tokens, a.batch_size, a.seed, a.temperature, a.top_p,
                                              a.device), a.follow, a.poll_s)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    worker: eval_worker.EvalWorker | None = None
    try:
        cfg = load_run_config(args.run_dir)
        edir = evals.eval_dir(args.run_dir, args.prompt_set)
        with eval_worker.worker_lock(edir, on_busy=lambda: emit("waiting", checkpoint=None,
                                                          message="another eval of this prompt set runs first")):
            worker = eval_worker.EvalWorker(edir, mode=args.follow or "once")
            worker.update(state="starting")
            code = Generator(args, cfg, worker).run()
            worker.update(state="finished" if code == 0 else "failed", checkpoint=None)
            emit("finished", checkpoint=None, code=code)
            return code
    except ZeldaError as exc:
        _failed(worker, str(exc))
        return 1
    except Exception as exc:  # the caller gets one readable line; the traceback goes to the log
        traceback.print_exc()
        _failed(worker, _failure(exc, Path(getattr(exc, "filename", None) or args.run_dir)))
        return 1


def _failed(worker: eval_worker.EvalWorker | None, message: str) -> None:
    emit("error", checkpoint=None, message=message)
    if worker is not None:
        worker.update(state="failed", message=message)
    emit("finished", checkpoint=None, code=1)


class Generator:
    """Answers for one run's checkpoints with one base model load: adapters are switched, not the base."""

    def __init__(self, args: GenerateArgs, cfg: RunConfig, worker: eval_worker.EvalWorker) -> None:
        self.args, self.cfg, self.worker = args, cfg, worker
        prompts_path = evals.eval_dir(args.run_dir, args.prompt_set) / evals.PROMPTS_FILE
        if not prompts_path.is_file():
            raise ZeldaError(f"{prompts_path}: missing (the app writes it before starting the generator)")
        self.prompts = evals.read_eval_prompts(prompts_path)
        self.prompts_sha = evals.sha256_text(evals.prompts_jsonl(self.prompts))
        self.failed = 0
        self.attempted: set[str] = set()
        self._loaded: tuple[Any, Any, Any, list[str], str] | None = None  # torch, tokenizer, base, texts, device

    # --- what to do ----------------------------------------------------------------------
    def run(self) -> int:
        if self.args.follow:
            self.follow()
        else:
            names = self.args.checkpoints
            if names == ["all"]:
                names = [name for name, _ in evals.eval_checkpoints(self.args.run_dir)]
            self.evaluate(names)
        return 1 if self.failed else 0

    def follow(self) -> None:
        """Evaluate checkpoints as they land until training has ended and every one is done.
        Alongside training only when the estimate says both fit on the GPU; otherwise queued."""
        mode = self.args.follow
        fits, why = (True, "") if mode == "after" else self.fits_alongside()
        if mode == "alongside" and not fits:
            emit("queued", checkpoint=None, message=f"evaluating after training: {why}")
            log.info("eval queued until training ends: %s", why)
        while True:
            training = self.training_live()
            if training and (mode == "after" or not fits):
                self.worker.update(state="queued", checkpoint=None)
                time.sleep(self.args.poll_s)
                continue
            todo = [name for name, _ in evals.eval_checkpoints(self.args.run_dir) if name not in self.attempted]
            if todo:
                self.evaluate(todo)
                continue
            if not training:
                return
            self.worker.update(state="waiting", checkpoint=None)
            time.sleep(self.args.poll_s)

    def training_live(self) -> bool:
        status = runs.read_status(self.args.run_dir)
        return status is not None and runs.RunState.of(status.state).is_live and runs.pid_alive(status.pid)

    def fits_alongside(self) -> tuple[bool, str]:
        """(fits, the numbers): the trainer's estimated peak plus this generator's, against the GPU."""
        import torch

        from ...core import estimate as est
        from .modeling import pick_device

        if pick_device(self.cfg) != "cuda":
            return True, "not on a GPU"
        try:
            arch = est.lookup(self.cfg.model.base)
        except ZeldaError:
            return False, f"no memory estimate for {self.cfg.model.base} (an unknown size is not a fit)"
        opts = est.vram_options(self.cfg)
        train = est.estimate_vram(arch, seq_len=self.cfg.model.max_seq_len, micro_batch=self.cfg.train.micro_batch,
                                  **opts).total_gb
        need = est.estimate_eval_vram(arch, dense_bits=opts["dense_bits"], expert_bits=opts["expert_bits"],
                                      batch=self.args.options.batch_size, tokens=2048 + self.args.options.max_new_tokens)
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        line = f"training ~{train:.1f} GiB + eval ~{need:.1f} GiB of {total:.0f} GiB"
        return train + need <= total * (1 - est.TIGHT_MARGIN), line

    # --- doing it ------------------------------------------------------------------------
    def evaluate(self, names: list[str]) -> None:
        run_dir, opts = self.args.run_dir, self.args.options
        for name in names:
            self.attempted.add(name)
            adapter = evals.checkpoint_dir(run_dir, name)
            if adapter is not None and not adapter.is_dir():
                if self.args.follow:  # rotated out by keep_checkpoints while it waited: not a failure
                    emit("gone", checkpoint=name, message=f"{name} was rotated out before its eval")
                    continue
                self._error(name, f"{name} was deleted before its eval ({adapter} is gone; "
                                  "train.keep_checkpoints rotates old checkpoints out)")
                continue
            if adapter is not None and not (adapter / "adapter_config.json").is_file():
                self._error(name, f"{adapter}: no adapter_config.json (not a complete checkpoint)")
                continue
            request = evals.generation_request(self.cfg.model.base, adapter, self.prompts_sha, opts.samples,
                                               opts.max_new_tokens, opts.seed, opts.temperature, opts.top_p)
            path = evals.answers_path(run_dir, self.args.prompt_set, name)
            if evals.answers_complete(path, request):
                emit("skipped", checkpoint=name, path=str(path))
                continue
            self.worker.update(state="generating", checkpoint=name, done=0, total=0)
            started = time.time()
            try:
                torch, tokenizer, base, texts, device = self.load()
                model = base if adapter is None else _with_adapter(base, adapter, name)
                model.eval()
                answers = generate(model, tokenizer, texts, self.prompts, self.args, name, torch, self.worker)
                if adapter is not None:
                    self._set_base(model.unload())  # LoRA layers out again, nothing merged: the next adapter starts clean
                header = {"run": run_dir.name, "prompt_set": self.args.prompt_set, "checkpoint": name,
                          "step": evals.checkpoint_step(run_dir, name), **request,
                          "expected": len(self.prompts) * (1 + opts.samples), "device": device,
                          "created": round(time.time(), 3), "elapsed_s": round(time.time() - started, 2)}
                evals.write_answers(path, header, answers)
            except Exception as exc:
                if self.args.follow and adapter is not None and not adapter.is_dir():
                    emit("gone", checkpoint=name, message=f"{name} was rotated out during its eval")
                    continue
                if not isinstance(exc, ZeldaError):
                    traceback.print_exc()
                self._error(name, _failure(exc, path))
                continue
            rate = len(answers) / max(header["elapsed_s"], 1e-9)
            log.info("%s: %d answers in %.1f s (%.2f answers/s)", name, len(answers), header["elapsed_s"], rate)
            emit("done", checkpoint=name, path=str(path), answers=len(answers), elapsed_s=header["elapsed_s"],
                 answers_per_s=round(rate, 3))

    def _error(self, name: str, message: str) -> None:
        self.failed += 1
        emit("error", checkpoint=name, message=message)

    def load(self) -> tuple[Any, Any, Any, list[str], str]:
        """The base model, loaded once for every checkpoint of this generator (16B weights are minutes)."""
        if self._loaded is not None:
            return self._loaded
        try:
            import torch

            from .modeling import load_model, load_tokenizer, pick_device
        except ImportError as exc:
            raise ZeldaError(f"generating answers needs the [train] extra (pip install -e '.[train]'): {exc}") from None
        cfg = self.cfg
        if self.args.options.device:
            cfg.train.device = self.args.options.device  # the eval's own choice wins over the run's
        device = pick_device(cfg)
        tokenizer = load_tokenizer(cfg)
        tokenizer.padding_side = "left"  # decoder-only batches: pad on the left so every prompt ends at the same place
        started = time.time()
        base, quant = load_model(cfg, device)
        base.config.use_cache = True
        base.eval()
        with torch.no_grad():  # bitsandbytes repacks 4-bit weights at a layer's first forward (CPU): before any
            base(**tokenizer("warm-up", return_tensors="pt").to(base.device))  # adapter, so answers never depend on the order
        load_s = time.time() - started
        log.info("base %s on %s in %.1f s; %s", cfg.model.base, device, load_s, quant.line())
        emit("loaded", checkpoint=None, load_s=round(load_s, 2), device=device)
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": p.user_text()}], tokenize=False,
                                               add_generation_prompt=True) for p in self.prompts]
        self._loaded = (torch, tokenizer, base, texts, device)
        return self._loaded

    def _set_base(self, base: Any) -> None:
        assert self._loaded is not None
        torch, tokenizer, _, texts, device = self._loaded
        self._loaded = (torch, tokenizer, base, texts, device)


def _failure(exc: Exception, path: Path) -> str:
    """One line for a checkpoint that failed: ours as said, a write as the file and the OS's reason."""
    if isinstance(exc, ZeldaError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot write {path} ({exc.strerror})"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _with_adapter(base: Any, adapter: Path, name: str) -> Any:
    from .lora import load_adapters

    try:
        return load_adapters(base, str(adapter))
    except Exception:
        if not (adapter / "adapter_config.json").is_file():
            raise ZeldaError(f"{name} was deleted while it waited for its eval ({adapter} is gone; "
                             "train.keep_checkpoints rotates old checkpoints out)") from None
        raise


def generate(model, tokenizer, texts: list[str], prompts: list[evals.Prompt], args: GenerateArgs, name: str, torch,
             worker: eval_worker.EvalWorker | None = None) -> list[dict]:
    """Greedy (sample 0) then K sampled answers (1..K) per prompt, in batches of prompts."""
    total = len(prompts) * (1 + args.options.samples)
    answers: list[dict] = []
    eos = tokenizer.eos_token_id
    common = {"max_new_tokens": args.options.max_new_tokens, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": eos}
    emit("progress", checkpoint=name, done=0, total=total)
    for start in range(0, len(prompts), max(1, args.options.batch_size)):
        batch = prompts[start:start + args.options.batch_size]
        enc = tokenizer(texts[start:start + args.options.batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(model.device)
        width = enc["input_ids"].shape[1]
        with torch.no_grad():
            out = model.generate(**enc, do_sample=False, temperature=None, top_p=None, top_k=None, **common)
        for prompt, seq in zip(batch, out):
            answers.append({"prompt_idx": prompt.idx, "sample": 0, **_decode(tokenizer, seq[width:], eos)})
        if args.options.samples:
            torch.manual_seed(args.options.seed + start)  # the same sample for the same prompt batch on a re-run
            with torch.no_grad():
                out = model.generate(**enc, do_sample=True, temperature=args.options.temperature, top_p=args.options.top_p, top_k=None,
                                     num_return_sequences=args.options.samples, **common)
            for i, seq in enumerate(out):
                prompt = batch[i // args.options.samples]
                answers.append({"prompt_idx": prompt.idx, "sample": 1 + i % args.options.samples,
                                **_decode(tokenizer, seq[width:], eos)})
        emit("progress", checkpoint=name, done=len(answers), total=total)
        if worker is not None:
            worker.update(done=len(answers), total=total)
    answers.sort(key=lambda a: (a["prompt_idx"], a["sample"]))
    return answers


def _decode(tokenizer, new_ids, eos: int) -> dict:
    ids = new_ids.tolist()
    pad = tokenizer.pad_token_id
    finished = eos in ids
    if finished:
        ids = ids[:ids.index(eos)]
    elif pad is not None and pad != eos:
        ids = [i for i in ids if i != pad]
    return {"answer": tokenizer.decode(ids, skip_special_tokens=True).strip(), "tokens": len(ids), "truncated": not finished}


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
