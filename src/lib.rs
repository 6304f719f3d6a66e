//! The `loopvel` command-line tool: a thin layer over the library crates.
//!
//! * [`cli`] — the options, as clap types.
//! * [`commands`] — one module per subcommand: read input, call the library, hand the result to [`render`].
//! * [`render`] — text tables and paragraphs for people; JSON goes straight through serde.
//! * [`error`] — what can go wrong, and the exit code for it (2 for bad input).

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod render;
