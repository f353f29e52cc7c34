#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod accounts;
mod app;
mod audit;
pub mod cli;
mod config;
mod db;
pub mod exchange;
mod kek;
mod key_check;
mod keyring;
mod rewrap;
mod sealed;
pub mod settings;
mod signing_keys;
mod strategies;
mod totp_sealer;
