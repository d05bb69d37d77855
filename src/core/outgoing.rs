//! Outgoing messages: what the desk must say on a platform, written to the outbox in the same
//! transaction as the change that caused it and delivered later by the outbox worker.
//!
//! Cards are rendered at delivery time from the ticket's current state, so a delayed or retried
//! delivery never shows a stale card.

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::people::{SurfaceRef, UserRef};
use super::ticket::TicketId;

/// One message to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outgoing {
    /// Post a ticket's card to a channel; if the channel already shows it, edit that instead.
    PostCard {
        surface: SurfaceRef,
        channel: String,
        ticket: TicketId,
    },
    /// Refresh every card of a ticket on a surface, and say `note` in each card's thread.
    UpdateCards {
        surface: SurfaceRef,
        ticket: TicketId,
        note: Option<String>,
        /// The card message that the request's own answer already replaced with the changed
        /// card (a Discord button, answered by updating its message): it is not edited again,
        /// only its thread hears the note. Absent in rows written before it existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answered: Option<String>,
    },
    /// A direct message to a user.
    DirectMessage {
        surface: SurfaceRef,
        user: UserRef,
        text: String,
        ticket: Option<TicketId>,
    },
    /// A plain message to a channel (alerts, notices).
    ChannelMessage {
        surface: SurfaceRef,
        channel: String,
        text: String,
    },
    /// A digest, to a channel or (with `user`) as a direct message.
    Digest {
        surface: SurfaceRef,
        channel: String,
        user: Option<UserRef>,
        digest: Box<Digest>,
    },
}

impl Outgoing {
    pub fn surface(&self) -> &SurfaceRef {
        match self {
            Outgoing::PostCard { surface, .. }
            | Outgoing::UpdateCards { surface, .. }
            | Outgoing::DirectMessage { surface, .. }
            | Outgoing::ChannelMessage { surface, .. }
            | Outgoing::Digest { surface, .. } => surface,
        }
    }

    /// The ordering key: messages with the same destination are delivered in the order they
    /// were written. A ticket's card post and its later edits share one, so an edit never
    /// overtakes the post it edits.
    ///
    /// A ticket's destination leads with its id, so new tickets' rows go in at the end of the
    /// outbox's per-destination index rather than on a random page of it (one per surface).
    pub fn destination(&self) -> String {
        match self {
            Outgoing::PostCard {
                surface, ticket, ..
            }
            | Outgoing::UpdateCards {
                surface, ticket, ..
            } => format!("ticket:{}:{surface}", ticket.0),
            Outgoing::DirectMessage { surface, user, .. } => format!("{surface}:dm:{}", user.id),
            Outgoing::ChannelMessage {
                surface, channel, ..
            }
            | Outgoing::Digest {
                surface,
                channel,
                user: None,
                ..
            } => format!("{surface}:channel:{channel}"),
            Outgoing::Digest {
                surface,
                user: Some(user),
                ..
            } => format!("{surface}:dm:{}", user.id),
        }
    }
}
