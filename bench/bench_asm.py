"""65816 validator benchmark: validations per second, one process vs all cores, Asar and the pre-check.

    .venv/bin/python bench/bench_asm.py [--asar-answers 348] [--precheck-answers 5800] [--reps 5]

The answers are the test corpus (tests/asm_corpus: 58 good and broken snippets and model-style
answers, 4-22 lines each) repeated to the requested count. Every repetition of every variant
runs in a fresh interpreter (bench/_harness.py: time inside the child around the batch call,
peak RSS of the whole process tree sampled from outside, variants interleaved):

* asar plain       - reference: the obvious loop, one answer at a time: `TemporaryDirectory`,
                     write the patch and a 512 KiB ROM of real zero bytes, `subprocess.run`
                     with a timeout, `classify_asar`.
* asar 1 job       - `validate_many(answers, asar, jobs=1)`: one Asar process at a time, a temp
                     dir per answer, sparse ROM (no bytes written).
* asar threads     - `validate_many(..., jobs=cpu_count)` (the default): a thread per concurrent
                     Asar process, one reused work dir per thread.
* asar processes   - `validate_many(..., jobs=cpu_count, executor="processes")`: a process pool,
                     each worker launching Asar (the alternative the default was chosen over).
* precheck 1 job   - `validate_many(answers, None, jobs=1)`: the built-in checker in this process.
* precheck all     - `validate_many(answers, None, jobs=cpu_count)`: chunks on a process pool
                     (started and stopped inside the clock).

The script checks that the Asar variants return identical verdicts, and so do the pre-check
variants. Speed-ups are against the "1 job" row of the same checker.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _harness as h  # noqa: E402


def corpus_answers(n: int) -> list[str]:
    from tests.asm_corpus import cases

    texts = [c.text for c in cases()]
    return [texts[i % len(texts)] for i in range(n)]


def plain_asar(answers: list[str], asar: Path, timeout_s: float = 10.0) -> list[str]:
    """The obvious implementation: one fresh temp dir, one real 512 KiB ROM file, one run per answer."""
    from zelda_tui.asm.code import classify_asar, extract_code, is_empty, wrap_patch

    out = []
    for answer in answers:
        code = extract_code(answer)
        if is_empty(code):
            out.append("empty")
            continue
        text, offset = wrap_patch(code)
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "patch.asm").write_text(text)
            Path(tmp, "rom.sfc").write_bytes(bytes(512 * 1024))
            proc = subprocess.run([str(asar), "--no-title-check", "patch.asm", "rom.sfc"], cwd=tmp,
                                  capture_output=True, text=True, timeout=timeout_s)
        out.append(classify_asar(proc.returncode, proc.stderr, offset).verdict)
    return out


def child(variant: str, n: int) -> None:
    from zelda_tui.backends.asar import find_asar, validate_many
    from zelda_tui.core.jsonl import cpu_count

    answers = corpus_answers(n)
    cores = cpu_count()
    asar = find_asar(cwd=h.REPO)
    if variant.startswith("asar") and asar is None:
        raise SystemExit("no Asar binary: run `make asar`")
    t0 = time.perf_counter()
    if variant == "asar-plain":
        verdicts = plain_asar(answers, asar.path)
    elif variant == "asar-1":
        verdicts = [v.verdict for v in validate_many(answers, asar, jobs=1)]
    elif variant == "asar-threads":
        verdicts = [v.verdict for v in validate_many(answers, asar, jobs=cores)]
    elif variant == "asar-processes":
        verdicts = [v.verdict for v in validate_many(answers, asar, jobs=cores, executor="processes")]
    elif variant == "precheck-1":
        verdicts = [v.verdict for v in validate_many(answers, None, jobs=1)]
    elif variant == "precheck-all":
        verdicts = [v.verdict for v in validate_many(answers, None, jobs=cores)]
    else:
        raise SystemExit(f"unknown variant {variant}")
    seconds = time.perf_counter() - t0
    h.child_result(seconds, answers=len(answers), verdicts=verdicts)


LABELS = {
    "asar-plain": "asar plain (reference loop, 1 process)",
    "asar-1": "asar, 1 job",
    "asar-threads": "asar, all cores (threads, the default)",
    "asar-processes": "asar, all cores (process pool)",
    "precheck-1": "pre-check, 1 process",
    "precheck-all": "pre-check, all cores (process pool)",
}


def rows(runs: dict[str, list[h.Run]], names: list[str], baseline: str) -> list[str]:
    base = statistics.median(r.seconds for r in runs[baseline])
    out = []
    for name in names:
        rs = runs[name]
        secs = [r.seconds for r in rs]
        n = rs[0].extra["answers"]
        med = statistics.median(secs)
        peaks = [r.peak_rss / 2**20 for r in rs]
        out.append(f"| {LABELS[name]} | {n:,} | {med:.3f} s | {min(secs):.3f}–{max(secs):.3f} s | "
                   f"**{n / med:,.0f}** | {statistics.median(peaks):.0f} / {max(peaks):.0f} | {base / med:.2f}x |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--asar-answers", type=int, default=348)
    ap.add_argument("--precheck-answers", type=int, default=5800)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.n)
        return
    h.ensure_repo_on_path()
    from zelda_tui.backends.asar import find_asar
    from zelda_tui.core.jsonl import cpu_count

    asar = find_asar(cwd=h.REPO)
    if asar is None:
        raise SystemExit("no Asar binary: run `make asar`")
    script = Path(__file__).resolve()
    print(f"machine: {h.machine()}; load average before: {h.loadavg()}", file=sys.stderr)
    a, p = ["--n", str(args.asar_answers)], ["--n", str(args.precheck_answers)]
    variants = [("asar-plain", a), ("asar-1", a), ("asar-threads", a), ("asar-processes", a),
                ("precheck-1", p), ("precheck-all", p)]
    runs = h.run_all(script, variants, args.reps)
    load_after = h.loadavg()

    asar_names = ["asar-plain", "asar-1", "asar-threads", "asar-processes"]
    pre_names = ["precheck-1", "precheck-all"]
    agree_asar = len({tuple(runs[n][0].extra["verdicts"]) for n in asar_names}) == 1
    agree_pre = len({tuple(runs[n][0].extra["verdicts"]) for n in pre_names}) == 1
    header = ["| variant | answers | median time | min–max | validations/s | peak RSS MB (median / max) | speed-up vs 1 job |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    print(f"\n## 65816 validator ({time.strftime('%Y-%m-%d')}, {h.machine()}, {cpu_count()} jobs = all cores, "
          f"Asar {asar.version}, load avg after: {load_after})\n")
    print(f"{args.reps} reps per variant, fresh process each; answers: tests/asm_corpus repeated\n")
    print("\n".join(header + rows(runs, asar_names, "asar-1") + rows(runs, pre_names, "precheck-1")))
    verdicts = runs["asar-1"][0].extra["verdicts"]
    pre = runs["precheck-1"][0].extra["verdicts"]
    counts = {v: verdicts.count(v) for v in sorted(set(verdicts))}
    print(f"\nAsar verdicts per batch: {counts}; identical across the Asar variants: {'yes' if agree_asar else 'NO'}; "
          f"across the pre-check variants: {'yes' if agree_pre else 'NO'}")
    pairs = list(zip(verdicts, pre))  # answer i is corpus[i % len(corpus)] in both batches
    same = sum(x == y for x, y in pairs)
    print(f"pre-check gives Asar's verdict on {same / len(pairs):.1%} of the corpus answers "
          "(the rest: branch distances and `error` commands, which only Asar can know)")
    if not (agree_asar and agree_pre):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
