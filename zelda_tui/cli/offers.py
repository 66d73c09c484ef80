"""Commands on GPU offers and rented instances: offers search/launch, instances list/destroy."""

from __future__ import annotations

import argparse
import sys

from ..core.format import num
from .common import emit_json, open_services, table


def cmd_offers_search(args: argparse.Namespace) -> int:
    from ..backends.providers.search import PROVIDERS

    providers = PROVIDERS if args.provider == "all" else tuple(p.strip() for p in args.provider.split(","))
    with open_services(args) as services:
        rows, warnings = services.offers.search(providers, args.query, args.sort, args.phase)
    for w in warnings:
        print(f"zelda-tui: warning: {w}", file=sys.stderr)
    if args.json:
        emit_json({"offers": [r.to_json() for r in rows], "warnings": warnings})
        return 0
    shown = rows[: args.limit]
    print(table(
        ["offer", "gpu", "n", "VRAM", "$/h", "region", "fit", "hours", "total $", "price date"],
        [[r.key, r.gpu_name, r.num_gpus, f"{r.gpu_ram:g}", f"{r.dph_total:.3f}", r.region,
          r.fit or "-", num(r.hours, ".1f", missing="-"), num(r.dollars, ".2f", missing="-"), r.price_date] for r in shown],
        "llrrrllrrl",
    ) if rows else "no offers match")
    if len(rows) > len(shown):
        print(f"\n{len(rows) - len(shown)} more (--limit N, or --json)")
    return 0


def cmd_offers_launch(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        plan = services.offers.launch_plan(args.offer, args.phase)
        offer, budget = plan.offer, plan.budget
        if args.json and (args.dry_run or not args.yes):
            emit_json(plan.to_json())
        elif not args.json:
            est = (f"estimated {offer.hours:.1f} h, ${offer.dollars:.2f} for the phase's mix"
                   if offer.hours is not None and offer.dollars is not None else "no time estimate for this GPU")
            left = f"${budget.left_usd:.2f} of ${budget.max_total_usd:.2f} left" if budget.left_usd is not None else "no budget set"
            print(f"{args.offer}: {offer.num_gpus} x {offer.gpu_name} in {offer.region} at ${offer.dph_total:.3f}/h; "
                  f"{est}; VRAM fit: {offer.fit}; budget: {left}")
            for problem in plan.over_budget:
                print(f"  budget guard: {problem}")
        if args.dry_run:
            if not args.json:
                print(plan.request)
            return 0
        if not args.yes:
            print("nothing launched: add --yes to rent it", file=sys.stderr)
            return 1
        tracked = services.offers.launch(args.offer, args.phase, force=args.force)
    if args.json:
        emit_json(tracked.to_json())
    else:
        print(f"launched {tracked.key} (tracked; `zelda-tui instances list` shows its SSH endpoint when ready)")
    return 0


def cmd_instances_list(args: argparse.Namespace) -> int:
    with open_services(args) as services:
        rows = services.instances.rows(refresh=not args.no_refresh)
        budget = services.instances.spend()
    if args.json:
        emit_json({"instances": [r.to_json() for r in rows], "budget": budget.to_json()})
        return 0
    for r in rows:
        if r.warning:
            print(f"zelda-tui: warning: {r.warning}", file=sys.stderr)
    print(table(
        ["instance", "offer", "gpu", "state", "ssh", "$/h", "hours", "spent $"],
        [[r.key, r.offer, f"{r.num_gpus} x {r.gpu_name}", r.state, r.endpoint or "-", f"{r.dph_total:.3f}",
          f"{r.hours:.2f}", f"{r.spent_usd:.2f}"] for r in rows],
        "lllllrrr",
    ) if rows else "no tracked instances")
    print(f"\nspent so far: ${budget.spent_usd:.2f}" + (f" of ${budget.max_total_usd:.2f}" if budget.max_total_usd else ""))
    return 0


def cmd_instances_destroy(args: argparse.Namespace) -> int:
    if not args.yes:
        print(f"nothing destroyed: add --yes to destroy {args.instance}", file=sys.stderr)
        return 1
    with open_services(args) as services:
        row = services.instances.destroy(args.instance)
    if args.json:
        emit_json(row.to_json())
    elif not row.tracked or row.spent_usd is None or row.started is None or row.ended is None:
        print(f"destroyed {row.key} (it was not tracked: its spend is unknown here)")
    else:
        verb = "destroyed" if row.state == "destroyed" else "already gone at the provider:"
        print(f"{verb} {row.key} after {(row.ended - row.started) / 3600:.2f} h, ${row.spent_usd:.2f}")
    return 0


def cmd_instances_enforce(args: argparse.Namespace) -> int:
    """The budget rules applied now (from cron, or by hand): past max runtime, idle after the last run.

    Every instance is tried; the exit status is 1 when any destroy failed (cron mails it)."""
    with open_services(args) as services:
        acted = services.enforcer.enforce(dry_run=args.dry_run)
    failed = [row for row in acted if row.error]
    if args.json:
        emit_json([row.to_json() for row in acted])
    elif not acted:
        print("nothing to destroy: every tracked instance is within budget.max_runtime_hours and in use")
    for row in [] if args.json else acted:
        if row.error:
            print(f"FAILED to destroy {row.key} (${row.spent_usd:.2f} so far, still billing): {row.error}",
                  file=sys.stderr)
            continue
        verb = {"destroyed": "destroyed", "gone": "already gone at the provider:"}.get(row.state, "would destroy")
        verb = verb if row.destroyed else "would destroy"
        print(f"{verb} {row.key} (${row.spent_usd:.2f} so far): {row.reason}")
    return 1 if failed else 0
