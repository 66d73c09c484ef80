"""Estimates: VRAM verdict, hours and dollars for a mix on a GPU."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import run_plan
from ..core.config import Config
from ..core.store import Store
from .datasets import DatasetService
from .views import EstimateView


@dataclass
class EstimateService:
    """VRAM, time and cost of training a mix on a GPU type."""

    config: Config
    store: Store
    datasets: DatasetService

    def mix_train_tokens(self, mix: str) -> int:
        """Tokens in a mix's train split: per dataset, train records x the QA mean sample length."""
        spec = self.config.mix(mix)
        reports = {r.name: r for r in self.datasets.scan(names=list(spec.datasets))}
        plan = self.datasets.mix_preview(spec)
        return int(sum(d.train * reports[d.name].qa["length"]["mean_tokens"] for d in plan.datasets))

    def estimate(self, gpu: str, gpus: int = 1, dollars_per_hour: float = 0.0, mix: str | None = None,
                 phase: int | None = None, model: str | None = None, **options) -> EstimateView:
        """VRAM verdict, hours and dollars for training a mix/phase on a GPU (`zelda-tui estimate`)."""
        from ..core import estimate as est

        matches = est.gpu_matches(gpu)
        note = ""
        if len(matches) > 1:  # "A100" is an 80 or a 40 GB card: take the plan's and say so
            note = (f"--gpu {gpu!r} matches {' and '.join(matches)}: using {matches[0]} (the plan's card); "
                    f"--gpu '{matches[1]}' prices the other")
            gpu = matches[0]
        cfg = run_plan.plan_run(self.config, mix, phase)
        tokens = self.mix_train_tokens(cfg.data.mix)
        epochs = cfg.train.epochs
        micro = options.pop("micro_batch", None) or cfg.train.micro_batch
        seq = options.pop("seq_len", None) or cfg.model.max_seq_len
        result = est.estimate_run(
            model or cfg.model.base, gpu, gpus, dollars_per_hour, tokens, epochs, seq, micro,
            measured=self.store.throughput_measured(), **est.vram_options(cfg), **options,
        )
        return EstimateView(
            model=result.model_id, gpu=result.gpu, gpus=gpus, mix=cfg.data.mix, phase=cfg.data.phase,
            train_tokens=tokens, epochs=epochs, seq_len=seq, micro_batch=micro,
            vram_gb=round(result.vram.total_gb, 2), verdict=result.verdict,
            vram_breakdown_gb={k: round(v, 2) for k, v in result.vram.breakdown.items()},
            tokens_per_s_per_gpu=round(result.tokens_per_s, 1), tokens_per_s_source=result.tokens_per_s_source,
            hours=round(result.hours, 2), dollars=round(result.dollars, 2), gpu_note=note,
        )
