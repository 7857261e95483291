//! Builds from a Dockerfile: the pure parts, apart from the engine that runs them.
//!
//! `dockerfile` parses a Dockerfile (through the `parse-dockerfile` crate) into typed stages and steps;
//! `words` does Docker's variable substitution and word splitting; `ignore` reads `.dockerignore`;
//! `copy` carries out `COPY` and `ADD` from a context or another stage into a rootfs, beneath its root,
//! and digests what they take for the step cache. The engine (`engine::build`) owns the order, the
//! cache and the `RUN` steps.

pub mod config;
pub mod copy;
pub mod dockerfile;
pub mod error;
pub mod ignore;
pub mod values;
pub mod words;
