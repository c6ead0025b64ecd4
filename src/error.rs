//! The one error type of the engine. At the JS boundary it becomes a `PocketLMError` with `code()` as its code.

use pocketlm_simd::GgmlType;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a well-formed GGUF file (bad magic, truncated, out-of-range offset, ...).
    #[error("invalid GGUF file: {0}")]
    Format(String),
    /// A well-formed file uses something pocketlm does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("tensor '{name}' has type {typ}, which pocketlm cannot compute with")]
    UnsupportedTensorType { name: String, typ: GgmlType },
    #[error("missing metadata key '{0}'")]
    MissingKey(String),
    #[error("metadata key '{key}' has the wrong type: expected {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("missing tensor '{0}'")]
    MissingTensor(String),
    /// A tensor the model loader does not read: running without it would compute some other model.
    #[error("tensor '{name}' is not part of pocketlm's {arch} model (running without it would give wrong results)")]
    UnknownTensor { name: String, arch: String },
    #[error("tensor '{name}' has shape {got:?}, expected {expected:?}")]
    BadShape { name: String, got: Vec<u64>, expected: Vec<u64> },
    #[error("the prompt needs {needed} tokens but the context holds {context}: shorten the prompt or load the model with a larger context")]
    ContextOverflow { needed: usize, context: usize },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    /// Saved session bytes that are damaged or not a session (bad magic, version, checksum or sizes).
    #[error("invalid session data: {0}")]
    SessionFormat(String),
    /// A well-formed saved session from another model file or engine setup (KV type, context).
    #[error("the session does not fit this model: {0}")]
    SessionMismatch(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    #[error("{0}")]
    Io(String),
    /// A state the engine should never reach (a bug, not bad input).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Stable machine-readable code, the same strings the npm package's `PocketLMError.code` uses.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Format(_) | Error::MissingKey(_) | Error::WrongType { .. } | Error::MissingTensor(_)
            | Error::BadShape { .. } | Error::SessionFormat(_) => "format",
            Error::SessionMismatch(_) => "session-mismatch",
            Error::Unsupported(_) | Error::UnsupportedTensorType { .. } | Error::UnknownTensor { .. } => "unsupported",
            Error::ContextOverflow { .. } => "context-overflow",
            Error::Tokenizer(_) => "tokenizer",
            Error::Template(_) => "template",
            Error::InvalidArgument(_) => "invalid-argument",
            Error::OutOfMemory(_) => "memory",
            Error::Io(_) => "io",
            Error::Internal(_) => "internal",
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}
