//! The forward pass's matrix products, `out (n, rows) = x (n, cols) @ w^T`, split by output rows across a
//! [`Team`]. Several weights that read the same input (q/k/v, gate/up) go in one call: one parallel loop instead of
//! one per weight, which matters at decode, where a SmolLM2 token is ~210 small products.
//!
//! Every output value is one kernel dot product of a weight row with an activation row; which chunk of rows it
//! belongs to changes nothing in it (the kernels compute each (row, token) pair the same way whatever the rows
//! around it; chunks are still cut at multiples of 4 rows, the matvec kernels' tile), so any thread count gives the
//! bits of one thread.

use crate::par::{Disjoint, Team};
use crate::tensor::QTensor;
use pocketlm_simd as k;

/// Weights one [`project`] call takes at most.
pub const MAX_OUTS: usize = 3;

/// Token count from which per-token work around the products (activation quantization; in `model/forward.rs` norms,
/// RoPE) is worth a parallel loop of its own.
pub const PARALLEL_TOKENS: usize = 4;

/// One weight of a [`project`] call and its output, token-major `(n, w.rows)`.
pub struct Out<'a> {
    pub w: &'a QTensor,
    pub out: &'a mut [f32],
}

/// Computes every `outs[j].out (n, rows_j) = x (n, cols) @ outs[j].w^T`.
///
/// - `x`: `(n, cols)` f32, the same `cols` for every weight;
/// - `act_q`: room for the activations quantized once per distinct `vec_dot_type` of the weights
///   (`MAX_OUTS * n * 4 * cols` bytes always suffice);
/// - `scratch`: `n * Σ rows_j` f32 when `n > 1` and the team has several threads (each chunk writes its rows for
///   all tokens contiguously there, as the kernels want; the rows are then copied to the token-major outputs);
/// - `chunks_per_thread`: tasks per thread; more balance the load, fewer cost less per loop.
#[allow(clippy::too_many_arguments)]
pub fn project(
    team: &Team,
    buf: &[u8],
    x: &[f32],
    n: usize,
    act_q: &mut [u8],
    scratch: &mut [f32],
    outs: &mut [Out],
    chunks_per_thread: usize,
) {
    assert!(!outs.is_empty() && outs.len() <= MAX_OUTS, "project: 1..={MAX_OUTS} weights");
    let cols = outs[0].w.cols;
    assert!(outs.iter().all(|o| o.w.cols == cols), "project: weights of one call must have the same width");
    // Activations quantized once per activation type: act[j] = byte range of weight j's (n, arb_j) rows; one
    // task per token (each row is quantized on its own).
    let mut act: [std::ops::Range<usize>; MAX_OUTS] = core::array::from_fn(|_| 0..0);
    let mut quantize: [Option<(k::GgmlType, usize)>; MAX_OUTS] = [None; MAX_OUTS];
    let mut used = 0;
    for j in 0..outs.len() {
        let wt = outs[j].w.typ;
        if let Some(p) = (0..j).find(|&p| outs[p].w.typ.vec_dot_type() == wt.vec_dot_type()) {
            act[j] = act[p].clone();
            continue;
        }
        let arb = k::activation_row_bytes(wt, cols);
        act[j] = used..used + n * arb;
        quantize[j] = Some((wt, arb));
        used += n * arb;
    }
    let rows_q = Disjoint::new(&mut act_q[..used]);
    let quantize_token = |t: usize| {
        for (j, q) in quantize.iter().enumerate() {
            if let Some((wt, arb)) = *q {
                let at = act[j].start + t * arb;
                // SAFETY: token t alone writes its row of each activation type.
                let row = unsafe { rows_q.slice(at..at + arb) };
                k::quantize_activation(wt, &x[t * cols..(t + 1) * cols], row);
            }
        }
    };
    if n >= PARALLEL_TOKENS {
        team.run(n, &quantize_token);
    } else {
        (0..n).for_each(quantize_token);
    }
    let act_q = &*act_q;
    let product = |w: &QTensor, rows: std::ops::Range<usize>, a: &[u8], out: &mut [f32]| {
        let wd = &w.data(buf)[rows.start * w.row_bytes..rows.end * w.row_bytes];
        if n == 1 {
            k::matvec(w.typ, cols, wd, a, out);
        } else {
            k::matmul(w.typ, cols, wd, a, n, out);
        }
    };
    if team.threads() == 1 {
        for (j, o) in outs.iter_mut().enumerate() {
            product(o.w, 0..o.w.rows, &act_q[act[j].clone()], &mut o.out[..n * o.w.rows]);
        }
        return;
    }

    // Chunks of `chunk` rows (a multiple of 4), never straddling two weights: weight j has chunks
    // first[j]..first[j + 1], and its rows start at row_off[j] of the concatenated rows.
    let total: usize = outs.iter().map(|o| o.w.rows).sum();
    let chunk = total.div_ceil(team.threads() * chunks_per_thread.max(1)).next_multiple_of(4).max(4);
    let (mut first, mut row_off) = ([0usize; MAX_OUTS + 1], [0usize; MAX_OUTS + 1]);
    for (j, o) in outs.iter().enumerate() {
        first[j + 1] = first[j] + o.w.rows.div_ceil(chunk);
        row_off[j + 1] = row_off[j] + o.w.rows;
    }
    let n_out = outs.len();
    let ws: [Option<&QTensor>; MAX_OUTS] = core::array::from_fn(|j| outs.get(j).map(|o| o.w));
    let scratch = Disjoint::new(&mut scratch[..if n > 1 { n * total } else { 0 }]);
    let mut direct: [Disjoint<f32>; MAX_OUTS] = core::array::from_fn(|_| Disjoint::new(&mut []));
    for (d, o) in direct.iter_mut().zip(outs.iter_mut()) {
        *d = Disjoint::new(&mut o.out[..]);
    }
    team.run(first[n_out], &|c| {
        let j = (0..n_out).find(|&j| c < first[j + 1]).unwrap_or(n_out - 1);
        let w = ws[j].unwrap_or_else(|| unreachable!());
        let r0 = (c - first[j]) * chunk;
        let r1 = (r0 + chunk).min(w.rows);
        if n == 1 {
            // SAFETY: chunk c is the only task writing rows r0..r1 of weight j (contiguous for one token).
            product(w, r0..r1, &act_q[act[j].clone()], unsafe { direct[j].slice(r0..r1) });
            return;
        }
        // Several tokens: the chunk's rows for every token, contiguous in its own n * (r1 - r0) values of scratch,
        // then copied to columns r0..r1 of each token's output row.
        // SAFETY: chunk c alone uses this piece of scratch and writes columns r0..r1 of weight j's output.
        let part = unsafe { scratch.slice(n * (row_off[j] + r0)..n * (row_off[j] + r1)) };
        product(w, r0..r1, &act_q[act[j].clone()], part);
        let rows = w.rows;
        for t in 0..n {
            let dst = unsafe { direct[j].slice(t * rows + r0..t * rows + r1) };
            dst.copy_from_slice(&part[t * (r1 - r0)..(t + 1) * (r1 - r0)]);
        }
    });
}
