#![forbid(unsafe_code)]
//! Placeholder: the relay issue fills this crate.
