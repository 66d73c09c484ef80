"""The offer filter line: `vastai search offers` query grammar, applied to every provider's `Offer`.

A query answers as `vastai search offers` does (vastai 1.9.1 `vastai.api.query.parse_query`, checked by
tests/core/test_vastai_parity.py on the recorded Vast offers): the Vast client sends the API the same
filters the vastai CLI sends (`backends.providers.vast.query_filters`: its defaults `verified=true
external=false rentable=true`, overridden by the query), and the same query then filters every
provider's offers here. Kept differences, on purpose:

* `gpu_name=A100` (unquoted) matches whole words: "A100 SXM4", "A100 PCIE", "NVIDIA A100 80GB" (vastai
  wants the exact text, "A100 SXM4"); a quoted name is exact, as in vastai: `gpu_name="A100 SXM4"`.
  Whole-word names are not sent to the Vast API (it only knows exact text): they filter here.
* `region=US` matches the region text (`region=us-central1-a`, `region=ewr`) or the country code.
* `provider`, `region`, `available`, `dph_per_gpu` are ours (filtered here, never sent to Vast).
* Strings compare case-insensitively; an unclosed list `[a,b` is an error (vastai reads it as a value).

    query      = comparison comparison ...          (whitespace separated; empty = everything)
    comparison = field op value                     (whitespace around `op` is allowed)

* **ops**: `=` `==` `eq` | `!=` `neq` `noteq` `not eq` | `<` `lt` | `<=` `lte` | `>` `gt` | `>=` `gte` |
  `in` | `notin` `nin` `not in` (word operators need whitespace around them: `num_gpus in [1,2]`).
* **values**: numbers (`80`, `0.5`, `-1`), `true`/`false`, `None`/`null`, `[a,b,c]` lists (for `in`/`notin`;
  a single value works too), `"quoted strings"` kept verbatim, anything else is a string in which `_` means
  a space (`gpu_name=RTX_4090` -> "RTX 4090"). `a.b.c` (two or more dots, all digits) is a version
  (`driver_version>=535.86.05`) compared number by number. `field=any` (or `*`, `?`) removes every earlier
  condition on `field` (vastai: removes the filter, defaults included: `verified=any` also lists
  unverified Vast offers); a wildcard with any other operator (`gpu_name!=any`) is an error, as in vastai.
* **numbers**: a numeric field (`NUMERIC_FIELDS`: `gpu_ram`, `num_gpus`, `dph`, ...) takes numbers (or
  `null`): `gpu_ram>=abc` is an error, not a filter that silently matches nothing.
* **fields**: the normalised `Offer` fields (`QUERY_FIELDS`), the vastai aliases (`dph` -> `dph_total`, ...)
  and the raw Vast offer fields of `vastai search offers` (looked up in `Offer.raw`). Anything else is an
  error, so a typo never silently matches nothing.
* **meanings** as vastai's (see `core.offers`): `cpu_cores` is the host's vCPUs (`cpu_cores_effective` the
  share you get), `geolocation` the two-letter country code (`geolocation in [US,CA]`), `verified` /
  `external` booleans (`verified=false` lists unverified offers, `external=false` the usual ones).
* **units** as the vastai CLI: `gpu_ram`, `gpu_total_ram`, `cpu_ram` in GB, compared with the `Offer`'s GB
  as they are (the Vast client converts the API's MB with /1000, as vastai converts the query with x1000,
  so `gpu_ram>=24` keeps a 24564 MB RTX 4090 here as there; catalog entries carry nominal GB),
  `duration` in days (raw Vast value is seconds: the value is x86400).
* **same field and operator twice**: the later one replaces the earlier one, as in vastai (the query
  becomes a `{field: {op: value}}` dict there). So `DEFAULT_QUERY + " gpu_name=H100"` asks for H100s.
  Different operators on one field combine: `gpu_ram>=40 gpu_ram<=80`.

Matching (`Query.matches`, `filter_offers`):

* Every condition must hold (AND). A field the offer does not have (`Offer.field()` is None) fails the
  condition, except `!=` and `notin`, which it passes; `field=null` / `field!=null` test for presence.
* Strings compare case-insensitively (`region=US-CENTRAL1-A`, `provider in [gcp,vultr]`).
* **`gpu_name` with `=`/`!=`/`in`/`notin` matches a whole-word sequence**, case-insensitive: both names are
  split into words at spaces, `_`, `-`, `/` and `,`, and the query's words must appear consecutively in the
  offer's. So `gpu_name=A100` matches "A100 SXM4", "NVIDIA A100 80GB" and "A100-80GB" but not "A1000";
  `gpu_name=H100` matches "H100 SXM", "H100 NVL" and "H100 PCIE" (all H100s); use `gpu_name=H100_NVL` for
  one variant and `gpu_name!=H100_NVL` to drop it. `gpu_name=RTX_4090` matches "GeForce RTX 4090" but
  `gpu_name=RTX4090` does not match "RTX 4090".
* A numeric query value against a string offer value (`id=39209551`, Offer ids are strings) compares the
  text as typed (`id=39209551` matches "39209551"); a string offer value that is a number (`"12.4"`) also
  compares numerically with `<`/`>`.

Sorting (`sort_offers`): vastai `-o` style, `"dph_total"`, `"-reliability"` / `"reliability-"` (descending),
several keys comma-separated (`"gpu_ram-,dph_total"`); None values always last; strings case-insensitive.

Speed: `parse()` compiles each condition once into a closure (attribute getters, pre-lowered strings,
a per-name cache of `gpu_name` word strings); matching an offer runs no regex and no parsing.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Iterator
import dataclasses
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from zelda_tui.core.errors import ZeldaError
from zelda_tui.core.offers import QUERY_FIELDS, Offer

DEFAULT_QUERY = "gpu_name=A100 gpu_ram>=80"
"""The plan's default filter: an 80 GB A100, any provider."""

ALIASES = {
    "dph": "dph_total",
    "cuda_vers": "cuda_max_good",
    "dlperf_usd": "dlperf_per_dphtotal",
    "flops_usd": "flops_per_dphtotal",
    "display_active": "gpu_display_active",
}

# The fields the Vast API filters on: `offers_fields` of vastai 1.9.1 `vastai/api/query.py` (the parity test
# checks they are the same set).
VAST_API_FIELDS = frozenset(
    """
    bw_nvlink compute_cap cpu_arch cpu_cores cpu_cores_effective cpu_ghz cpu_ram cuda_max_good datacenter
    direct_port_count driver_version disk_bw disk_space dlperf dlperf_per_dphtotal dph_total duration external
    flops_per_dphtotal gpu_arch gpu_display_active gpu_frac gpu_mem_bw gpu_name gpu_ram gpu_total_ram
    gpu_max_power gpu_max_temp has_avx host_id id inet_down inet_down_cost inet_up inet_up_cost machine_id
    min_bid mobo_name num_gpus pci_gen pcie_bw reliability rentable rented storage_cost static_ip total_flops
    ubuntu_version verification verified vms_enabled geolocation cluster_id
    """.split()
)
# ... plus raw Vast offer fields from NOTES.md's units table, filtered here only.
VAST_FIELDS = VAST_API_FIELDS | frozenset(
    "dph_base storage_total_cost internet_down_cost_per_tb internet_up_cost_per_tb reliability2 score".split()
)
NUMERIC_FIELDS = frozenset(
    """
    num_gpus gpu_ram gpu_total_ram cpu_cores cpu_ram disk_space dph_total dph_per_gpu reliability inet_down inet_up
    bw_nvlink compute_cap cpu_cores_effective cpu_ghz cuda_max_good direct_port_count disk_bw dlperf
    dlperf_per_dphtotal duration flops_per_dphtotal gpu_frac gpu_mem_bw gpu_max_power gpu_max_temp host_id
    inet_down_cost inet_up_cost machine_id min_bid pci_gen pcie_bw storage_cost total_flops
    dph_base storage_total_cost internet_down_cost_per_tb internet_up_cost_per_tb reliability2 score
    """.split()
)
"""Fields whose values are numbers: a query value for them must be a number (or null, or a version)."""

FIELDS = frozenset(QUERY_FIELDS) | frozenset(ALIASES) | VAST_FIELDS
"""Every name a query or a sort spec may use."""

OPS = {
    "=": "eq", "==": "eq", "eq": "eq",
    "!=": "neq", "neq": "neq", "noteq": "neq",
    "<": "lt", "lt": "lt", "<=": "lte", "lte": "lte",
    ">": "gt", "gt": "gt", ">=": "gte", "gte": "gte",
    "in": "in", "notin": "notin", "nin": "notin",
}
_SYMBOL_CHARS = frozenset("=<>!")
_WORD_OPS = frozenset(k for k in OPS if k[0].isalpha()) | {"not"}
_ANY = frozenset({"any", "*", "?"})
_MULTIPLIERS = {"duration": 86400.0}  # CLI unit -> raw Vast unit (days -> seconds)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_VERSION = re.compile(r"\d+(\.\d+){2,}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_SEPARATORS = str.maketrans({c: " " for c in "_-/,()"})

Predicate = Callable[[Offer], bool]


class QueryError(ZeldaError):
    """A query that does not parse: `column` (1-based) points at the bad token of `query`."""

    def __init__(self, query: str, column: int, problem: str) -> None:
        super().__init__(f'bad query at column {column}: {problem} in "{query}"', exit_code=2)
        self.query = query
        self.column = column
        self.problem = problem

    def pointer(self) -> str:
        """Two lines: the query and a caret under the bad token (for a TUI notification)."""
        return f"{self.query}\n{' ' * (self.column - 1)}^"


@dataclass(frozen=True)
class Condition:
    """`field op value`: field canonical (aliases resolved), op one of eq neq lt lte gt gte in notin,
    value an int/float/str/bool/None, a tuple for in/notin, or a tuple of ints for a version.
    `quoted`: typed in "quotes" (every item of a list): a `gpu_name` compares exactly, not by words."""

    field: str
    op: str
    value: Any
    text: str = dataclasses.field(default="", compare=False, repr=False)  # the value as typed, `_` -> space (a list: inside [])
    quoted: bool = False


class Query:
    """Parsed conditions (a read-only sequence of `Condition`) plus their compiled predicate.

    `cleared`: the fields a wildcard (`verified=any`) removed: for the Vast API they also drop vastai's
    default filter on that field."""

    __slots__ = ("conditions", "text", "cleared", "_match")

    def __init__(self, conditions: Iterable[Condition] = (), text: str = "", cleared: Iterable[str] = ()) -> None:
        self.conditions: tuple[Condition, ...] = tuple(conditions)
        self.text = text
        self.cleared = frozenset(cleared)
        self._match = _combine([_compile(c) for c in self.conditions])

    def matches(self, offer: Offer) -> bool:
        return self._match(offer)

    def __iter__(self) -> Iterator[Condition]:
        return iter(self.conditions)

    def __len__(self) -> int:
        return len(self.conditions)

    def __getitem__(self, i: int) -> Condition:
        return self.conditions[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Query) and (other.conditions, other.cleared) == (self.conditions, self.cleared)

    def __hash__(self) -> int:
        return hash((self.conditions, self.cleared))

    def __repr__(self) -> str:
        return f"Query({list(self.conditions)!r})"


# --------------------------------------------------------------------------- parsing


def canonical_field(name: str) -> str | None:
    """The field a query/sort name means (alias resolved), or None if it is not a known field."""
    if name in ALIASES:
        return ALIASES[name]
    return name if name in FIELDS else None


def _unknown_field(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(FIELDS), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown field '{name}' ({hint}fields: {', '.join(QUERY_FIELDS)}, or a raw vastai offer field)"


def parse(text: str) -> Query:
    """Parse a vastai-style query; raises `QueryError` (a `ZeldaError`, exit code 2) at the bad token."""
    conditions: list[Condition] = []
    cleared: set[str] = set()
    n = len(text)
    i = 0

    def fail(pos: int, problem: str) -> QueryError:
        return QueryError(text, pos + 1, problem)

    def skip_ws(pos: int) -> int:
        while pos < n and text[pos].isspace():
            pos += 1
        return pos

    while True:
        i = skip_ws(i)
        if i >= n:
            break
        # field
        m = _IDENT.match(text, i)
        if not m:
            end = i
            while end < n and not text[end].isspace():
                end += 1
            raise fail(i, f"expected a field name, got '{text[i:end]}'")
        name, field_pos, i = m.group(), i, m.end()
        fname = canonical_field(name)
        if fname is None:
            raise fail(field_pos, _unknown_field(name))
        # operator
        had_space = i < n and text[i].isspace()
        i = skip_ws(i)
        op_pos = i
        if i >= n:
            raise fail(i, f"missing operator after '{name}'")
        if text[i] in _SYMBOL_CHARS:
            j = i
            while j < n and text[j] in _SYMBOL_CHARS:
                j += 1
            sym = text[i:j]
            if sym not in OPS:
                raise fail(i, f"unknown operator '{sym}'")
            op, i = OPS[sym], j
        else:
            j = i
            while j < n and text[j].isalpha():
                j += 1
            word = text[i:j]
            if not had_space or word.lower() not in _WORD_OPS or (j < n and not (text[j].isspace() or text[j] in '["')):
                end = i
                while end < n and not text[end].isspace():
                    end += 1
                raise fail(i, f"expected an operator after '{name}', got '{text[i:end]}'")
            word = word.lower()
            i = j
            if word == "not":  # "not eq" / "not in"
                k = skip_ws(i)
                m2 = _IDENT.match(text, k)
                nxt = m2.group().lower() if m2 else ""
                if m2 is None or nxt not in ("eq", "in"):
                    raise fail(op_pos, "unknown operator 'not' (use 'not eq', 'not in', '!=' or 'notin')")
                op, i = ("neq" if nxt == "eq" else "notin"), m2.end()
            else:
                op = OPS[word]
        # value
        op_text = " ".join(text[op_pos:i].split())
        lhs = f"{name}{op_text}" if op_text[0] in _SYMBOL_CHARS else f"{name} {op_text}"
        i = skip_ws(i)
        val_pos = i
        if i >= n:
            raise fail(i, f"missing value after '{lhs}'")
        if text[i] == "[":
            items, close = _split_list(text, i)
            if close < 0:
                raise fail(i, "unclosed list '[' (missing ']')")
            raw = text[i + 1 : close]
            if any(s == "" for s in items):
                raise fail(i, f"empty item in list '{text[i:close + 1]}'")
            value: Any = tuple(_scalar(s) for s in items)
            value_text: str = raw
            quoted = bool(items) and all(len(s) >= 2 and s[0] == s[-1] == '"' for s in items)
            i = close + 1
            if op not in ("in", "notin"):
                raise fail(val_pos, f"a list needs 'in' or 'notin', not '{text[op_pos:val_pos].strip()}'")
        elif text[i] == '"':
            close = text.find('"', i + 1)
            if close < 0:
                raise fail(i, "unclosed string '\"'")
            value = value_text = text[i + 1 : close]
            quoted = True
            i = close + 1
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            token = text[i:j]
            if any(c in "=<>" for c in token):  # "gpu_ram>= num_gpus=2": the next comparison, not a value
                raise fail(i, f"missing value after '{lhs}'")
            if token in _ANY and op not in ("in", "notin"):
                if op != "eq":
                    raise fail(i, f"a wildcard '{token}' only works with '=' (it removes the filter on {name})")
                conditions = [c for c in conditions if c.field != fname]
                cleared.add(fname)
                i = j
                continue
            value, value_text, quoted, i = _scalar(token), token.replace("_", " "), False, j
        if op in ("in", "notin") and not isinstance(value, tuple):
            value = (value,)
        elif op in ("lt", "lte", "gt", "gte"):
            if value is None or isinstance(value, bool):
                raise fail(val_pos, f"'{value_text}' cannot be compared with '{text[op_pos:val_pos].strip()}'")
        if fname in NUMERIC_FIELDS:
            bad = next((v for v in (value if isinstance(value, tuple) and op in ("in", "notin") else (value,))
                        if isinstance(v, str)), None)
            if bad is not None:
                raise fail(val_pos, f"'{bad}' is not a number ({name} takes numbers)")
        mult = _MULTIPLIERS.get(fname)
        if mult is not None:
            value = tuple(_scale(v, mult) for v in value) if isinstance(value, tuple) else _scale(value, mult)
        cond = Condition(fname, op, value, value_text, quoted)
        conditions = [c for c in conditions if (c.field, c.op) != (fname, op)]  # vastai: a later one wins
        conditions.append(cond)
    return Query(conditions, text, cleared)


def _split_list(text: str, start: int) -> tuple[list[str], int]:
    """Items of the list opening at `text[start] == "["` (commas inside "quotes" kept) and the index of
    its `]`, or -1 when it is not closed."""
    items: list[str] = []
    buf: list[str] = []
    quoted = False
    for j in range(start + 1, len(text)):
        ch = text[j]
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in ",]":
            items.append("".join(buf).strip())
            buf = []
            if ch == "]":
                return ([] if items == [""] else items), j
            continue
        buf.append(ch)
    return items, -1


def _scale(v: Any, mult: float) -> Any:
    return v * mult if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def _scalar(token: str) -> Any:
    """One value token: bool, None, number, version tuple, or a string with `_` -> space."""
    low = token.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low in ("none", "null"):
        return None
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return token[1:-1]
    if _NUMBER.fullmatch(token):
        try:
            return int(token)
        except ValueError:
            return float(token)
    if _VERSION.fullmatch(token):
        return _version(token)
    return token.replace("_", " ")


def _version(s: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(p) for p in s.split("."))
    except ValueError:
        return None


def _name_words(name: str) -> str:
    """`"NVIDIA A100-80GB"` -> `" nvidia a100 80gb "`: word sequence padded for whole-word `in` tests."""
    return " " + " ".join(name.lower().translate(_NAME_SEPARATORS).split()) + " "


# --------------------------------------------------------------------------- compiling


def _getter(name: str) -> Callable[[Offer], Any]:
    """Same lookup as `Offer.field(name)`, without the per-call tuple search."""
    if name in QUERY_FIELDS:
        return attrgetter(name)

    def raw_get(o: Offer, _n: str = name) -> Any:
        return o.raw.get(_n)

    return raw_get


def _combine(preds: list[Predicate]) -> Predicate:
    if not preds:
        return lambda o: True
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda o: a(o) and b(o)
    if len(preds) == 3:
        a, b, c = preds
        return lambda o: a(o) and b(o) and c(o)

    def all_of(o: Offer) -> bool:
        for p in preds:
            if not p(o):
                return False
        return True

    return all_of


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _to_float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _compile(c: Condition) -> Predicate:
    get = _getter(c.field)
    if c.field == "region" and c.op in ("eq", "neq", "in", "notin") and c.value is not None:
        return _compile_region(c)
    if c.field == "gpu_name" and c.op in ("eq", "neq", "in", "notin") and not c.quoted:
        values = c.value if c.op in ("in", "notin") else (c.value,)
        if all(v is not None and not isinstance(v, (bool, tuple)) for v in values):  # `gpu_name=4090` too
            names = (c.text or str(c.value),) if c.op in ("eq", "neq") else tuple(str(v) for v in values)
            return _compile_gpu_name(get, c.op, names)
    if c.op in ("in", "notin"):
        return _compile_in(get, c)
    if c.op in ("eq", "neq"):
        eq = _compile_eq(get, c)
        if c.op == "eq":
            return eq
        return lambda o: not eq(o)
    return _compile_order(get, c)


def _compile_region(c: Condition) -> Predicate:
    """`region=US`: the region text (`us-central1-a`, `ewr`, `Georgia, US`) or its country code."""
    values = c.value if c.op in ("in", "notin") else (c.value,)
    by_text = _compile_in(attrgetter("region"), Condition("region", "in", values))
    by_country = _compile_in(attrgetter("geolocation"), Condition("geolocation", "in", values))
    if c.op in ("eq", "in"):
        return lambda o: by_text(o) or by_country(o)
    return lambda o: not (by_text(o) or by_country(o))


def _compile_gpu_name(get: Callable[[Offer], Any], op: str, values: tuple[str, ...]) -> Predicate:
    cache: dict[str, str] = {}
    words = tuple(w for w in (_name_words(v) for v in values) if w.strip())
    negate = op in ("neq", "notin")

    def key(o: Offer) -> str | None:
        n = get(o)
        if n is None:
            return None
        k = cache.get(n)
        if k is None:
            k = cache[n] = _name_words(str(n))
        return k

    if len(words) == 1:
        w = words[0]
        if negate:
            return lambda o: (k := key(o)) is None or w not in k
        return lambda o: (k := key(o)) is not None and w in k

    def any_word(o: Offer) -> bool:
        k = key(o)
        if k is None:
            return negate
        hit = any(w in k for w in words)
        return not hit if negate else hit

    return any_word


def _compile_eq(get: Callable[[Offer], Any], c: Condition) -> Predicate:
    val = c.value
    if val is None:
        return lambda o: get(o) is None
    if isinstance(val, bool):
        return lambda o: (v := get(o)) is not None and not isinstance(v, str) and v == val
    if isinstance(val, tuple):  # version
        return lambda o: _as_version(get(o)) == val
    if _is_num(val):
        text = c.text or str(val)
        low_text = text.lower()

        def eq_num(o: Offer) -> bool:
            v = get(o)
            if v is None:
                return False
            if isinstance(v, str):
                return v.lower() == low_text or _to_float(v) == val
            return v == val

        return eq_num
    low = str(val).lower()
    num = _to_float(low) if _NUMBER.fullmatch(low) else None

    def eq_str(o: Offer) -> bool:
        v = get(o)
        if isinstance(v, str):
            return v.lower() == low
        if v is None or isinstance(v, bool) or num is None:
            return False
        return v == num

    return eq_str


def _compile_in(get: Callable[[Offer], Any], c: Condition) -> Predicate:
    texts = set()
    nums = set()
    has_none = False
    for v in c.value:
        if v is None:
            has_none = True
        elif isinstance(v, str):
            texts.add(v.lower())
            f = _to_float(v) if _NUMBER.fullmatch(v) else None
            if f is not None:
                nums.add(f)
        else:
            nums.add(v)
            texts.add(str(v).lower())
    negate = c.op == "notin"

    def member(o: Offer) -> bool:
        v = get(o)
        if v is None:
            hit = has_none
        elif isinstance(v, str):
            hit = v.lower() in texts
        else:
            try:
                hit = v in nums
            except TypeError:  # unhashable raw value (a list, a dict)
                hit = False
        return not hit if negate else hit

    return member


def _as_version(v: Any) -> tuple[int, ...] | None:
    if isinstance(v, str):
        return _version(v)
    if _is_num(v):
        return (int(v),)
    return None


_ORDER = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


def _compile_order(get: Callable[[Offer], Any], c: Condition) -> Predicate:
    val, op = c.value, c.op
    cmp = _ORDER[op]
    if isinstance(val, tuple):  # version
        return lambda o: (v := _as_version(get(o))) is not None and cmp(v, val)
    if isinstance(val, str):
        low = val.lower()
        return lambda o: isinstance(v := get(o), str) and cmp(v.lower(), low)

    def slow(v: Any) -> bool:  # None, a string holding a number, anything else
        if isinstance(v, str):
            f = _to_float(v)
            return f is not None and cmp(f, val)
        return False

    # Specialised closures for the common numeric case: no extra call for the comparison.
    if op == "gte":
        def order(o: Offer) -> bool:
            v = get(o)
            try:
                return v >= val
            except TypeError:
                return slow(v)
    elif op == "gt":
        def order(o: Offer) -> bool:
            v = get(o)
            try:
                return v > val
            except TypeError:
                return slow(v)
    elif op == "lte":
        def order(o: Offer) -> bool:
            v = get(o)
            try:
                return v <= val
            except TypeError:
                return slow(v)
    else:
        def order(o: Offer) -> bool:
            v = get(o)
            try:
                return v < val
            except TypeError:
                return slow(v)

    return order


# --------------------------------------------------------------------------- filter / sort


def filter_offers(offers: Iterable[Offer], query: Query | str) -> list[Offer]:
    """The offers the query matches, in their order. A string is parsed first."""
    q = parse(query) if isinstance(query, str) else query
    if not q.conditions:
        return list(offers)
    m = q._match
    return [o for o in offers if m(o)]


def parse_sort(spec: str) -> list[tuple[str, bool]]:
    """`"gpu_ram-,dph_total"` -> `[("gpu_ram", True), ("dph_total", False)]` (field, descending)."""
    keys: list[tuple[str, bool]] = []
    for part in spec.split(","):
        p = part.strip()
        if not p:
            continue
        desc = False
        if p.startswith("-"):
            desc, p = True, p[1:].strip()
        elif p.endswith("-"):
            desc, p = True, p[:-1].strip()
        elif p.startswith("+"):
            p = p[1:].strip()
        elif p.endswith("+"):
            p = p[:-1].strip()
        name = canonical_field(p)
        if name is None:
            close = difflib.get_close_matches(p, sorted(FIELDS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ZeldaError(f"bad sort column '{p}' in \"{spec}\"{hint}", exit_code=2)
        keys.append((name, desc))
    return keys


def _sort_key(get: Callable[[Offer], Any]) -> Callable[[Offer], Any]:
    def key(o: Offer) -> Any:
        v = get(o)
        if isinstance(v, str):
            return (1, v.lower())
        if isinstance(v, (int, float)):
            return (0, v)
        return (2, repr(v))

    return key


def sort_offers(offers: Iterable[Offer], spec: str) -> list[Offer]:
    """Sorted copy (stable): vastai `-o` spec, `-`/trailing `-` = descending, None values last."""
    keys = parse_sort(spec)
    items = list(offers)
    for name, desc in reversed(keys):  # least significant key first; every pass is stable
        get = _getter(name)
        present: list[Offer] = []
        missing: list[Offer] = []
        for o in items:
            (missing if get(o) is None else present).append(o)
        if any(isinstance(get(o), str) for o in present):  # strings (case-insensitive) or mixed types
            present.sort(key=_sort_key(get), reverse=desc)
        else:
            try:
                present.sort(key=get, reverse=desc)  # all numbers (the usual case): fastest
            except TypeError:  # unorderable raw values (lists, dicts)
                present.sort(key=_sort_key(get), reverse=desc)
        items = present + missing
    return items
