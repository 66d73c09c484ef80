"""QA token lengths with a real tokenizer (a tiny BPE trained here), and the estimate without one."""

from __future__ import annotations

from pathlib import Path

import pytest

tokenizers = pytest.importorskip("tokenizers")

from zelda_tui.backends.tokenizer import load_token_counter  # noqa: E402
from zelda_tui.core.config import ModelSpec  # noqa: E402
from zelda_tui.services import build_services  # noqa: E402


def train_tiny_bpe(path: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = [f"LDA #${i:02X}\nSTA $7E{i:04X}\nUser: task {i}\n\nAssistant: plain answer {i}" for i in range(200)]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>"]))
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    return path


def test_real_tokenizer_counts_rendered_samples(small_ws: Path, tmp_path: Path):
    tok_dir = train_tiny_bpe(tmp_path / "tiny-model")
    small_ws.write_text(small_ws.read_text().replace('base = "local/tiny"', f'base = "local/tiny"\ntokenizer = "{tok_dir}"'))
    services = build_services(small_ws)
    try:
        alpha = next(r for r in services.datasets.scan() if r.name == "alpha")
    finally:
        services.close()
    length = alpha.qa["length"]
    assert length["method"] == "tokenizer (tiny-model)"

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    import json

    expected = []
    for line in Path(alpha.path).read_text().splitlines():
        rec = json.loads(line)
        user = rec["instruction"] + (f"\n\n{rec['input']}" if rec.get("input") else "")
        text = f"User: {user}\n\nAssistant: {rec['output']}"
        expected.append(len(tok.encode(text, add_special_tokens=False).ids) + 1)
    assert length["max_tokens"] == max(expected)
    assert length["over_max"] == sum(t > 64 for t in expected)


def test_no_tokenizer_means_labelled_estimate(tmp_path: Path):
    assert load_token_counter(ModelSpec(base="org/not-cached-anywhere", tokenizer=str(tmp_path / "nothing"))) is None
