"""Independent numpy reference for GGUF models of the `llama` architecture (written here from the model's math).

It checks pocketlm's Rust engine. Weights come from the GGUF file through PyPI `gguf` (GGUFReader, and
`gguf.quants.dequantize` for every tensor); nothing here is derived from llama.cpp's or transformers' code.

Forward pass (per token position p, hidden size D, H query heads, Hkv key/value heads, head_dim = D / H):
    x = token_embd[id]
    per layer:  h = RMSNorm(x) * attn_norm
                q, k, v = Wq h, Wk h, Wv h            (weights are [out, in]; GGUF dims [ne0=in, ne1=out])
                q, k = RoPE(q, p), RoPE(k, p)         ("normal" RoPE: adjacent pairs (2i, 2i+1) of each head rotate by
                                                       p * base^(-2i / n_rot); llama.cpp's converter permuted the
                                                       Q/K rows so that this equals HF's rotate-half on the original)
                attention: query head h reads kv head h // (H / Hkv), scores / sqrt(head_dim), causal, softmax
                x = x + Wo attn
                h = RMSNorm(x) * ffn_norm
                x = x + Wdown (silu(Wgate h) * Wup h)
    logits = W_out RMSNorm(x) * output_norm          (W_out = output.weight, or token_embd.weight when tied)
RMSNorm(x) = x / sqrt(mean(x^2) + eps).  Decoding is greedy (argmax, lowest id on an exact tie).

Two numeric modes
-----------------
* exact (`act_quant=False`): every matmul uses the dequantized weights and the float activations as they are
  (float32 or float64).
* engine emulation (`act_quant=True`): like pocketlm and llama.cpp, each activation row that meets a quantized weight
  is first quantized to the weight's `vec_dot_type`, per 32-value block: Q8_0 for Q4_0/Q5_0/Q8_0 weights
  (d = amax/127 kept as f16, q = round(x/d)), Q8_1 for Q4_1/Q5_1 (same d and q, plus s = f16(d * sum(q)), which the
  dot product uses for the weight's per-block minimum m: dot = d_w*d_x*sum(q_w*q_x) + m*s), and Q8_K (256-blocks,
  f32 d) for k-quants. F32/F16/BF16 weights take f32 activations. The KV cache stays float32.

Tolerance for comparing the Rust engine's logits with this reference
--------------------------------------------------------------------
The engine differs from the exact reference through the Q8 activation rounding above (float32 summation order
alone is ~1e-4: measured f32 vs f64 exact max |dlogit| 9e-5 on SmolLM2, 9e-6 on tiny_llama). `act_quant_study`
measures it: exact float64 vs three emulations (float32 batched prompt, float32 one token at a time, float64
batched) at every position; the fixture scripts record it under "act_quant_study" and print it.

Rounding to Q8 is discontinuous, so a 1e-7 change upstream can flip one rounding, and in a deep model with large
activation outliers the flips cascade (SmolLM2's residual stream reaches |x| ~ 25000 against an RMS of ~250, so the
blocks holding outliers quantize their neighbours coarsely). Measured (max over positions, several runs):

                               SmolLM2-135M Q4_1 (174 positions)    tiny_llama (144 positions)
    max |dlogit|                      1.9                                 0.25
    max |dlogit - mean dlogit|        1.54 (centered)                     0.25
    max per-position centered RMS     0.24                                0.08
    max KL(ref || emulation)          0.036                               0.003
    max change of top1-top2 margin    0.97                                0.18
    top-1 agreement                   168..171 / 174                      142 / 144
    emulation-vs-emulation max        2.3 (flips cascade)                 0.05
    logit std (for scale)             3.6                                 3.4

So on SmolLM2 the engine is one more random draw of that noise: it cannot be held to the emulation more tightly
than to the exact model, only to statistical bounds. Most of the raw difference is a shift common to all logits
(which softmax ignores), hence centered metrics. Rules (also written into the fixture JSONs as
"recommended_tolerance"):
    SmolLM2 (golden_smollm2.json, exact reference), per position: centered max |d| <= 3.0, centered RMS <= 0.5,
      KL <= 0.1, the reference's top-1 in the engine's top-5; teacher-forced along the reference's greedy ids, the
      engine's top-1 equals the reference's wherever the recorded margin exceeds 1.5 and on >= 90% of all steps;
      free-running greedy ids equal up to the first step with a recorded margin below 1.5 (a near tie may flip:
      the emulation itself diverged from the exact greedy path after 5-32 steps).
    tiny_llama (tiny_llama_ref.json; 2 layers, no outliers, flips do not cascade): |engine - logits_q8act| <= 0.2
      and |engine - logits| <= 0.6 per logit; top-1 equal to greedy_ids_q8act where its margin exceeds 0.2.
The scripts warn when a re-measurement leaves less than 1.5x headroom under a bound.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from typing import Optional

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

# Block layouts from the GGUF / ggml format: bytes per block of 32 values and the byte offset of the per-block
# minimum `m` (f16) in the types that have one.
_MIN_OFFSET = {T.Q4_1: 2, T.Q5_1: 2}
_BLOCK_BYTES = {T.Q4_1: 20, T.Q5_1: 24}


def vec_dot_type(t: T) -> Optional[str]:
    """Activation format the engine's integer dot product consumes for weight type `t` (None = f32 activations)."""
    if t in (T.Q4_0, T.Q5_0, T.Q8_0):
        return "q8_0"
    if t in (T.Q4_1, T.Q5_1):
        return "q8_1"
    if t in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
        return "q8_k"
    return None


def _round_away(x: np.ndarray) -> np.ndarray:
    # C's roundf: halves away from zero (np.round rounds halves to even).
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def fake_quant_q8(x: np.ndarray, block: int, f16_scale: bool):
    """Quantize rows of x (shape [T, n], n % block == 0) to 8-bit blocks; returns (x_hat, d, d_f32, qsum).

    x_hat [T, n] = q * d; d [T, n/block] as stored (rounded to f16 when the format stores it so); d_f32 the scale
    before that rounding (Q8_1's s = f16(d_f32 * sum(q)) is computed from it); qsum [T, n/block] = sum(q)."""
    tn, n = x.shape
    if n % block:
        raise ValueError(f"row of {n} values is not a whole number of {block}-blocks")
    xb = x.astype(np.float32).reshape(tn, n // block, block)
    amax = np.abs(xb).max(axis=-1)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d > 0, np.float32(1) / np.where(d > 0, d, 1), 0).astype(np.float32)
    q = np.clip(_round_away(xb * inv[..., None]), -127, 127)
    d_f32 = d
    if f16_scale:
        d = d.astype(np.float16).astype(np.float32)
    x_hat = (q * d[..., None]).reshape(tn, n)
    return x_hat, d, d_f32, q.sum(axis=-1)


@dataclasses.dataclass
class Config:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_ctx: int
    rope_base: float
    n_rot: int
    eps: float
    vocab: int
    rope_linear_factor: float = 1.0

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


class Weight:
    """A dequantized weight [out, in] (float32) plus what the engine emulation needs: its GGUF type and, for types
    with a per-block minimum, the minima [out, in/32]."""

    def __init__(self, name: str, t: gguf.ReaderTensor):
        self.name = name
        self.type = T(t.tensor_type)
        self.shape = tuple(int(s) for s in reversed(t.shape))  # numpy order: [ne1, ne0] = [rows, cols]
        w = gguf.quants.dequantize(t.data, self.type)
        self.w = np.ascontiguousarray(w.reshape(self.shape), dtype=np.float32)
        self.mins = None
        if self.type in _MIN_OFFSET:
            raw = np.asarray(t.data).reshape(self.shape[0], -1, _BLOCK_BYTES[self.type])
            off = _MIN_OFFSET[self.type]
            self.mins = np.ascontiguousarray(raw[..., off:off + 2]).view(np.float16)[..., 0].astype(np.float32)
        self._cast = {}

    def as_dtype(self, dtype) -> np.ndarray:
        if np.dtype(dtype) == np.float32:
            return self.w
        if dtype not in self._cast:
            self._cast[dtype] = self.w.astype(dtype)
        return self._cast[dtype]


def _meta(reader: gguf.GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        if default is None:
            raise KeyError(f"missing metadata key {key}")
        return default
    return f.contents()


class LlamaModel:
    """All tensors of a llama GGUF, dequantized once to float32 and kept in memory."""

    def __init__(self, path: str):
        r = gguf.GGUFReader(path)
        arch = _meta(r, "general.architecture")
        if arch != "llama":
            raise ValueError(f"{path}: architecture {arch!r}, this reference implements 'llama'")
        a = "llama."
        n_embd = int(_meta(r, a + "embedding_length"))
        n_head = int(_meta(r, a + "attention.head_count"))
        scaling = _meta(r, a + "rope.scaling.type", "none")
        if scaling not in ("none", "linear"):
            raise ValueError(f"rope scaling {scaling!r} not implemented")
        self.tensors = {t.name: t for t in r.tensors}
        self.tokens = list(_meta(r, "tokenizer.ggml.tokens", []))
        self.cfg = Config(
            n_layer=int(_meta(r, a + "block_count")),
            n_embd=n_embd,
            n_ff=int(_meta(r, a + "feed_forward_length")),
            n_head=n_head,
            n_head_kv=int(_meta(r, a + "attention.head_count_kv", n_head)),
            n_ctx=int(_meta(r, a + "context_length")),
            rope_base=float(_meta(r, a + "rope.freq_base", 10000.0)),
            n_rot=int(_meta(r, a + "rope.dimension_count", n_embd // n_head)),
            eps=float(_meta(r, a + "attention.layer_norm_rms_epsilon")),
            vocab=int(self.tensors["token_embd.weight"].shape[1]),
            rope_linear_factor=float(_meta(r, a + "rope.scaling.factor", 1.0)) if scaling == "linear" else 1.0,
        )
        self.metadata = r
        self.w = {name: Weight(name, t) for name, t in self.tensors.items()}
        self.output = self.w.get("output.weight", self.w["token_embd.weight"])
        c = self.cfg
        if c.n_head % c.n_head_kv or c.n_embd % c.n_head or c.n_rot % 2 or c.n_rot > c.head_dim:
            raise ValueError(f"inconsistent config {c}")
        # Optional per-dimension RoPE frequency divisors (llama 3.x files carry them as rope_freqs.weight).
        self.rope_freqs = self.w["rope_freqs.weight"].w if "rope_freqs.weight" in self.w else None

    def meta(self, key, default=None):
        return _meta(self.metadata, key, default)


class Runner:
    """One forward-pass configuration over a LlamaModel, with its KV cache."""

    def __init__(self, model: LlamaModel, dtype=np.float32, act_quant: bool = False, max_ctx: int = 1024):
        self.m = model
        self.max_ctx = min(max_ctx, model.cfg.n_ctx)  # KV cache length (the model's full context may be huge)
        self.c = model.cfg
        self.dtype = np.dtype(dtype)
        self.act_quant = act_quant
        c = self.c
        i = np.arange(c.n_rot // 2, dtype=np.float64)
        theta = c.rope_base ** (-2.0 * i / c.n_rot)
        if model.rope_freqs is not None:
            theta = theta / model.rope_freqs.astype(np.float64)[: c.n_rot // 2]
        self.theta = theta
        self.reset()

    def reset(self):
        c = self.c
        # [layer, kv head, position, head_dim]
        self.k_cache = np.zeros((c.n_layer, c.n_head_kv, self.max_ctx, c.head_dim), self.dtype)
        self.v_cache = np.zeros_like(self.k_cache)
        self.n_past = 0

    # -- building blocks ------------------------------------------------------------------------------------------
    def matmul(self, x: np.ndarray, wt: Weight) -> np.ndarray:
        """x [T, in] -> [T, out] = x @ W^T, with the engine's activation quantization when act_quant."""
        kind = vec_dot_type(wt.type) if self.act_quant else None
        w = wt.as_dtype(self.dtype)
        if kind is None:
            return x @ w.T
        if kind == "q8_k":
            x_hat = fake_quant_q8(x, 256, f16_scale=False)[0]
            return (x_hat.astype(self.dtype) @ w.T).astype(self.dtype)
        x_hat, d, d_f32, qsum = fake_quant_q8(x, 32, f16_scale=True)
        y = x_hat.astype(self.dtype) @ w.T
        if kind == "q8_1":
            # W_deq = d_w*q_w + m, so W_deq . x_hat already holds m * d_x*sum(q_x); the engine uses m * s with
            # s = f16(d_x*sum(q_x)) instead: add the difference. mins [out, nb], s [T, nb].
            s = (d_f32 * qsum).astype(np.float16).astype(np.float32)
            y = y + ((s - d * qsum).astype(self.dtype) @ wt.mins.astype(self.dtype).T)
        return y.astype(self.dtype)

    def rmsnorm(self, x: np.ndarray, wt: Weight) -> np.ndarray:
        ms = np.mean(x * x, axis=-1, keepdims=True)
        return (x / np.sqrt(ms + self.dtype.type(self.c.eps))) * wt.as_dtype(self.dtype)

    def rope(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """x [T, heads, head_dim]; rotates pairs (2i, 2i+1) for 2i < n_rot by angle pos * theta_i."""
        c = self.c
        ang = (pos.astype(np.float64) / c.rope_linear_factor)[:, None] * self.theta[None, :]  # [T, n_rot/2]
        cos = np.cos(ang).astype(self.dtype)[:, None, :]
        sin = np.sin(ang).astype(self.dtype)[:, None, :]
        out = x.copy()
        x0 = x[..., 0:c.n_rot:2]
        x1 = x[..., 1:c.n_rot:2]
        out[..., 0:c.n_rot:2] = x0 * cos - x1 * sin
        out[..., 1:c.n_rot:2] = x0 * sin + x1 * cos
        return out

    # -- forward --------------------------------------------------------------------------------------------------
    def forward(self, ids, all_logits: bool = True) -> np.ndarray:
        """Run tokens `ids` at positions n_past.. and append them to the cache.

        Returns logits [T, vocab] (or [1, vocab] for the last position when all_logits is False) as float32."""
        c, m = self.c, self.m
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        if n == 0:
            raise ValueError("no tokens")
        if self.n_past + n > self.max_ctx:
            raise ValueError(f"context overflow: {self.n_past} + {n} > {self.max_ctx}")
        if ids.min() < 0 or ids.max() >= c.vocab:
            raise ValueError("token id out of range")
        p0 = self.n_past
        pos = np.arange(p0, p0 + n)
        hd, H, Hkv = c.head_dim, c.n_head, c.n_head_kv
        grp = H // Hkv
        x = m.w["token_embd.weight"].as_dtype(self.dtype)[ids].copy()  # [T, D]
        # Causal mask over the cached keys 0..p0+n: query t may read key s iff s <= p0 + t.
        s_idx = np.arange(p0 + n)
        mask = np.where(s_idx[None, :] <= pos[:, None], 0.0, -np.inf).astype(self.dtype)  # [T, S]
        scale = self.dtype.type(1.0 / math.sqrt(hd))
        for L in range(c.n_layer):
            w = lambda s: m.w[f"blk.{L}.{s}.weight"]  # noqa: E731
            h = self.rmsnorm(x, w("attn_norm"))
            q = self.matmul(h, w("attn_q")).reshape(n, H, hd)
            k = self.matmul(h, w("attn_k")).reshape(n, Hkv, hd)
            v = self.matmul(h, w("attn_v")).reshape(n, Hkv, hd)
            q = self.rope(q, pos)
            k = self.rope(k, pos)
            self.k_cache[L, :, p0:p0 + n] = k.transpose(1, 0, 2)
            self.v_cache[L, :, p0:p0 + n] = v.transpose(1, 0, 2)
            K = self.k_cache[L, :, : p0 + n]  # [Hkv, S, hd]
            V = self.v_cache[L, :, : p0 + n]
            # Query head hq uses kv head hq // grp: view q as [Hkv, grp*T, hd] so one batched matmul per kv head.
            qg = q.transpose(1, 0, 2).reshape(Hkv, grp * n, hd)
            sc = (qg @ K.transpose(0, 2, 1)) * scale  # [Hkv, grp*T, S]
            sc = sc.reshape(Hkv, grp, n, -1) + mask
            sc = sc - sc.max(axis=-1, keepdims=True)
            p = np.exp(sc)
            p /= p.sum(axis=-1, keepdims=True)
            o = p.reshape(Hkv, grp * n, -1) @ V  # [Hkv, grp*T, hd]
            o = o.reshape(H, n, hd).transpose(1, 0, 2).reshape(n, H * hd)
            x = x + self.matmul(o, w("attn_output"))
            h = self.rmsnorm(x, w("ffn_norm"))
            g = self.matmul(h, w("ffn_gate"))
            u = self.matmul(h, w("ffn_up"))
            a = g / (1 + np.exp(-g)) * u  # silu(g) * u
            x = x + self.matmul(a, w("ffn_down"))
        self.n_past += n
        if not all_logits:
            x = x[-1:]
        h = self.rmsnorm(x, m.w["output_norm.weight"])
        return self.matmul(h, m.output).astype(np.float32)


def top2_margin(logits: np.ndarray) -> float:
    """Top-1 minus top-2 logit (0 on an exact tie)."""
    two = np.partition(logits, -2)[-2:]
    return float(two[1] - two[0])


def greedy(runner: Runner, prompt, n_new: int, all_logits: bool = False):
    """Greedy decoding. Returns dict: ids (generated), margins (top-1 margin at each generated step),
    prompt_logits ([len(prompt), vocab] if all_logits else [1, vocab] for the last prompt position),
    step_logits (list of [vocab] for each generated step when all_logits, else only the last step's)."""
    runner.reset()
    lg = runner.forward(prompt, all_logits=all_logits)
    prompt_logits = lg
    cur = lg[-1]
    ids, margins, steps = [], [], []
    for i in range(n_new):
        t = int(np.argmax(cur))
        ids.append(t)
        margins.append(top2_margin(cur))
        if i + 1 == n_new:
            break
        cur = runner.forward([t], all_logits=False)[0]
        if all_logits or i + 2 == n_new:
            steps.append(cur)
    if not all_logits:
        steps = steps[-1:]
    return {"ids": ids, "margins": margins, "prompt_logits": prompt_logits, "step_logits": steps}


def _unpack_blocks(t: T, raw: np.ndarray):
    """Decode raw ggml blocks [rows, nb, bytes] into (d [rows, nb], m [rows, nb] or None, q [rows, nb, 32] ints)
    with value = d * q + m (m = 0 for symmetric types). Layouts (ggml/GGUF): Q4_0 = d f16, 16 bytes of nibbles
    (element j in the low nibble of byte j, element j+16 in its high nibble), value (nib - 8) * d; Q4_1 = d, m f16,
    nibbles; Q5_0 = d f16, qh u32 (bit j = 5th bit of element j), nibbles, value (q - 16) * d; Q5_1 = d, m, qh,
    nibbles; Q8_0 = d f16, 32 int8."""
    f16 = lambda a: np.ascontiguousarray(a).view(np.float16)[..., 0].astype(np.float64)  # noqa: E731
    d = f16(raw[..., 0:2])
    m = f16(raw[..., 2:4]) if t in (T.Q4_1, T.Q5_1) else None
    if t == T.Q8_0:
        return d, None, np.ascontiguousarray(raw[..., 2:34]).view(np.int8).astype(np.int64)
    off = 4 if m is not None else 2
    qh = None
    if t in (T.Q5_0, T.Q5_1):
        qh = np.ascontiguousarray(raw[..., off:off + 4]).view("<u4")[..., 0].astype(np.int64)
        off += 4
    qs = raw[..., off:off + 16].astype(np.int64)
    q = np.concatenate([qs & 15, qs >> 4], axis=-1)
    if qh is not None:
        q = q | (((qh[..., None] >> np.arange(32)) & 1) << 4)
    if t == T.Q4_0:
        q = q - 8
    elif t == T.Q5_0:
        q = q - 16
    return d, m, q


def integer_dot_check(model: LlamaModel, rows: int = 3, seed: int = 0) -> float:
    """Cross-check of the engine emulation: for every Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 weight, compare Runner.matmul
    (dequantize-then-float-matmul with fake-quantized activations) with the integer block dot product computed
    here from the raw bytes (sum_b d_w*d_x*sum(q_w*q_x) + m_w*s_x). Returns the max relative difference."""
    rng = np.random.default_rng(seed)
    r = Runner(model, np.float64, act_quant=True)
    worst = 0.0
    for wt in model.w.values():
        if wt.type not in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
            continue
        out, n = wt.shape
        raw = np.asarray(model.tensors[wt.name].data).reshape(out, n // 32, -1)
        d, m, q = _unpack_blocks(wt.type, raw)
        x = (rng.standard_normal((rows, n)) * np.exp(rng.standard_normal((rows, n)))).astype(np.float32)
        _, dx, dx32, _ = fake_quant_q8(x, 32, f16_scale=True)
        xb = x.reshape(rows, n // 32, 32)
        inv = np.where(dx32 > 0, np.float32(1) / np.where(dx32 > 0, dx32, 1), 0).astype(np.float32)
        qx = np.clip(_round_away(xb * inv[..., None]), -127, 127).astype(np.int64)
        y = np.einsum("ob,tb,obk,tbk->to", d, dx.astype(np.float64), q, qx)
        if m is not None:
            s = (dx32 * qx.sum(-1)).astype(np.float16).astype(np.float64)
            y = y + np.einsum("ob,tb->to", m, s)
        got = r.matmul(x.astype(np.float64), wt)
        worst = max(worst, float(np.abs(got - y).max() / (np.abs(y).max() + 1e-30)))
    return worst


def _softmax64(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def compare_logits(ref: np.ndarray, got: np.ndarray) -> dict:
    """Per-position comparison of logits [P, vocab]: the metrics the Rust tests bound. Returns arrays [P]."""
    ref = ref.astype(np.float64)
    got = got.astype(np.float64)
    d = np.abs(ref - got)
    # A shift common to every logit does not change the distribution: also measure the difference minus its mean.
    dc = (got - ref) - (got - ref).mean(axis=-1, keepdims=True)
    pr, pg = _softmax64(ref), _softmax64(got)
    kl = (pr * (np.log(pr + 1e-300) - np.log(pg + 1e-300))).sum(axis=-1)  # KL(ref || got)
    order = np.argsort(-ref, axis=-1)
    i1, i2 = order[:, 0], order[:, 1]
    rows = np.arange(len(ref))
    margin_ref = ref[rows, i1] - ref[rows, i2]
    margin_got = got[rows, i1] - got[rows, i2]
    got_top5 = np.argsort(-got, axis=-1)[:, :5]
    return {
        "max_abs": d.max(axis=-1),
        "rms": np.sqrt((d ** 2).mean(axis=-1)),
        "centered_max_abs": np.abs(dc).max(axis=-1),
        "centered_rms": np.sqrt((dc ** 2).mean(axis=-1)),
        "kl": kl,
        "margin_ref": margin_ref,
        "margin_change": np.abs(margin_ref - margin_got),
        "top1_same": got.argmax(axis=-1) == i1,
        "ref_top1_in_top5": (got_top5 == i1[:, None]).any(axis=-1),
    }


def act_quant_study(model: LlamaModel, prompts, verbose=True, runner=None):
    """How far the engine's arithmetic (Q8 activations, float32) can move the logits away from the exact model.

    Compares the exact float64 forward with three emulations over every position of `prompts`: float32 batched
    prompt, float32 one token at a time, float64 batched. Rounding an activation to Q8 is discontinuous, so a 1e-7
    change upstream can flip a rounding and the flips cascade: the three emulations differ from each other about as
    much as from the exact model. The engine is one more such draw, so it can only be held to the statistical bounds
    measured here (with headroom), not to bit-level agreement with the emulation. Returns a JSON-able dict.
    `runner`: the Runner class of the model's architecture (default: this module's llama Runner)."""
    Runner = runner or globals()["Runner"]  # noqa: N806
    exact = Runner(model, np.float64, act_quant=False)
    f32 = Runner(model, np.float32, act_quant=False)
    variants = {
        "q8act_f32_batch": (Runner(model, np.float32, act_quant=True), False),
        "q8act_f32_tokenwise": (Runner(model, np.float32, act_quant=True), True),
        "q8act_f64_batch": (Runner(model, np.float64, act_quant=True), False),
    }
    acc = {k: [] for k in variants}
    spread = 0.0  # max |logit| difference between any two emulation variants
    f32_diff = 0.0
    stds = []
    for p in prompts:
        exact.reset()
        f32.reset()
        a = exact.forward(p)
        stds.append(a.std(axis=-1))
        f32_diff = max(f32_diff, float(np.abs(a - f32.forward(p)).max()))
        outs = []
        for k, (r, tokenwise) in variants.items():
            r.reset()
            b = np.concatenate([r.forward([t]) for t in p]) if tokenwise else r.forward(p)
            acc[k].append(compare_logits(a, b))
            outs.append(b)
        spread = max(spread, max(float(np.abs(x - y).max()) for x in outs for y in outs))
    out = {"positions": int(sum(len(p) for p in prompts)), "f32_vs_f64_max_abs": f32_diff,
           "logit_std_mean": float(np.concatenate(stds).mean()), "q8act_variants_spread_max_abs": spread}
    for k, lst in acc.items():
        cat = {m: np.concatenate([x[m] for x in lst]) for m in lst[0]}
        flipped = ~cat["top1_same"]
        out[k] = {
            "max_abs": float(cat["max_abs"].max()),
            "max_pos_rms": float(cat["rms"].max()),
            "mean_pos_rms": float(cat["rms"].mean()),
            "centered_max_abs": float(cat["centered_max_abs"].max()),
            "centered_max_pos_rms": float(cat["centered_rms"].max()),
            "max_kl": float(cat["kl"].max()),
            "mean_kl": float(cat["kl"].mean()),
            "max_margin_change": float(cat["margin_change"].max()),
            "top1_agree": f"{int(cat['top1_same'].sum())}/{len(flipped)}",
            "max_ref_margin_where_top1_flipped": float(cat["margin_ref"][flipped].max()) if flipped.any() else 0.0,
            "ref_top1_in_top5": f"{int(cat['ref_top1_in_top5'].sum())}/{len(flipped)}",
        }
    if verbose:
        print("act_quant_study:", json.dumps(out, indent=1), flush=True)
    return out


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--ids", help="comma-separated prompt token ids")
    ap.add_argument("-n", type=int, default=16)
    ap.add_argument("--measure", action="store_true", help="act-quant study over the given --ids")
    args = ap.parse_args(argv)
    t0 = time.time()
    model = LlamaModel(args.model)
    print(f"loaded {args.model} in {time.time() - t0:.1f}s: {model.cfg}")
    ids = [int(s) for s in args.ids.split(",")] if args.ids else [0]
    if args.measure:
        act_quant_study(model, [ids])
    r = greedy(Runner(model), ids, args.n)
    print("greedy:", r["ids"])
    print("margins:", [round(x, 3) for x in r["margins"]])
    if model.tokens:
        print("text:", "".join(model.tokens[i] for i in r["ids"]))


if __name__ == "__main__":
    main(sys.argv[1:])
