//! Where a forward pass spends its time: wall-clock milliseconds per stage, summed over the calls made while
//! profiling is on. Off by default; when off a mark is one branch. When on, a mark reads the clock
//! ([`crate::clock::now_ms`], `performance.now()` in a browser: a few dozen reads per layer, a small part of a step).

use crate::clock::now_ms;
use serde::Serialize;

/// The stages of one forward pass, in order, plus the engine's per-token work around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Token embedding rows dequantized (and scaled).
    Embed = 0,
    /// RMSNorms before attention and FFN (and gemma3's post-norms).
    Norm,
    /// Q, K, V projections (activation quantization + matrix product + bias).
    Qkv,
    /// QK-norm, RoPE, copying K and V into the cache.
    Rope,
    /// Scores, softmax and the weighted sum of values over the cache.
    Attention,
    /// Attention output projection.
    AttnOut,
    /// FFN gate and up projections.
    GateUp,
    /// SiLU / GELU gating.
    Activation,
    /// FFN down projection.
    Down,
    /// Residual additions.
    Residual,
    /// Final norm and the output head over the vocabulary.
    Head,
    /// Constrained decoding: the grammar's token mask, and advancing the grammar past the sampled token.
    Constraint,
    /// Sampling the next token from the logits.
    Sample,
    /// Detokenizing and checking stop strings.
    Text,
}

pub const STAGES: [&str; 14] =
    ["embed", "norm", "qkv", "rope", "attention", "attnOut", "gateUp", "activation", "down", "residual", "head",
     "constraint", "sample", "text"];

/// Accumulated milliseconds per [`Stage`] over `steps` profiled calls.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub ms: [f64; STAGES.len()],
    pub steps: usize,
    last: f64,
}

impl Profile {
    /// Start timing a step from now.
    pub fn start(&mut self) {
        self.last = now_ms();
    }

    /// The time since the previous mark (or `start`) was spent in `stage`.
    #[inline]
    pub fn mark(&mut self, stage: Stage) {
        let t = now_ms();
        self.ms[stage as usize] += t - self.last;
        self.last = t;
    }

    /// Per-step averages, in stage order, for reports (`{"stage": "qkv", "ms": 1.2}`, ...).
    pub fn per_step(&self) -> Vec<StageTime> {
        let n = self.steps.max(1) as f64;
        STAGES.iter().zip(self.ms).map(|(&stage, ms)| StageTime { stage, ms: ms / n }).collect()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct StageTime {
    pub stage: &'static str,
    /// Milliseconds per step.
    pub ms: f64,
}

/// `if let Some(p) = profile { p.mark(stage) }`, for an `Option<Profile>` field.
#[macro_export]
macro_rules! mark {
    ($p:expr, $stage:ident) => {
        if let Some(p) = $p.as_mut() {
            p.mark($crate::profile::Stage::$stage);
        }
    };
}
