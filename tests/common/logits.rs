//! Logit comparisons shared by the golden tests against the numpy references.
#![allow(dead_code)]

use serde_json::Value;

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

pub fn argmax(x: &[f32]) -> usize {
    x.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
}

/// Logits minus their mean (a constant shift does not change the distribution).
pub fn centered(x: &[f32]) -> Vec<f64> {
    let m = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
    x.iter().map(|&v| v as f64 - m).collect()
}

pub fn log_softmax(x: &[f32]) -> Vec<f64> {
    let m = x.iter().copied().fold(f32::MIN, f32::max) as f64;
    let z = x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
    x.iter().map(|&v| v as f64 - m - z).collect()
}

/// KL(reference || ours) of the softmax distributions.
pub fn kl(reference: &[f32], ours: &[f32]) -> f64 {
    let (p, q) = (log_softmax(reference), log_softmax(ours));
    p.iter().zip(&q).map(|(a, b)| a.exp() * (a - b)).sum()
}

pub struct Cmp {
    pub max_abs: f64,
    pub rms: f64,
    pub kl: f64,
    pub ref_top1_in_our_top5: bool,
}

pub fn compare(reference: &[f32], ours: &[f32]) -> Cmp {
    let (a, b) = (centered(reference), centered(ours));
    let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    let top1 = argmax(reference);
    let mut idx: Vec<usize> = (0..ours.len()).collect();
    idx.sort_by(|&i, &j| ours[j].total_cmp(&ours[i]));
    Cmp {
        max_abs: d.iter().fold(0.0, |m, v| m.max(v.abs())),
        rms: (d.iter().map(|v| v * v).sum::<f64>() / d.len() as f64).sqrt(),
        kl: kl(reference, ours),
        ref_top1_in_our_top5: idx[..5].contains(&top1),
    }
}

