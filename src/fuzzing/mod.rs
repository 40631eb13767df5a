//! Fuzz harnesses: one function per decoder, which must not panic whatever the input.
//!
//! Each `fuzz/fuzz_targets/*.rs` target is a one-line call to one of these functions,
//! and `tests/fuzz_harnesses.rs` runs the same functions under proptest in CI, so a
//! failure found by either is reproduced by both.

mod envelope;
mod frame;
mod handshake;
mod receive;

pub use envelope::envelope;
pub use frame::frame_decoder;
pub use handshake::handshake;
pub use receive::receive;
