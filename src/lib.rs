//! Piraja Tickets: a self-hosted support desk that lives in Slack and Discord.
//!
//! See ARCHITECTURE.md for the map of the parts and their invariants.

pub mod check;
pub mod config;
pub mod core;
pub mod desk;
pub mod discord;
pub mod export;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod outbox;
pub mod secret;
pub mod server;
pub mod slack;
pub mod store;
