"""Extracts a few real tensor rows from the two models into simd/tests/data/rows.bin (committed, < 100 KB) so the
parity tests can run on real weights inside the browser, where there is no filesystem (`include_bytes!`).

Usage: make_rows.py [MODELS_DIR]  (default ~/.cache/pocketlm/models). Deterministic: fixed tensors, fixed rows.

Format (little-endian): b"PLMROWS1", u32 entry count, then per entry: u32 name length, name (utf-8), u32 ggml type
id, u32 n_cols, u32 n_rows, u32 byte length, the raw row bytes exactly as stored in the GGUF file.
"""
import os
import struct
import sys

from gguf import GGUFReader

MODELS = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/pocketlm/models")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rows.bin")

# (model file, tensor name, first row, row count). Rows spread over a tensor so scales differ.
PICKS = [
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "blk.0.attn_q.weight", 100, 6),        # Q4_1 576 cols
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "blk.7.ffn_down.weight", 300, 5),      # Q4_1 1536 cols
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "token_embd.weight", 12000, 9),        # Q8_0 576 cols (also activations)
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "blk.3.attn_norm.weight", 0, 1),       # F32 576
    ("gemma-3-270m-q4_k_m.gguf", "blk.2.ffn_gate.weight", 700, 5),             # Q5_0 640 cols
    ("gemma-3-270m-q4_k_m.gguf", "blk.0.attn_v.weight", 17, 5),                # Q8_0 640 cols
    ("gemma-3-270m-q4_k_m.gguf", "blk.1.attn_output.weight", 200, 6),          # Q4_K 1024 cols
    ("gemma-3-270m-q4_k_m.gguf", "blk.0.ffn_down.weight", 50, 5),              # Q6_K 2048 cols
    ("gemma-3-270m-q4_k_m.gguf", "token_embd.weight", 100000, 4),              # Q8_0 640 cols (activations)
    ("gemma-3-270m-q4_k_m.gguf", "blk.5.ffn_norm.weight", 0, 1),               # F32 640
    ("gemma-3-270m-q4_k_m.gguf", "blk.5.attn_q_norm.weight", 0, 1),            # F32 256
]


def main():
    readers = {}
    entries = []
    for model, name, first, count in PICKS:
        r = readers.get(model) or readers.setdefault(model, GGUFReader(os.path.join(MODELS, model)))
        t = next(t for t in r.tensors if t.name == name)
        n_cols = int(t.shape[0])
        data = t.data if t.data.ndim == 2 else t.data.reshape(1, -1)
        rows = data[first:first + count]
        assert rows.shape[0] == count, (name, rows.shape)
        raw = rows.tobytes()
        entries.append((f"{model.split('-')[0]}:{name}", int(t.tensor_type), n_cols, count, raw))
    out = bytearray(b"PLMROWS1" + struct.pack("<I", len(entries)))
    for name, typ, n_cols, n_rows, raw in entries:
        nb = name.encode()
        out += struct.pack("<I", len(nb)) + nb + struct.pack("<IIII", typ, n_cols, n_rows, len(raw)) + raw
    with open(OUT, "wb") as f:
        f.write(out)
    print(f"{OUT}: {len(entries)} tensors, {len(out)} bytes")


if __name__ == "__main__":
    main()
