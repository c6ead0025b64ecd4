"""Prompt tokenization for the reference fixtures: a byte-level BPE tokenizer built with PyPI `tokenizers` from a
GGUF's `tokenizer.ggml.tokens` / `tokenizer.ggml.merges` / `tokenizer.ggml.token_type` (model "gpt2").

Pre-tokenization follows the GGUF's `tokenizer.ggml.pre`:
  * "default" / "gpt2" / "gpt-2": GPT-2's split regex (tokenizers' ByteLevel with use_regex=True).
  * "smollm" / "starcoder" / "refact": every digit is its own piece, then the GPT-2 regex
    (tokenizers' Digits(individual_digits=True) followed by ByteLevel).
Tokens of type CONTROL (3) are special tokens matched verbatim in the text (e.g. "<|im_start|>"); USER_DEFINED (4)
tokens are added (non-special) tokens. No BOS/EOS is added here; callers prepend one when the model wants it.

`check_against_vectors` validates the construction on llama.cpp's tokenizer test vectors (data files
ggml-vocab-NAME.gguf + .inp/.out: inputs separated by "\\n__ggml_vocab_test__\\n", one line of ids per input).
"""
from __future__ import annotations

import json

import gguf
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

_DIGIT_SPLIT_PRE = {"smollm", "starcoder", "refact"}
_PLAIN_PRE = {"default", "gpt2", "gpt-2"}


def _field(r: gguf.GGUFReader, key: str):
    f = r.fields.get(key)
    return None if f is None else f.contents()


def from_gguf(path: str) -> Tokenizer:
    r = gguf.GGUFReader(path)
    model = _field(r, "tokenizer.ggml.model")
    pre = _field(r, "tokenizer.ggml.pre") or "default"
    if model != "gpt2":
        raise ValueError(f"{path}: tokenizer model {model!r}, only 'gpt2' (byte-level BPE) is built here")
    if pre not in _DIGIT_SPLIT_PRE | _PLAIN_PRE:
        raise ValueError(f"{path}: pre-tokenizer {pre!r} not mapped")
    tokens = _field(r, "tokenizer.ggml.tokens")
    merges = _field(r, "tokenizer.ggml.merges")
    types = _field(r, "tokenizer.ggml.token_type") or [1] * len(tokens)
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _DIGIT_SPLIT_PRE:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), bl])
    else:
        tok.pre_tokenizer = bl
    tok.decoder = decoders.ByteLevel()
    special = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3]
    user = [AddedToken(t, special=False, normalized=False) for t, ty in zip(tokens, types) if ty == 4]
    if special:
        tok.add_special_tokens(special)
    if user:
        tok.add_tokens(user)
    return tok


def encode(tok: Tokenizer, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids


def check_against_vectors(gguf_path: str) -> tuple[int, int]:
    """Encode every llama.cpp test input of `gguf_path` and compare with its .out ids; returns (passed, total)."""
    tok = from_gguf(gguf_path)
    with open(gguf_path + ".inp", encoding="utf-8") as f:
        inputs = f.read().split("\n__ggml_vocab_test__\n")
    with open(gguf_path + ".out", encoding="utf-8") as f:
        outputs = f.read().split("\n")
    # The .inp ends with a separator-terminated last entry; pair only as many as there are .out lines.
    ok = 0
    n = min(len(inputs), len(outputs))
    for text, want in zip(inputs[:n], outputs[:n]):
        got = encode(tok, text)
        ok += got == [int(x) for x in want.split()]
    return ok, n


if __name__ == "__main__":
    import sys
    p = sys.argv[1]
    if len(sys.argv) > 2:
        print(json.dumps(encode(from_gguf(p), sys.argv[2])))
    else:
        print(check_against_vectors(p))
