"""Independent numpy reference for GGUF models of the `qwen2` and `qwen3` architectures (written here from the
models' math; shares llama_ref.py's weight loading, matmul emulation and metrics).

Both are the llama decoder (RMSNorm, GQA attention, SiLU-gated FFN) with two changes:
  * RoPE in the NEOX layout: dims (i, i + n_rot/2) of each head rotate by p * base^(-2i / n_rot) (HF's rotate-half
    on un-permuted Q/K rows; llama.cpp does not permute Q/K for these architectures);
  * qwen2: Q, K and V projections carry biases (blk.N.attn_{q,k,v}.bias), added after the matmul;
    qwen3: no biases; per-head RMSNorm of q and k (blk.N.attn_{q,k}_norm.weight, length head_dim) before RoPE,
    and head_dim = attention.key_length, which may differ from embedding_length / head_count.
Logits: output.weight, or token_embd.weight when tied.
"""
from __future__ import annotations

import math

import numpy as np

import llama_ref
from llama_ref import Config, Weight, _meta

ARCHS = ("qwen2", "qwen3")


class QwenModel:
    def __init__(self, path: str):
        import gguf
        r = gguf.GGUFReader(path)
        arch = _meta(r, "general.architecture")
        if arch not in ARCHS:
            raise ValueError(f"{path}: architecture {arch!r}, this reference implements {ARCHS}")
        self.arch = arch
        a = arch + "."
        if _meta(r, a + "rope.scaling.type", "none") != "none":
            raise ValueError("RoPE scaling not implemented")
        self.tensors = {t.name: t for t in r.tensors}
        n_embd = int(_meta(r, a + "embedding_length"))
        n_head = int(_meta(r, a + "attention.head_count"))
        self.head_dim = int(_meta(r, a + "attention.key_length", n_embd // n_head))
        self.cfg = Config(
            n_layer=int(_meta(r, a + "block_count")),
            n_embd=n_embd,
            n_ff=int(_meta(r, a + "feed_forward_length")),
            n_head=n_head,
            n_head_kv=int(_meta(r, a + "attention.head_count_kv", n_head)),
            n_ctx=int(_meta(r, a + "context_length")),
            rope_base=float(_meta(r, a + "rope.freq_base", 10000.0)),
            n_rot=int(_meta(r, a + "rope.dimension_count", self.head_dim)),
            eps=float(_meta(r, a + "attention.layer_norm_rms_epsilon")),
            vocab=int(self.tensors["token_embd.weight"].shape[1]),
        )
        self.metadata = r
        self.w = {name: Weight(name, t) for name, t in self.tensors.items()}
        self.output = self.w.get("output.weight", self.w["token_embd.weight"])
        self.rope_freqs = None


class Runner(llama_ref.Runner):
    def reset(self):
        c, hd = self.c, self.m.head_dim
        self.k_cache = np.zeros((c.n_layer, c.n_head_kv, self.max_ctx, hd), self.dtype)
        self.v_cache = np.zeros_like(self.k_cache)
        self.n_past = 0

    def rope_neox(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """x [T, heads, head_dim]: rotates (i, i + n_rot/2) for i < n_rot/2 by pos * theta_i."""
        half = self.c.n_rot // 2
        ang = pos.astype(np.float64)[:, None] * self.theta[None, :]
        cos = np.cos(ang).astype(self.dtype)[:, None, :]
        sin = np.sin(ang).astype(self.dtype)[:, None, :]
        a, b = x[..., :half], x[..., half:2 * half]
        out = x.copy()
        out[..., :half] = a * cos - b * sin
        out[..., half:2 * half] = a * sin + b * cos
        return out

    def _proj(self, h, L, name):
        y = self.matmul(h, self.m.w[f"blk.{L}.{name}.weight"])
        b = self.m.w.get(f"blk.{L}.{name}.bias")
        return y if b is None else y + b.as_dtype(self.dtype)

    def forward(self, ids, all_logits: bool = True) -> np.ndarray:
        c, m = self.c, self.m
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        if n == 0 or self.n_past + n > self.max_ctx or ids.min() < 0 or ids.max() >= c.vocab:
            raise ValueError("bad token ids or context overflow")
        p0 = self.n_past
        pos = np.arange(p0, p0 + n)
        hd, H, Hkv = m.head_dim, c.n_head, c.n_head_kv
        grp = H // Hkv
        x = m.w["token_embd.weight"].as_dtype(self.dtype)[ids].copy()
        s_idx = np.arange(p0 + n)
        mask = np.where(s_idx[None, :] <= pos[:, None], 0.0, -np.inf).astype(self.dtype)
        scale = self.dtype.type(1.0 / math.sqrt(hd))
        for L in range(c.n_layer):
            w = lambda s: m.w[f"blk.{L}.{s}.weight"]  # noqa: E731
            h = self.rmsnorm(x, w("attn_norm"))
            q = self._proj(h, L, "attn_q").reshape(n, H, hd)
            k = self._proj(h, L, "attn_k").reshape(n, Hkv, hd)
            v = self._proj(h, L, "attn_v").reshape(n, Hkv, hd)
            if f"blk.{L}.attn_q_norm.weight" in m.w:
                q = self.rmsnorm(q, w("attn_q_norm"))
                k = self.rmsnorm(k, w("attn_k_norm"))
            q = self.rope_neox(q, pos)
            k = self.rope_neox(k, pos)
            self.k_cache[L, :, p0:p0 + n] = k.transpose(1, 0, 2)
            self.v_cache[L, :, p0:p0 + n] = v.transpose(1, 0, 2)
            K = self.k_cache[L, :, : p0 + n]
            V = self.v_cache[L, :, : p0 + n]
            qg = q.transpose(1, 0, 2).reshape(Hkv, grp * n, hd)
            sc = (qg @ K.transpose(0, 2, 1)) * scale
            sc = sc.reshape(Hkv, grp, n, -1) + mask
            sc = sc - sc.max(axis=-1, keepdims=True)
            p = np.exp(sc)
            p /= p.sum(axis=-1, keepdims=True)
            o = (p.reshape(Hkv, grp * n, -1) @ V).reshape(H, n, hd).transpose(1, 0, 2).reshape(n, H * hd)
            x = x + self.matmul(o, w("attn_output"))
            h = self.rmsnorm(x, w("ffn_norm"))
            g = self.matmul(h, w("ffn_gate"))
            u = self.matmul(h, w("ffn_up"))
            x = x + self.matmul(g / (1 + np.exp(-g)) * u, w("ffn_down"))
        self.n_past += n
        if not all_logits:
            x = x[-1:]
        h = self.rmsnorm(x, m.w["output_norm.weight"])
        return self.matmul(h, m.output).astype(np.float32)
