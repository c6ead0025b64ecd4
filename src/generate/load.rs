//! Building an engine: [`Header`], what the GGUF header alone gives, then [`Engine`] over the whole file.

use super::{Engine, KvType, ModelInfo, Stats, DEFAULT_KV_TYPE};
use crate::chat::ChatTemplate;
use crate::gguf::Gguf;
use crate::model::{Model, State};
use crate::session::Sessions;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};
use std::sync::Arc;

/// What an engine builds from the GGUF header alone (the architecture check, the tokenizer and the chat
/// template): the browser builds it as soon as the header has arrived, while the tensor data is still being read,
/// so its cost (mostly the tokenizer: ~70 ms natively, ~150-250 ms in wasm for SmolLM2) overlaps the loading.
pub struct Header {
    gguf: Gguf,
    file_len: u64,
    tokenizer: Tokenizer,
    chat: std::result::Result<ChatTemplate, String>,
}

impl Header {
    /// `gguf` parsed from the first bytes of a file of `file_len` bytes ([`Gguf::parse_header`]).
    pub fn new(gguf: Gguf, file_len: u64) -> Result<Header> {
        // Unknown architectures, bad hyperparameters and unknown, missing or misshapen tensors fail here.
        crate::model::Model::check_header(&gguf)?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        let chat = ChatTemplate::from_gguf(&gguf, &tokenizer).map_err(|e| e.to_string());
        Ok(Header { gguf, file_len, tokenizer, chat })
    }
}

impl Engine {
    /// Build an engine over the whole GGUF file in `buf` (taken, not copied), its KV cache in [`DEFAULT_KV_TYPE`].
    /// `context == 0` is `auto` ([`crate::context`]: the trained context within a KV memory budget).
    pub fn from_bytes(buf: Vec<u8>, context: usize) -> Result<Engine> {
        Engine::from_bytes_kv(buf, context, DEFAULT_KV_TYPE)
    }

    /// [`Engine::from_bytes`] with the KV cache stored as `kv_type`.
    pub fn from_bytes_kv(buf: Vec<u8>, context: usize, kv_type: KvType) -> Result<Engine> {
        let header = Header::new(Gguf::parse(&buf)?, buf.len() as u64)?;
        Engine::from_header_kv(header, buf, context, kv_type)
    }

    /// Build an engine from a [`Header`] prepared while the file was arriving and the whole file in `buf`.
    pub fn from_header(header: Header, buf: Vec<u8>, context: usize) -> Result<Engine> {
        Engine::from_header_kv(header, buf, context, DEFAULT_KV_TYPE)
    }

    /// [`Engine::from_header`] with the KV cache stored as `kv_type`.
    pub fn from_header_kv(header: Header, buf: Vec<u8>, context: usize, kv_type: KvType) -> Result<Engine> {
        let Header { gguf, file_len, tokenizer, chat } = header;
        if buf.len() as u64 != file_len {
            return Err(Error::InvalidArgument(format!(
                "the header was read from a file of {file_len} bytes, the data has {}",
                buf.len()
            )));
        }
        let model = Model::from_gguf(&gguf, &buf)?;
        let c = &model.config;
        let context = crate::context::resolve(c, kv_type, buf.len() as u64, context)?;
        if tokenizer.vocab_size() > c.vocab_size {
            return Err(Error::Format(format!(
                "tokenizer has {} tokens but the embedding only {}",
                tokenizer.vocab_size(),
                c.vocab_size
            )));
        }
        let state = State::with_kv(c, context, kv_type)?;
        let counts = model.weights.type_counts();
        let info = ModelInfo {
            architecture: c.arch.clone(),
            name: gguf.opt_str("general.name")?.unwrap_or("").to_string(),
            parameters: gguf.tensors.iter().map(|t| t.n_elements()).sum(),
            // Informative only: a file_type of the wrong kind is ignored, not an error.
            quantization: crate::model::quantization_label(gguf.opt_u64("general.file_type").ok().flatten(), &counts),
            file_bytes: buf.len() as u64,
            context_size: context,
            train_context: c.train_context,
            vocab_size: c.vocab_size,
            layers: c.n_layers,
            embedding: c.dim,
            heads: c.n_heads,
            kv_heads: c.n_kv_heads,
            chat_template: chat.is_ok(),
            state_bytes: state.bytes(),
            kv_type: kv_type.name().to_string(),
            kv_bytes: state.kv_bytes(),
            threads: state.threads(),
        };
        Ok(Engine {
            buf,
            gguf,
            model,
            tokenizer: Arc::new(tokenizer),
            grammars: None,
            chat,
            state,
            cached: Vec::new(),
            sessions: Sessions::default(),
            gen: None,
            pending: None,
            stats: Stats::default(),
            info,
        })
    }
}
