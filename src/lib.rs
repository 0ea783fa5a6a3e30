//! mirrorwatch: a passive watcher for a branch office's mirror port.
//!
//! One pipeline ([`pipeline`]) serves the appliance daemon and the command line alike:
//! [`capture`] sources hand frames to [`decode`], the [`flow`] table runs Wireshark-exact TCP
//! analysis, and the results go to SQLite through [`store`]'s batching writer. Packet time drives
//! everything ([`time`]), so a capture file analysed later gives what the box would have seen
//! live.
#![forbid(unsafe_code)]

pub mod analyzers;
pub mod bounded;
pub mod capture;
pub mod commands;
pub mod config;
pub mod decode;
pub mod diff;
pub mod escape;
pub mod event;
pub mod export;
pub mod filter;
pub mod flow;
pub mod i18n;
pub mod identity;
pub mod jobs;
pub mod mail;
pub mod notify;
pub mod offline;
pub mod pipeline;
pub mod rules;
pub mod store;
pub mod summary;
pub mod time;
pub mod transactions;
pub mod units;
pub mod web;
