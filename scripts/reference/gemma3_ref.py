"""Independent numpy reference for GGUF models of the `gemma3` architecture (written here from the model's math;
shares the weight loading, Q8-activation emulation and comparison metrics of llama_ref.py).

Weights come from the GGUF file through PyPI `gguf` (GGUFReader + `gguf.quants.dequantize`).

Architecture facts (Gemma 3 technical report / the published HF config of gemma-3-270m, and the GGUF metadata):
    x = token_embd[id] * sqrt(D)                       (D = embedding_length; sqrt taken in float32)
    per layer:  h = RMSNorm(x) * attn_norm
                q, k, v = Wq h, Wk h, Wv h             (head_dim = attention.key_length, may differ from D / H)
                q, k = RMSNorm(q_head) * attn_q_norm, RMSNorm(k_head) * attn_k_norm     (per head, over head_dim)
                q, k = RoPE_neox(q, p, base), RoPE_neox(k, p, base)
                        NEOX layout: dims (i, i + head_dim/2) rotate by p * base^(-2i / head_dim);
                        base = 10000 on sliding-window (local) layers, rope.freq_base (1e6) on global layers
                attention: GQA, scores * 1/sqrt(key_length) (query_pre_attn_scalar = key_length), causal; local
                        layers see only keys s with p - s < sliding_window
                x = x + RMSNorm(Wo attn) * post_attention_norm
                h = RMSNorm(x) * ffn_norm
                x = x + RMSNorm(Wdown (gelu_tanh(Wgate h) * Wup h)) * post_ffw_norm
    logits = token_embd RMSNorm(x) * output_norm      (tied; Gemma 3 has no final logit soft-cap)
Layer pattern: every 6th layer (1-based: layers 6, 12, 18, ...) is global, the others sliding-window (Gemma 3's 5:1
local/global interleave; the GGUF carries no key for it).
RMSNorm weights: Gemma's checkpoints store w and compute x * (1 + w); llama.cpp's converter stores (1 + w) in the
GGUF. Checked on gemma-3-270m-q4_k_m.gguf: blk.0.attn_norm lies in [7.4, 62.5], ffn_norm has exact zeros (w = -1)
and output_norm mean 26: the weights are used as stored, no +1 here (`Gemma3Model.check_norms_shifted` also
compares the perplexity of a sentence under both readings).
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

import llama_ref
from llama_ref import Config, Weight, _meta  # noqa: F401

GLOBAL_EVERY = 6
ROPE_BASE_LOCAL = 10000.0


class Gemma3Model:
    def __init__(self, path: str):
        import gguf
        r = gguf.GGUFReader(path)
        arch = _meta(r, "general.architecture")
        if arch != "gemma3":
            raise ValueError(f"{path}: architecture {arch!r}, this reference implements 'gemma3'")
        a = "gemma3."
        if _meta(r, a + "rope.scaling.type", "none") != "none":
            raise ValueError("RoPE scaling not implemented")
        if a + "final_logit_softcapping" in r.fields or a + "attn_logit_softcapping" in r.fields:
            raise ValueError("soft-capping is not part of gemma3")
        self.tensors = {t.name: t for t in r.tensors}
        self.tokens = list(_meta(r, "tokenizer.ggml.tokens", []))
        n_embd = int(_meta(r, a + "embedding_length"))
        n_head = int(_meta(r, a + "attention.head_count"))
        self.head_dim = int(_meta(r, a + "attention.key_length"))
        if int(_meta(r, a + "attention.value_length", self.head_dim)) != self.head_dim:
            raise ValueError("value_length != key_length")
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
        self.sliding_window = int(_meta(r, a + "attention.sliding_window"))
        self.metadata = r
        self.w = {name: Weight(name, t) for name, t in self.tensors.items()}
        self.output = self.w.get("output.weight", self.w["token_embd.weight"])
        self.rope_freqs = None
        if self.cfg.n_rot != self.head_dim:
            raise ValueError("partial RoPE not expected in gemma3")

    def meta(self, key, default=None):
        return _meta(self.metadata, key, default)

    def is_sliding(self, layer: int) -> bool:
        return (layer + 1) % GLOBAL_EVERY != 0


class Runner(llama_ref.Runner):
    """gemma3 forward pass; same interface as llama_ref.Runner (so llama_ref.greedy / compare_logits apply)."""

    def __init__(self, model: Gemma3Model, dtype=np.float32, act_quant: bool = False, max_ctx: int = 1024,
                 norm_offset: float = 0.0):
        self.norm_offset = norm_offset  # 1.0 only for check_norms_shifted's "weights not yet shifted" hypothesis
        super().__init__(model, dtype, act_quant, max_ctx)

    def reset(self):
        c, hd = self.c, self.m.head_dim
        self.k_cache = np.zeros((c.n_layer, c.n_head_kv, self.max_ctx, hd), self.dtype)
        self.v_cache = np.zeros_like(self.k_cache)
        self.n_past = 0

    def rmsnorm(self, x, wt):
        ms = np.mean(x * x, axis=-1, keepdims=True)
        w = wt.as_dtype(self.dtype) + self.dtype.type(self.norm_offset)
        return (x / np.sqrt(ms + self.dtype.type(self.c.eps))) * w

    def rope_neox(self, x: np.ndarray, pos: np.ndarray, base: float) -> np.ndarray:
        """x [T, heads, head_dim]: rotates (i, i + half) by pos * base^(-2i / n_rot)."""
        half = self.c.n_rot // 2
        theta = base ** (-2.0 * np.arange(half, dtype=np.float64) / self.c.n_rot)
        ang = pos.astype(np.float64)[:, None] * theta[None, :]
        cos = np.cos(ang).astype(self.dtype)[:, None, :]
        sin = np.sin(ang).astype(self.dtype)[:, None, :]
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
        x = m.w["token_embd.weight"].as_dtype(self.dtype)[ids] * self.dtype.type(np.sqrt(np.float32(c.n_embd)))
        s_idx = np.arange(p0 + n)
        causal = s_idx[None, :] <= pos[:, None]
        local = causal & (pos[:, None] - s_idx[None, :] < m.sliding_window)
        masks = {False: np.where(causal, 0.0, -np.inf).astype(self.dtype),
                 True: np.where(local, 0.0, -np.inf).astype(self.dtype)}
        scale = self.dtype.type(1.0 / math.sqrt(hd))
        for L in range(c.n_layer):
            w = lambda s: m.w[f"blk.{L}.{s}.weight"]  # noqa: E731
            sliding = m.is_sliding(L)
            base = ROPE_BASE_LOCAL if sliding else c.rope_base
            h = self.rmsnorm(x, w("attn_norm"))
            q = self.matmul(h, w("attn_q")).reshape(n, H, hd)
            k = self.matmul(h, w("attn_k")).reshape(n, Hkv, hd)
            v = self.matmul(h, w("attn_v")).reshape(n, Hkv, hd)
            q = self.rope_neox(self.rmsnorm(q, w("attn_q_norm")), pos, base)
            k = self.rope_neox(self.rmsnorm(k, w("attn_k_norm")), pos, base)
            self.k_cache[L, :, p0:p0 + n] = k.transpose(1, 0, 2)
            self.v_cache[L, :, p0:p0 + n] = v.transpose(1, 0, 2)
            K = self.k_cache[L, :, : p0 + n]
            V = self.v_cache[L, :, : p0 + n]
            qg = q.transpose(1, 0, 2).reshape(Hkv, grp * n, hd)
            sc = (qg @ K.transpose(0, 2, 1)) * scale
            sc = sc.reshape(Hkv, grp, n, -1) + masks[sliding]
            sc = sc - sc.max(axis=-1, keepdims=True)
            p = np.exp(sc)
            p /= p.sum(axis=-1, keepdims=True)
            o = (p.reshape(Hkv, grp * n, -1) @ V).reshape(H, n, hd).transpose(1, 0, 2).reshape(n, H * hd)
            x = x + self.rmsnorm(self.matmul(o, w("attn_output")), w("post_attention_norm"))
            h = self.rmsnorm(x, w("ffn_norm"))
            g = self.matmul(h, w("ffn_gate"))
            u = self.matmul(h, w("ffn_up"))
            a = 0.5 * g * (1 + np.tanh(math.sqrt(2 / math.pi) * (g + 0.044715 * g * g * g))) * u
            x = x + self.rmsnorm(self.matmul(a, w("ffn_down")), w("post_ffw_norm"))
        self.n_past += n
        if not all_logits:
            x = x[-1:]
        h = self.rmsnorm(x, m.w["output_norm.weight"])
        return self.matmul(h, m.output).astype(np.float32)


def mean_nll(runner: Runner, ids) -> float:
    """Mean negative log-likelihood of ids[1:] given the prefix (teacher-forced)."""
    runner.reset()
    lg = runner.forward(ids).astype(np.float64)[:-1]
    lg = lg - lg.max(axis=-1, keepdims=True)
    lp = lg - np.log(np.exp(lg).sum(axis=-1, keepdims=True))
    return float(-lp[np.arange(len(ids) - 1), ids[1:]].mean())


def check_norms_shifted(model: Gemma3Model, ids) -> tuple[float, float]:
    """Mean NLL of a natural sentence with the norm weights as stored vs with +1 added (the unshifted-checkpoint
    reading). The stored reading must be far better for the no-offset choice above to hold."""
    return mean_nll(Runner(model), ids), mean_nll(Runner(model, norm_offset=1.0), ids)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--ids", help="comma-separated prompt token ids")
    ap.add_argument("-n", type=int, default=16)
    args = ap.parse_args(argv)
    t0 = time.time()
    model = Gemma3Model(args.model)
    print(f"loaded {args.model} in {time.time() - t0:.1f}s: {model.cfg}")
    ids = [int(s) for s in args.ids.split(",")] if args.ids else [2]
    r = llama_ref.greedy(Runner(model), ids, args.n)
    print("greedy:", r["ids"])
    print("margins:", [round(x, 3) for x in r["margins"]])
    if model.tokens:
        print("text:", "".join(model.tokens[i] for i in r["ids"]))


if __name__ == "__main__":
    main(sys.argv[1:])
