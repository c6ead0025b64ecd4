"""Independent numpy reference for GGUF models of the `phi3` architecture (written here from the model's math:
the published Phi-3 model definition and its GGUF layout; shares llama_ref.py's weight loading and metrics).

Phi-3 is the llama decoder (RMSNorm, GQA attention, SiLU-gated FFN) with:
  * fused matrices: blk.N.attn_qkv.weight holds the Q, K and V rows stacked ([q_dim + 2 kv_dim, D] in numpy order,
    Q first), blk.N.ffn_up.weight holds gate then up ([2 F, D]: rows 0..F the gate, F..2F the up projection, as
    HF's gate_up_proj split by chunk(2)): ffn(h) = Wdown (silu(gate h) * up h);
  * RoPE in the NEOX layout (dims (i, i + n_rot/2) rotate), theta_i = p * base^(-2i / n_rot);
  * LongRoPE, when the file has rope_factors_long.weight / rope_factors_short.weight (n_rot/2 each): theta_i is
    divided by the factor of pair i, and cos/sin are multiplied by rope.scaling.attn_factor (HF: the "attention
    factor" sqrt(1 + ln(s) / ln(original context)) applied to cos and sin). Which factor set: the long one when
    the context (KV cache length) exceeds rope.scaling.original_context_length, else the short one (llama.cpp's
    rule, fixed per context; HF switches on the running sequence length, which would change the rotation of
    tokens already cached);
  * attention.sliding_window W (when present): in every layer, query p sees keys s with p - s < W;
  * attention scale 1/sqrt(head_dim); logits from output.weight (Phi-3 does not tie them).
"""
from __future__ import annotations

import math

import numpy as np

import llama_ref
from llama_ref import Config, Weight, _meta


class _Slice:
    """Rows of a fused Weight as a weight of its own (F32/F16 weights only: the tiny fixtures use no quantized
    fused matrices, so the Q8-activation emulation is not needed here)."""

    def __init__(self, name, w: np.ndarray):
        self.name, self.w, self.type, self.mins = name, np.ascontiguousarray(w), None, None
        self._cast = {}

    def as_dtype(self, dtype):
        if np.dtype(dtype) == np.float32:
            return self.w
        return self._cast.setdefault(dtype, self.w.astype(dtype))


class Phi3Model:
    def __init__(self, path: str):
        import gguf
        r = gguf.GGUFReader(path)
        arch = _meta(r, "general.architecture")
        if arch != "phi3":
            raise ValueError(f"{path}: architecture {arch!r}, this reference implements 'phi3'")
        a = "phi3."
        self.tensors = {t.name: t for t in r.tensors}
        n_embd = int(_meta(r, a + "embedding_length"))
        n_head = int(_meta(r, a + "attention.head_count"))
        self.head_dim = n_embd // n_head
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
        f = r.fields.get(a + "attention.sliding_window")
        self.sliding_window = int(f.contents()) if f is not None else 0
        f = r.fields.get(a + "rope.scaling.attn_factor")
        self.attn_factor = float(f.contents()) if f is not None else 1.0
        f = r.fields.get(a + "rope.scaling.original_context_length")
        self.orig_ctx = int(f.contents()) if f is not None else 0
        self.metadata = r
        self.w = {name: Weight(name, t) for name, t in self.tensors.items()}
        c, hd = self.cfg, self.head_dim
        q_dim, kv_dim = c.n_head * hd, c.n_head_kv * hd
        for L in range(c.n_layer):
            p = f"blk.{L}."
            qkv = self.w.pop(p + "attn_qkv.weight").w
            assert qkv.shape[0] == q_dim + 2 * kv_dim, qkv.shape
            self.w[p + "attn_q.weight"] = _Slice(p + "attn_q", qkv[:q_dim])
            self.w[p + "attn_k.weight"] = _Slice(p + "attn_k", qkv[q_dim:q_dim + kv_dim])
            self.w[p + "attn_v.weight"] = _Slice(p + "attn_v", qkv[q_dim + kv_dim:])
            gu = self.w.pop(p + "ffn_up.weight").w
            assert gu.shape[0] == 2 * c.n_ff, gu.shape
            self.w[p + "ffn_gate.weight"] = _Slice(p + "ffn_gate", gu[:c.n_ff])
            self.w[p + "ffn_up.weight"] = _Slice(p + "ffn_up", gu[c.n_ff:])
        self.output = self.w["output.weight"]
        self.long = self.w["rope_factors_long.weight"].w if "rope_factors_long.weight" in self.w else None
        self.short = self.w["rope_factors_short.weight"].w if "rope_factors_short.weight" in self.w else None
        self.rope_freqs = None  # the Runner picks LongRoPE factors itself (they depend on the context)


class Runner(llama_ref.Runner):
    """`max_ctx` is the context: it picks the LongRoPE factor set."""

    def __init__(self, model: Phi3Model, dtype=np.float32, max_ctx: int = 1024):
        super().__init__(model, dtype, act_quant=False, max_ctx=max_ctx)
        m = model
        if m.long is not None:
            factors = m.long if self.max_ctx > m.orig_ctx else m.short
            self.theta = self.theta / factors.astype(np.float64)
        self.mscale = m.attn_factor

    def reset(self):
        c, hd = self.c, self.m.head_dim
        self.k_cache = np.zeros((c.n_layer, c.n_head_kv, self.max_ctx, hd), self.dtype)
        self.v_cache = np.zeros_like(self.k_cache)
        self.n_past = 0

    def rope_neox(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        half = self.c.n_rot // 2
        ang = pos.astype(np.float64)[:, None] * self.theta[None, :]
        cos = (np.cos(ang) * self.mscale).astype(self.dtype)[:, None, :]
        sin = (np.sin(ang) * self.mscale).astype(self.dtype)[:, None, :]
        a, b = x[..., :half], x[..., half:2 * half]
        out = x.copy()
        out[..., :half] = a * cos - b * sin
        out[..., half:2 * half] = a * sin + b * cos
        return out

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
        visible = s_idx[None, :] <= pos[:, None]
        if m.sliding_window:
            visible &= pos[:, None] - s_idx[None, :] < m.sliding_window
        mask = np.where(visible, 0.0, -np.inf).astype(self.dtype)
        scale = self.dtype.type(1.0 / math.sqrt(hd))
        for L in range(c.n_layer):
            w = lambda s: m.w[f"blk.{L}.{s}.weight"]  # noqa: E731
            h = self.rmsnorm(x, w("attn_norm"))
            q = self.rope_neox(self.matmul(h, w("attn_q")).reshape(n, H, hd), pos)
            k = self.rope_neox(self.matmul(h, w("attn_k")).reshape(n, Hkv, hd), pos)
            v = self.matmul(h, w("attn_v")).reshape(n, Hkv, hd)
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
