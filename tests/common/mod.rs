//! Shared locations for host integration tests: the real models fetched by `make models` and the reference
//! fixtures written by `make fixtures` (scripts/fixtures/*.py, PyPI gguf + numpy).
#![allow(dead_code)]
use std::path::PathBuf;

/// `$POCKETLM_MODELS`, else `$XDG_CACHE_HOME/pocketlm/models`, else `~/.cache/pocketlm/models`.
pub fn models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("POCKETLM_MODELS") {
        return d.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache"));
    cache.join("pocketlm").join("models")
}

/// A real model or data file; a missing one fails the test with the command that fetches it.
pub fn model_path(name: &str) -> PathBuf {
    let p = models_dir().join(name);
    assert!(p.exists(), "{} is missing: run `make models`", p.display());
    p
}

/// `$POCKETLM_FIXTURES`, else `<repo>/target/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("POCKETLM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join("fixtures"))
}

/// A generated reference fixture; a missing one fails the test with the command that makes it.
pub fn fixture_path(name: &str) -> PathBuf {
    let p = fixtures_dir().join(name);
    assert!(p.exists(), "{} is missing: run `make fixtures`", p.display());
    p
}

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";
pub mod logits;
