"""Per-dataset QA statistics: computed per chunk (in worker processes), then merged.

`scan_chunk` is the hot path: one orjson parse per line, then the fields are measured
column-wise with C-level calls, plus one sha256 per record for exact duplicates. Everything
it returns is mergeable (sums, maxima, counters, record digests), so a file can be split
across all cores (`jsonl.run_jobs`).

Token lengths: with a real tokenizer (injected by the caller) each sample is the rendered
user + assistant text; without one they are estimated as chars / CHARS_PER_TOKEN, and the
result says so (`token_method`).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import repeat
from typing import Any, Callable, Sequence

import orjson

from .jsonl import Chunk, JSONDecodeError, loads, read_chunk, split_lines

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
_STR = {str}
_STR_OR_NONE = {str, type(None)}


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
            if self.texts is None:
                self.texts = []
            self.texts.extend(other.texts)


def scan_chunk(data: bytes, keep_texts: bool = False) -> ChunkStats:
    """Stats of a newline-aligned buffer; line numbers relative to its first line (1-based).

    Column-wise: the records' fields are pulled into lists and measured with C-level calls
    (map/len/sum/Counter) instead of per-record Python code. Records with anything unusual
    (chat shape, missing or mistyped fields) take `_texts_slow`, which is the exact per-record
    logic; both produce the same lists, so every statistic below is computed one way.
    """
    st = ChunkStats(texts=[] if keep_texts else None)
    lines = split_lines(data)
    st.lines = len(lines)
    recs, nums = _parse(lines, st)
    ins, inp, out, recs, nums = _texts(recs, nums, st)
    st.records = len(recs)
    lengths = [_field(st.fields[name], values, nums) for name, values in (("instruction", ins), ("input", inp), ("output", out))]
    st.sample_chars = list(map(_add3, *lengths))
    for name in LABEL_FIELDS:
        _labels(recs, nums, name, st)
    # Exact duplicates: a 64-bit digest of instruction + input + output, the same in every
    # process (not hash(): it is salted per process). sha256 runs on the CPU's SHA extensions.
    sha = hashlib.sha256
    st.digests = [sha(f"{a}\x00{b}\x00{c}".encode("utf-8", "surrogatepass")).digest()[:8] for a, b, c in zip(ins, inp, out)]
    if keep_texts:
        st.texts = list(map(_render, ins, inp, out))
    return st


def scan_file_chunk(job: tuple[Chunk, bool]) -> ChunkStats:
    """`scan_chunk` of a byte range of a file: the unit of work sent to worker processes."""
    chunk, keep_texts = job
    return scan_chunk(read_chunk(chunk), keep_texts)


def _add3(a: int, b: int, c: int) -> int:
    return a + b + c


def _parse(lines: list[bytes], st: ChunkStats) -> tuple[list[dict], Sequence[int]]:
    """The JSON objects of a chunk and their line numbers; blank/bad lines are counted."""
    try:
        recs = list(map(orjson.loads, lines))  # the common case: every line is valid JSON
        if not recs or set(map(type, recs)) == {dict}:
            return recs, range(1, len(recs) + 1)
    except JSONDecodeError:
        pass
    recs, nums = [], []
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
        recs.append(rec)
        nums.append(lineno)
    return recs, nums


def _texts(recs: list[dict], nums: Sequence[int], st: ChunkStats):
    """(instruction, input, output) of every usable record, as parallel lists (None = absent/bad)."""
    n = len(recs)
    get = dict.get
    ins = list(map(get, recs, repeat("instruction", n)))
    out = list(map(get, recs, repeat("output", n)))
    inp = list(map(get, recs, repeat("input", n)))
    if set(map(type, ins)) <= _STR and set(map(type, out)) <= _STR and set(map(type, inp)) <= _STR_OR_NONE:
        # All plain instruction records with text fields: only empty strings are problems.
        for name, values in (("instruction", ins), ("output", out)):
            if "" in values:
                missing = st.missing.setdefault(name, Problems())
                for lineno, v in zip(nums, values):
                    if not v:
                        missing.add(lineno)
        return ins, inp, out, recs, nums
    return _texts_slow(recs, nums, st)


def _texts_slow(recs: list[dict], nums: Sequence[int], st: ChunkStats):
    ins_l, inp_l, out_l, kept, kept_nums = [], [], [], [], []
    for lineno, rec in zip(nums, recs):
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
        if ins == "":
            st.missing.setdefault("instruction", Problems()).add(lineno)
        if out == "":
            st.missing.setdefault("output", Problems()).add(lineno)
        ins_l.append(ins)
        inp_l.append(inp)
        out_l.append(out)
        kept.append(rec)
        kept_nums.append(lineno)
    return ins_l, inp_l, out_l, kept, kept_nums


def _field(f: FieldStats, values: list, nums: Sequence[int]) -> list[int]:
    """Fold one text field into its stats; returns the per-record lengths (0 = absent/empty)."""
    texts = [v for v in values if v]
    if len(texts) == len(values):
        lengths = list(map(len, values))
    else:
        lengths = [len(v) if v else 0 for v in values]
    f.present = len(texts)
    f.total_chars = sum(lengths)
    f.code_blocks = sum(map(str.__contains__, texts, repeat(FENCE, len(texts))))
    if texts:
        f.max_chars = max(lengths)
        f.max_line = nums[lengths.index(f.max_chars)]
    return lengths


def _labels(recs: list[dict], nums: Sequence[int], name: str, st: ChunkStats) -> None:
    n = len(recs)
    values = list(map(dict.get, recs, repeat(name, n), repeat("(none)", n)))
    if not set(map(type, values)) <= _STR:  # `domain: null`, a number, a list: counted and reported
        problems = st.wrong_type.setdefault(name, Problems())
        for i, (lineno, v) in enumerate(zip(nums, values)):
            if type(v) is not str:
                values[i] = "(invalid)"
                problems.add(lineno)
    st.labels[name] = Counter(values)


def _bad(st: ChunkStats, name: str, value: Any, lineno: int) -> None:
    """A required field that is absent (missing) or not text (wrong type)."""
    if value is None:
        st.missing.setdefault(name, Problems()).add(lineno)
    else:
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
    keys = [f"<={b}" for b in LENGTH_BUCKETS] + [f">{LENGTH_BUCKETS[-1]}"]
    # bisect_left gives the first bucket whose bound is >= t (the last key when none is)
    counts = Counter(map(bisect_left, repeat(LENGTH_BUCKETS, len(token_lengths)), token_lengths))
    buckets = {key: counts.get(i, 0) for i, key in enumerate(keys)}
    over = sum(map(max_seq_len.__lt__, token_lengths))
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
