//! Sessions: several conversations per engine, each with its own KV cache and cached tokens, and their saved form.
//!
//! The engine runs one session at a time (the *current* one, whose [`KvCache`] sits in [`crate::model::State`]);
//! the others are *idle* and keep theirs here. Prefix reuse ([`Engine::start`]) is per session. When the KV caches
//! together would pass the memory budget, idle sessions are evicted least recently used first: an evicted session
//! frees its KV cache but keeps its tokens, so its next turn re-prefills them transparently (the next prompt holds
//! the whole conversation) and saving it first re-runs them.
//!
//! A saved session (`save` -> bytes, `restore`), all integers little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `PLMSESS\0` |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 8 | model hash ([`model_hash`]) |
//! | 4 | KV type: 0 f32, 1 f16, 2 q8_0 |
//! | 4, 4 | n_layers, kv_dim |
//! | 4 | positions `n` (tokens whose keys and values follow) |
//! | 4 | length `m` of the caller's metadata (the package keeps the conversation's messages there) |
//! | 4 n | token ids |
//! | m | metadata |
//! | 2 n_layers n row | key rows of every layer, then value rows, `row` = bytes of kv_dim values as stored ([`KvCache::export`]) |
//! | 4 | CRC-32 (IEEE) of everything before it |
//!
//! `restore` checks all of it (length, magic, version, checksum, then model, KV type and shape, context, token ids)
//! before it changes anything: damaged data is a `format` error, data from another model or engine setup a
//! `session-mismatch` error. Every size is checked against the blob's length before anything is allocated.

use crate::generate::Engine;
use crate::kv_cache::KvCache;
use crate::model::Logits;
use crate::{Error, Result};
use pocketlm_simd::kv::KvType;
use std::collections::HashMap;

pub const MAGIC: [u8; 8] = *b"PLMSESS\0";
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the token ids.
const HEADER: usize = 8 + 4 + 8 + 4 + 4 + 4 + 4 + 4;
/// Largest metadata accepted (the package's messages as JSON).
pub const MAX_META: usize = 16 << 20;
/// Default memory budget for all sessions' KV caches together.
pub const DEFAULT_KV_BUDGET: usize = 512 << 20;

/// A session's handle; 0 is the default session, which always exists.
pub type SessionId = u32;

struct Idle {
    kv: KvCache,
    /// Tokens at positions 0..len: with their keys and values in `kv`, or, when `evicted`, without (freed).
    tokens: Vec<u32>,
    evicted: bool,
    last_used: u64,
}

/// The engine's sessions other than the current one's KV and tokens (those live in the engine).
pub(crate) struct Sessions {
    pub(crate) current: SessionId,
    /// The current session's tokens when it was evicted and has not run since ([`Engine::select_session`]).
    current_evicted: Option<Vec<u32>>,
    idle: HashMap<SessionId, Idle>,
    next_id: SessionId,
    clock: u64,
    pub(crate) budget: usize,
    model_hash: Option<u64>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            current: 0,
            current_evicted: None,
            idle: HashMap::new(),
            next_id: 1,
            clock: 0,
            budget: DEFAULT_KV_BUDGET,
            model_hash: None,
        }
    }
}

/// One session as [`Engine::sessions`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub id: SessionId,
    /// Tokens of the conversation held (with KV unless evicted).
    pub tokens: usize,
    pub kv_bytes: usize,
    pub evicted: bool,
    pub current: bool,
}

impl Sessions {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn new_id(&mut self) -> SessionId {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Context of an unknown-session error.
    fn unknown(id: SessionId) -> Error {
        Error::InvalidArgument(format!("there is no session {id} (it was destroyed, or belongs to another model)"))
    }
}

impl Engine {
    /// A new, empty session (no KV memory until it runs).
    pub fn create_session(&mut self) -> Result<SessionId> {
        let kv = KvCache::new(&self.model.config, self.state.kv.kv_type())?;
        let id = self.sessions.new_id();
        let last_used = self.sessions.tick();
        self.sessions.idle.insert(id, Idle { kv, tokens: Vec::new(), evicted: false, last_used });
        Ok(id)
    }

    /// Make `id` the session the next generation runs in. A generation in progress in another session ends.
    pub fn select_session(&mut self, id: SessionId) -> Result<()> {
        let last_used = self.sessions.tick();
        if id == self.sessions.current {
            return Ok(());
        }
        let mut next = self.sessions.idle.remove(&id).ok_or_else(|| Sessions::unknown(id))?;
        self.end_generation();
        std::mem::swap(&mut self.state.kv, &mut next.kv);
        let (tokens, evicted) = if next.evicted { (Vec::new(), Some(next.tokens)) } else { (next.tokens, None) };
        let old_tokens = std::mem::replace(&mut self.cached, tokens);
        let old = match std::mem::replace(&mut self.sessions.current_evicted, evicted) {
            Some(h) if old_tokens.is_empty() => Idle { kv: next.kv, tokens: h, evicted: true, last_used },
            _ => Idle { kv: next.kv, tokens: old_tokens, evicted: false, last_used },
        };
        self.sessions.idle.insert(self.sessions.current, old);
        self.sessions.current = id;
        Ok(())
    }

    /// The session now selected.
    pub fn current_session(&self) -> SessionId {
        self.sessions.current
    }

    /// A new session holding a copy of `id`'s conversation (its KV rows copied: the two go on independently).
    pub fn clone_session(&mut self, id: SessionId) -> Result<SessionId> {
        let (kv, tokens, evicted) = if id == self.sessions.current {
            match &self.sessions.current_evicted {
                Some(h) if self.cached.is_empty() => (KvCache::new(&self.model.config, self.state.kv.kv_type())?, h.clone(), true),
                _ => (self.state.kv.copy_prefix(self.cached.len())?, self.cached.clone(), false),
            }
        } else {
            let s = self.sessions.idle.get(&id).ok_or_else(|| Sessions::unknown(id))?;
            (s.kv.copy_prefix(if s.evicted { 0 } else { s.tokens.len() })?, s.tokens.clone(), s.evicted)
        };
        let new = self.sessions.new_id();
        let last_used = self.sessions.tick();
        self.sessions.idle.insert(new, Idle { kv, tokens, evicted, last_used });
        self.enforce_kv_budget(0);
        Ok(new)
    }

    /// Free a session. The default session (0) cannot be dropped (`reset` empties it); dropping the current session
    /// selects the default one.
    pub fn drop_session(&mut self, id: SessionId) -> Result<()> {
        if id == 0 {
            return Err(Error::InvalidArgument("session 0 is the default session and cannot be destroyed".into()));
        }
        if id == self.sessions.current {
            self.select_session(0)?;
        }
        self.sessions.idle.remove(&id).map(|_| ()).ok_or_else(|| Sessions::unknown(id))
    }

    /// Every session, by id.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let cur = self.sessions.current;
        let evicted = self.cached.is_empty() && self.sessions.current_evicted.is_some();
        let mut v: Vec<SessionInfo> = self
            .sessions
            .idle
            .iter()
            .map(|(&id, s)| SessionInfo { id, tokens: s.tokens.len(), kv_bytes: s.kv.bytes(), evicted: s.evicted, current: false })
            .chain(std::iter::once(SessionInfo {
                id: cur,
                tokens: if evicted { self.sessions.current_evicted.as_ref().map_or(0, Vec::len) } else { self.cached.len() },
                kv_bytes: self.state.kv.bytes(),
                evicted,
                current: true,
            }))
            .collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// Bytes all sessions' KV caches may take together before idle ones are evicted.
    pub fn set_kv_budget(&mut self, bytes: usize) {
        self.sessions.budget = bytes;
        self.enforce_kv_budget(0);
    }

    /// Called when the current session starts a generation that may grow its cache to `need` bytes: the current
    /// session's prompt supersedes any evicted history, and idle sessions are evicted, least recently used first,
    /// until everything fits the budget (the current session itself is never evicted).
    pub(crate) fn enforce_kv_budget(&mut self, need: usize) {
        let mut total = need.max(self.state.kv.bytes())
            + self.sessions.idle.values().map(|s| s.kv.bytes()).sum::<usize>();
        while total > self.sessions.budget {
            let Some((_, s)) = self
                .sessions
                .idle
                .iter_mut()
                .filter(|(_, s)| s.kv.bytes() > 0)
                .min_by_key(|(_, s)| s.last_used)
            else {
                break;
            };
            total -= s.kv.bytes();
            s.kv.release();
            s.evicted = true;
        }
    }

    /// The current session starts a new generation: an evicted history is superseded by its prompt.
    pub(crate) fn session_starts(&mut self, prompt_len: usize, max_tokens: usize) {
        self.sessions.current_evicted = None;
        let positions = prompt_len.saturating_add(max_tokens).min(self.state.context);
        let need = self.state.kv.bytes_for(positions.next_multiple_of(crate::kv_cache::KV_PAGE).min(self.state.context));
        self.enforce_kv_budget(need);
    }

    /// A stable hash of this model file ([`model_hash`]), computed once.
    pub fn model_hash(&mut self) -> u64 {
        if let Some(h) = self.sessions.model_hash {
            return h;
        }
        let h = model_hash(&self.buf, self.gguf.data_offset as usize);
        self.sessions.model_hash = Some(h);
        h
    }

    /// Session `id` as bytes (see the module documentation), with `meta` (the caller's, stored as given). Selects
    /// `id`; an evicted session's tokens are run again first.
    pub fn save_session(&mut self, id: SessionId, meta: &[u8]) -> Result<Vec<u8>> {
        if meta.len() > MAX_META {
            return Err(Error::InvalidArgument(format!("session metadata of {} bytes (at most {MAX_META})", meta.len())));
        }
        self.select_session(id)?;
        if let Some(h) = self.sessions.current_evicted.take() {
            if self.cached.is_empty() && !h.is_empty() {
                self.end_generation();
                self.model.forward(&self.buf, &mut self.state, &h, 0, Logits::Last)?;
                self.cached = h;
            }
        }
        let hash = self.model_hash();
        let kv = &self.state.kv;
        let n = self.cached.len();
        let mut out = Vec::new();
        out.try_reserve_exact(HEADER + 4 * n + meta.len() + kv.bytes_for(n) + 4)
            .map_err(|_| Error::OutOfMemory("the saved session".into()))?;
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&hash.to_le_bytes());
        for v in [kv_type_code(kv.kv_type()), kv.n_layers() as u32, kv.kv_dim() as u32, n as u32, meta.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for t in &self.cached {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out.extend_from_slice(meta);
        kv.export(n, &mut out);
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// A new session from bytes [`Engine::save_session`] wrote, and its metadata. Nothing changes unless the whole
    /// blob checks out (see the module documentation). The session is not selected.
    pub fn restore_session(&mut self, blob: &[u8]) -> Result<(SessionId, Vec<u8>)> {
        let hash = self.model_hash();
        let c = &self.model.config;
        let p = parse(blob)?;
        let mismatch = |what: String| Err(Error::SessionMismatch(what));
        if p.model_hash != hash {
            return mismatch(format!("the session was saved from another model file (hash {:016x}, this model {hash:016x})", p.model_hash));
        }
        let ours = self.state.kv.kv_type();
        if p.kv_type != ours || p.n_layers != c.n_layers || p.kv_dim != c.kv_dim() {
            return mismatch(format!(
                "the session holds {} KV rows of {} layers x {}, this engine stores {} rows of {} x {}",
                p.kv_type.name(), p.n_layers, p.kv_dim, ours.name(), c.n_layers, c.kv_dim()
            ));
        }
        if p.tokens.len() > self.state.context {
            return mismatch(format!("the session holds {} positions, more than this engine's context of {}", p.tokens.len(), self.state.context));
        }
        if let Some(&bad) = p.tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(Error::SessionFormat(format!("token id {bad} outside the vocabulary of {}", c.vocab_size)));
        }
        let mut kv = KvCache::new(c, ours)?;
        if kv.bytes_for(p.tokens.len()) != p.kv.len() {
            return Err(Error::SessionFormat("the KV rows do not match the header".into()));
        }
        kv.import(p.tokens.len(), p.kv)?;
        let id = self.sessions.new_id();
        let last_used = self.sessions.tick();
        self.sessions.idle.insert(id, Idle { kv, tokens: p.tokens, evicted: false, last_used });
        self.enforce_kv_budget(0);
        Ok((id, p.meta.to_vec()))
    }
}

/// A blob's fields, checked for form (not yet against an engine).
struct Parsed<'a> {
    model_hash: u64,
    kv_type: KvType,
    n_layers: usize,
    kv_dim: usize,
    tokens: Vec<u32>,
    meta: &'a [u8],
    kv: &'a [u8],
}

fn kv_type_code(t: KvType) -> u32 {
    match t {
        KvType::F32 => 0,
        KvType::F16 => 1,
        KvType::Q8_0 => 2,
    }
}

fn parse(b: &[u8]) -> Result<Parsed<'_>> {
    let bad = |what: &str| Err(Error::SessionFormat(what.to_string()));
    if b.len() < HEADER + 4 {
        return bad("too short for a session");
    }
    if b[..8] != MAGIC {
        return bad("not a pocketlm session (bad magic)");
    }
    let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let version = u32_at(8);
    if version != FORMAT_VERSION {
        return Err(Error::SessionFormat(format!("session format version {version}, this engine reads {FORMAT_VERSION}")));
    }
    let body = &b[..b.len() - 4];
    if crc32(body) != u32_at(b.len() - 4) {
        return bad("checksum mismatch (the session data is damaged)");
    }
    let model_hash = u64::from_le_bytes(b[12..20].try_into().expect("8 bytes"));
    let kv_type = match u32_at(20) {
        0 => KvType::F32,
        1 => KvType::F16,
        2 => KvType::Q8_0,
        _ => return bad("unknown KV type"),
    };
    let (n_layers, kv_dim, n, m) = (u32_at(24) as usize, u32_at(28) as usize, u32_at(32) as usize, u32_at(36) as usize);
    if m > MAX_META || n_layers == 0 || kv_dim == 0 || (kv_type == KvType::Q8_0 && kv_dim % 32 != 0) {
        return bad("bad sizes in the header");
    }
    // Every size below is bounded by the blob's own length before anything is allocated.
    let row = kv_type.bytes(kv_dim) as u128;
    let expect = HEADER as u128 + 4 * n as u128 + m as u128 + 2 * n_layers as u128 * n as u128 * row + 4;
    if expect != b.len() as u128 {
        return bad("the length does not match the header");
    }
    let tokens_end = HEADER + 4 * n;
    let tokens = b[HEADER..tokens_end].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(Parsed {
        model_hash,
        kv_type,
        n_layers,
        kv_dim,
        tokens,
        meta: &b[tokens_end..tokens_end + m],
        kv: &b[tokens_end + m..body.len()],
    })
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as zlib's `crc32`.
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !data.iter().fold(!0u32, |c, &b| TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8))
}

/// Bytes sampled from the tensor data by [`model_hash`]: `SAMPLES` runs of `SAMPLE` bytes, evenly spaced.
const SAMPLES: usize = 64;
const SAMPLE: usize = 4096;

/// Identifies a model file without reading all of it: 64-bit FNV-1a over the file's length, its whole header
/// (metadata and tensor table, `..data_offset`) and 64 evenly spaced 4 KiB runs of its tensor data. Two files
/// with the same header but other weights (another fine-tune) differ in the samples.
pub fn model_hash(buf: &[u8], data_offset: usize) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(PRIME);
        }
    };
    eat(&(buf.len() as u64).to_le_bytes());
    let data_offset = data_offset.min(buf.len());
    eat(&buf[..data_offset]);
    let data = &buf[data_offset..];
    if data.len() <= SAMPLES * SAMPLE {
        eat(data);
    } else {
        let step = (data.len() - SAMPLE) / (SAMPLES - 1);
        for i in 0..SAMPLES {
            eat(&data[i * step..i * step + SAMPLE]);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn parse_rejects_short_bad_magic_and_version_as_format() {
        assert_eq!(parse(b"PLMSESS\0").err().map(|e| e.code()), Some("format"));
        let mut b = vec![0u8; HEADER + 4];
        assert_eq!(parse(&b).err().map(|e| e.code()), Some("format"));
        b[..8].copy_from_slice(&MAGIC);
        b[8] = 2;
        assert!(parse(&b).err().unwrap().to_string().contains("version 2"));
    }

    #[test]
    fn huge_sizes_in_a_header_with_a_good_checksum_are_refused_without_allocating() {
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        for v in [0u32, 30, 192, u32::MAX, 1000] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let crc = crc32(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        let e = parse(&b).err().unwrap();
        assert_eq!(e.code(), "format");
        assert!(e.to_string().contains("length"), "{e}");
    }
}
