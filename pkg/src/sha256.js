// Incremental SHA-256 (FIPS 180-4). Web Crypto's digest() needs the whole message in one buffer, which for a
// model file would mean one JS ArrayBuffer of hundreds of MB; this hashes chunk by chunk as they stream past.

// Round constants and initial hash (FIPS 180-4 §4.2.2, §5.3.3): the first 32 bits of the fractional parts of the
// cube roots of the first 64 primes and of the square roots of the first 8. Derived rather than typed in; the
// tests compare digests against Web Crypto, which would catch a wrong constant.
const PRIMES = [];
for (let n = 2; PRIMES.length < 64; n++) {
  if (PRIMES.every((p) => n % p !== 0)) PRIMES.push(n);
}
const frac32 = (x) => Math.floor((x - Math.floor(x)) * 2 ** 32) | 0;
const K = Int32Array.from(PRIMES, (p) => frac32(Math.cbrt(p)));
const H0 = Int32Array.from(PRIMES.slice(0, 8), (p) => frac32(Math.sqrt(p)));

/** SHA-256 over any number of `update` calls. */
export class Sha256 {
  #h = Int32Array.from(H0);
  #w = new Int32Array(64); // message schedule
  #block = new Uint8Array(64); // a partial 64-byte block carried between updates
  #blockLen = 0;
  #length = 0; // bytes hashed so far (exact below 2^53)
  #done = false;

  /** @param {Uint8Array} data */
  update(data) {
    if (this.#done) throw new Error('Sha256: update after digest');
    let off = 0;
    const n = data.length;
    this.#length += n;
    if (this.#blockLen > 0) {
      const take = Math.min(64 - this.#blockLen, n);
      this.#block.set(data.subarray(0, take), this.#blockLen);
      this.#blockLen += take;
      off = take;
      if (this.#blockLen < 64) return this;
      compress(this.#h, this.#w, this.#block, 0);
      this.#blockLen = 0;
    }
    for (; off + 64 <= n; off += 64) compress(this.#h, this.#w, data, off);
    if (off < n) {
      this.#block.set(data.subarray(off), 0);
      this.#blockLen = n - off;
    }
    return this;
  }

  /** @returns {Uint8Array} the 32-byte digest; the hasher cannot be updated afterwards. */
  digest() {
    if (this.#done) throw new Error('Sha256: digest called twice');
    // Padding (FIPS 180-4 §5.1.1): 0x80, zeros to 56 mod 64, then the message length in bits as a 64-bit
    // big-endian integer.
    const bits = this.#length * 8;
    const tail = new Uint8Array(this.#blockLen < 56 ? 64 : 128);
    tail.set(this.#block.subarray(0, this.#blockLen));
    tail[this.#blockLen] = 0x80;
    const view = new DataView(tail.buffer);
    view.setUint32(tail.length - 8, Math.floor(bits / 2 ** 32));
    view.setUint32(tail.length - 4, bits >>> 0);
    for (let off = 0; off < tail.length; off += 64) compress(this.#h, this.#w, tail, off);
    this.#done = true;
    const out = new Uint8Array(32);
    const ov = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) ov.setInt32(i * 4, this.#h[i]);
    return out;
  }

  /** @returns {string} the digest as 64 lowercase hex digits. */
  hex() {
    return Array.from(this.digest(), (b) => b.toString(16).padStart(2, '0')).join('');
  }
}

/**
 * One 64-byte block (FIPS 180-4 §6.2.2). Int32 arithmetic with `| 0` keeps V8 on its integer fast path.
 * @param {Int32Array} h hash state (8)
 * @param {Int32Array} w schedule scratch (64)
 * @param {Uint8Array} buf
 * @param {number} off start of the block in buf
 */
function compress(h, w, buf, off) {
  for (let i = 0; i < 16; i++, off += 4) {
    w[i] = (buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3];
  }
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15];
    const y = w[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
  let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (k + S1 + ch + K[i] + w[i]) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b) ^ (a & c) ^ (b & c);
    const t2 = (S0 + maj) | 0;
    k = g; g = f; f = e; e = (d + t1) | 0;
    d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + k) | 0;
}
