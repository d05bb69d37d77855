//! Contact commands: link a ticket to an individual or organization, and read a history.

use crate::core::contact::ContactTarget;
use crate::core::people::Actor;
use crate::core::ticket::{Action, ContactLink, TicketNo};
use crate::core::view::History;
use crate::store::StoreError;

use super::{Desks, LIST_LIMIT, Reply, mention_text};

impl Desks {
    pub(super) async fn link_contact(
        &self,
        actor: &Actor,
        no: TicketNo,
        target: ContactTarget,
        name: Option<String>,
    ) -> Result<Reply, StoreError> {
        let now = self.clock.now();
        let current = self
            .store
            .ticket(actor.desk, no)
            .await?
            .ok_or(StoreError::NoTicket(no))?
            .ticket;
        let link = match target {
            ContactTarget::Individual(email) => {
                let person = self
                    .store
                    .upsert_individual(actor.desk, &email, name.as_deref(), now)
                    .await?;
                ContactLink {
                    individual: Some((person.id, person.label())),
                    organization: person.organization.clone(),
                }
            }
            ContactTarget::Organization(org_name) => {
                let org = self
                    .store
                    .upsert_organization(actor.desk, &org_name, now)
                    .await?;
                let individual = current.contact.as_ref().and_then(|c| c.individual.clone());
                let link = ContactLink {
                    individual: individual.clone(),
                    organization: Some((org.id, org.name.clone())),
                };
                let reply = self.link(actor, no, link).await?;
                // The ticket's person works there: they join, and the organization learns
                // their email domain, so colleagues who write in later join it too. This comes
                // after the ticket's own change, which records the link as an event.
                if let Some((person, _)) = &individual {
                    self.store
                        .join_organization(actor.desk, *person, org.id)
                        .await?;
                }
                return Ok(reply);
            }
        };
        self.link(actor, no, link).await
    }

    async fn link(
        &self,
        actor: &Actor,
        no: TicketNo,
        link: ContactLink,
    ) -> Result<Reply, StoreError> {
        let note = format!(
            "{} linked {no} to {}.",
            mention_text(&actor.user),
            link.label()
        );
        self.change(actor, no, Action::LinkContact(link), note)
            .await
    }

    pub(super) async fn history(
        &self,
        actor: &Actor,
        target: ContactTarget,
    ) -> Result<Reply, StoreError> {
        match target {
            ContactTarget::Individual(email) => {
                let Some(person) = self.store.find_individual(actor.desk, &email).await? else {
                    return Ok(Reply::Error(format!(
                        "No contact has the address {email} on this desk. Link one with /ticket contact <n> {email}"
                    )));
                };
                let (lines, total) = self
                    .store
                    .history_of_individual(actor.desk, person.id, LIST_LIMIT)
                    .await?;
                Ok(Reply::History(History::of_individual(
                    &person, lines, total,
                )))
            }
            ContactTarget::Organization(name) => {
                let Some(org) = self.store.find_organization(actor.desk, &name).await? else {
                    return Ok(Reply::Error(format!(
                        "No organization is called {name:?} on this desk. Link one with /ticket contact <n> {name}"
                    )));
                };
                let (lines, total) = self
                    .store
                    .history_of_organization(actor.desk, org.id, LIST_LIMIT)
                    .await?;
                Ok(Reply::History(History::of_organization(&org, lines, total)))
            }
        }
    }
}
