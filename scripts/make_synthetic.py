"""Random-weight GGUFs with the exact shapes of 1B-class models, for load, memory and speed tests.

usage: python make_synthetic.py MODELS_DIR [NAME ...]     (default: every file below)

Writes into MODELS_DIR (outside the work tree, next to the real models), each only when missing or made by another
version of this script (a stamp .NAME.synthetic holds the script's sha256 and the file's size):
  synthetic-Llama-3.2-1B.Q4_0.gguf   llama, Llama-3.2-1B's shapes: 16 layers, dim 2048, 32 heads / 8 KV heads (head
                                     dim 64), FFN 8192, vocab 128256, RoPE base 500000 with Llama 3's frequency
                                     factors (rope_freqs.weight: factor 32, low/high frequency factors 1 / 4, original
                                     context 8192), tied output; matrices Q4_0, token embedding Q8_0 (~830 MB)
  synthetic-Llama-3.2-1B.Q8_0.gguf   the same, every matrix Q8_0 (~1.3 GB)
  synthetic-Qwen2.5-0.5B.Q8_0.gguf   qwen2, Qwen2.5-0.5B's shapes: 24 layers, dim 896, 14 heads / 2 KV heads (head
                                     dim 64), FFN 4864, 151936 embedding rows, Q/K/V biases, RoPE base 1e6, tied
                                     output; Q8_0 (~530 MB)
Tokenizers: the real vocabularies of these families from llama.cpp's vocabulary files in MODELS_DIR/vocab (fetched by
fetch_models.sh): ggml-vocab-llama-bpe.gguf (Llama 3, 128256 tokens) and ggml-vocab-qwen2.gguf; every tokenizer.*
key is copied, so the engine builds a real tokenizer.

The weights are random quantized blocks written directly (no float tensor, no quantizer: seconds per GB): block
scales fixed so that values have std ~0.02 (~1/sqrt(dim)), quants uniform (Q8_0 in -127..127). The text they
generate is noise; shapes, types, file size, memory and speed are those of the real models.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T

LLAMA32_1B = dict(arch="llama", n_layer=16, dim=2048, n_head=32, n_kv=8, ffn=8192, vocab=128256, ctx=131072,
                  rope_base=500000.0, eps=1e-5, vocab_file="ggml-vocab-llama-bpe.gguf", biases=False,
                  llama3_rope=dict(factor=32.0, low=1.0, high=4.0, orig=8192))
QWEN25_05B = dict(arch="qwen2", n_layer=24, dim=896, n_head=14, n_kv=2, ffn=4864, vocab=151936, ctx=32768,
                  rope_base=1000000.0, eps=1e-6, vocab_file="ggml-vocab-qwen2.gguf", biases=True, llama3_rope=None)

FILES = {
    "synthetic-Llama-3.2-1B.Q4_0.gguf": (LLAMA32_1B, T.Q4_0, T.Q8_0, 2),
    "synthetic-Llama-3.2-1B.Q8_0.gguf": (LLAMA32_1B, T.Q8_0, T.Q8_0, 7),
    "synthetic-Qwen2.5-0.5B.Q8_0.gguf": (QWEN25_05B, T.Q8_0, T.Q8_0, 7),
}
STD = 0.02


def random_blocks(rng, typ, rows: int, cols: int) -> np.ndarray:
    """rows x cols weights of `typ` as raw blocks [rows, bytes per row] (uint8)."""
    nb = cols // 32
    if typ == T.Q8_0:  # f16 d, 32 x int8
        blocks = np.empty((rows, nb, 34), np.uint8)
        q = rng.integers(-127, 128, size=(rows, nb, 32), dtype=np.int8)
        blocks[..., 2:] = q.view(np.uint8)
        d = STD / 73.3  # std of uniform -127..127
    elif typ == T.Q4_0:  # f16 d, 16 bytes of nibbles, value (nibble - 8) * d
        blocks = np.empty((rows, nb, 18), np.uint8)
        blocks[..., 2:] = rng.integers(0, 256, size=(rows, nb, 16), dtype=np.uint8)
        d = STD / 4.6
    else:
        raise ValueError(typ)
    blocks[..., :2] = np.frombuffer(np.float16(d).tobytes(), np.uint8)
    return blocks.reshape(rows, -1)


def llama3_rope_factors(dim_rot: int, base: float, p: dict) -> np.ndarray:
    """Llama 3.x's RoPE frequency divisors (the published rope_scaling of Llama 3.1/3.2): wavelengths shorter than
    orig/high keep their frequency, longer than orig/low are divided by `factor`, and in between interpolate."""
    inv_freq = base ** (-np.arange(0, dim_rot, 2, dtype=np.float64) / dim_rot)
    wavelen = 2 * np.pi / inv_freq
    low_wavelen, high_wavelen = p["orig"] / p["low"], p["orig"] / p["high"]
    smooth = (p["orig"] / wavelen - p["low"]) / (p["high"] - p["low"])
    f = np.where(wavelen < high_wavelen, 1.0,
                 np.where(wavelen > low_wavelen, p["factor"], 1.0 / ((1 - smooth) / p["factor"] + smooth)))
    return f.astype(np.float32)


def copy_tokenizer(w: gguf.GGUFWriter, vocab_path: str):
    r = gguf.GGUFReader(vocab_path)
    for key, field in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, field.contents(), vtype, sub_type=field.types[-1])
        else:
            w.add_key_value(key, field.contents(), vtype)


def write(path: str, spec: dict, mat_type, embd_type, ftype: int, vocab_dir: str):
    rng = np.random.default_rng(0)
    s = spec
    hd = s["dim"] // s["n_head"]
    q, kv = s["n_head"] * hd, s["n_kv"] * hd
    w = gguf.GGUFWriter(path + ".part", s["arch"])
    w.add_name(os.path.basename(path).replace(".gguf", "") + " (random weights, real shapes)")
    w.add_block_count(s["n_layer"])
    w.add_context_length(s["ctx"])
    w.add_embedding_length(s["dim"])
    w.add_feed_forward_length(s["ffn"])
    w.add_head_count(s["n_head"])
    w.add_head_count_kv(s["n_kv"])
    w.add_rope_freq_base(s["rope_base"])
    w.add_rope_dimension_count(hd)
    w.add_layer_norm_rms_eps(s["eps"])
    w.add_vocab_size(s["vocab"])
    w.add_file_type(ftype)
    copy_tokenizer(w, os.path.join(vocab_dir, s["vocab_file"]))

    def add(name, arr, typ):
        w.add_tensor(name, arr, raw_dtype=typ) if typ not in (T.F32, T.F16) else w.add_tensor(name, arr)

    add("token_embd.weight", random_blocks(rng, embd_type, s["vocab"], s["dim"]), embd_type)
    if s["llama3_rope"]:
        add("rope_freqs.weight", llama3_rope_factors(hd, s["rope_base"], s["llama3_rope"]), T.F32)
    ones = np.ones(s["dim"], np.float32)
    for L in range(s["n_layer"]):
        p = f"blk.{L}."
        add(p + "attn_norm.weight", ones, T.F32)
        add(p + "attn_q.weight", random_blocks(rng, mat_type, q, s["dim"]), mat_type)
        add(p + "attn_k.weight", random_blocks(rng, mat_type, kv, s["dim"]), mat_type)
        add(p + "attn_v.weight", random_blocks(rng, mat_type, kv, s["dim"]), mat_type)
        if s["biases"]:
            for n_, width in (("q", q), ("k", kv), ("v", kv)):
                add(p + f"attn_{n_}.bias", (rng.standard_normal(width) * 0.1).astype(np.float32), T.F32)
        add(p + "attn_output.weight", random_blocks(rng, mat_type, s["dim"], q), mat_type)
        add(p + "ffn_norm.weight", ones, T.F32)
        add(p + "ffn_gate.weight", random_blocks(rng, mat_type, s["ffn"], s["dim"]), mat_type)
        add(p + "ffn_up.weight", random_blocks(rng, mat_type, s["ffn"], s["dim"]), mat_type)
        add(p + "ffn_down.weight", random_blocks(rng, mat_type, s["dim"], s["ffn"]), mat_type)
    add("output_norm.weight", ones, T.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(path + ".part", path)


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    models = argv[0]
    names = argv[1:] or list(FILES)
    with open(os.path.abspath(__file__), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    for name in names:
        spec, mat_type, embd_type, ftype = FILES[name]
        path = os.path.join(models, name)
        stamp = os.path.join(models, f".{name}.synthetic")
        if os.path.exists(path) and os.path.exists(stamp):
            with open(stamp) as f:
                if f.read().split() == [digest, str(os.path.getsize(path))]:
                    print(f"synthetic: {name} up to date")
                    continue
        t0 = time.time()
        write(path, spec, mat_type, embd_type, ftype, os.path.join(models, "vocab"))
        with open(stamp, "w") as f:
            f.write(f"{digest} {os.path.getsize(path)}\n")
        print(f"synthetic: wrote {name} ({os.path.getsize(path) / 1e6:.1f} MB) in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
