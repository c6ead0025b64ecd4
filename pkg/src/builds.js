// The wasm builds present in dist/wasm/. scripts/build.mjs writes the real list into dist/builds.js; this source
// copy lists none, so an unbuilt package reports that plainly instead of failing to fetch a missing file.
/** @type {ReadonlyArray<'simd128' | 'relaxed' | 'threads'>} */
export const BUILDS = [];
