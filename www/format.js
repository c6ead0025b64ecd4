// Human-readable sizes, durations and transfer speed for the progress bar and the cache manager. No DOM.

const MB = 1e6;

/** "812 kB", "94.2 MB", "1.25 GB" (decimal units, as download sizes are usually quoted). */
export function formatBytes(n) {
  if (!Number.isFinite(n) || n < 0) return '?';
  if (n < 1e3) return `${Math.round(n)} B`;
  if (n < MB) return `${Math.round(n / 1e3)} kB`;
  if (n < 1e9) return `${(n / MB).toFixed(n < 10 * MB ? 2 : 1)} MB`;
  if (n < 1e12) return `${(n / 1e9).toFixed(2)} GB`;
  return `${(n / 1e12).toFixed(2)} TB`;
}

/** Megabytes with one decimal, without unit: the "43.1 / 98.4 MB" counter. */
export function toMB(n) {
  return (n / MB).toFixed(1);
}

/** "8 s", "2 min 05 s", "1 h 03 min". */
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/**
 * Bytes per second over a sliding window, so the speed and ETA follow the current rate instead of the average since
 * the start (which hides stalls and resumed downloads).
 */
export class RateMeter {
  constructor(windowMs = 3000) {
    this.windowMs = windowMs;
    this.samples = []; // [timeMs, loadedBytes], oldest first
  }

  reset() {
    this.samples = [];
  }

  add(loaded, now = performance.now()) {
    const last = this.samples[this.samples.length - 1];
    if (last && loaded < last[1]) this.samples = []; // a new phase or a restart counts from zero again
    this.samples.push([now, loaded]);
    while (this.samples.length > 2 && now - this.samples[0][0] > this.windowMs) this.samples.shift();
  }

  /** Bytes per second, or NaN until two samples at least 200 ms apart exist. */
  rate() {
    if (this.samples.length < 2) return NaN;
    const [t0, b0] = this.samples[0];
    const [t1, b1] = this.samples[this.samples.length - 1];
    return t1 - t0 >= 200 ? ((b1 - b0) * 1000) / (t1 - t0) : NaN;
  }
}

/** Short label of a model URL for lists: the file name, decoded. */
export function fileName(url) {
  try {
    const path = new URL(url, location.href).pathname;
    return decodeURIComponent(path.slice(path.lastIndexOf('/') + 1)) || url;
  } catch {
    return String(url);
  }
}
