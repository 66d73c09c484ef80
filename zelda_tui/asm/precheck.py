"""A fast built-in 65816 / Asar syntax check, for machines without the Asar binary.

It answers with the same `Verdict` as the Asar backend (checker="precheck") and reports with
Asar's own error codes (`Eunknown_command` for an unknown command or an addressing mode the
opcode does not have, `Elabel_not_found`, ...), so the two can be compared line by line.

What it checks: every 65816 mnemonic and the addressing modes each one has, with Asar's
operand sizing (a literal's digits decide its size, a smaller literal is widened when the
opcode only has a wider mode, `.b/.w/.l` must name a mode the opcode has); expressions
(numbers, labels, operators, parentheses, function calls); labels `Name:`, `#Name:`,
`Name = expr`, sublabels `.sub`/`..sub` (under a parent), `+`/`-`/`++` labels and whether a
reference has a target; `!defines` (substituted as Asar does, so `LDA !Addr,x` is sized by
its value); macros (defined before use, argument count, bodies expanded at the call);
conditionals, loops, structs, namespaces, push/pull pairs; the common directives.
Labels, defines, macros and functions the snippet uses but does not define are
"unresolved_label", unless the `[eval] symbols` files (read with `known_symbols`) define them.

What it cannot know (Asar decides those): label values (a label operand may take any size
the opcode has), which branch of an `if` is taken (both are checked), branch distances,
file contents of incsrc/incbin (a relative path is reported missing, as Asar reports it in
the validator's empty temp dir), freespace. So "assembles" from the pre-check means "no
syntax problem found", and every result says which checker produced it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .code import PARENT_LABEL, SNIPPET, Verdict, category_of, empty_verdict, is_empty, worst
from .normalise import strip_comment

# --------------------------------------------------------------------------- the 65816 opcode table

_ANY = frozenset({1, 2, 3, 4})  # an immediate of any size (Asar truncates to the register width)
_NONE: frozenset[int] = frozenset()  # implied / accumulator: no `.b/.w/.l` allowed
_B, _W, _L = frozenset({1}), frozenset({2}), frozenset({3})
_BW, _BWL = frozenset({1, 2}), frozenset({1, 2, 3})

_ALU = {"imm": _ANY, "a": _BWL, "a,x": _BWL, "a,y": _W, "a,s": _B, "(a)": _B, "(a,x)": _B, "(a),y": _B,
        "[a]": _B, "[a],y": _B, "(a,s),y": _B}
_RMW = {"imp": _NONE, "acc": _NONE, "rep": _ANY, "a": _BW, "a,x": _BW}
_REPEATABLE_IMPLIED = {"imp": _NONE, "rep": _ANY}

MODES: dict[str, dict[str, frozenset[int]]] = {
    **{m: _ALU for m in ("adc", "and", "cmp", "eor", "lda", "ora", "sbc")},
    "sta": {k: v for k, v in _ALU.items() if k != "imm"},
    "bit": {"imm": _ANY, "a": _BW, "a,x": _BW},
    "ldx": {"imm": _ANY, "a": _BW, "a,y": _BW},
    "ldy": {"imm": _ANY, "a": _BW, "a,x": _BW},
    "stx": {"a": _BW, "a,y": _B},
    "sty": {"a": _BW, "a,x": _B},
    "stz": {"a": _BW, "a,x": _BW},
    "cpx": {"imm": _ANY, "a": _BW},
    "cpy": {"imm": _ANY, "a": _BW},
    "trb": {"a": _BW},
    "tsb": {"a": _BW},
    **{m: _RMW for m in ("asl", "lsr", "rol", "ror", "inc", "dec")},
    "jmp": {"a": _W, "(a)": _W, "(a,x)": _W, "[a]": _W},
    "jml": {"a": _L, "[a]": _W},
    "jsr": {"a": _W, "(a,x)": _W},
    "jsl": {"a": _L},
    **{m: {"rel": _B} for m in ("bcc", "bcs", "beq", "bmi", "bne", "bpl", "bra", "bvc", "bvs")},
    "brl": {"rel": _W},
    "per": {"rel": _W},
    "pea": {"a": _W},
    "pei": {"(a)": _B},
    "mvn": {"bm": _B},
    "mvp": {"bm": _B},
    "rep": {"imm": _B},
    "sep": {"imm": _B},
    **{m: {"imp": _NONE, "imm": _B} for m in ("brk", "cop", "wdm")},
    **{m: _REPEATABLE_IMPLIED for m in ("nop", "inx", "iny", "dex", "dey")},
    **{m: {"imp": _NONE} for m in (
        "clc", "cld", "cli", "clv", "pha", "phb", "phd", "phk", "php", "phx", "phy", "pla", "plb", "pld", "plp",
        "plx", "ply", "rti", "rtl", "rts", "sec", "sed", "sei", "stp", "tax", "tay", "tcd", "tcs", "tdc", "tsc",
        "tsx", "txa", "txs", "txy", "tya", "tyx", "wai", "xba", "xce")},
}
_SUFFIX = {"b": 1, "w": 2, "l": 3}

BUILTIN_FUNCTIONS = frozenset({
    "read1", "read2", "read3", "read4", "readfile1", "readfile2", "readfile3", "readfile4", "canread1",
    "canread2", "canread3", "canread4", "canread", "canreadfile1", "canreadfile2", "canreadfile3", "canreadfile4",
    "canreadfile", "filesize", "getfilestatus", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "arcsin",
    "arccos", "arctan", "log", "log10", "log2", "ceil", "floor", "round", "abs", "sign", "min", "max", "clamp",
    "safediv", "select", "not", "equal", "notequal", "less", "lessequal", "greater", "greaterequal", "and", "or",
    "nand", "nor", "xor", "defined", "sizeof", "objectsize", "datasize", "stringsequal", "stringsequalnocase",
    "char", "bank", "pc", "snestopc", "pctosnes", "realbase", "stringlength", "sizeof", "_sizeof", "hex", "dec",
    "bin", "double", "convert",
})
BUILTIN_DEFINES = frozenset({"assembler", "assembler_ver", "assembler_time"})

# --------------------------------------------------------------------------- patterns

_DEFINE_DEF = re.compile(r"^!([A-Za-z0-9_]+)\s*(=|:=|\+=|\?=|#=)\s*(.*)$")
_DEFINE_USE = re.compile(r"!\{([A-Za-z0-9_]+)\}|!([A-Za-z0-9_]+)")
_LABEL_DEF = re.compile(r"^(#?)([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*):(?!:)\s*(.*)$")
_SUBLABEL_DEF = re.compile(r"^(\.+)([A-Za-z0-9_]+):?(?:\s+(.*))?$")
_ANON_DEF = re.compile(r"^(\++|-+):?(?:\s+(.*))?$")
_MACRO_LABEL_DEF = re.compile(r"^\?([A-Za-z0-9_]+):\s*(.*)$")
_ASSIGN = re.compile(r"^([A-Za-z_.][A-Za-z0-9_.]*)\s*=\s*(.+)$")
_MACRO_CALL = re.compile(r"^%([A-Za-z0-9_]+)\s*\((.*)\)\s*$")
_MACRO_DEF = re.compile(r"^macro\s+([A-Za-z0-9_]+)\s*\(([^)]*)\)\s*$", re.I)
_FUNCTION_DEF = re.compile(r"^function\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(([^)]*)\)\s*=\s*(.+)$", re.I)
_WORD = re.compile(r"^(\S+)(?:\s+(.*))?$")
_NAME = re.compile(r"(?:\.+|\?)?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*(?:\[[^\]]*\])?")
_NUMBER = re.compile(r"\$[0-9A-Fa-f]+(?![A-Za-z0-9_])|%[01]+(?![A-Za-z0-9_])|[0-9]+(?:\.[0-9]+)?(?![A-Za-z0-9_])"
                     r"|'(?:[^'\\]|\\.)'")
_STRING = re.compile(r'"[^"]*"')
_BINOP = re.compile(r"\*\*|<<|>>|==|!=|<=|>=|&&|\|\||[-+*/%&|^<>]")
_SPACE = re.compile(r"\s*")
_INDEX = re.compile(r"^(.*?),\s*([xysXYS])$", re.S)
_ANON_REF = re.compile(r"^(\++|-+)$")
_FILE_ARG = re.compile(r'^"([^"]*)"|^(\S+)')
_REG_Y = re.compile(r"^,\s*[yY]$")


@dataclass(frozen=True)
class Macro:
    name: str
    params: tuple[str, ...]
    variadic: bool
    body: tuple[str, ...]


@dataclass(frozen=True)
class KnownSymbols:
    """What the ROM hack's symbol files define (labels, defines with their values, macros,
    functions): the pre-check treats those as defined, like Asar does after the incsrc."""

    labels: frozenset[str] = frozenset()
    defines: Mapping[str, str] = field(default_factory=dict)
    macros: Mapping[str, Macro] = field(default_factory=dict)
    functions: frozenset[str] = frozenset()


@dataclass
class _Block:
    kind: str  # if | while | for | struct | spcblock
    line: int
    saved_stack: list[str] | None = None


class _Checker:
    """One pass over the code, statement by statement, collecting errors and label uses."""

    def __init__(self, symbols: KnownSymbols | None, collect_only: bool = False) -> None:
        s = symbols or KnownSymbols()
        self.collect_only = collect_only
        self.errors: list[tuple[int, str, str, str]] = []  # (line, code, message, statement)
        self.defines: dict[str, str] = dict(s.defines)
        self.macros: dict[str, Macro] = dict(s.macros)
        self.functions: set[str] = set(s.functions)
        self.outside_labels = s.labels
        self.labels: set[str] = set()
        self.refs: list[tuple[tuple[str, ...], int, str, str]] = []
        self.label_sizes: dict[str, int] = {}  # bytes a label operand takes: 2 in the current bank, else 3
        self.size_checks: list[tuple[tuple[str, ...], int, int, str]] = []  # (candidates, widest mode, line, stmt)
        self.bank: int | None = 0  # bank of the current `org` (the wrapper's is $00); None: unknown (freespace)
        self.pc_stack: list[int | None] = []
        self.plus_refs: list[tuple[int, int, int, str]] = []  # (depth, position, line, statement)
        self.anon_defs: dict[tuple[str, int], list[int]] = {}
        self.stack: list[str] = [] if collect_only else [PARENT_LABEL]
        self.namespace = ""
        self.blocks: list[_Block] = []
        self.pc_depth = 0
        self.pos = 0
        self.macro_depth = 0
        self.arch_65816 = True
        self.capture: tuple[str, tuple[str, ...], bool, int, list[str]] | None = None
        self.last_line = 0

    # ---- errors and references

    def error(self, line: int, code: str, message: str, stmt: str) -> None:
        self.errors.append((line, code, message, stmt))

    def ref(self, name: str, line: int, stmt: str) -> None:
        """A label use; resolved at the end, when every definition has been seen."""
        if name.startswith("?"):
            if not self.macro_depth:
                self.error(line, "Emacro_label_outside_of_macro", "Macro label outside of a macro.", stmt)
            return
        name = name.split("[", 1)[0]
        if name.startswith(".") and len(self.stack) < len(name) - len(name.lstrip(".")):
            self.error(line, "Elabel_missing_parent", "This label has no parent.", stmt)
            return
        cands = self._candidates(name)
        self.refs.append((cands, line, stmt, cands[0] if name.startswith(".") else name))

    def _candidates(self, name: str) -> tuple[str, ...]:
        """The full names a label reference may mean (sublabels under the current parent,
        the namespace's label before the global one)."""
        name = name.split("[", 1)[0]
        if name.startswith("."):
            dots = len(name) - len(name.lstrip("."))
            return ("_".join(self.stack[:dots] + [name[dots:].replace(".", "_")]),)
        plain = name.replace(".", "_")
        return (self.namespace + plain, plain) if self.namespace else (plain,)

    def define_label(self, full: str, line: int, stmt: str, size: int | None = 2) -> None:
        if not self.collect_only and not self.macro_depth and not any(b.kind in ("if", "while", "for") for b in self.blocks):
            if full in self.labels or full in self.outside_labels:
                self.error(line, "Elabel_redefined", f"Label '{full}' redefined.", stmt)
        self.labels.add(full)
        if size is not None:
            self.label_sizes[full] = size
        else:
            self.label_sizes.pop(full, None)

    # ---- lines

    def run(self, code: str, first_line: int = 1) -> None:
        lines = code.split("\n")
        i = 0
        while i < len(lines):
            number = first_line + i
            text = lines[i]
            # `\` at the end continues the line; so does a trailing comma (Asar 1.9)
            while i + 1 < len(lines):
                bare = strip_comment(text).rstrip()
                if bare.endswith("\\"):
                    text = bare[:-1] + lines[i + 1]
                elif bare.endswith(",") and self.capture is None:
                    text = bare + lines[i + 1]
                else:
                    break
                i += 1
            self.line(text, number)
            i += 1
        self.last_line = first_line + len(lines) - 1

    def line(self, text: str, number: int) -> None:
        if self.capture is not None:
            bare = strip_comment(text).strip()
            word = bare.split(None, 1)[0].lower() if bare else ""
            if word == "endmacro":
                name, params, variadic, _, body = self.capture
                self.macros[name] = Macro(name, params, variadic, tuple(body))
                self.capture = None
            elif word == "macro":
                self.error(number, "Enested_macro_definition", "Nested macro definition.", bare)
            else:
                self.capture[4].append(text)
            return
        bare = strip_comment(text).strip()
        if not bare:
            return
        parts = _split_statements(bare)
        head = parts[0].split(None, 1)[0].lower() if parts[0] else ""
        if len(parts) > 1 and head in ("if", "elseif"):  # single-line `if cond : stmt`: no endif
            cond = parts[0].split(None, 1)
            self.expr(cond[1] if len(cond) > 1 else "", number, parts[0], allow_strings=True)
            for part in parts[1:]:
                self.statement(part, number)
            return
        for part in parts:
            self.statement(part, number)

    # ---- statements

    def statement(self, stmt: str, line: int) -> None:
        s = stmt.strip()
        if not s:
            return
        self.pos += 1
        m = _DEFINE_DEF.match(s)
        if m:
            name, op, value = m.groups()
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if op == "?=" and name in self.defines:
                return
            if op in (":=", "#=", "+="):
                value = self.substitute(value, line, s)
            if op == "+=":
                value = self.defines.get(name, "") + value
            self.defines[name] = value
            return
        if "!" in s:
            s = self.substitute(s, line, s).strip()  # a define's value may start with spaces: Asar skips them
            if not s:
                return
        # leading label definitions
        while True:
            m = _LABEL_DEF.match(s)
            if m:
                hash_, name, rest = m.groups()
                full = self.namespace + name.replace(".", "_")
                self.define_label(full, line, s)
                if not hash_:
                    self.stack = [full]
                s = rest
                if not s:
                    return
                continue
            m = _SUBLABEL_DEF.match(s)
            if m:
                dots, name, rest = m.group(1), m.group(2), m.group(3)
                k = len(dots)
                if len(self.stack) < k:
                    self.error(line, "Elabel_missing_parent", "This label has no parent.", stmt.strip())
                else:
                    self.stack = self.stack[:k] + [name]
                    in_struct = any(b.kind == "struct" for b in self.blocks)
                    self.define_label("_".join(self.stack), line, s, None if in_struct else 2)
                if not rest:
                    return
                s = rest
                continue
            m = _ANON_DEF.match(s)
            if m:
                sym = m.group(1)
                self.anon_defs.setdefault((sym[0], len(sym)), []).append(self.pos)
                if not m.group(2):
                    return
                s = m.group(2)
                continue
            m = _MACRO_LABEL_DEF.match(s)
            if m:
                if not self.macro_depth:
                    self.error(line, "Emacro_label_outside_of_macro", "Macro label outside of a macro.", s)
                s = m.group(2)
                if not s:
                    return
                continue
            break
        m = _WORD.match(s)
        assert m is not None, s  # s is one stripped, non-empty line here
        word, rest = m.group(1), (m.group(2) or "").strip()
        low = word.lower()
        if low in _DIRECTIVES:
            getattr(self, _DIRECTIVES[low])(low, rest, line, s)
            return
        m = _ASSIGN.match(s)
        if m:
            name, value = m.groups()
            if name.startswith("."):
                k = len(name) - len(name.lstrip("."))
                full = "_".join(self.stack[:k] + [name[k:].replace(".", "_")]) if len(self.stack) >= k else name
            else:
                full = self.namespace + name.replace(".", "_")
            self.define_label(full, line, s, self._value_size(value))
            self.expr(value, line, s)
            return
        if word.startswith("%"):
            self.macro_call(s, line)
            return
        mnemonic, _, suffix = low.partition(".")
        if mnemonic in MODES:
            if not self.arch_65816:
                return
            if suffix and suffix not in _SUFFIX:
                self.error(line, "Einvalid_opcode_length", "Invalid opcode length specification.", s)
                return
            self.instruction(mnemonic, _SUFFIX.get(suffix), rest, line, s)
            return
        if not self.arch_65816:
            return  # SPC700 / SuperFX code: not ours to check
        self.error(line, "Eunknown_command", "Unknown command.", s)

    def substitute(self, text: str, line: int, stmt: str) -> str:
        """Replace `!name` / `!{name}` with the define's value, as Asar does before parsing."""
        for _ in range(32):
            if "!" not in text:
                return text
            missing: list[str] = []

            def value(m: re.Match) -> str:
                name = m.group(1) or m.group(2)
                if name in self.defines:
                    return self.defines[name]
                if name in BUILTIN_DEFINES:
                    return "1"
                missing.append(name)
                return _UNDEFINED

            new = _DEFINE_USE.sub(value, text)
            for name in missing:
                self.error(line, "Edefine_not_found", f"Define '{name}' wasn't found.", stmt)
            if new == text:
                return new
            text = new
        self.error(line, "Erecursion_limit", "Recursion limit reached.", stmt)
        return text

    # ---- instructions

    def instruction(self, mn: str, size: int | None, operand: str, line: int, stmt: str) -> None:
        modes = MODES[mn]
        op = operand.strip()
        if "bm" in modes:
            # `MVN $7E,$7F` (source, destination banks) or `MVN $7E7F` / `MVN.w expr` (one word)
            parts = _split_top(op, ",") if op else []
            one = len(parts) == 1 and parts[0].strip()[:1] not in ("#", "(", "[")
            lit = _literal_size(parts[0]) if one else None
            ok = (len(parts) == 2 and size is None and all(p.strip() and p.strip()[0] != "#" for p in parts)) or (
                one and (size == 2 or (size is None and lit in (None, 2))))
            if not ok:
                self._bad_mode(line, stmt)
                return
            for p in parts:
                self.expr(p, line, stmt)
            if one and size is None and lit is None and _NAME.fullmatch(parts[0].strip()):
                self.size_checks.append((self._candidates(parts[0].strip()), 2, line, stmt))
            return
        if not op:
            if "imp" in modes and (size is None or size in modes["imp"]):
                return
            self._bad_mode(line, stmt)
            return
        if op.lower() == "a" and "acc" in modes:
            if size is not None:
                self._bad_mode(line, stmt)
            return
        if op.startswith("#"):
            inner = op[1:].strip()
            sizes = modes.get("imm") or modes.get("rep")
            if sizes is None:
                self._bad_mode(line, stmt)
                return
            if not self.expr(inner, line, stmt):
                return
            lit = _literal_size(inner) if size is None else None  # `.b #$1234`: Asar truncates
            if "imm" in modes and sizes is _B and lit is not None and lit > 1:
                code = "Einvalid_number" if mn in ("rep", "sep") and lit == 2 else "Eunknown_command"
                self.error(line, code, "Invalid number." if code == "Einvalid_number" else "Unknown command.", stmt)
                return
            if size is not None and size not in sizes:
                if mn in ("rep", "sep"):
                    self.error(line, "Einvalid_number", "Invalid number.", stmt)
                else:
                    self._bad_mode(line, stmt)
            return
        shape, inner = _shape(op)
        if shape is None:
            self._bad_mode(line, stmt)
            return
        if "rel" in modes:
            if shape != "a":
                self._bad_mode(line, stmt)
                return
            self.operand_expr(inner, line, stmt)
            return
        sizes = modes.get(shape)
        if sizes is None:
            self._bad_mode(line, stmt)
            return
        if not self.operand_expr(inner, line, stmt):
            return
        if size is not None:
            # `LDA.b $12,y`: no dp,y mode, Asar widens to abs,y (with a warning)
            if size not in sizes and not (shape == "a,y" and size == 1 and 2 in sizes):
                self._bad_mode(line, stmt)
            return
        lit = _literal_size(inner)
        if lit is not None:
            if lit > max(sizes):
                self._bad_mode(line, stmt)
        elif max(sizes) < 3:
            m = _NAME.fullmatch(inner.strip())
            if m and not inner.strip().startswith("?"):
                # a label operand: sized by its value, known only once every label is seen
                self.size_checks.append((self._candidates(inner.strip()), max(sizes), line, stmt))

    def _value_size(self, value: str) -> int | None:
        """Operand size of a label assigned a plain number: 2 in the current bank, else 3."""
        v = _literal_value(value)
        if v is None or self.bank is None:
            return None
        return 2 if (v >> 16) == self.bank else 3

    def _bad_mode(self, line: int, stmt: str) -> None:
        self.error(line, "Eunknown_command", "Unknown command.", stmt)

    def operand_expr(self, text: str, line: int, stmt: str) -> bool:
        """An address operand: an expression, or a `+`/`-` label reference."""
        t = text.strip()
        m = _ANON_REF.match(t)
        if m:
            sym = m.group(1)
            depth = len(sym)
            if sym[0] == "-":
                defs = self.anon_defs.get(("-", depth), [])
                if not defs or defs[-1] > self.pos:
                    self.error(line, "Elabel_not_found", f"Label ':neg_{depth}_0' wasn't found.", stmt)
            else:
                self.plus_refs.append((depth, self.pos, line, stmt))
            return True
        return self.expr(t, line, stmt)

    # ---- expressions

    def expr(self, text: str, line: int, stmt: str, allow_strings: bool = False) -> bool:
        """Validate an Asar math expression; record the labels it uses. False when broken."""
        i, n = 0, len(text)
        expect_operand = True
        stack: list[str] = []  # "(" for grouping, "f" for a function call's argument list
        seen = False
        while True:
            i = _space_end(text, i)
            if i >= n:
                break
            c = text[i]
            if expect_operand:
                if c in "-+~!":
                    i += 1
                    continue
                if c == "(":
                    stack.append("(")
                    i += 1
                    continue
                m = _NUMBER.match(text, i)
                if m:
                    i = m.end()
                    expect_operand = False
                    seen = True
                    continue
                if c == '"' and (allow_strings or "f" in stack):
                    m = _STRING.match(text, i)
                    if not m:
                        self.error(line, "Emismatched_quotes", "Mismatched quotes.", stmt)
                        return False
                    i = m.end()
                    expect_operand = False
                    continue
                m = _NAME.match(text, i)
                if m:
                    name = m.group(0)
                    j = _space_end(text, m.end())
                    if j < n and text[j] == "(" and not name.startswith((".", "?")):
                        if name.lower() not in BUILTIN_FUNCTIONS and name not in self.functions:
                            self.error(line, "Efunction_not_found", f"Function '{name}' wasn't found.", stmt)
                        stack.append("f")
                        i = j + 1
                        j2 = _space_end(text, i)
                        if j2 < n and text[j2] == ")":  # no arguments: pc(), ...
                            stack.pop()
                            i = j2 + 1
                            expect_operand = False
                        continue
                    if name != _UNDEFINED:
                        self.ref(name, line, stmt)
                    i = m.end()
                    expect_operand = False
                    seen = True
                    continue
                self.error(line, "Einvalid_number", "Invalid number.", stmt)
                return False
            if c == ")":
                if not stack:
                    self.error(line, "Emismatched_parentheses", "Mismatched parentheses.", stmt)
                    return False
                stack.pop()
                i += 1
                continue
            if c == "," and stack and stack[-1] == "f":
                i += 1
                expect_operand = True
                continue
            m = _BINOP.match(text, i)
            if m:
                i = m.end()
                expect_operand = True
                continue
            self.error(line, "Einvalid_number", "Invalid number.", stmt)
            return False
        if stack:
            self.error(line, "Emismatched_parentheses", "Mismatched parentheses.", stmt)
            return False
        if expect_operand:
            self.error(line, "Einvalid_number", "Invalid number." if seen or text.strip() else "Missing value.", stmt)
            return False
        return True

    # ---- macros

    def macro_call(self, s: str, line: int) -> None:
        m = _MACRO_CALL.match(s)
        if not m:
            self.error(line, "Ebroken_macro_usage", "Broken macro usage.", s)
            return
        name, argtext = m.groups()
        macro = self.macros.get(name)
        if macro is None:
            self.error(line, "Emacro_not_found", f"Macro '{name}' wasn't found.", s)
            return
        args = [a.strip() for a in _split_top(argtext, ",")] if argtext.strip() else []
        if (len(args) != len(macro.params)) if not macro.variadic else (len(args) < len(macro.params)):
            self.error(line, "Emacro_wrong_num_params", "Wrong number of parameters to macro.", s)
            return
        if self.macro_depth >= 32:
            self.error(line, "Erecursion_limit", "Recursion limit reached.", s)
            return
        values = dict(zip(macro.params, args))
        saved_stack = self.stack
        self.macro_depth += 1
        try:
            for body_line in macro.body:
                expanded = re.sub(r"<([A-Za-z0-9_]+)>", lambda mm: values.get(mm.group(1), mm.group(0)), body_line)
                expanded = re.sub(r"<\.\.\.\[[^\]]*\]>", "0", expanded)
                self.line(expanded, line)
        finally:
            self.macro_depth -= 1
            if not self.collect_only:
                self.stack = saved_stack

    # ---- directives (the handler names are in _DIRECTIVES below)

    def d_none(self, word: str, rest: str, line: int, s: str) -> None:
        if rest:
            self.error(line, "Eunknown_command", "Unknown command.", s)

    def d_expr(self, word: str, rest: str, line: int, s: str) -> None:
        if not rest:
            self.error(line, "Erequire_parameter", "Missing parameter.", s)
            return
        self.expr(rest, line, s)

    def d_org(self, word: str, rest: str, line: int, s: str) -> None:
        self.d_expr(word, rest, line, s)
        v = _literal_value(rest)
        self.bank = (v >> 16) & 0xFF if v is not None else None

    def d_freespace(self, word: str, rest: str, line: int, s: str) -> None:
        self.d_any(word, rest, line, s)
        self.bank = None  # Asar picks the bank
    def d_any(self, word: str, rest: str, line: int, s: str) -> None:
        if rest.count('"') % 2:
            self.error(line, "Emismatched_quotes", "Mismatched quotes.", s)

    def d_base(self, word: str, rest: str, line: int, s: str) -> None:
        if rest.lower() != "off":
            self.d_expr(word, rest, line, s)

    def d_skip(self, word: str, rest: str, line: int, s: str) -> None:
        parts = rest.split(None, 1)
        if parts and parts[0].lower() == "align":
            for p in _split_top(parts[1] if len(parts) > 1 else "", " "):
                if p.strip() and p.strip().lower() != "offset":
                    self.expr(p, line, s)
            return
        self.d_expr(word, rest, line, s)

    def d_bank(self, word: str, rest: str, line: int, s: str) -> None:
        if rest.lower() not in ("noassume", "auto"):
            self.d_expr(word, rest, line, s)

    def d_data(self, word: str, rest: str, line: int, s: str) -> None:
        if not rest:
            self.error(line, "Erequire_parameter", "Missing parameter.", s)
            return
        for item in _split_top(rest, ","):
            item = item.strip()
            if not item:
                self.error(line, "Einvalid_number", "Invalid number.", s)
                return
            if item.startswith('"'):
                if not _STRING.fullmatch(item):
                    self.error(line, "Emismatched_quotes", "Mismatched quotes.", s)
                    return
                continue
            if not self.operand_expr(item, line, s):
                return

    def d_file(self, word: str, rest: str, line: int, s: str) -> None:
        m = _FILE_ARG.match(rest)
        if not m:
            self.error(line, "Erequire_parameter", "Missing parameter.", s)
            return
        path = m.group(1) if m.group(1) is not None else m.group(2)
        if word == "incbin":
            tail = rest[m.end():].strip()
            if tail.startswith("->"):
                label = tail[2:].strip()
                self.define_label(self.namespace + label.replace(".", "_"), line, s)
        if not path.startswith("/"):
            # Asar runs the snippet alone in an empty directory: a relative include is missing there too
            self.error(line, "Efile_not_found", f"File '{path}' wasn't found.", s)

    def d_cond(self, word: str, rest: str, line: int, s: str) -> None:
        if word in ("if", "while"):
            self.blocks.append(_Block(word, line))
        elif word == "elseif" and not (self.blocks and self.blocks[-1].kind == "if"):
            self.error(line, "Emisplaced_elseif", "Misplaced elseif.", s)
        if word == "assert":
            cond = _split_top(rest, ",")[0] if rest else ""
            if cond.strip():
                self.expr(cond, line, s, allow_strings=True)
            else:
                self.error(line, "Erequire_parameter", "Missing parameter.", s)
            return
        if not rest:
            self.error(line, "Einvalid_condition", "Invalid condition.", s)
            return
        self.expr(rest, line, s, allow_strings=True)

    def d_else(self, word: str, rest: str, line: int, s: str) -> None:
        if not (self.blocks and self.blocks[-1].kind == "if"):
            self.error(line, "Emisplaced_else", "Misplaced else.", s)

    def d_end(self, word: str, rest: str, line: int, s: str) -> None:
        kind = {"endif": "if", "endwhile": "while", "endfor": "for", "endstruct": "struct", "endspcblock": "spcblock"}[word]
        if not (self.blocks and self.blocks[-1].kind == kind):
            code = {"if": "Emisplaced_endif", "while": "Emisplaced_endif", "for": "Ebroken_for_loop",
                    "struct": "Eendstruct_without_struct", "spcblock": "Eendspcblock_without_spcblock"}[kind]
            self.error(line, code, f"Misplaced {word}.", s)
            return
        block = self.blocks.pop()
        if kind == "struct" and block.saved_stack is not None:
            self.stack = block.saved_stack
        if kind == "spcblock":
            self.arch_65816 = True

    def d_for(self, word: str, rest: str, line: int, s: str) -> None:
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\.\.(.+)$", rest)
        if not m:
            self.error(line, "Ebroken_for_loop", "Broken for loop.", s)
            return
        self.defines[m.group(1)] = "0"
        self.expr(m.group(2), line, s)
        self.expr(m.group(3), line, s)
        self.blocks.append(_Block("for", line))

    def d_macro(self, word: str, rest: str, line: int, s: str) -> None:
        m = _MACRO_DEF.match(s)
        if not m:
            self.error(line, "Ebroken_macro_declaration", "Broken macro declaration.", s)
            return
        params = tuple(p.strip() for p in m.group(2).split(",") if p.strip())
        variadic = bool(params) and params[-1] == "..."
        if variadic:
            params = params[:-1]
        if any(not re.fullmatch(r"[A-Za-z0-9_]+", p) for p in params):
            self.error(line, "Einvalid_macro_param_name", "Invalid macro parameter name.", s)
            return
        self.capture = (m.group(1), params, variadic, line, [])

    def d_endmacro(self, word: str, rest: str, line: int, s: str) -> None:
        self.error(line, "Emisplaced_endmacro", "Misplaced endmacro.", s)

    def d_struct(self, word: str, rest: str, line: int, s: str) -> None:
        parts = rest.split(None, 1)
        if not parts or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", parts[0]):
            self.error(line, "Einvalid_struct_name", "Invalid struct name.", s)
            return
        name = self.namespace + parts[0]
        self.define_label(name, line, s)
        if len(parts) > 1:
            arg = re.split(r"\s+extends\s+", parts[1], flags=re.I)[0]
            self.expr(arg, line, s)
        self.blocks.append(_Block("struct", line, saved_stack=self.stack))
        self.stack = [name]

    def d_function(self, word: str, rest: str, line: int, s: str) -> None:
        m = _FUNCTION_DEF.match(s)
        if not m:
            self.error(line, "Ebroken_function_declaration", "Broken function declaration.", s)
            return
        self.functions.add(m.group(1))

    def d_namespace(self, word: str, rest: str, line: int, s: str) -> None:
        arg = rest.strip()
        if not arg:
            self.error(line, "Einvalid_namespace_use", "Invalid use of namespace command.", s)
        elif arg.lower() == "off":
            self.namespace = ""
        elif arg.lower().startswith("nested"):
            return
        elif not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", arg):
            self.error(line, "Einvalid_namespace_name", "Invalid namespace name.", s)
        else:
            self.namespace = self.namespace + arg + "_"

    def d_pushpc(self, word: str, rest: str, line: int, s: str) -> None:
        self.d_none(word, rest, line, s)
        self.pc_depth += 1
        self.pc_stack.append(self.bank)

    def d_pullpc(self, word: str, rest: str, line: int, s: str) -> None:
        self.d_none(word, rest, line, s)
        if self.pc_depth == 0:
            self.error(line, "Epullpc_without_pushpc", "pullpc without matching pushpc.", s)
        else:
            self.pc_depth -= 1
            self.bank = self.pc_stack.pop()

    def d_arch(self, word: str, rest: str, line: int, s: str) -> None:
        arch = rest.strip().lower()
        if arch not in ("65816", "spc700", "spc700-inline", "superfx"):
            self.error(line, "Eunknown_command", "Unknown command.", s)
            return
        self.arch_65816 = arch == "65816"

    def d_spcblock(self, word: str, rest: str, line: int, s: str) -> None:
        self.blocks.append(_Block("spcblock", line))
        self.arch_65816 = False

    def d_autoclean(self, word: str, rest: str, line: int, s: str) -> None:
        parts = rest.split(None, 1)
        if not parts:
            self.error(line, "Ebroken_autoclean", "Broken autoclean.", s)
        elif parts[0].lower() in ("jsl", "jml", "dl", "lda", "sta", "ora", "and", "eor", "adc", "cmp", "sbc"):
            self.statement(rest, line)
        else:
            self.expr(rest, line, s)

    def d_prot(self, word: str, rest: str, line: int, s: str) -> None:
        for item in _split_top(rest, ","):
            self.expr(item, line, s)

    # ---- the end

    def finish(self) -> None:
        end = self.last_line + 1
        if self.capture is not None:
            self.error(end, "Eunclosed_macro", "Unclosed macro.", "")
        for block in self.blocks:
            code = {"if": "Eunclosed_if", "while": "Eunclosed_if", "for": "Ebroken_for_loop",
                    "struct": "Estruct_without_endstruct", "spcblock": "Emissing_endspcblock"}[block.kind]
            self.error(end, code, f"Unclosed {block.kind}.", "")
        if self.pc_depth:
            self.error(end, "Epushpc_without_pullpc", "pushpc without matching pullpc.", "")
        for depth, pos, line, stmt in self.plus_refs:
            if not any(p > pos for p in self.anon_defs.get(("+", depth), ())):
                self.error(line, "Elabel_not_found", f"Label ':pos_{depth}_0' wasn't found.", stmt)
        known = self.labels
        for cands, widest, line, stmt in self.size_checks:
            size = next((self.label_sizes[c] for c in cands if c in self.label_sizes), None)
            if size is not None and size > widest:
                self.error(line, "Eunknown_command", "Unknown command.", stmt)
        for cands, line, stmt, shown in self.refs:
            if not any(c in known or c in self.outside_labels for c in cands):
                self.error(line, "Elabel_not_found", f"Label '{shown}' wasn't found.", stmt)


_UNDEFINED = "zelda_tui_undefined_define"

_DIRECTIVES: dict[str, str] = {
    **{w: "d_none" for w in ("lorom", "hirom", "exlorom", "exhirom", "fullsa1rom", "sfxrom", "norom", "pushbase",
                            "pullbase", "cleartable", "pushtable", "pulltable", "pushns", "pullns", "pushwarnings",
                            "pullwarnings", "includeonce")},
    "org": "d_org",
    **{w: "d_expr" for w in ("warnpc", "fillbyte", "padbyte", "pad", "freespacebyte", "dpbase", "align")},
    **{w: "d_any" for w in ("print", "error", "warn", "check", "optimize", "math", "warnings", "sa1rom", "undef", "@asar", "asar", "global", "@include",
                           "@includefrom", "includefrom", "bankcross")},
    **{w: "d_data" for w in ("db", "dw", "dl", "dd")},
    **{w: "d_file" for w in ("incsrc", "incbin", "table")},
    **{w: "d_cond" for w in ("if", "elseif", "while", "assert")},
    **{w: "d_end" for w in ("endif", "endwhile", "endfor", "endstruct", "endspcblock")},
    **{w: "d_freespace" for w in ("freespace", "freecode", "freedata")},
    "base": "d_base", "skip": "d_skip", "fill": "d_skip", "bank": "d_bank", "else": "d_else", "for": "d_for",
    "macro": "d_macro", "endmacro": "d_endmacro", "struct": "d_struct", "function": "d_function",
    "namespace": "d_namespace", "pushpc": "d_pushpc", "pullpc": "d_pullpc", "arch": "d_arch",
    "spcblock": "d_spcblock", "autoclean": "d_autoclean", "prot": "d_prot",
}

# --------------------------------------------------------------------------- helpers


def _split_statements(text: str) -> list[str]:
    """Asar's ` : ` separates statements on one line (outside quotes)."""
    if " : " not in text:
        return [text]
    out, quote, start, i = [], "", 0, 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
        elif c == '"':
            quote = c
        elif c == ":" and text[i - 1:i] == " " and text[i + 1:i + 2] == " ":
            out.append(text[start:i - 1])
            start = i + 2
        i += 1
    out.append(text[start:])
    return out


def _split_top(text: str, sep: str) -> list[str]:
    """Split at `sep` outside quotes, parentheses and brackets."""
    out, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = ""
        elif c == '"':
            quote = c
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == sep and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return out


def _space_end(text: str, i: int) -> int:
    """Where the whitespace run at `i` ends (`_SPACE` matches everywhere, possibly empty)."""
    m = _SPACE.match(text, i)
    return m.end() if m else i


def _matching(text: str, open_at: int) -> int:
    """Index of the bracket closing the one at `open_at`, or -1."""
    pairs = {"(": ")", "[": "]"}
    want = [pairs[text[open_at]]]
    quote = ""
    for i in range(open_at + 1, len(text)):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
        elif c == '"':
            quote = c
        elif c in pairs:
            want.append(pairs[c])
        elif c in ")]":
            if not want or c != want[-1]:
                return -1
            want.pop()
            if not want:
                return i
    return -1


def _shape(op: str) -> tuple[str | None, str]:
    """The addressing-mode shape of an operand ("a", "a,x", "(a),y", "[a]", ...) and its address expression."""
    if op[0] in "([":
        j = _matching(op, 0)
        if j < 0:
            return None, op
        inner, after = op[1:j].strip(), op[j + 1:].strip()
        if op[0] == "[":
            if not after:
                return "[a]", inner
            if _REG_Y.match(after):
                return "[a],y", inner
            return None, op
        m = _INDEX.match(inner)
        idx = m.group(2).lower() if m else ""
        if not after:
            if m and idx == "x":
                return "(a,x)", m.group(1)
            if idx:
                return None, op
            return "(a)", inner
        if _REG_Y.match(after):
            if m and idx == "s":
                return "(a,s),y", m.group(1)
            if idx:
                return None, op
            return "(a),y", inner
        # `(1+2)*3`, `(Base+2),x`: a parenthesised expression, not an indirect mode
    parts = _split_top(op, ",")
    if len(parts) == 1:
        return "a", op
    if len(parts) == 2 and parts[1].strip().lower() in ("x", "y", "s"):
        return "a," + parts[1].strip().lower(), parts[0].strip()
    return None, op


def _literal_value(expr: str) -> int | None:
    """The value of a plain hex/binary/decimal literal, else None."""
    e = expr.strip()
    try:
        if e[:1] == "$":
            return int(e[1:], 16)
        if e[:1] == "%":
            return int(e[1:], 2)
        if e.isdigit():
            return int(e)
    except ValueError:
        return None
    return None


def _literal_size(expr: str) -> int | None:
    """Bytes a plain number literal stands for, as Asar sizes it (hex by digits, decimal by value)."""
    e = expr.strip()
    if not e:
        return None
    c = e[0]
    if c == "$":
        digits = e[1:]
        if digits and all(ch in "0123456789abcdefABCDEF" for ch in digits):
            return min(4, (len(digits) + 1) // 2)
        return None
    if c == "%":
        digits = e[1:]
        if digits and all(ch in "01" for ch in digits):
            return min(4, (len(digits) + 7) // 8)
        return None
    if e.isdigit():
        v = int(e)
        return 1 if v <= 0xFF else 2 if v <= 0xFFFF else 3 if v <= 0xFFFFFF else 4
    if len(e) == 3 and c == "'" and e[2] == "'":
        return 1
    return None


# --------------------------------------------------------------------------- public API


def known_symbols(texts: Iterable[str]) -> KnownSymbols:
    """Labels, defines, macros and functions defined by the hack's symbol files (their own
    errors are not the snippet's problem and are ignored)."""
    checker = _Checker(None, collect_only=True)
    for text in texts:
        checker.run(text.replace("\r\n", "\n"))
        checker.capture = None
    return KnownSymbols(labels=frozenset(checker.labels), defines=dict(checker.defines),
                        macros=dict(checker.macros), functions=frozenset(checker.functions))


def precheck(code: str, symbols: KnownSymbols | None = None) -> Verdict:
    """Check one snippet (already extracted) without Asar: Verdict(checker="precheck")."""
    if is_empty(code):
        return empty_verdict("precheck")
    checker = _Checker(symbols)
    checker.run(code.replace("\r\n", "\n"))
    checker.finish()
    if not checker.errors:
        return Verdict("assembles", "precheck")
    errs = sorted(checker.errors, key=lambda e: e[0])
    texts = [f"{SNIPPET}:{line}: error: ({code}): {msg}" + (f" [{stmt}]" if stmt else "")
             for line, code, msg, stmt in errs]
    verdict = worst(category_of(code, msg) for _, code, msg, _ in errs) or "other"
    return Verdict(verdict, "precheck", texts, errs[0][0])
