//! Look inside recorded runs.
//!
//! A run's [`transcript`](transcript::transcript) is built from what the
//! store recorded ([`loopvel_store::RunDetail`]: each turn's request, reply,
//! refusals, tests and timings) and the files each turn left
//! ([`files::rebuild`], which plays the recorded replies again into a copy of
//! the task). [`pages::Pages`] renders it, the plans and the run list as
//! HTML through templates that escape every value; [`server::Viewer`] serves
//! them read-only on 127.0.0.1 (`loopvel view`), and `loopvel report --run ID
//! --html FILE` writes one transcript as a self-contained file.
//!
//! **Invariants:** never writes to the database (it is opened read-only);
//! listens on 127.0.0.1 only; nothing recorded is printed unescaped; pages
//! have no scripts and load nothing from anywhere.
//!
//! ```
//! let d = loopvel_view::transcript::diff("a.py", "x = 1\n", "x = 2\n").unwrap();
//! assert_eq!((d.added, d.removed), (1, 1));
//! ```

pub mod files;
pub mod pages;
pub mod server;
pub mod transcript;
