"""Per-dataset QA statistics: computed per chunk (in worker processes), then merged.

`scan_chunk` is the hot loop: one orjson parse per line and a handful of len()/count() calls
per record. Everything it returns is mergeable (sums, maxima, counters, a set of record
digests for exact duplicates), so a file can be split across all cores.

Token lengths: with a real tokenizer (injected by the caller) each sample is the rendered
user + assistant text; without one they are estimated as chars / CHARS_PER_TOKEN, and the
result says so (`token_method`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .jsonl import JSONDecodeError, loads, split_lines

TEXT_FIELDS = ("instruction", "input", "output")
REQUIRED = ("instruction", "output")
LABEL_FIELDS = ("domain", "source")
FENCE = "```"
# Chars per token for code-heavy English + 65816 assembly with a BPE code tokenizer
# (DeepSeek-Coder's 100k vocab): hex operands and mnemonics split into ~3 chars a token.
CHARS_PER_TOKEN = 3.2
# Template overhead added to every sample: "User: " + "\n\nAssistant: " + EOS, about 8 tokens.
TEMPLATE_TOKENS = 8
LENGTH_BUCKETS = (256, 512, 1024, 2048, 4096, 8192, 16384)
MAX_LINE_SAMPLES = 20  # line numbers kept per problem kind (the count is always exact)

TokenCounter = Callable[[list[str]], list[int]]


@dataclass
class Problems:
    """A count plus the first few line numbers, so reports can say 'line 17, 40, ...'."""

    count: int = 0
    lines: list[int] = field(default_factory=list)

    def add(self, line: int) -> None:
        self.count += 1
        if len(self.lines) < MAX_LINE_SAMPLES:
            self.lines.append(line)

    def merge(self, other: "Problems") -> None:
        self.count += other.count
        room = MAX_LINE_SAMPLES - len(self.lines)
        if room > 0:
            self.lines.extend(other.lines[:room])


@dataclass
class FieldStats:
    present: int = 0
    total_chars: int = 0
    max_chars: int = 0
    max_line: int = 0
    code_blocks: int = 0  # records whose text has a ``` fence

    def merge(self, other: "FieldStats") -> None:
        self.present += other.present
        self.total_chars += other.total_chars
        self.code_blocks += other.code_blocks
        if other.max_chars > self.max_chars:
            self.max_chars, self.max_line = other.max_chars, other.max_line

    @property
    def avg_chars(self) -> float:
        return self.total_chars / self.present if self.present else 0.0


@dataclass
class ChunkStats:
    """Mergeable stats of a run of lines. Line numbers are relative to the chunk until merged."""

    lines: int = 0
    blank: int = 0
    records: int = 0
    chat_records: int = 0
    parse_errors: Problems = field(default_factory=Problems)
    not_object: Problems = field(default_factory=Problems)
    missing: dict[str, Problems] = field(default_factory=dict)
    wrong_type: dict[str, Problems] = field(default_factory=dict)
    fields: dict[str, FieldStats] = field(default_factory=lambda: {f: FieldStats() for f in TEXT_FIELDS})
    labels: dict[str, Counter] = field(default_factory=lambda: {f: Counter() for f in LABEL_FIELDS})
    digests: list[bytes] = field(default_factory=list)
    sample_chars: list[int] = field(default_factory=list)  # per valid record, for token lengths
    texts: list[str] | None = None  # rendered samples, only kept when a real tokenizer will count them

    def offset(self, by: int) -> None:
        """Shift relative line numbers to absolute ones."""
        for p in self._problems():
            p.lines = [n + by for n in p.lines]
        for f in self.fields.values():
            if f.max_chars:
                f.max_line += by

    def _problems(self) -> list[Problems]:
        return [self.parse_errors, self.not_object, *self.missing.values(), *self.wrong_type.values()]

    def merge(self, other: "ChunkStats") -> None:
        self.lines += other.lines
        self.blank += other.blank
        self.records += other.records
        self.chat_records += other.chat_records
        self.parse_errors.merge(other.parse_errors)
        self.not_object.merge(other.not_object)
        for name, src in (("missing", other.missing), ("wrong_type", other.wrong_type)):
            dst = getattr(self, name)
            for key, p in src.items():
                dst.setdefault(key, Problems()).merge(p)
        for key, f in other.fields.items():
            self.fields[key].merge(f)
        for key, c in other.labels.items():
            self.labels[key].update(c)
        self.digests.extend(other.digests)
        self.sample_chars.extend(other.sample_chars)
        if other.texts is not None:
            self.texts = (self.texts or []) + other.texts


def scan_chunk(data: bytes, keep_texts: bool = False) -> ChunkStats:
    """Stats of a newline-aligned buffer; line numbers relative to its first line (1-based)."""
    st = ChunkStats(texts=[] if keep_texts else None)
    fields = st.fields
    f_ins, f_inp, f_out = fields["instruction"], fields["input"], fields["output"]
    domains, sources = st.labels["domain"], st.labels["source"]
    digests, sample_chars = st.digests, st.sample_chars
    blake = hashlib.blake2b
    lines = split_lines(data)
    st.lines = len(lines)
    for lineno, raw in enumerate(lines, 1):
        try:
            rec = loads(raw)
        except JSONDecodeError:
            if raw.strip():
                st.parse_errors.add(lineno)
            else:
                st.blank += 1
            continue
        if type(rec) is not dict:
            st.not_object.add(lineno)
            continue
        if "messages" in rec and "instruction" not in rec:
            ins, inp, out = _chat_texts(rec, lineno, st)
            if ins is None:
                continue
            st.chat_records += 1
        else:
            ins = rec.get("instruction")
            inp = rec.get("input")
            out = rec.get("output")
            if type(ins) is not str:
                _bad(st, "instruction", ins, lineno)
                ins = None
            if type(out) is not str:
                _bad(st, "output", out, lineno)
                out = None
            if inp is not None and type(inp) is not str:
                st.wrong_type.setdefault("input", Problems()).add(lineno)
                inp = None
        st.records += 1
        n = 0
        if ins:
            ln = len(ins)
            n += ln
            f_ins.present += 1
            f_ins.total_chars += ln
            if ln > f_ins.max_chars:
                f_ins.max_chars, f_ins.max_line = ln, lineno
            if FENCE in ins:
                f_ins.code_blocks += 1
        elif ins is not None:
            st.missing.setdefault("instruction", Problems()).add(lineno)
        if inp:
            ln = len(inp)
            n += ln
            f_inp.present += 1
            f_inp.total_chars += ln
            if ln > f_inp.max_chars:
                f_inp.max_chars, f_inp.max_line = ln, lineno
            if FENCE in inp:
                f_inp.code_blocks += 1
        if out:
            ln = len(out)
            n += ln
            f_out.present += 1
            f_out.total_chars += ln
            if ln > f_out.max_chars:
                f_out.max_chars, f_out.max_line = ln, lineno
            if FENCE in out:
                f_out.code_blocks += 1
        elif out is not None:
            st.missing.setdefault("output", Problems()).add(lineno)
        _label(rec, "domain", domains, st, lineno)
        _label(rec, "source", sources, st, lineno)
        sample_chars.append(n)
        key = f"{ins}\x00{inp}\x00{out}".encode("utf-8", "surrogatepass")
        digests.append(blake(key, digest_size=8).digest())
        if st.texts is not None:
            st.texts.append(_render(ins, inp, out))
    return st


def _bad(st: ChunkStats, name: str, value: Any, lineno: int) -> None:
    """A required field that is absent (missing) or not text (wrong type)."""
    if value is None:
        st.missing.setdefault(name, Problems()).add(lineno)
    else:
        st.wrong_type.setdefault(name, Problems()).add(lineno)


def _label(rec: dict, name: str, counter: Counter, st: ChunkStats, lineno: int) -> None:
    if name not in rec:
        counter["(none)"] += 1
        return
    value = rec[name]
    if type(value) is str:
        counter[value] += 1
    else:  # `domain: null`, a number, a list: counted and reported, never a crash
        counter["(invalid)"] += 1
        st.wrong_type.setdefault(name, Problems()).add(lineno)


def _chat_texts(rec: dict, lineno: int, st: ChunkStats) -> tuple[str | None, str | None, str | None]:
    """Map a chat record to (user, None, assistant) text; problems are counted, never raised."""
    messages = rec.get("messages")
    if type(messages) is not list or not all(
        type(m) is dict and type(m.get("role")) is str and type(m.get("content")) is str for m in messages
    ):
        st.wrong_type.setdefault("messages", Problems()).add(lineno)
        return None, None, None
    user = "\n\n".join(m["content"] for m in messages if m["role"] in ("user", "system"))
    assistant = "\n\n".join(m["content"] for m in messages if m["role"] == "assistant")
    return user, None, assistant


def _render(ins: str | None, inp: str | None, out: str | None) -> str:
    """The sample as the trainer renders it (DeepSeek-Coder-V2 template, without special tokens)."""
    user = ins or ""
    if inp:
        user = f"{user}\n\n{inp}"
    return f"User: {user}\n\nAssistant: {out or ''}"


@dataclass
class LengthDistribution:
    method: str  # "tokenizer:<name>" or "estimate (3.2 chars/token)"
    max_seq_len: int
    buckets: dict[str, int]  # "<=256": n, ..., ">16384": n
    over_max: int
    max_tokens: int
    mean_tokens: float


def length_distribution(
    sample_chars: list[int], max_seq_len: int, token_lengths: list[int] | None = None, method: str | None = None
) -> LengthDistribution:
    if token_lengths is None:
        token_lengths = [int(c / CHARS_PER_TOKEN) + TEMPLATE_TOKENS for c in sample_chars]
        method = f"estimate ({CHARS_PER_TOKEN} chars/token)"
    buckets = {f"<={b}": 0 for b in LENGTH_BUCKETS}
    buckets[f">{LENGTH_BUCKETS[-1]}"] = 0
    keys = list(buckets)
    over = 0
    for t in token_lengths:
        for i, b in enumerate(LENGTH_BUCKETS):
            if t <= b:
                buckets[keys[i]] += 1
                break
        else:
            buckets[keys[-1]] += 1
        if t > max_seq_len:
            over += 1
    return LengthDistribution(
        method=method or "tokenizer",
        max_seq_len=max_seq_len,
        buckets=buckets,
        over_max=over,
        max_tokens=max(token_lengths, default=0),
        mean_tokens=round(sum(token_lengths) / len(token_lengths), 1) if token_lengths else 0.0,
    )


def finish(st: ChunkStats, max_seq_len: int, count_tokens: TokenCounter | None = None, tokenizer_name: str = "") -> dict:
    """Turn merged chunk stats into the JSON-able QA report of one dataset."""
    duplicates = len(st.digests) - len(set(st.digests))
    if count_tokens is not None and st.texts is not None:
        dist = length_distribution(st.sample_chars, max_seq_len, count_tokens(st.texts), f"tokenizer ({tokenizer_name})")
    else:
        dist = length_distribution(st.sample_chars, max_seq_len)
    return {
        "lines": st.lines,
        "blank_lines": st.blank,
        "records": st.records,
        "chat_records": st.chat_records,
        "parse_errors": asdict(st.parse_errors),
        "not_object": asdict(st.not_object),
        "missing": {k: asdict(v) for k, v in sorted(st.missing.items())},
        "wrong_type": {k: asdict(v) for k, v in sorted(st.wrong_type.items())},
        "fields": {
            k: {
                "present": f.present,
                "avg_chars": round(f.avg_chars, 1),
                "max_chars": f.max_chars,
                "max_line": f.max_line,
                "code_blocks": f.code_blocks,
            }
            for k, f in st.fields.items()
        },
        "input_present": st.fields["input"].present,
        "domains": dict(st.labels["domain"].most_common()),
        "sources": dict(st.labels["source"].most_common()),
        "exact_duplicates": duplicates,
        "length": asdict(dist),
    }
