//! pocketlm-simd: quantized block layouts, scalar reference kernels (the specification) and SIMD128 kernels.
//!
//! Every public kernel here is one dispatch point: on wasm32 with `simd128` it calls the SIMD version, otherwise the
//! scalar reference in [`reference`]. The SIMD versions must equal the reference (integer parts bit-exact, float
//! results within 1e-6 * n relative).
//!
//! Activations are quantized once per row to `w.vec_dot_type()` ([`quantize_activation`]), then every weight row is
//! dotted with that quantized row. For float weights the "quantized" activation is the f32 row as little-endian bytes.

pub mod types;
pub use types::GgmlType;
