//! One integration-test binary: the desk core, the outbox and the HTTP server, each through
//! the real SQLite store.

mod desk;
mod discord;
mod helpers;
mod mail;
mod outbox;
mod process;
mod server;
mod sla;
mod slack;
