//! The platform-neutral core: desks, tickets, contacts, the timeline, roles, the `/ticket`
//! grammar and the neutral views. Nothing here knows axum, sqlx, Slack or Discord.

pub mod command;
pub mod contact;
pub mod digest;
pub mod grammar;
pub mod mail;
pub mod outgoing;
pub mod people;
pub mod sla;
pub mod ticket;
pub mod view;
