//! One conversation's KV cache: every layer's keys and values in the chosen [`KvType`], grown in pages of
//! positions as they are used (a session that has seen 300 tokens holds 512 positions, not the whole context).
//!
//! Layout of each of `key` and `value`: (n_layers, capacity, kv_dim) values, so a layer's rows are contiguous for
//! the attention kernels ([`KvRows`]). Growing re-lays the rows out at the new capacity (amortized: the capacity
//! grows by at least half each time). The engine keeps one `KvCache` per session and swaps the current one into
//! [`crate::model::State`]; the scratch buffers are shared.

use crate::model::Config;
use crate::par::Disjoint;
use crate::{Error, Result};
use pocketlm_simd::kv::{self, BlockQ8, KvRows, KvType, Q8_BLOCK};

/// Positions a cache grows by at least (and the granularity of its capacity).
pub const KV_PAGE: usize = 256;

/// A value as the cache stores it, with its little-endian wire form (session blobs, [`crate::session`]).
trait Stored: Copy + Default {
    const SIZE: usize;
    fn put(&self, out: &mut Vec<u8>);
    fn get(b: &[u8]) -> Self;
}

impl Stored for f32 {
    const SIZE: usize = 4;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl Stored for u16 {
    const SIZE: usize = 2;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        u16::from_le_bytes([b[0], b[1]])
    }
}

/// ggml's `block_q8_0` bytes: d (f16, little-endian), then the 32 codes.
impl Stored for BlockQ8 {
    const SIZE: usize = 34;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.d.to_le_bytes());
        out.extend(self.qs.iter().map(|&q| q as u8));
    }
    fn get(b: &[u8]) -> Self {
        let mut qs = [0i8; Q8_BLOCK];
        for (q, &x) in qs.iter_mut().zip(&b[2..2 + Q8_BLOCK]) {
            *q = x as i8;
        }
        BlockQ8 { d: u16::from_le_bytes([b[0], b[1]]), qs }
    }
}

fn alloc<T: Stored>(n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::OutOfMemory(format!("cannot allocate {} MB for the KV cache", (n * T::SIZE) >> 20)))?;
    v.resize(n, T::default());
    Ok(v)
}

/// The cache of every layer's keys (or values) in the chosen [`KvType`]: (n_layers, capacity, kv_dim) values.
pub(crate) enum KvStore {
    F32(Vec<f32>),
    F16(Vec<u16>),
    /// (n_layers, capacity, kv_dim / 32) blocks.
    Q8_0(Vec<BlockQ8>),
}

/// Applies `$body` to the store's vector, whatever its element type.
macro_rules! each {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            KvStore::F32($v) => $body,
            KvStore::F16($v) => $body,
            KvStore::Q8_0($v) => $body,
        }
    };
}

impl KvStore {
    /// `n` zeroed values (a multiple of 32 for q8_0).
    fn new(t: KvType, n: usize) -> Result<KvStore> {
        Ok(match t {
            KvType::F32 => KvStore::F32(alloc(n)?),
            KvType::F16 => KvStore::F16(alloc(n)?),
            KvType::Q8_0 => KvStore::Q8_0(alloc(n / Q8_BLOCK)?),
        })
    }

    pub(crate) fn bytes(&self) -> usize {
        each!(self, v => v.len() * elem_wire(v))
    }

    /// Values `r` (whole q8_0 blocks at both ends) for the attention kernels.
    pub(crate) fn rows(&self, r: std::ops::Range<usize>) -> KvRows<'_> {
        match self {
            KvStore::F32(v) => KvRows::F32(&v[r]),
            KvStore::F16(v) => KvRows::F16(&v[r], 0),
            KvStore::Q8_0(v) => KvRows::Q8_0(&v[r.start / Q8_BLOCK..r.end / Q8_BLOCK], 0),
        }
    }

    pub(crate) fn writer(&mut self) -> KvWriter<'_> {
        match self {
            KvStore::F32(v) => KvWriter::F32(Disjoint::new(v)),
            KvStore::F16(v) => KvWriter::F16(Disjoint::new(v)),
            KvStore::Q8_0(v) => KvWriter::Q8_0(Disjoint::new(v)),
        }
    }

    /// Stored elements per `n` values.
    fn elems(&self, n: usize) -> usize {
        match self {
            KvStore::Q8_0(_) => n / Q8_BLOCK,
            _ => n,
        }
    }

    /// Copies `len` values from `src` at `from` to this store at `to` (same type).
    fn copy_from(&mut self, to: usize, src: &KvStore, from: usize, len: usize) {
        let (to, from, len) = (self.elems(to), self.elems(from), self.elems(len));
        match (self, src) {
            (KvStore::F32(d), KvStore::F32(s)) => d[to..to + len].copy_from_slice(&s[from..from + len]),
            (KvStore::F16(d), KvStore::F16(s)) => d[to..to + len].copy_from_slice(&s[from..from + len]),
            (KvStore::Q8_0(d), KvStore::Q8_0(s)) => d[to..to + len].copy_from_slice(&s[from..from + len]),
            _ => unreachable!("a cache copies only from a cache of its own type"),
        }
    }

    /// Appends values `at..at + len` in their wire form.
    fn put(&self, at: usize, len: usize, out: &mut Vec<u8>) {
        let (at, len) = (self.elems(at), self.elems(len));
        each!(self, v => v[at..at + len].iter().for_each(|x| x.put(out)))
    }

    /// Reads values `at..` from their wire form in `b` (whole elements).
    fn get(&mut self, at: usize, b: &[u8]) {
        let at = self.elems(at);
        each!(self, v => {
            let size = elem_wire(v);
            for (x, c) in v[at..].iter_mut().zip(b.chunks_exact(size)) {
                *x = Stored::get(c);
            }
        })
    }
}

fn elem_wire<T: Stored>(_: &[T]) -> usize {
    T::SIZE
}

/// Writes rows of a [`KvStore`] from parallel tasks.
pub(crate) enum KvWriter<'a> {
    F32(Disjoint<'a, f32>),
    F16(Disjoint<'a, u16>),
    Q8_0(Disjoint<'a, BlockQ8>),
}

impl KvWriter<'_> {
    /// Stores `x` at values `at..at + x.len()` (whole q8_0 blocks).
    ///
    /// # Safety
    /// No other task reads or writes those values meanwhile.
    pub(crate) unsafe fn write(&self, at: usize, x: &[f32]) {
        match self {
            KvWriter::F32(d) => d.slice(at..at + x.len()).copy_from_slice(x),
            KvWriter::F16(d) => kv::store_f16(x, d.slice(at..at + x.len())),
            KvWriter::Q8_0(d) => kv::store_q8_0(x, d.slice(at / Q8_BLOCK..(at + x.len()) / Q8_BLOCK)),
        }
    }
}

/// Keys and values of one conversation.
pub struct KvCache {
    kv_type: KvType,
    n_layers: usize,
    kv_dim: usize,
    /// Positions each layer has room for.
    capacity: usize,
    pub(crate) key: KvStore,   // (n_layers, capacity, kv_dim)
    pub(crate) value: KvStore, // (n_layers, capacity, kv_dim)
}

impl KvCache {
    /// An empty cache (no positions yet) for `c`'s layers. q8_0 needs a head_dim that is a multiple of 32.
    pub fn new(c: &Config, kv_type: KvType) -> Result<KvCache> {
        if kv_type != KvType::F32 {
            if c.head_dim > kv::MAX_ROW {
                return Err(Error::Unsupported(format!("kv type {} with head_dim {} (at most {})", kv_type.name(), c.head_dim, kv::MAX_ROW)));
            }
            if kv_type == KvType::Q8_0 && c.head_dim % Q8_BLOCK != 0 {
                return Err(Error::Unsupported(format!("kv type q8_0 with head_dim {} (not a multiple of 32)", c.head_dim)));
            }
        }
        Ok(KvCache {
            kv_type,
            n_layers: c.n_layers,
            kv_dim: c.kv_dim(),
            capacity: 0,
            key: KvStore::new(kv_type, 0)?,
            value: KvStore::new(kv_type, 0)?,
        })
    }

    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }

    pub fn n_layers(&self) -> usize {
        self.n_layers
    }

    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    /// Positions held without growing.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes allocated now.
    pub fn bytes(&self) -> usize {
        self.key.bytes() + self.value.bytes()
    }

    /// Bytes `positions` positions take (keys and values of every layer).
    pub fn bytes_for(&self, positions: usize) -> usize {
        2 * self.n_layers * self.kv_type.bytes(positions * self.kv_dim)
    }

    /// Bytes of one position's row of one layer (keys or values) in the wire form of a session blob.
    pub fn row_bytes(&self) -> usize {
        self.kv_type.bytes(self.kv_dim)
    }

    /// Makes room for positions `0..positions` (the caller bounds it by the context), keeping the rows held.
    /// Growth goes by pages, at least half the capacity at a time, but never past `limit` positions (the context).
    pub fn reserve(&mut self, positions: usize, limit: usize) -> Result<()> {
        if positions <= self.capacity {
            return Ok(());
        }
        let cap = positions.next_multiple_of(KV_PAGE).max(self.capacity + self.capacity / 2).min(limit.max(positions));
        self.resize(cap, self.capacity)
    }

    /// Frees every position (an evicted session).
    pub fn release(&mut self) {
        self.capacity = 0;
        self.key = KvStore::new(self.kv_type, 0).expect("an empty allocation");
        self.value = KvStore::new(self.kv_type, 0).expect("an empty allocation");
    }

    /// Re-lays the cache out at `cap` positions, keeping rows `0..keep` of each layer.
    fn resize(&mut self, cap: usize, keep: usize) -> Result<()> {
        let n = self
            .n_layers
            .checked_mul(cap)
            .and_then(|n| n.checked_mul(self.kv_dim))
            .ok_or_else(|| Error::OutOfMemory("KV cache size overflows".into()))?;
        let (mut key, mut value) = (KvStore::new(self.kv_type, n)?, KvStore::new(self.kv_type, n)?);
        let d = self.kv_dim;
        for l in 0..self.n_layers {
            key.copy_from(l * cap * d, &self.key, l * self.capacity * d, keep * d);
            value.copy_from(l * cap * d, &self.value, l * self.capacity * d, keep * d);
        }
        (self.key, self.value, self.capacity) = (key, value, cap);
        Ok(())
    }

    /// A copy of positions `0..positions` (a cloned session), with room for those only.
    pub fn copy_prefix(&self, positions: usize) -> Result<KvCache> {
        let mut c = KvCache { capacity: 0, key: KvStore::new(self.kv_type, 0)?, value: KvStore::new(self.kv_type, 0)?, ..*self };
        let positions = positions.min(self.capacity);
        if positions > 0 {
            let cap = positions.next_multiple_of(KV_PAGE);
            c.resize(cap, 0)?;
            let d = self.kv_dim;
            for l in 0..self.n_layers {
                c.key.copy_from(l * cap * d, &self.key, l * self.capacity * d, positions * d);
                c.value.copy_from(l * cap * d, &self.value, l * self.capacity * d, positions * d);
            }
        }
        Ok(c)
    }

    /// Appends positions `0..positions` in wire form: every layer's key rows, then every layer's value rows.
    pub fn export(&self, positions: usize, out: &mut Vec<u8>) {
        let d = self.kv_dim;
        for store in [&self.key, &self.value] {
            for l in 0..self.n_layers {
                store.put(l * self.capacity * d, positions * d, out);
            }
        }
    }

    /// Replaces the contents with `positions` positions read from `b`, [`KvCache::export`]'s form; `b` holds
    /// exactly `2 * n_layers * positions * row_bytes()` bytes (the caller checked).
    pub fn import(&mut self, positions: usize, b: &[u8]) -> Result<()> {
        self.release();
        self.reserve(positions, positions)?;
        let (d, layers, cap, layer) = (self.kv_dim, self.n_layers, self.capacity, positions * self.row_bytes());
        for (s, store) in [&mut self.key, &mut self.value].into_iter().enumerate() {
            for l in 0..layers {
                let at = (s * layers + l) * layer;
                store.get(l * cap * d, &b[at..at + layer]);
            }
        }
        Ok(())
    }
}
