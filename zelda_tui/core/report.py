"""Markdown rendering of QA reports (the CLI prints it; the QA detail screen shows it)."""

from __future__ import annotations

from .inventory import DatasetReport


def _lines(p: dict) -> str:
    if not p["count"]:
        return "0"
    more = " …" if p["count"] > len(p["lines"]) else ""
    return f"{p['count']:,} (lines {', '.join(map(str, p['lines']))}{more})"


def dataset_markdown(r: DatasetReport) -> str:
    out = [f"## {r.name}", "", f"`{r.path}`", ""]
    if r.error:
        return "\n".join(out + [f"**error:** {r.error}", ""])
    q = r.qa
    rec = q["records"] or 1
    out += [
        f"- records: **{q['records']:,}** ({q['lines']:,} lines, {q['blank_lines']:,} blank, {q['chat_records']:,} chat-style)",
        f"- size: {r.bytes:,} bytes",
        f"- parse errors: {_lines(q['parse_errors'])}",
        f"- lines that are not an object: {_lines(q['not_object'])}",
    ]
    for field_name, p in q["missing"].items():
        out.append(f"- missing `{field_name}`: {_lines(p)}")
    for field_name, p in q["wrong_type"].items():
        out.append(f"- wrong type in `{field_name}`: {_lines(p)}")
    out.append(f"- exact duplicates (same instruction + input + output): {q['exact_duplicates']:,}")
    out.append(f"- input present: {q['input_present']:,} ({q['input_present'] / rec:.1%})")
    out += ["", "| field | present | avg chars | max chars (line) | with ``` code |", "|---|--:|--:|--:|--:|"]
    for name, f in q["fields"].items():
        out.append(f"| {name} | {f['present']:,} | {f['avg_chars']:,.1f} | {f['max_chars']:,} ({f['max_line']}) | {f['code_blocks']:,} |")
    for label in ("domains", "sources"):
        items = list(q[label].items())
        shown = ", ".join(f"{k} {v:,}" for k, v in items[:12])
        extra = f" (+{len(items) - 12} more)" if len(items) > 12 else ""
        out += ["", f"**{label}** ({len(items)}): {shown}{extra}"]
    ln = q["length"]
    out += [
        "",
        f"**length** — {ln['method']}; max_seq_len {ln['max_seq_len']:,}: {ln['over_max']:,} samples over "
        f"({ln['over_max'] / rec:.2%}), mean {ln['mean_tokens']:,.0f} tokens, max {ln['max_tokens']:,}",
        "",
        "| tokens | samples |",  # a row per bucket: at 80 columns no count is cut
        "|---|--:|",
        *(f"| {bucket} | {v:,} |" for bucket, v in ln["buckets"].items()),
        "",
    ]
    return "\n".join(out)


def qa_markdown(reports: list[DatasetReport], max_seq_len: int) -> str:
    total = sum(r.records for r in reports)
    head = [f"# Dataset QA — {len(reports)} datasets, {total:,} records (max_seq_len {max_seq_len:,})", ""]
    return "\n".join(head + [dataset_markdown(r) for r in reports])
