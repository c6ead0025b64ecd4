//! The weights: every tensor of the file looked up by name and borrowed from the model buffer in place (the big
//! matrices are never copied; norm weights and biases, tiny, are dequantized to f32 at load).
//!
//! Every tensor of the file must be read by the loader ([`TensorReader`]): a tensor it does not know (Llama 3's
//! `rope_freqs` before it was read, a bias, an extra norm) changes the model, and running without it would give
//! wrong text with no error, so such a file is refused naming the tensor.

use super::config::RopeFactors;
use super::Config;
use crate::gguf::Gguf;
use crate::tensor::QTensor;
use crate::{Error, Result};
use pocketlm_simd::GgmlType;
use std::collections::HashSet;

/// One decoder block's weights. Norm weights and biases (tiny) are dequantized to f32 at load.
pub struct Layer {
    pub(super) attn_norm: Vec<f32>,  // (dim)
    pub(super) wq: QTensor,          // (q_dim rows, dim cols)
    pub(super) wk: QTensor,          // (kv_dim, dim)
    pub(super) wv: QTensor,          // (kv_dim, dim)
    pub(super) wo: QTensor,          // (dim, q_dim)
    pub(super) bq: Option<Vec<f32>>, // (q_dim)
    pub(super) bk: Option<Vec<f32>>, // (kv_dim)
    pub(super) bv: Option<Vec<f32>>, // (kv_dim)
    pub(super) q_norm: Option<Vec<f32>>, // (head_dim)
    pub(super) k_norm: Option<Vec<f32>>, // (head_dim)
    pub(super) post_attn_norm: Option<Vec<f32>>, // (dim)
    pub(super) ffn_norm: Vec<f32>,   // (dim)
    pub(super) w_gate: QTensor,      // (ffn, dim)
    pub(super) w_up: QTensor,        // (ffn, dim)
    pub(super) w_down: QTensor,      // (dim, ffn)
    pub(super) post_ffn_norm: Option<Vec<f32>>, // (dim)
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

    pub(super) fn read(g: &Gguf, buf: Option<&[u8]>, c: &Config) -> Result<Weights> {
        let (dim, q, kv, ffn) = (c.dim, c.q_dim(), c.kv_dim(), c.ffn_dim);
        let mut r = TensorReader::new(g, buf);
        let token_embd = r.matrix("token_embd.weight", dim, c.vocab_size)?;
        let output = match r.matrix_opt("output.weight", dim, c.vocab_size)? {
            Some(t) => t,
            None => token_embd.clone(),
        };
        let half = c.n_rot / 2;
        let (mut rope_freqs, mut rope_long, mut rope_short) = (None, None, None);
        match c.traits.rope_factors {
            RopeFactors::None => {}
            RopeFactors::Freqs => rope_freqs = r.vector_opt("rope_freqs.weight", half)?,
            RopeFactors::LongShort => {
                rope_long = r.vector_opt("rope_factors_long.weight", half)?;
                rope_short = r.vector_opt("rope_factors_short.weight", half)?;
                if rope_long.is_some() != rope_short.is_some() {
                    return Err(Error::MissingTensor(
                        if rope_long.is_some() { "rope_factors_short.weight" } else { "rope_factors_long.weight" }.into(),
                    ));
                }
                if rope_long.is_some() && c.rope_orig_context == 0 {
                    return Err(Error::MissingKey(format!("{}.rope.scaling.original_context_length", c.arch)));
                }
            }
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
            let (w_gate, w_up) = if c.traits.fused_gate_up {
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
    pub(super) fn rope_factors(&self, c: &Config, context: usize) -> Option<&[f32]> {
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
