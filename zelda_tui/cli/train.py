"""Commands on training runs: train start/list/status/stop/resume, tail, estimate."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ..core.format import duration, num
from ..core.runs import RunState
from .common import emit_json, open_services, table

if TYPE_CHECKING:
    from ..backends.remote_tail import RemoteMirror
    from ..services.views import RunView


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_train_start(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        if args.remote:
            run_dir = services.runs.start_remote(args.remote, args.mix, args.phase, args.accept_new_host_key, say,
                                                  during_training=args.eval_during, device=args.device,
                                                  max_steps=args.max_steps)
        else:
            run_dir = services.runs.start(args.mix, args.phase, say, during_training=args.eval_during,
                                          device=args.device, max_steps=args.max_steps)
        info = services.runs.info(run_dir)
    if args.json:
        emit_json(info.to_json())
    else:
        where = f"{args.remote}:{info.remote_dir}" if args.remote else str(run_dir)
        print(f"started {run_dir.name} (pid {info.pid}) in {where}\nfollow it with: zelda-tui tail {run_dir.name}")
    return 0


def cmd_train_list(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        rows = services.runs.list_all()
    if args.json:
        emit_json([r.to_json() for r in rows])
    else:
        print(table(
            ["run", "host", "state", "mix", "step", "loss", "eval loss", "tok/s", "ETA"],
            [[r.name, r.host, r.state + (" (as of last sync)" if r.is_remote and r.state.is_live else ""),
              r.mix or "-", f"{r.step}/{r.max_steps or '?'}", num(r.loss, ".4f", missing="-"),
              num(r.eval_loss, ".4f", missing="-"), num(r.tokens_per_s, ".0f", missing="-"),
              duration(r.eta_s, missing="-")] for r in rows],
            "lllllrrrr",
        ) if rows else "no runs yet: zelda-tui train start --phase 0")
    return 0


def cmd_train_status(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        info = services.runs.status(args.run)
        box = services.runs.box(info)
    if args.json:
        emit_json(info.to_json())
    else:
        for key, value in info.to_json().items():
            print(f"{key:>16}: {value if value is not None else '-'}")
        if box:
            print(f"{'box':>16}: {box}")
        if moves := _boxes(info):
            print(f"{'boxes':>16}: {moves}")
        if info.state == RunState.LOST:  # #17: what its box left here, and the way on
            print(f"{'lost':>16}: its box {info.host} is gone; safe here: {info.home_checkpoint or 'no checkpoint'}; "
                  f"`zelda-tui train recover {info.name}` goes on elsewhere")
    return 1 if info.state.is_failure else 0


def _boxes(info: RunView) -> str | None:
    """The boxes a recovered run has been on (its run dir's boxes.jsonl), with time and spend on each."""
    from ..services.recovery import RecoveryService

    return RecoveryService.history_line(info)


def cmd_train_stop(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        pid = services.runs.stop(args.run)
    print(f"sent SIGTERM to {pid}: the run saves a checkpoint and stops (resume with `zelda-tui train resume {args.run}`)")
    return 0


def cmd_train_resume(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        resumed = services.runs.resume(args.run)
    print(resumed.line())
    return 0


def cmd_train_recover(args: argparse.Namespace) -> int:
    """#17.3: the plan (checkpoint, offer, budget) is shown; an offer is rented only with --yes."""
    with open_services(args) as services:
        plan = services.recovery.plan(args.run, args.host, args.query)
        if args.json and (args.dry_run or plan.problems or (not args.yes and not args.host)):
            emit_json(plan.to_json())
        elif not args.json:
            print("\n".join(plan.lines()))
        if plan.problems:
            say(f"zelda-tui: error: {plan.run} stays lost: " + "; ".join(plan.problems))
            return 1
        if args.dry_run:
            return 0
        if not args.yes and not args.host:
            say("nothing rented: add --yes to rent it and go on")
            return 1
        done = services.recovery.recover(args.run, args.host, args.query, args.accept_new_host_key, say,
                                         offer=plan.offer.offer.key if plan.offer else None)  # the one shown
    if args.json:
        emit_json(done.to_json())
    else:
        print(f"{done.line()}; follow it with: zelda-tui tail {done.run}")
    return 0


def cmd_train_fetch(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        result = services.runs.fetch(args.run, args.checkpoint, say)
    if args.json:
        emit_json(result.to_json())
    else:
        print(f"fetched {', '.join(result.fetched)} of {result.run} into {result.into} "
              f"({result.bytes / 1e6:.1f} MB transferred, the rest was already here)")
    return 0


def cmd_train_backup(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        result = services.runs.backup(args.run)
    if args.json:
        emit_json(result.to_json())
    else:
        print(f"backed up {result.run} lora_adapters/ to {result.target}")
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    """Follow train.log and metrics.jsonl by byte offset until the run is no longer active.

    A remote run is mirrored into its local run dir by a background thread (reconnecting on
    its own) and printed from there, by the same code that tails a local run. A run that goes on
    on another box meanwhile (`train recover`, [recovery] auto) is followed there.
    """
    import threading
    import time

    from ..core import runs

    services = open_services(args)
    mirror = follower = None
    stop = threading.Event()
    try:
        run_dir = services.runs.dir(args.run)
        last = [""]

        def on_state(link) -> None:
            if link.state != last[0]:
                say(f"[link] {link.line()}")
            last[0] = link.state

        def follow() -> tuple[RemoteMirror, threading.Thread | None]:
            mirror = services.runs.mirror(args.run, on_state=on_state, on_alert=lambda text: say(f"[alert] {text}"))
            if args.no_follow:
                mirror.sync_once()
                mirror.close()
                return mirror, None
            follower = threading.Thread(target=mirror.follow, args=(stop,), daemon=True)
            follower.start()
            return mirror, follower

        box = services.runs.host(args.run)
        if box.is_remote:
            mirror, follower = follow()
        log_tail = runs.LineTail(run_dir / runs.TRAIN_LOG)
        metric_tail = runs.LineTail(run_dir / runs.METRICS)

        def drain() -> None:
            if not args.metrics_only:
                for line in log_tail.read_new():
                    print(line, flush=True)
            for event in runs.parse_metrics(metric_tail.read_new()):
                print(json.dumps(event) if args.json else _metric_line(event), flush=True)

        while True:
            drain()
            state = services.runs.info(run_dir).state
            done = not follower.is_alive() if follower else not state.is_live
            if done and follower is not None:
                now_on = services.runs.host(args.run)
                if (now_on.name, now_on.remote_dir) != (box.name, box.remote_dir):  # recovered elsewhere
                    box = now_on
                    say(f"[link] {args.run} went on on {box.name}: following it there")
                    mirror, follower = follow()
                    continue
            if args.no_follow or done:
                drain()  # one last read: lines written just before the state changed
                break
            time.sleep(0.1 if follower else 0.25)
    finally:
        stop.set()
        if follower:
            follower.join(5)
        services.close()
    if mirror is not None and mirror.state.state == "failed":
        say(f"zelda-tui: error: {mirror.state.error}")
        return 1
    return 1 if state.is_failure else 0


def _metric_line(e: dict) -> str:
    if e.get("event") == "train":
        return (f"[metrics] step {e.get('step')} loss {num(e.get('loss'), '.4f', missing='-')} lr {e.get('lr')} "
                f"{num(e.get('tokens_per_s'), '.0f', missing='-')} tok/s vram {e.get('vram_peak_gb')} GB "
                f"eta {duration(e.get('eta_s'), missing='-')}")
    if e.get("event") == "eval":
        per = " ".join(f"{k.split('/', 1)[1]}={v:.4f}" for k, v in e.items() if k.startswith("eval_loss/"))
        return f"[metrics] step {e.get('step')} eval_loss {num(e.get('eval_loss'), '.4f', missing='-')} {per}"
    return f"[metrics] {e.get('event')}: " + ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("t", "event"))


def cmd_estimate(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        est = services.estimates.estimate(args.gpu, args.gpus, args.price, args.mix, args.phase, args.model,
                                seq_len=args.seq_len, micro_batch=args.micro_batch)
    if est.gpu_note:
        print(f"zelda-tui: {est.gpu_note}", file=sys.stderr)
    if args.json:
        emit_json(est.to_json())
        return 0
    print(f"{est.model} on {est.gpus} x {est.gpu}: mix {est.mix}, {est.train_tokens:,} train tokens "
          f"(QA estimate) x {est.epochs} epochs, {est.micro_batch} x {est.seq_len} per GPU step\n")
    print(f"peak VRAM per GPU: {est.vram_gb:.1f} GiB -> {est.verdict}")
    for part, gb in est.vram_breakdown_gb.items():
        print(f"  {part:>24}: {gb:6.2f} GiB")
    print(f"\nthroughput: {est.tokens_per_s_per_gpu:,.0f} tokens/s per GPU ({est.tokens_per_s_source})")
    cost = f", ${est.dollars:,.2f} at ${args.price:g}/h" if args.price else " (pass --price for dollars)"
    print(f"time: {est.hours:.1f} h{cost}")
    return 0
