//! Counting heap allocations (opt-in: `--count-allocs`), to give each one-way and
//! `rr64` figure its allocations per message, sender and receiver.
//!
//! The program's global allocator is the system's behind a counter that is off
//! unless asked for: then every `alloc`, `alloc_zeroed` and `realloc` of any thread
//! adds one to a process-wide atomic counter (a few nanoseconds each, so the other
//! figures of such a run are a little slower: count allocations in a run of its own).
//! A child process counts when the parent does (it inherits [`ENV`]).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// The environment variable that tells a child to count.
pub const ENV: &str = "INTERNODE_BENCH_COUNT_ALLOCS";

static ON: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting when [`ON`].
struct Counting;

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count() {
    if ON.load(Relaxed) {
        COUNT.fetch_add(1, Relaxed);
    }
}

/// Starts counting (`--count-allocs`, or [`ENV`] in a child).
pub fn enable() {
    ON.store(true, Relaxed);
}

/// Whether this process counts.
pub fn enabled() -> bool {
    ON.load(Relaxed)
}

/// Allocations so far (0 unless counting).
pub fn count_so_far() -> u64 {
    COUNT.load(Relaxed)
}
