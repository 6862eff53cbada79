//! Encrypted inference as a service: `hegpu serve` (an axum server) and `hegpu client` (a
//! blocking ureq client) around the library's client/server pair ([`hegpu::pair`]).
//! The secret key never leaves the client: the server receives the parameters' choice, the
//! evaluation keys and framed encrypted requests, and answers with framed encrypted results
//! bound to their request.

#![forbid(unsafe_code)]
// The handlers' futures hold the scheduler, whose GPU types nest deeply for the Send check.
#![recursion_limit = "256"]

mod classify;
mod client;
mod keys;
mod server;

pub use classify::{ClassifyError, ClassifyReport, classify};
pub use client::{Client, ClientError};
pub use server::{ModelInfo, Service, ServiceOptions, Tls, serve, serve_until_stopped};
