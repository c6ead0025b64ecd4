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
pub fn now_ms() -> f64 {
    use wasm_bindgen::JsCast;
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|p| p.dyn_into::<js_sys::Object>().ok());
    if let Some(perf) = perf {
        if let Ok(f) = js_sys::Reflect::get(&perf, &"now".into()).and_then(|f| f.dyn_into::<js_sys::Function>()) {
            if let Some(t) = f.call0(&perf).ok().and_then(|v| v.as_f64()) {
                return t;
            }
        }
    }
    js_sys::Date::now()
}
