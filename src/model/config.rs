//! The hyperparameters of a model from its GGUF metadata ([`Config`]), and [`ARCHS`], the one table of what differs
//! between the architectures pocketlm runs (everything else is the one llama-style decoder).

use crate::gguf::Gguf;
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Silu,
    GeluTanh,
}

/// How an architecture's layers use a sliding attention window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sliding {
    /// Every layer attends to the whole context.
    Never,
    /// Windowed layers interleaved with global ones: every `pattern`-th layer (1-based) is global, `default_pattern`
    /// when the file has no `attention.sliding_window_pattern`; the file must give the window; windowed layers use
    /// RoPE base `local_rope_base` (`rope.freq_base` is the global layers').
    Interleaved { default_pattern: usize, local_rope_base: f32 },
    /// The file's window, when it has one, covers every layer.
    EveryLayer,
}

/// RoPE frequency factors an architecture's files may carry (one divisor per rotated pair).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeFactors {
    None,
    /// `rope_freqs.weight` (llama.cpp writes Llama 3.x's llama3 RoPE scaling as per-pair divisors).
    Freqs,
    /// LongRoPE: `rope_factors_long.weight` and `rope_factors_short.weight`, both or neither.
    LongShort,
}

/// What differs between the architectures pocketlm runs.
#[derive(Debug)]
pub struct Arch {
    /// `general.architecture`.
    pub name: &'static str,
    /// NEOX layout: RoPE rotates (i, i + n_rot/2) rather than (2i, 2i+1).
    pub rope_neox: bool,
    pub activation: Activation,
    /// Token embeddings are multiplied by sqrt(dim).
    pub embed_scale_sqrt_dim: bool,
    /// `rope.scaling.type` "linear" is accepted (one scale for all layers).
    pub rope_scaling: bool,
    /// Metadata keys (after `{arch}.`) of features pocketlm does not implement, with what they are: a file that has
    /// one is refused.
    pub unsupported_keys: &'static [(&'static str, &'static str)],
    pub sliding: Sliding,
    pub rope_factors: RopeFactors,
    /// `ffn_up` holds gate (rows 0..ffn) then up (ffn..2 ffn), as HF's gate_up_proj; there is no `ffn_gate`.
    pub fused_gate_up: bool,
    /// Tensors (after `blk.N.`) every block has. The weights loader treats them as optional, so a file without
    /// them is refused here rather than run as a different model.
    pub required: &'static [&'static str],
}

/// The architectures pocketlm runs, in the order its error messages list them.
pub const ARCHS: &[Arch] = &[LLAMA, GEMMA3, QWEN2, QWEN3, PHI3];

// Llama 2 / 3.x and SmolLM2: the decoder the others are variations of.
const LLAMA: Arch = Arch {
    name: "llama",
    rope_neox: false,
    activation: Activation::Silu,
    embed_scale_sqrt_dim: false,
    rope_scaling: true,
    unsupported_keys: &[],
    sliding: Sliding::Never,
    rope_factors: RopeFactors::Freqs,
    fused_gate_up: false,
    required: &[],
};

// Gemma 3: NEOX RoPE, GELU-tanh gate, embeddings scaled by sqrt(dim), QK-norm and post-norms, 5:1
// sliding-window/global layers with RoPE base 10000 (rope_local_base_freq) on the sliding ones (checked against
// scripts/reference/gemma3_ref.py). Its larger models scale only the global layers' RoPE, so RoPE scaling (one
// scale for all layers) would be wrong.
const GEMMA3: Arch = Arch {
    name: "gemma3",
    rope_neox: true,
    activation: Activation::GeluTanh,
    embed_scale_sqrt_dim: true,
    rope_scaling: false,
    unsupported_keys: &[
        ("final_logit_softcapping", "logit soft-capping"),
        ("attn_logit_softcapping", "logit soft-capping"),
    ],
    // The files carry no key for the 5:1 interleaving unless a converter wrote an explicit pattern.
    sliding: Sliding::Interleaved { default_pattern: 6, local_rope_base: 10000.0 },
    rope_factors: RopeFactors::None,
    required: &["attn_q_norm.weight", "attn_k_norm.weight", "post_attention_norm.weight", "post_ffw_norm.weight"],
    ..LLAMA
};

// Qwen 2 / 2.5 (Q/K/V biases) and Qwen 3 (per-head Q/K RMSNorm, head_dim = key_length): the llama decoder with
// NEOX RoPE (checked on tiny random-weight files against scripts/reference/qwen_ref.py).
const QWEN2: Arch = Arch {
    name: "qwen2",
    rope_neox: true,
    rope_factors: RopeFactors::None,
    required: &["attn_q.bias", "attn_k.bias", "attn_v.bias"],
    ..LLAMA
};
const QWEN3: Arch = Arch { name: "qwen3", required: &["attn_q_norm.weight", "attn_k_norm.weight"], ..QWEN2 };

// Phi-3: the llama decoder with NEOX RoPE, fused QKV and gate/up matrices, LongRoPE factors when the file has
// them, and a sliding window over every layer (checked against scripts/reference/phi3_ref.py): the HF model masks
// keys more than sliding_window - 1 positions back in all layers (llama.cpp ignores the key); Mini-4k's is 2047,
// so it matters only past 2047 tokens.
const PHI3: Arch = Arch {
    name: "phi3",
    rope_neox: true,
    sliding: Sliding::EveryLayer,
    rope_factors: RopeFactors::LongShort,
    fused_gate_up: true,
    ..LLAMA
};

impl Arch {
    /// The table's entry for `general.architecture` = `name`.
    pub fn of(name: &str) -> Option<&'static Arch> {
        ARCHS.iter().find(|a| a.name == name)
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub arch: String,
    /// What this architecture does differently ([`ARCHS`]).
    pub traits: &'static Arch,
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
        let Some(traits) = Arch::of(&arch) else {
            let known = ARCHS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ");
            return Err(Error::Unsupported(format!("model architecture '{arch}' (pocketlm runs: {known})")));
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
            Some(t) if !traits.rope_scaling => return Err(Error::Unsupported(format!("RoPE scaling '{t}' on {arch}"))),
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
        let embed_scale = if traits.embed_scale_sqrt_dim { (dim as f32).sqrt() } else { 1.0 };
        // gemma3: query_pre_attn_scalar = key_length (head_dim) for the sizes converted by llama.cpp.
        let attn_scale = 1.0 / (head_dim as f32).sqrt();
        for (key, what) in traits.unsupported_keys {
            if g.get(&format!("{arch}.{key}")).is_some() {
                return Err(Error::Unsupported(format!("{arch}.{key} ({what})")));
            }
        }
        let (mut sliding_window, mut sliding_pattern, mut rope_base_local) = (0, 0, rope_base);
        match traits.sliding {
            Sliding::Never => {}
            Sliding::Interleaved { default_pattern, local_rope_base } => {
                sliding_window = usize_of(req("attention.sliding_window")?, "attention.sliding_window", 1 << 24)?;
                sliding_pattern = match g.arch_u64("attention.sliding_window_pattern")? {
                    Some(v) => usize_of(v, "attention.sliding_window_pattern", 1024)?,
                    None => default_pattern,
                };
                rope_base_local = local_rope_base;
            }
            Sliding::EveryLayer => {
                if let Some(w) = g.arch_u64("attention.sliding_window")? {
                    sliding_window = usize_of(w, "attention.sliding_window", 1 << 24)?;
                    sliding_pattern = 0;
                }
            }
        }
        for i in 0..n_layers {
            for t in traits.required {
                let name = format!("blk.{i}.{t}");
                if g.tensor(&name).is_none() {
                    return Err(Error::MissingTensor(name));
                }
            }
        }
        Ok(Config {
            arch,
            traits,
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
            rope_neox: traits.rope_neox,
            activation: traits.activation,
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
    pub(super) fn is_sliding(&self, layer: usize) -> bool {
        self.sliding_window > 0 && (self.sliding_pattern == 0 || (layer + 1) % self.sliding_pattern != 0)
    }
}
