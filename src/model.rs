//! The transformer: config from GGUF metadata, weights as views into the model buffer, and the forward pass.
//!
//! One config-driven decoder covers the llama family (llama, and the knobs qwen2/qwen3/gemma3/phi3 need: QKV bias,
//! QK-norm, post-norms, GELU, embedding scale, NEOX RoPE, RoPE frequency factors, sliding-window layers, fused
//! QKV and gate/up matrices). All scratch buffers are allocated once in [`State`]; `forward` allocates nothing but
//! the KV cache's growth to positions it has not held yet ([`KvCache::reserve`]).
//!
//! Every tensor of the file must be read by the loader ([`TensorReader`]): a tensor it does not know (Llama 3's
//! `rope_freqs` before it was read, a bias, an extra norm) changes the model, and running without it would give
//! wrong text with no error, so such a file is refused naming the tensor.

use crate::gguf::Gguf;
use crate::mark;
use crate::par::{Disjoint, Pool, Team};
use crate::profile::Profile;
use crate::project::{project, Out, MAX_OUTS, PARALLEL_TOKENS};
use crate::tensor::QTensor;
use crate::{Error, Result};
use crate::kv_cache::KvCache;
use pocketlm_simd::kv::{self, KvRows, KvType};
use pocketlm_simd::{self as k, ops, GgmlType};
use std::collections::HashSet;

/// Tokens processed together in prefill: weights are streamed once per batch instead of once per token.
pub const MAX_BATCH: usize = 32;

/// Row chunks per thread of a layer's matrix products: a little slack for a thread that falls behind. Prefill
/// chunks are long (every chunk does all the batch's tokens), so more of them cost little and even out better.
fn chunks_per_thread(n: usize) -> usize {
    if n > 1 {
        4
    } else {
        2
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Silu,
    GeluTanh,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub arch: String,
    pub n_layers: usize,
    pub dim: usize,
    pub ffn_dim: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    /// Context length the model was trained with.
    pub train_context: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    /// RoPE base of sliding-window layers (gemma3); equals `rope_base` elsewhere.
    pub rope_base_local: f32,
    pub rope_freq_scale: f32,
    /// Multiplies RoPE's cos and sin (`rope.scaling.attn_factor`, Phi-3 LongRoPE's attention factor; 1 elsewhere).
    pub rope_attn_factor: f32,
    /// `rope.scaling.original_context_length`: with LongRoPE factors, a context longer than this uses the long
    /// factors, else the short ones (llama.cpp's rule; 0 when the file has no such key).
    pub rope_orig_context: usize,
    /// Dimensions of each head that RoPE rotates.
    pub n_rot: usize,
    /// NEOX layout rotates (i, i + n_rot/2); the "normal" llama layout rotates (2i, 2i+1).
    pub rope_neox: bool,
    pub activation: Activation,
    /// Multiply token embeddings by this (gemma: sqrt(dim)).
    pub embed_scale: f32,
    /// Query scale before the softmax (1/sqrt(head_dim) unless the metadata says otherwise).
    pub attn_scale: f32,
    /// Sliding attention window for local layers, 0 = every layer global.
    pub sliding_window: usize,
    /// Every `sliding_pattern`-th layer (1-based) is global when `sliding_window > 0`; 0: every layer slides.
    pub sliding_pattern: usize,
}

fn usize_of(v: u64, what: &str, max: u64) -> Result<usize> {
    if v == 0 || v > max {
        return Err(Error::Format(format!("{what} = {v} is out of range (1..={max})")));
    }
    Ok(v as usize)
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let arch = g.architecture()?.to_string();
        let (rope_neox, activation, gemma) = match arch.as_str() {
            "llama" => (false, Activation::Silu, false),
            // Gemma 3: NEOX RoPE, GELU-tanh gate, embeddings scaled by sqrt(dim), QK-norm and post-norms, 5:1
            // sliding-window/global layers (checked against scripts/reference/gemma3_ref.py).
            "gemma3" => (true, Activation::GeluTanh, true),
            // Qwen 2 / 2.5 (Q/K/V biases) and Qwen 3 (per-head Q/K RMSNorm, head_dim = key_length): the llama
            // decoder with NEOX RoPE (checked on tiny random-weight files against scripts/reference/qwen_ref.py).
            "qwen2" | "qwen3" => (true, Activation::Silu, false),
            // Phi-3: the llama decoder with NEOX RoPE, fused QKV and gate/up matrices, LongRoPE factors when the
            // file has them, and a sliding window over every layer (checked against scripts/reference/phi3_ref.py).
            "phi3" => (true, Activation::Silu, false),
            other => {
                return Err(Error::Unsupported(format!(
                    "model architecture '{other}' (pocketlm runs: llama, gemma3, qwen2, qwen3, phi3)"
                )))
            }
        };
        let req = |suffix: &str| -> Result<u64> {
            g.arch_u64(suffix)?.ok_or_else(|| Error::MissingKey(format!("{arch}.{suffix}")))
        };
        let n_layers = usize_of(req("block_count")?, "block_count", 1024)?;
        let dim = usize_of(req("embedding_length")?, "embedding_length", 1 << 16)?;
        let ffn_dim = usize_of(req("feed_forward_length")?, "feed_forward_length", 1 << 18)?;
        let n_heads = usize_of(req("attention.head_count")?, "attention.head_count", 1024)?;
        let n_kv_heads = match g.arch_u64("attention.head_count_kv")? {
            Some(v) => usize_of(v, "attention.head_count_kv", 1024)?,
            None => n_heads,
        };
        if n_heads % n_kv_heads != 0 {
            return Err(Error::Format(format!(
                "attention.head_count {n_heads} is not a multiple of head_count_kv {n_kv_heads}"
            )));
        }
        let head_dim = match g.arch_u64("attention.key_length")? {
            Some(v) => usize_of(v, "attention.key_length", 4096)?,
            None => {
                if dim % n_heads != 0 {
                    return Err(Error::Format(format!("embedding_length {dim} not divisible by {n_heads} heads")));
                }
                dim / n_heads
            }
        };
        if let Some(vl) = g.arch_u64("attention.value_length")? {
            if vl as usize != head_dim {
                return Err(Error::Unsupported(format!("value_length {vl} != key_length {head_dim}")));
            }
        }
        let n_rot = match g.arch_u64("rope.dimension_count")? {
            Some(v) => usize_of(v, "rope.dimension_count", head_dim as u64)?,
            None => head_dim,
        };
        if n_rot % 2 != 0 {
            return Err(Error::Format(format!("rope.dimension_count {n_rot} is odd")));
        }
        let train_context = usize_of(req("context_length")?, "context_length", 1 << 24)?;
        let rms_eps = g.arch_f32("attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5);
        let rope_base = g.arch_f32("rope.freq_base")?.unwrap_or(10000.0);
        let rope_freq_scale = match g.opt_str(&format!("{arch}.rope.scaling.type"))? {
            None | Some("none") => 1.0,
            // Gemma 3's larger models scale only the global layers' RoPE; one scale for all layers would be wrong.
            Some(t) if gemma => return Err(Error::Unsupported(format!("RoPE scaling '{t}' on gemma3"))),
            Some("linear") => 1.0 / g.arch_f32("rope.scaling.factor")?.unwrap_or(1.0),
            Some(other) => return Err(Error::Unsupported(format!("RoPE scaling type '{other}'"))),
        };
        let rope_attn_factor = g.arch_f32("rope.scaling.attn_factor")?.unwrap_or(1.0);
        let rope_orig_context = g.arch_u64("rope.scaling.original_context_length")?.unwrap_or(0) as usize;
        if !(rms_eps > 0.0 && rope_base > 0.0 && rope_freq_scale.is_finite() && rope_freq_scale > 0.0) {
            return Err(Error::Format("non-positive rms epsilon, RoPE base or RoPE scale".into()));
        }
        if !(rope_attn_factor.is_finite() && rope_attn_factor > 0.0) {
            return Err(Error::Format(format!("rope.scaling.attn_factor {rope_attn_factor} is not positive")));
        }
        let vocab_size = g
            .tensor("token_embd.weight")
            .ok_or_else(|| Error::MissingTensor("token_embd.weight".into()))?
            .rows() as usize;
        let embed_scale = if gemma { (dim as f32).sqrt() } else { 1.0 };
        // gemma3: query_pre_attn_scalar = key_length (head_dim) for the sizes converted by llama.cpp.
        let attn_scale = 1.0 / (head_dim as f32).sqrt();
        let (mut sliding_window, mut sliding_pattern, mut rope_base_local) = (0, 0, rope_base);
        if gemma {
            for key in ["final_logit_softcapping", "attn_logit_softcapping"] {
                if g.get(&format!("{arch}.{key}")).is_some() {
                    return Err(Error::Unsupported(format!("{arch}.{key} (logit soft-capping)")));
                }
            }
            sliding_window = usize_of(req("attention.sliding_window")?, "attention.sliding_window", 1 << 24)?;
            // Gemma 3 interleaves 5 sliding-window layers with 1 global layer; the files carry no key for it
            // unless a converter wrote an explicit pattern.
            sliding_pattern = match g.arch_u64("attention.sliding_window_pattern")? {
                Some(v) => usize_of(v, "attention.sliding_window_pattern", 1024)?,
                None => 6,
            };
            // Local layers use RoPE base 10000 (Gemma 3's rope_local_base_freq); rope.freq_base is the global one.
            rope_base_local = 10000.0;
        }
        if arch == "phi3" {
            // Phi-3's window covers every layer (the HF model masks keys more than sliding_window - 1 positions
            // back in all layers; llama.cpp ignores the key). Mini-4k: 2047, so it matters only past 2047 tokens.
            if let Some(w) = g.arch_u64("attention.sliding_window")? {
                sliding_window = usize_of(w, "attention.sliding_window", 1 << 24)?;
                sliding_pattern = 0;
            }
        }
        // Tensors that every block of these architectures has; the weights loader treats them as optional, so a
        // file without them must be refused here rather than run as a different model.
        let required: &[&str] = match arch.as_str() {
            "gemma3" => &["attn_q_norm.weight", "attn_k_norm.weight", "post_attention_norm.weight", "post_ffw_norm.weight"],
            "qwen2" => &["attn_q.bias", "attn_k.bias", "attn_v.bias"],
            "qwen3" => &["attn_q_norm.weight", "attn_k_norm.weight"],
            _ => &[],
        };
        for i in 0..n_layers {
            for t in required {
                let name = format!("blk.{i}.{t}");
                if g.tensor(&name).is_none() {
                    return Err(Error::MissingTensor(name));
                }
            }
        }
        Ok(Config {
            arch,
            n_layers,
            dim,
            ffn_dim,
            n_heads,
            n_kv_heads,
            head_dim,
            vocab_size,
            train_context,
            rms_eps,
            rope_base,
            rope_base_local,
            rope_freq_scale,
            rope_attn_factor,
            rope_orig_context,
            n_rot,
            rope_neox,
            activation,
            embed_scale,
            attn_scale,
            sliding_window,
            sliding_pattern,
        })
    }

    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
    fn is_sliding(&self, layer: usize) -> bool {
        self.sliding_window > 0 && (self.sliding_pattern == 0 || (layer + 1) % self.sliding_pattern != 0)
    }
}

/// One decoder block's weights. Norm weights and biases (tiny) are dequantized to f32 at load.
pub struct Layer {
    attn_norm: Vec<f32>,  // (dim)
    wq: QTensor,          // (q_dim rows, dim cols)
    wk: QTensor,          // (kv_dim, dim)
    wv: QTensor,          // (kv_dim, dim)
    wo: QTensor,          // (dim, q_dim)
    bq: Option<Vec<f32>>, // (q_dim)
    bk: Option<Vec<f32>>, // (kv_dim)
    bv: Option<Vec<f32>>, // (kv_dim)
    q_norm: Option<Vec<f32>>, // (head_dim)
    k_norm: Option<Vec<f32>>, // (head_dim)
    post_attn_norm: Option<Vec<f32>>, // (dim)
    ffn_norm: Vec<f32>,   // (dim)
    w_gate: QTensor,      // (ffn, dim)
    w_up: QTensor,        // (ffn, dim)
    w_down: QTensor,      // (dim, ffn)
    post_ffn_norm: Option<Vec<f32>>, // (dim)
}

/// Weights: views into the model buffer, never copies of the big matrices.
pub struct Weights {
    pub token_embd: QTensor, // (vocab, dim)
    pub output_norm: Vec<f32>, // (dim)
    /// Output head; the token embedding when tied.
    pub output: QTensor, // (vocab, dim)
    /// RoPE frequency divisors, one per rotated pair (n_rot / 2): Llama 3.x `rope_freqs.weight`.
    pub rope_freqs: Option<Vec<f32>>,
    /// Phi-3 LongRoPE divisors (n_rot / 2 each): the long ones for a context past `rope_orig_context`.
    pub rope_long: Option<Vec<f32>>,
    pub rope_short: Option<Vec<f32>>,
    pub layers: Vec<Layer>,
}

/// Reads the weights by name and records which tensors it read; [`TensorReader::finish`] refuses a file with a
/// tensor nobody read. Without the file's bytes (`buf: None`) it checks names, shapes and types from the header
/// alone ([`Model::check_header`]) and returns empty vectors for the small tensors it would dequantize.
struct TensorReader<'a> {
    g: &'a Gguf,
    buf: Option<&'a [u8]>,
    read: HashSet<String>,
}

impl<'a> TensorReader<'a> {
    fn new(g: &'a Gguf, buf: Option<&'a [u8]>) -> Self {
        TensorReader { g, buf, read: HashSet::new() }
    }
    /// A `rows x cols` matrix, read in place.
    fn matrix(&mut self, name: &str, cols: usize, rows: usize) -> Result<QTensor> {
        let t = QTensor::load(self.g, name, cols, rows)?;
        self.read.insert(name.to_string());
        Ok(t)
    }
    fn matrix_opt(&mut self, name: &str, cols: usize, rows: usize) -> Result<Option<QTensor>> {
        if self.g.tensor(name).is_none() {
            return Ok(None);
        }
        self.matrix(name, cols, rows).map(Some)
    }
    /// A vector of `n` values (norm weights, biases, RoPE factors), dequantized to f32.
    fn vector(&mut self, name: &str, n: usize) -> Result<Vec<f32>> {
        let t = self.matrix(name, n, 1)?;
        Ok(match self.buf {
            Some(buf) => t.to_f32(buf),
            None => Vec::new(),
        })
    }
    fn vector_opt(&mut self, name: &str, n: usize) -> Result<Option<Vec<f32>>> {
        if self.g.tensor(name).is_none() {
            return Ok(None);
        }
        self.vector(name, n).map(Some)
    }
    /// Every tensor of the file has been read, or the first that was not is an [`Error::UnknownTensor`].
    fn finish(self, arch: &str) -> Result<()> {
        match self.g.tensors.iter().find(|t| !self.read.contains(&t.name)) {
            Some(t) => Err(Error::UnknownTensor { name: t.name.clone(), arch: arch.to_string() }),
            None => Ok(()),
        }
    }
}

impl Weights {
    /// The weights of `c`'s model from the file in `buf`.
    pub fn from_gguf(g: &Gguf, buf: &[u8], c: &Config) -> Result<Weights> {
        Self::read(g, Some(buf), c)
    }

    fn read(g: &Gguf, buf: Option<&[u8]>, c: &Config) -> Result<Weights> {
        let (dim, q, kv, ffn) = (c.dim, c.q_dim(), c.kv_dim(), c.ffn_dim);
        let mut r = TensorReader::new(g, buf);
        let token_embd = r.matrix("token_embd.weight", dim, c.vocab_size)?;
        let output = match r.matrix_opt("output.weight", dim, c.vocab_size)? {
            Some(t) => t,
            None => token_embd.clone(),
        };
        let half = c.n_rot / 2;
        let (mut rope_freqs, mut rope_long, mut rope_short) = (None, None, None);
        match c.arch.as_str() {
            // Llama 3.x (llama.cpp writes the llama3 RoPE scaling as per-pair divisors).
            "llama" => rope_freqs = r.vector_opt("rope_freqs.weight", half)?,
            "phi3" => {
                rope_long = r.vector_opt("rope_factors_long.weight", half)?;
                rope_short = r.vector_opt("rope_factors_short.weight", half)?;
                if rope_long.is_some() != rope_short.is_some() {
                    return Err(Error::MissingTensor(
                        if rope_long.is_some() { "rope_factors_short.weight" } else { "rope_factors_long.weight" }.into(),
                    ));
                }
                if rope_long.is_some() && c.rope_orig_context == 0 {
                    return Err(Error::MissingKey("phi3.rope.scaling.original_context_length".into()));
                }
            }
            _ => {}
        }
        let positive = |v: &Option<Vec<f32>>| v.iter().flatten().all(|&f| f.is_finite() && f > 0.0);
        if !(positive(&rope_freqs) && positive(&rope_long) && positive(&rope_short)) {
            return Err(Error::Format("RoPE frequency factors must be positive".into()));
        }
        let mut layers = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let n = |s: &str| format!("blk.{i}.{s}");
            // Phi-3 stores Q, K and V as one (q + 2 kv, dim) matrix: three row ranges of it, not copies.
            let (wq, wk, wv) = match r.matrix_opt(&n("attn_qkv.weight"), dim, q + 2 * kv)? {
                Some(qkv) => (qkv.row_range(0, q), qkv.row_range(q, kv), qkv.row_range(q + kv, kv)),
                None => (
                    r.matrix(&n("attn_q.weight"), dim, q)?,
                    r.matrix(&n("attn_k.weight"), dim, kv)?,
                    r.matrix(&n("attn_v.weight"), dim, kv)?,
                ),
            };
            // Phi-3's ffn_up holds gate (rows 0..ffn) then up (ffn..2 ffn), as HF's gate_up_proj.
            let (w_gate, w_up) = if c.arch == "phi3" {
                let gate_up = r.matrix(&n("ffn_up.weight"), dim, 2 * ffn)?;
                (gate_up.row_range(0, ffn), gate_up.row_range(ffn, ffn))
            } else {
                (r.matrix(&n("ffn_gate.weight"), dim, ffn)?, r.matrix(&n("ffn_up.weight"), dim, ffn)?)
            };
            layers.push(Layer {
                attn_norm: r.vector(&n("attn_norm.weight"), dim)?,
                wq,
                wk,
                wv,
                wo: r.matrix(&n("attn_output.weight"), q, dim)?,
                bq: r.vector_opt(&n("attn_q.bias"), q)?,
                bk: r.vector_opt(&n("attn_k.bias"), kv)?,
                bv: r.vector_opt(&n("attn_v.bias"), kv)?,
                q_norm: r.vector_opt(&n("attn_q_norm.weight"), c.head_dim)?,
                k_norm: r.vector_opt(&n("attn_k_norm.weight"), c.head_dim)?,
                post_attn_norm: r.vector_opt(&n("post_attention_norm.weight"), dim)?,
                ffn_norm: r.vector(&n("ffn_norm.weight"), dim)?,
                w_gate,
                w_up,
                w_down: r.matrix(&n("ffn_down.weight"), ffn, dim)?,
                post_ffn_norm: r.vector_opt(&n("post_ffw_norm.weight"), dim)?,
            });
        }
        let output_norm = r.vector("output_norm.weight", dim)?;
        r.finish(&c.arch)?;
        Ok(Weights { output_norm, token_embd, output, rope_freqs, rope_long, rope_short, layers })
    }

    /// The RoPE frequency divisors for a context of `context` positions, if the model has any.
    fn rope_factors(&self, c: &Config, context: usize) -> Option<&[f32]> {
        match (&self.rope_long, &self.rope_short) {
            (Some(long), _) if context > c.rope_orig_context => Some(long),
            (_, Some(short)) => Some(short),
            _ => self.rope_freqs.as_deref(),
        }
    }

    /// Weight types and how many tensors of each, e.g. for `inspect` and `info().quantization`.
    pub fn type_counts(&self) -> Vec<(GgmlType, usize)> {
        let mut counts: Vec<(GgmlType, usize)> = Vec::new();
        let mut add = |t: GgmlType| match counts.iter_mut().find(|(x, _)| *x == t) {
            Some((_, n)) => *n += 1,
            None => counts.push((t, 1)),
        };
        add(self.token_embd.typ);
        for l in &self.layers {
            for t in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
                add(t.typ);
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1));
        counts
    }
}

/// The name of a GGUF `general.file_type` (llama.cpp's `llama_ftype`: "Q4_K_M", "Q8_0", ...) and the weight type
/// that mostly carries it; `None` for values not listed.
fn file_type(ftype: u64) -> Option<(&'static str, GgmlType)> {
    use GgmlType::*;
    Some(match ftype {
        0 => ("F32", F32),
        1 => ("F16", F16),
        2 => ("Q4_0", Q4_0),
        3 => ("Q4_1", Q4_1),
        7 => ("Q8_0", Q8_0),
        8 => ("Q5_0", Q5_0),
        9 => ("Q5_1", Q5_1),
        10 => ("Q2_K", Q2_K),
        11 => ("Q3_K_S", Q3_K),
        12 => ("Q3_K_M", Q3_K),
        13 => ("Q3_K_L", Q3_K),
        14 => ("Q4_K_S", Q4_K),
        15 => ("Q4_K_M", Q4_K),
        16 => ("Q5_K_S", Q5_K),
        17 => ("Q5_K_M", Q5_K),
        18 => ("Q6_K", Q6_K),
        21 => ("Q2_K_S", Q2_K),
        32 => ("BF16", BF16),
        _ => return None,
    })
}

/// What `info().quantization` says of a model: the file's `general.file_type` name (a mix such as Q4_K_M has
/// tensors of several types, the most numerous of which need not be Q4_K) when the layers' weights do have its main
/// type; otherwise (no key, an unknown value, or one the tensors contradict, as in files written by tools that set
/// it to F16 whatever they store) the type of the most layer weights.
pub fn quantization_label(ftype: Option<u64>, counts: &[(GgmlType, usize)]) -> String {
    if let Some((name, main)) = ftype.and_then(file_type) {
        if counts.iter().any(|&(t, _)| t == main) {
            return name.to_string();
        }
    }
    counts.first().map(|(t, _)| t.name().to_string()).unwrap_or_default()
}

/// Allocate a zeroed f32 buffer, failing with a clear error instead of aborting when memory is short.
fn alloc_f32(n: usize, what: &str) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Error::OutOfMemory(format!("cannot allocate {} MB for {what}", (n * 4) >> 20))
    })?;
    v.resize(n, 0.0);
    Ok(v)
}

/// Activations and scratch, sized once from the config and the context length, and the KV cache of the
/// conversation being run.
pub struct State {
    pub context: usize,
    pub kv_type: KvType,
    /// Where `forward`'s parallel loops run (one thread unless [`State::set_pool`] says otherwise).
    pool: Pool,
    x: Vec<f32>,      // (MAX_BATCH, dim) residual stream
    xb: Vec<f32>,     // (MAX_BATCH, max(dim, q_dim)) normed input / attention output
    xb2: Vec<f32>,    // (MAX_BATCH, dim) projection output
    q: Vec<f32>,      // (MAX_BATCH, q_dim)
    k: Vec<f32>,      // (MAX_BATCH, kv_dim)
    v: Vec<f32>,      // (MAX_BATCH, kv_dim)
    hb: Vec<f32>,     // (MAX_BATCH, ffn) gate
    hb2: Vec<f32>,    // (MAX_BATCH, ffn) up
    att: Vec<f32>,    // (n_heads, context) attention scores, one row per head (heads run in parallel)
    rope_cs: Vec<f32>, // (2, MAX_BATCH, n_rot) cos/sin of each position's RoPE angles (global, local base), shared by every head and layer
    act_q: Vec<u8>,   // (MAX_OUTS, MAX_BATCH, activation_row_bytes(max width)) quantized activations
    mm: Vec<f32>,     // (MAX_BATCH, max(q_dim + 2 kv_dim, 2 ffn, dim)) row chunks of parallel products
    /// The current conversation's keys and values, grown as positions are used ([`KvCache`]); the engine swaps
    /// sessions' caches in and out of here, the scratch above is shared by all of them.
    pub kv: KvCache,
    /// (2, kv capacity, kv_dim): one layer's cached keys, then values, decoded to f32 for the queries that read
    /// them when the cache is f16/q8_0 (grown with the cache; empty for f32).
    kv_f32: Vec<f32>,
    pub logits: Vec<f32>,  // (vocab)
    /// Time per stage of `forward`, when profiling (see [`crate::profile`]); the caller calls `start()`.
    pub profile: Option<Profile>,
}

impl State {
    /// A state with an f32 KV cache (full precision: what the checks against reference implementations use; the
    /// engine's default is [`crate::generate::DEFAULT_KV_TYPE`]).
    pub fn new(c: &Config, context: usize) -> Result<State> {
        State::with_kv(c, context, KvType::F32)
    }

    /// A state whose KV cache stores `kv_type` values. q8_0 needs a kv_dim and head_dim that are multiples of 32.
    pub fn with_kv(c: &Config, context: usize, kv_type: KvType) -> Result<State> {
        let kv = KvCache::new(c, kv_type)?;
        // The whole context must be addressable, even though the cache grows to it only as positions are used.
        let full = crate::context::kv_bytes(c, kv_type, context);
        if full > isize::MAX as u64 {
            return Err(Error::OutOfMemory(format!("a KV cache of {context} positions ({} MB) is not addressable here", full >> 20)));
        }
        let wide = c.dim.max(c.q_dim()).max(c.ffn_dim);
        // f32 activations are the widest encoding; one set per distinct activation type of a fused product.
        let act_bytes = MAX_OUTS * MAX_BATCH * wide * 4;
        let mm_rows = (c.q_dim() + 2 * c.kv_dim()).max(2 * c.ffn_dim).max(c.dim);
        let att = c.n_heads.checked_mul(context).ok_or_else(|| Error::OutOfMemory("attention scores".into()))?;
        let mut act_q = Vec::new();
        act_q.try_reserve_exact(act_bytes).map_err(|_| Error::OutOfMemory("activation buffer".into()))?;
        act_q.resize(act_bytes, 0);
        Ok(State {
            context,
            pool: Pool::single(),
            x: alloc_f32(MAX_BATCH * c.dim, "activations")?,
            xb: alloc_f32(MAX_BATCH * c.dim.max(c.q_dim()), "activations")?,
            xb2: alloc_f32(MAX_BATCH * c.dim, "activations")?,
            q: alloc_f32(MAX_BATCH * c.q_dim(), "queries")?,
            k: alloc_f32(MAX_BATCH * c.kv_dim(), "keys")?,
            v: alloc_f32(MAX_BATCH * c.kv_dim(), "values")?,
            hb: alloc_f32(MAX_BATCH * c.ffn_dim, "FFN activations")?,
            hb2: alloc_f32(MAX_BATCH * c.ffn_dim, "FFN activations")?,
            att: alloc_f32(att, "attention scores")?,
            rope_cs: alloc_f32(2 * MAX_BATCH * c.n_rot, "RoPE angles")?,
            act_q,
            mm: alloc_f32(MAX_BATCH * mm_rows, "activations")?,
            kv_type,
            kv,
            kv_f32: Vec::new(),
            logits: alloc_f32(c.vocab_size, "logits")?,
            profile: None,
        })
    }

    /// Bytes held by this state: scratch, and the KV cache of a full context.
    pub fn bytes(&self) -> usize {
        4 * (self.x.len() + self.xb.len() + self.xb2.len() + self.q.len() + self.k.len() + self.v.len()
            + self.hb.len() + self.hb2.len() + self.att.len() + self.rope_cs.len() + self.mm.len()
            + self.logits.len() + self.kv_f32.len())
            + self.act_q.len()
            + self.kv_bytes()
    }

    /// Bytes of a KV cache that holds the whole context (what one conversation can grow to; `kv.bytes()` is what
    /// the current one holds now).
    pub fn kv_bytes(&self) -> usize {
        self.kv.bytes_for(self.context)
    }

    /// Run `forward` on `pool`'s threads; the logits are the same bits for every thread count.
    pub fn set_pool(&mut self, pool: Pool) {
        self.pool = pool;
    }

    /// Threads `forward` runs on.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
}

fn add_bias(y: &mut [f32], b: &Option<Vec<f32>>, n: usize) {
    if let Some(b) = b {
        for row in y.chunks_exact_mut(b.len()).take(n) {
            ops::add_inplace(row, b);
        }
    }
}

/// What `forward` leaves in `State::logits`.
pub enum Logits<'f> {
    /// Only the last token's logits (generation).
    Last,
    /// Every token's logits, handed to the callback in order (perplexity).
    All(&'f mut dyn FnMut(usize, &[f32])),
}

pub struct Model {
    pub config: Config,
    pub weights: Weights,
}

impl Model {
    pub fn from_gguf(g: &Gguf, buf: &[u8]) -> Result<Model> {
        let config = Config::from_gguf(g)?;
        let weights = Weights::from_gguf(g, buf, &config)?;
        Ok(Model { config, weights })
    }

    /// Everything [`Model::from_gguf`] checks that the header alone tells (architecture, hyperparameters, tensor
    /// names, shapes and types, no unknown tensor): a browser fails here before the weights arrive.
    pub fn check_header(g: &Gguf) -> Result<Config> {
        let config = Config::from_gguf(g)?;
        Weights::read(g, None, &config)?;
        Ok(config)
    }

    /// Run `tokens` at positions `pos..pos + tokens.len()` through the model, filling the KV cache.
    /// The caller checks `pos + tokens.len() <= state.context` (see [`crate::generate`]).
    pub fn forward(&self, buf: &[u8], s: &mut State, tokens: &[u32], pos: usize, mut logits: Logits) -> Result<()> {
        if pos + tokens.len() > s.context {
            return Err(Error::ContextOverflow { needed: pos + tokens.len(), context: s.context });
        }
        // The one allocation of a forward pass: the cache grows (by pages) to positions it has not held yet (and
        // with an f16/q8_0 cache, the decoded copy of one layer's rows with it).
        s.kv.reserve(pos + tokens.len())?;
        let c = &self.config;
        let decoded = 2 * s.kv.capacity() * c.kv_dim();
        let shared = tokens.len() > 1 || c.n_heads > c.n_kv_heads;
        if shared && s.kv.kv_type() != KvType::F32 && s.kv_f32.len() < decoded {
            s.kv_f32 = Vec::new();
            s.kv_f32 = alloc_f32(decoded, "decoded KV rows")?;
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(Error::InvalidArgument(format!("token id {bad} outside the vocabulary of {}", c.vocab_size)));
        }
        let pool = s.pool.clone();
        pool.session(|team| {
            for (chunk_i, chunk) in tokens.chunks(MAX_BATCH).enumerate() {
                let p0 = pos + chunk_i * MAX_BATCH;
                let last_chunk = (chunk_i + 1) * MAX_BATCH >= tokens.len();
                self.forward_batch(team, buf, s, chunk, p0);
                match &mut logits {
                    Logits::Last => {
                        if last_chunk {
                            self.head(team, buf, s, chunk.len() - 1);
                        }
                    }
                    Logits::All(cb) => {
                        for t in 0..chunk.len() {
                            self.head(team, buf, s, t);
                            cb(p0 + t - pos, &s.logits);
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// Final norm and output head for token `t` of the last batch -> `s.logits`.
    fn head(&self, team: &Team, buf: &[u8], s: &mut State, t: usize) {
        let c = &self.config;
        let x = &mut s.xb[..c.dim];
        ops::rmsnorm(x, &s.x[t * c.dim..(t + 1) * c.dim], &self.weights.output_norm, c.rms_eps);
        // The largest matrix (SmolLM2: 28 MB): chunks of several MB still stream in long runs, and four per thread
        // let the other thread take over when one falls behind (with one chunk per thread, 2-thread runs where one
        // thread was slower spent 1.8 instead of 1.2 ms per token here).
        let outs = &mut [Out { w: &self.weights.output, out: &mut s.logits }];
        project(team, buf, &s.xb[..c.dim], 1, &mut s.act_q, &mut s.mm, outs, 4);
        mark!(s.profile, Head);
    }

    fn forward_batch(&self, team: &Team, buf: &[u8], s: &mut State, tokens: &[u32], pos: usize) {
        let c = &self.config;
        let w = &self.weights;
        let n = tokens.len();
        let (dim, qd, kvd, hd, ffn) = (c.dim, c.q_dim(), c.kv_dim(), c.head_dim, c.ffn_dim);

        // Token embeddings, dequantized row by row.
        for (t, &tok) in tokens.iter().enumerate() {
            let row = &mut s.x[t * dim..(t + 1) * dim];
            k::dequantize_row(w.token_embd.typ, w.token_embd.row(buf, tok as usize), row);
            if c.embed_scale != 1.0 {
                ops::scale(row, c.embed_scale);
            }
        }
        mark!(s.profile, Embed);
        // RoPE angles depend on the position and base only: once per token for every layer and head (the local base
        // too when some layers slide), not once per layer.
        let nr = c.n_rot;
        let bases: &[f32] = if c.sliding_window > 0 { &[c.rope_base, c.rope_base_local] } else { &[c.rope_base] };
        let factors = w.rope_factors(c, s.context);
        let cs = Disjoint::new(&mut s.rope_cs);
        per_token(team, n, &|t| {
            for (b, &base) in bases.iter().enumerate() {
                let at = (b * MAX_BATCH + t) * nr;
                // SAFETY: token t alone writes its rows of the tables.
                let table = unsafe { cs.slice(at..at + nr) };
                ops::rope_angles_scaled(table, nr, pos + t, base, c.rope_freq_scale, factors, c.rope_attn_factor);
            }
        });
        mark!(s.profile, Rope);

        for (li, l) in w.layers.iter().enumerate() {
            // --- attention
            rmsnorm_tokens(team, &mut s.xb, &s.x, n, dim, &l.attn_norm, c.rms_eps);
            mark!(s.profile, Norm);
            let qkv = &mut [Out { w: &l.wq, out: &mut s.q }, Out { w: &l.wk, out: &mut s.k }, Out { w: &l.wv, out: &mut s.v }];
            project(team, buf, &s.xb[..n * dim], n, &mut s.act_q, &mut s.mm, qkv, chunks_per_thread(n));
            add_bias(&mut s.q, &l.bq, n);
            add_bias(&mut s.k, &l.bk, n);
            add_bias(&mut s.v, &l.bv, n);
            mark!(s.profile, Qkv);

            let sliding = c.is_sliding(li);
            let cap = s.kv.capacity();
            let tables = &s.rope_cs[if sliding { MAX_BATCH * nr } else { 0 }..];
            let (q, k) = (Disjoint::new(&mut s.q), Disjoint::new(&mut s.k));
            let (kc, vc, v) = (s.kv.key.writer(), s.kv.value.writer(), &s.v);
            per_token(team, n, &|t| {
                let p = pos + t;
                // SAFETY: token t alone uses its rows of q, k and its cache rows (position p).
                let (q, k) = unsafe { (q.slice(t * qd..(t + 1) * qd), k.slice(t * kvd..(t + 1) * kvd)) };
                let cs = &tables[t * nr..(t + 1) * nr];
                for h in q.chunks_exact_mut(hd) {
                    if let Some(qn) = &l.q_norm {
                        ops::rmsnorm_inplace(h, qn, c.rms_eps);
                    }
                    ops::rope_with(h, cs, c.rope_neox);
                }
                for h in k.chunks_exact_mut(hd) {
                    if let Some(kn) = &l.k_norm {
                        ops::rmsnorm_inplace(h, kn, c.rms_eps);
                    }
                    ops::rope_with(h, cs, c.rope_neox);
                }
                let at = (li * cap + p) * kvd;
                // SAFETY: token t alone writes its cache rows (position p).
                unsafe {
                    kc.write(at, k);
                    vc.write(at, &v[t * kvd..(t + 1) * kvd]);
                }
            });
            mark!(s.profile, Rope);

            // Causal grouped-query attention over the cache; output into xb (n, q_dim). Prefill (or one thread): one
            // task per head, each with its own row of scores; a head's arithmetic does not depend on which thread
            // runs it. Decode on several threads: `attend_token`.
            let group = c.n_heads / c.n_kv_heads;
            let ctx = s.context;
            // Rows 0..pos + n of this layer (row j at j * kvd).
            let rows = (pos + n) * kvd;
            let layer = li * cap * kvd..li * cap * kvd + rows;
            let (mut layer_k, mut layer_v) = (s.kv.key.rows(layer.clone()), s.kv.value.rows(layer));
            // Several queries reading an f16/q8_0 layer (a batch, or the query heads that share a KV head): its rows
            // decoded once for all of them (keys and values, two tasks), then the f32 kernels. The same bits as the
            // in-place kernels (simd/src/kv.rs), which convert each row again for every query.
            if (n > 1 || group > 1) && !matches!(layer_k, KvRows::F32(_)) {
                let half = s.kv_f32.len() / 2;
                let (kd, vd) = s.kv_f32.split_at_mut(half);
                let (kd, vd) = (Disjoint::new(&mut kd[..rows]), Disjoint::new(&mut vd[..rows]));
                team.run(2, &|i| {
                    // SAFETY: task 0 alone writes the keys' copy, task 1 the values'.
                    unsafe {
                        if i == 0 {
                            layer_k.decode(kd.slice(0..rows))
                        } else {
                            layer_v.decode(vd.slice(0..rows))
                        }
                    }
                });
                (layer_k, layer_v) = (KvRows::F32(&s.kv_f32[..rows]), KvRows::F32(&s.kv_f32[half..half + rows]));
            }
            if n == 1 && team.threads() > 1 {
                // Decode on several threads: split so that threads do not read the same KV head twice.
                let start = if sliding && pos + 1 > c.sliding_window { pos + 1 - c.sliding_window } else { 0 };
                let (k, v) = (layer_k.skip(start * kvd), layer_v.skip(start * kvd));
                attend_token(team, c, &s.q[..qd], k, v, ctx, &mut s.att, &mut s.xb[..qd]);
            } else {
                let (q, xb, att) = (&s.q, Disjoint::new(&mut s.xb), Disjoint::new(&mut s.att));
                team.run(c.n_heads, &|h| {
                    // SAFETY: task h alone uses scores row h.
                    let att_h = unsafe { att.slice(h * ctx..(h + 1) * ctx) };
                    for t in 0..n {
                        let p = pos + t;
                        let start = if sliding && p + 1 > c.sliding_window { p + 1 - c.sliding_window } else { 0 };
                        // Rows start..=p of this head's KV head: row j at (start + j) * kvd + kh * hd.
                        let at = start * kvd + (h / group) * hd;
                        // SAFETY: task h alone writes head h's columns of xb.
                        let out = unsafe { xb.slice(t * qd + h * hd..t * qd + (h + 1) * hd) };
                        kv::attend(
                            &q[t * qd + h * hd..t * qd + (h + 1) * hd],
                            layer_k.skip(at),
                            layer_v.skip(at),
                            kvd,
                            c.attn_scale,
                            &mut att_h[..=p - start],
                            out,
                        );
                    }
                });
            }
            mark!(s.profile, Attention);
            let wo = &mut [Out { w: &l.wo, out: &mut s.xb2 }];
            project(team, buf, &s.xb[..n * qd], n, &mut s.act_q, &mut s.mm, wo, chunks_per_thread(n));
            mark!(s.profile, AttnOut);
            residual_tokens(team, &mut s.x, &mut s.xb2, n, dim, l.post_attn_norm.as_deref(), c.rms_eps);
            mark!(s.profile, Residual);

            // --- feed-forward: down(act(gate(x)) * up(x))
            rmsnorm_tokens(team, &mut s.xb, &s.x, n, dim, &l.ffn_norm, c.rms_eps);
            mark!(s.profile, Norm);
            let gate_up = &mut [Out { w: &l.w_gate, out: &mut s.hb }, Out { w: &l.w_up, out: &mut s.hb2 }];
            project(team, buf, &s.xb[..n * dim], n, &mut s.act_q, &mut s.mm, gate_up, chunks_per_thread(n));
            mark!(s.profile, GateUp);
            let (gate, up) = (Disjoint::new(&mut s.hb), &s.hb2);
            per_token(team, n, &|t| {
                // SAFETY: token t alone uses its row of the gate.
                let (g, u) = (unsafe { gate.slice(t * ffn..(t + 1) * ffn) }, &up[t * ffn..(t + 1) * ffn]);
                match c.activation {
                    Activation::Silu => ops::silu_mul(g, u),
                    Activation::GeluTanh => ops::gelu_tanh_mul(g, u),
                }
            });
            mark!(s.profile, Activation);
            let down = &mut [Out { w: &l.w_down, out: &mut s.xb2 }];
            project(team, buf, &s.hb[..n * ffn], n, &mut s.act_q, &mut s.mm, down, chunks_per_thread(n));
            mark!(s.profile, Down);
            residual_tokens(team, &mut s.x, &mut s.xb2, n, dim, l.post_ffn_norm.as_deref(), c.rms_eps);
            mark!(s.profile, Residual);
        }
    }
}

/// Runs `f(t)` for every token `t < n`: as a parallel loop when there are enough tokens to pay for one, else inline.
/// The per-token work of the forward pass (norms, RoPE, residuals) computes each token alone, so the split changes
/// no bits.
fn per_token(team: &Team, n: usize, f: &(dyn Fn(usize) + Sync)) {
    if n >= PARALLEL_TOKENS {
        team.run(n, f);
    } else {
        (0..n).for_each(f);
    }
}

/// `out[t] = rmsnorm(x[t]) * weight` for the first `n` rows of width `dim`.
fn rmsnorm_tokens(team: &Team, out: &mut [f32], x: &[f32], n: usize, dim: usize, weight: &[f32], eps: f32) {
    let out = Disjoint::new(out);
    per_token(team, n, &|t| {
        // SAFETY: token t alone writes its row.
        ops::rmsnorm(unsafe { out.slice(t * dim..(t + 1) * dim) }, &x[t * dim..(t + 1) * dim], weight, eps);
    });
}

/// `x[t] += y[t]` for the first `n` rows of width `dim`, `y[t]` first normed in place when the block has a norm
/// after it (Gemma 3).
fn residual_tokens(team: &Team, x: &mut [f32], y: &mut [f32], n: usize, dim: usize, norm: Option<&[f32]>, eps: f32) {
    let (x, y) = (Disjoint::new(x), Disjoint::new(y));
    per_token(team, n, &|t| {
        // SAFETY: token t alone uses its rows.
        let (x, y) = unsafe { (x.slice(t * dim..(t + 1) * dim), y.slice(t * dim..(t + 1) * dim)) };
        if let Some(w) = norm {
            ops::rmsnorm_inplace(y, w, eps);
        }
        ops::add_inplace(x, y);
    });
}

/// Most column runs one KV head's weighted values are split into by [`attend_token`].
const MAX_COL_SPLIT: usize = 4;

/// One token's attention on several threads, split so that no two threads read the same cached keys or values.
///
/// With grouped-query attention several query heads read one KV head. One task per query head (as in prefill)
/// has each thread fetch a shared KV head again, and at decode the cache comes from DRAM (the weights streamed
/// through the caches since the previous token), so on two threads it ran no faster than on one. Here, three
/// loops:
/// 1. scores: tasks over runs of positions, each for every head (its key rows are read once, for all the heads
///    that share them);
/// 2. softmax: one task per head;
/// 3. weighted values: tasks over (KV head, run of columns), each for every head of that KV head.
///
/// Per head these are [`ops::attend`]'s three steps, which give the same bits however they are split.
/// `keys`/`values`: the cached rows attended to (`kv_dim` values each); `att`: `(n_heads, ctx)` scores;
/// `out`: `(n_heads, head_dim)`.
#[allow(clippy::too_many_arguments)]
fn attend_token(team: &Team, c: &Config, q: &[f32], keys: KvRows, values: KvRows, ctx: usize, att: &mut [f32], out: &mut [f32]) {
    let (hd, kvd, group) = (c.head_dim, c.kv_dim(), c.n_heads / c.n_kv_heads);
    let len = keys.len() / kvd;
    let threads = team.threads();

    // 1. Scores, runs of positions (multiples of 4, the kernel's tile), two per thread.
    let run = len.div_ceil(2 * threads).next_multiple_of(4).max(4);
    let scores = Disjoint::new(att);
    team.run(len.div_ceil(run), &|i| {
        let (r0, r1) = (i * run, ((i + 1) * run).min(len));
        for h in 0..c.n_heads {
            // SAFETY: task i alone writes positions r0..r1 of every head's scores.
            let s = unsafe { scores.slice(h * ctx + r0..h * ctx + r1) };
            let kh = h / group;
            kv::attn_scores(&q[h * hd..(h + 1) * hd], keys.skip(r0 * kvd + kh * hd), kvd, c.attn_scale, s);
        }
    });
    // 2. Softmax, one task per head.
    team.run(c.n_heads, &|h| {
        // SAFETY: task h alone uses head h's scores.
        ops::softmax_inplace(unsafe { scores.slice(h * ctx..h * ctx + len) });
    });
    // 3. Weighted values, (KV head, column run) tasks: enough runs for two tasks per thread, columns in multiples of
    //    16 where the head allows (the kernel's width).
    let mut split = 1;
    while split < MAX_COL_SPLIT && c.n_kv_heads * split < 2 * threads && hd % (2 * split) == 0 && hd / (2 * split) >= 16 {
        split *= 2;
    }
    let cols = hd / split;
    // SAFETY: the loops above have returned; this is the only piece of the scores alive.
    let probs = &*unsafe { scores.slice(0..c.n_heads * ctx) };
    let out = Disjoint::new(out);
    team.run(c.n_kv_heads * split, &|task| {
        let (kh, d) = (task / split, task % split);
        for h in kh * group..(kh + 1) * group {
            // SAFETY: task (kh, d) alone writes columns d * cols.. of the heads of KV head kh.
            let o = unsafe { out.slice(h * hd + d * cols..h * hd + (d + 1) * cols) };
            kv::attn_values(&probs[h * ctx..h * ctx + len], values.skip(kh * hd + d * cols), kvd, o);
        }
    });
}

#[cfg(test)]
mod quantization_label_tests {
    use super::quantization_label;
    use pocketlm_simd::GgmlType::*;

    #[test]
    fn file_type_when_the_weights_have_its_type_else_the_most_numerous() {
        let mix = [(Q5_0, 90), (Q4_K, 60), (Q8_0, 30), (Q6_K, 16)];
        assert_eq!(quantization_label(Some(15), &mix), "Q4_K_M");
        assert_eq!(quantization_label(None, &mix), "Q5_0");
        assert_eq!(quantization_label(Some(9999), &mix), "Q5_0");
        // A writer that says "mostly F16" over Q8_0 tensors is not believed.
        assert_eq!(quantization_label(Some(1), &[(Q8_0, 10)]), "Q8_0");
        assert_eq!(quantization_label(Some(1), &[(F16, 10), (F32, 2)]), "F16");
        assert_eq!(quantization_label(Some(3), &[]), "");
    }
}
