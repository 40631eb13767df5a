//! Fuzz harnesses: one function per decoder, which must not panic whatever the input.
//!
//! Only with the `fuzzing` feature (off by default): they are for the crate's own fuzz
//! and property tests, not part of the API an application uses. `fuzz/Cargo.toml`
//! enables the feature, and so does the crate's dev-dependency on itself, so the plain
//! `cargo test` runs `tests/fuzz_harnesses.rs`.
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
