//! Shared by the integration tests; each test file uses part of it.
#![allow(dead_code)]
pub mod coturn;
pub mod ws;
