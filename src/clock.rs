//! A monotonic millisecond clock that works natively and on wasm32-unknown-unknown (where `std::time::Instant`
//! panics): `performance.now()` of the page or worker global there.

#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1000.0
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// `performance.now()` of the global scope (window or worker), called directly: the profiler reads the clock
    /// a few hundred times per token.
    #[wasm_bindgen(catch, js_namespace = performance, js_name = now)]
    fn performance_now() -> Result<f64, wasm_bindgen::JsValue>;
}

#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> f64 {
    performance_now().unwrap_or_else(|_| js_sys::Date::now())
}
