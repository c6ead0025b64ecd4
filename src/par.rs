//! Parallel loops of the forward pass: `n` independent tasks (row ranges of a matrix product, attention heads) run
//! across a team of threads, or inline when there is one thread.
//!
//! Threads come from a rayon pool: natively a [`rayon_core::ThreadPool`] built once ([`Pool::new`]), on wasm the
//! global pool that wasm-bindgen-rayon's `initThreadPool` starts in Web Workers ([`Pool::global`], only in the
//! `threads` build: the single-thread wasm builds never start a thread). Nothing is spawned per token: a
//! [`Pool::session`] (one per `forward` call) puts one long-lived helper job on each pool thread, and every
//! [`Team::run`] inside it is handed to those helpers through a few atomics instead of a rayon job each
//! (waking a sleeping worker costs far more than handing over through atomics, and a decode step is many short
//! parallel loops, one per group of matrix products). Helpers spin a
//! little between loops, then sleep on a condition variable.
//!
//! Tasks are claimed dynamically (an atomic counter), so a helper the OS has descheduled only delays the tasks it
//! took; the caller's thread takes the rest. Which thread runs a task never changes what it computes: callers split
//! work into tasks whose results do not depend on the split (see `model/forward.rs`), so N threads give the same
//! bits as 1.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::Range;

/// Whether this build can run threads: always natively, on wasm only in the `threads` build (shared memory).
#[cfg(any(feature = "threads", not(target_arch = "wasm32")))]
macro_rules! if_threads { ($($i:item)*) => { $($i)* } }
#[cfg(not(any(feature = "threads", not(target_arch = "wasm32"))))]
macro_rules! if_threads { ($($i:item)*) => {} }

/// Where parallel loops run: inline, or on a rayon pool plus the calling thread.
#[derive(Clone)]
pub struct Pool {
    /// Threads working on a loop, the caller included.
    threads: usize,
    #[cfg(any(feature = "threads", not(target_arch = "wasm32")))]
    pool: Option<std::sync::Arc<rayon_core::ThreadPool>>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool::single()
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} threads)", self.threads)
    }
}

impl Pool {
    /// Everything inline on the calling thread.
    pub fn single() -> Pool {
        Pool {
            threads: 1,
            #[cfg(any(feature = "threads", not(target_arch = "wasm32")))]
            pool: None,
        }
    }

    /// The calling thread plus `threads - 1` helper threads of a new rayon pool (natively; on wasm see
    /// [`Pool::global`]). `threads == 1` is [`Pool::single`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(threads: usize) -> crate::Result<Pool> {
        if threads == 0 || threads > 1024 {
            return Err(crate::Error::InvalidArgument(format!("thread count {threads} is out of range (1..=1024)")));
        }
        if threads == 1 {
            return Ok(Pool::single());
        }
        let pool = rayon_core::ThreadPoolBuilder::new()
            .num_threads(threads - 1)
            .thread_name(|i| format!("pocketlm-{}", i + 1))
            .build()
            .map_err(|e| crate::Error::Io(format!("cannot start {} threads: {e}", threads - 1)))?;
        Ok(Pool { threads, pool: Some(std::sync::Arc::new(pool)) })
    }

    /// The calling thread plus every thread of rayon's global pool (wasm: the workers `initThreadPool(n)`
    /// started, which must have run before this).
    #[cfg(feature = "threads")]
    pub fn global() -> Pool {
        Pool { threads: rayon_core::current_num_threads() + 1, pool: None }
    }

    /// Threads working on each parallel loop, the caller included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `body` with a [`Team`] whose loops use this pool's threads; the helpers are released when it returns.
    pub fn session<R>(&self, body: impl FnOnce(&Team) -> R) -> R {
        #[cfg(any(feature = "threads", not(target_arch = "wasm32")))]
        if self.threads > 1 {
            return team::session(self, body);
        }
        body(&Team { threads: 1, shared: None, gen: Cell::new(0), _not_sync: PhantomData })
    }
}

/// The threads of one [`Pool::session`].
pub struct Team<'s> {
    threads: usize,
    #[cfg(any(feature = "threads", not(target_arch = "wasm32")))]
    shared: Option<&'s team::Shared>,
    #[cfg(not(any(feature = "threads", not(target_arch = "wasm32"))))]
    shared: Option<&'s ()>,
    /// Generation of the last loop handed out.
    gen: Cell<u32>,
    _not_sync: PhantomData<*const ()>,
}

impl Team<'_> {
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Calls `f(i)` once for every `i in 0..n`, spread over the team, and returns when all calls have returned.
    /// A panic in any call is raised again here after all of them finished.
    pub fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        #[cfg(any(feature = "threads", not(target_arch = "wasm32")))]
        if let Some(shared) = self.shared {
            if n > 1 {
                let gen = self.gen.get().wrapping_add(1);
                self.gen.set(gen);
                return shared.run(gen, n, f);
            }
        }
        for i in 0..n {
            f(i);
        }
    }
}

/// A mutable slice handed out to parallel tasks in pieces that do not overlap.
pub struct Disjoint<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: a Disjoint is a `&mut [T]` split between threads; sending or sharing it is sound for `T: Send` as long as
// the pieces taken concurrently do not overlap, which `slice`'s contract requires.
unsafe impl<T: Send> Send for Disjoint<'_, T> {}
unsafe impl<T: Send> Sync for Disjoint<'_, T> {}

impl<'a, T> Disjoint<'a, T> {
    pub fn new(s: &'a mut [T]) -> Self {
        Disjoint { ptr: s.as_mut_ptr(), len: s.len(), _borrow: PhantomData }
    }

    /// `s[r]` of the slice this was made from. Panics when `r` is out of bounds.
    ///
    /// # Safety
    /// No two pieces alive at the same time may overlap (tasks of one [`Team::run`] take disjoint ranges).
    #[allow(clippy::mut_from_ref)]
    #[track_caller]
    pub unsafe fn slice(&self, r: Range<usize>) -> &'a mut [T] {
        assert!(r.start <= r.end && r.end <= self.len, "Disjoint::slice {r:?} out of 0..{}", self.len);
        // SAFETY: in bounds (checked above) of a slice borrowed mutably for 'a; no overlap by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.end - r.start) }
    }
}

if_threads! {
mod team {
    use super::{Pool, Team};
    use std::cell::Cell;
    use std::marker::PhantomData;
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
    use std::sync::{Condvar, Mutex};

    /// How long a waiting helper spins before it sleeps, in ms: far longer than the gap between two loops of a
    /// forward call (µs), so that a helper is awake when the next loop starts (waking a sleeping one costs tens of
    /// µs, in browsers more, and a helper that arrives late can hold up the loop with the task it then takes). A
    /// session lasts one forward call, so helpers never spin between calls.
    const SPIN_MS: f64 = 0.1;
    /// Spins between two looks at the clock (a clock read is a call into JS on wasm).
    const SPINS_PER_CLOCK: u32 = 1 << 10;
    /// Spins of the caller waiting for the helpers' last tasks before it offers its core to other threads.
    const SPINS: u32 = 1 << 14;

    /// A loop of `n` tasks: `f` lives on the stack of [`Shared::run`], which returns only after all `n` finished.
    type Job<'f> = &'f (dyn Fn(usize) + Sync);

    /// What the caller and the helpers of one session share.
    pub(super) struct Shared {
        /// `gen << 32 | n << 16 | next`: the current loop's generation, task count and next unclaimed task. A task
        /// is claimed with one `fetch_add`, which can only overshoot `n` (by at most one per thread and loop).
        claim: AtomicU64,
        /// `*const Job` of the current loop, written before its generation is published.
        job: AtomicPtr<()>,
        /// Tasks of the current loop that have returned.
        done: AtomicUsize,
        panicked: AtomicBool,
        stop: AtomicBool,
        sleepers: AtomicUsize,
        lock: Mutex<()>,
        wake: Condvar,
    }

    pub(super) fn session<R>(pool: &Pool, body: impl FnOnce(&Team) -> R) -> R {
        let shared = Shared {
            claim: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        };
        let threads = pool.threads;
        match &pool.pool {
            Some(p) => p.in_place_scope(|s| in_scope(s, &shared, threads, body)),
            None => rayon_core::in_place_scope(|s| in_scope(s, &shared, threads, body)),
        }
    }

    /// The session inside its rayon scope: one helper job per pool thread, `body` on this thread.
    fn in_scope<'s, R>(s: &rayon_core::Scope<'s>, shared: &'s Shared, threads: usize, body: impl FnOnce(&Team) -> R) -> R {
        for _ in 1..threads {
            s.spawn(move |_| shared.help());
        }
        // Released on every exit, unwinding included, so the scope's wait for its helpers ends.
        struct Stop<'a>(&'a Shared);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.stop.store(true, SeqCst);
                self.0.notify();
            }
        }
        let _stop = Stop(shared);
        body(&Team { threads, shared: Some(shared), gen: Cell::new(0), _not_sync: PhantomData })
    }

    const IDX: u64 = 0xffff;

    impl Shared {
        fn notify(&self) {
            if self.sleepers.load(SeqCst) > 0 {
                let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                self.wake.notify_all();
            }
        }

        /// Runs task `i` of the loop published as `word`'s generation and counts it done.
        fn task(&self, i: usize) {
            let p = self.job.load(Acquire) as *const Job<'static>;
            // SAFETY: the claim that gave us task `i` read the generation the job pointer was published with (Release
            // store then AcqRel/Acquire RMWs of `claim`), so `p` is that loop's job; `Shared::run` keeps it alive
            // until `done` reaches `n`, which needs this task's increment below, after the call.
            let f = unsafe { *p };
            if catch_unwind(AssertUnwindSafe(|| f(i))).is_err() {
                self.panicked.store(true, Relaxed);
            }
            self.done.fetch_add(1, Release);
        }

        /// Claims and runs tasks until none is left; returns the generation it saw last.
        fn drain(&self) -> u64 {
            loop {
                let w = self.claim.fetch_add(1, AcqRel);
                let (gen, n, i) = (w >> 32, (w >> 16) & IDX, w & IDX);
                if i >= n {
                    return gen;
                }
                self.task(i as usize);
            }
        }

        /// A helper thread's loop: wait for a new generation, take tasks, repeat until the session stops.
        fn help(&self) {
            let mut seen = 0u64;
            loop {
                let mut spins = 0u32;
                let mut since = None;
                loop {
                    if self.stop.load(Acquire) {
                        return;
                    }
                    if self.claim.load(Acquire) >> 32 != seen {
                        break;
                    }
                    spins = spins.wrapping_add(1);
                    if spins % SPINS_PER_CLOCK != 0 {
                        std::hint::spin_loop();
                        continue;
                    }
                    let now = crate::clock::now_ms();
                    if now - *since.get_or_insert(now) < SPIN_MS {
                        continue;
                    }
                    since = None;
                    // Sleep. The SeqCst increment then re-check pairs with `run`'s SeqCst publish then
                    // `sleepers` load: either `run` sees us and notifies under the lock, or we see its generation.
                    let g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                    self.sleepers.fetch_add(1, SeqCst);
                    if !self.stop.load(SeqCst) && self.claim.load(SeqCst) >> 32 == seen {
                        drop(self.wake.wait(g).unwrap_or_else(|e| e.into_inner()));
                    }
                    self.sleepers.fetch_sub(1, SeqCst);
                }
                seen = self.drain();
            }
        }

        /// Publishes loop `gen` of `n` tasks, works on it, and waits for the helpers' share.
        pub(super) fn run(&self, gen: u32, n: usize, f: &(dyn Fn(usize) + Sync)) {
            assert!(n <= (IDX as usize) / 2, "Team::run: {n} tasks is too many for one loop");
            let job: Job<'_> = f;
            self.job.store(&job as *const Job<'_> as *mut (), Relaxed);
            self.done.store(0, Relaxed);
            self.claim.store((gen as u64) << 32 | (n as u64) << 16, SeqCst);
            self.notify();
            self.drain();
            // The helpers' last tasks. A helper the OS took off its core mid-task holds us up until it runs again:
            // after a short spin, offer the core (on a machine with more threads than free cores it may be ours).
            let mut spins = 0u32;
            while self.done.load(Acquire) < n {
                spins += 1;
                if spins < SPINS {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            if self.panicked.swap(false, Relaxed) {
                resume_unwind(Box::new("a task of a parallel loop panicked"));
            }
        }
    }
}
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// Two tasks that each wait for the other to have started can only both finish on two threads at once.
    #[test]
    fn tasks_run_concurrently_on_the_pool() {
        let pool = Pool::new(2).unwrap();
        let started = AtomicUsize::new(0);
        let met = AtomicUsize::new(0);
        pool.session(|team| {
            for _ in 0..3 {
                started.store(0, Ordering::SeqCst);
                team.run(2, &|_| {
                    started.fetch_add(1, Ordering::SeqCst);
                    let t0 = Instant::now();
                    while started.load(Ordering::SeqCst) < 2 {
                        if t0.elapsed() > Duration::from_secs(10) {
                            return;
                        }
                        std::hint::spin_loop();
                    }
                    met.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(met.load(Ordering::SeqCst), 6);
    }

    #[test]
    fn every_task_runs_once_and_panics_propagate() {
        let pool = Pool::new(3).unwrap();
        let hits: Vec<AtomicUsize> = (0..100).map(|_| AtomicUsize::new(0)).collect();
        pool.session(|team| {
            for n in [0, 1, 7, 100] {
                team.run(n, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        let want = |i: usize| [1, 7, 100].iter().filter(|&&n| i < n).count();
        assert!(hits.iter().enumerate().all(|(i, h)| h.load(Ordering::Relaxed) == want(i)));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.session(|team| team.run(8, &|i| assert!(i != 5, "task 5")))));
        assert!(r.is_err());
        // The pool still works after a panicking loop.
        let count = AtomicUsize::new(0);
        pool.session(|team| team.run(8, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        }));
        assert_eq!(count.load(Ordering::Relaxed), 8);
    }
}
