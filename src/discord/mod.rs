//! The Discord adapter: the only module that knows Discord's JSON.
//!
//! `POST /discord/interactions` verifies the Ed25519 signature on the raw body first (401 on
//! any failure), parses leniently (400 when the body is not an interaction), and answers:
//! PING with PONG; `/ticket` with a message (type 4) or a modal (type 9); a button or select
//! with the updated card in place (type 7); autocomplete with matching open tickets (type 8);
//! a modal submission by running it. Every answer comes within Discord's 3 seconds: work that
//! takes longer than [`BUDGET`] is answered deferred (type 5 or 6) and finished with a followup.

pub mod api;
pub mod commands;
pub mod payload;
pub mod render;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};

use crate::config::DiscordSettings;
use crate::core::command::{Command, Who};
use crate::core::contact::Email;
use crate::core::grammar::{self, Part};
use crate::core::people::{Platform, SurfaceRef, UserRef};
use crate::core::ticket::{Description, Priority, TicketNo};
use crate::core::view::CardAction;
use crate::desk::{Invocation, NewTicketForm, Reply};
use crate::http::AppState;
use crate::store::{ListQuery, Store};
use payload::Interaction;

/// How long a command may run before it is answered deferred and finished by a followup.
pub const BUDGET: Duration = Duration::from_millis(2000);

/// Discord's configuration as the handler needs it.
pub struct DiscordApp {
    pub key: VerifyingKey,
    pub application_id: Option<String>,
    pub rest: Arc<api::Rest>,
    /// With a bot token, cards are posted in channels through the outbox and edited later.
    pub can_post: bool,
    /// How long a command may run before it is answered deferred ([`BUDGET`]).
    pub budget: Duration,
}

impl std::fmt::Debug for DiscordApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordApp")
            .field("application_id", &self.application_id)
            .field("can_post", &self.can_post)
            .finish_non_exhaustive()
    }
}

impl DiscordApp {
    /// The app for `settings`; `None` when the public key does not parse.
    pub fn new(settings: &DiscordSettings) -> Option<DiscordApp> {
        Some(DiscordApp {
            key: verify::public_key(&settings.public_key)?,
            application_id: settings.application_id.clone(),
            rest: Arc::new(api::Rest::new(
                &settings.api_url,
                settings.bot_token.clone(),
            )),
            can_post: settings.bot_token.is_some(),
            budget: BUDGET,
        })
    }

    /// The outbox sender that posts for this app.
    pub fn sender(&self, store: Arc<dyn Store>) -> api::DiscordSender {
        api::DiscordSender {
            rest: self.rest.clone(),
            store,
        }
    }
}

/// The Discord route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/discord/interactions", post(interactions))
}

fn refuse(status: StatusCode, reason: &str) -> Response {
    (status, format!("{reason}\n")).into_response()
}

/// A private message answer (type 4, ephemeral).
fn private(text: &str) -> Response {
    Json(render::message(&Reply::Error(text.to_owned())).response(4)).into_response()
}

async fn interactions(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(app) = state.discord.clone() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "Discord is not configured on this server",
        );
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = verify::verify(
        &app.key,
        header("x-signature-timestamp"),
        header("x-signature-ed25519"),
        &body,
        state.desks.clock.now(),
    ) {
        tracing::warn!(reason = %e, "A Discord request was refused: bad signature.");
        return refuse(StatusCode::UNAUTHORIZED, "invalid request signature");
    }
    // Every interaction Discord sends has a type; a body without one is not one (a type we do
    // not know yet is answered politely below: Discord adds them).
    let Some(i) = serde_json::from_slice::<Interaction>(&body)
        .ok()
        .filter(|i| i.kind != 0)
    else {
        return refuse(StatusCode::BAD_REQUEST, "not a Discord interaction");
    };
    if i.kind == payload::PING {
        return Json(json!({ "type": 1 })).into_response();
    }
    let Some(inv) = invocation(&app, &i) else {
        // Autocomplete takes only choices (type 8): outside a server there are none.
        if i.kind == payload::AUTOCOMPLETE {
            return Json(json!({ "type": 8, "data": { "choices": [] } })).into_response();
        }
        return private("Use /ticket in a server where Piraja is installed.");
    };
    match i.kind {
        payload::APPLICATION_COMMAND => command(&state, &app, i, inv).await,
        payload::MESSAGE_COMPONENT => component(&state, &app, i, inv).await,
        payload::AUTOCOMPLETE => autocomplete(&state, &i, &inv).await,
        payload::MODAL_SUBMIT => modal(&state, &app, i, inv).await,
        other => {
            tracing::debug!(
                kind = other,
                "An interaction type we do not handle was answered politely."
            );
            private("Piraja does not handle this kind of interaction; try /ticket help.")
        }
    }
}

fn invocation(app: &DiscordApp, i: &Interaction) -> Option<Invocation> {
    let guild = i.guild_id.as_deref().filter(|g| !g.is_empty())?;
    let user = i.actor()?;
    Some(Invocation {
        surface: SurfaceRef::new(Platform::Discord, guild),
        surface_name: None,
        user: UserRef::discord(&user.id),
        user_name: i.actor_name(),
        channel: i.channel().map(str::to_owned),
        // Each interaction's own id keys what it creates; a body without one keys nothing.
        key: Some(&i.id)
            .filter(|id| !id.is_empty())
            .map(|id| format!("discord:{id}")),
        keyed_changes: false,
        surface_admin: i.actor_manages_guild(),
        post_in_channel: app.can_post,
        answered: None,
    })
}

/// How a reply is shown on Discord: with a bot token, a new ticket's card is posted in the
/// channel by the outbox, so the answer only confirms it.
fn shown(app: &DiscordApp, reply: &Reply) -> render::Message {
    match reply {
        Reply::Created { card, replayed } if app.can_post => render::message(&Reply::Text {
            text: if *replayed {
                format!("{} was already created.", card.no)
            } else {
                format!("Created {}; its card is in this channel.", card.summary())
            },
            private: true,
        }),
        other => render::message(other),
    }
}

/// Runs `cmd`, answering with `kind` (4 or 7) within the budget, or deferred and then by
/// editing the original response.
async fn answer(
    state: &AppState,
    app: &Arc<DiscordApp>,
    i: &Interaction,
    inv: Invocation,
    cmd: Command,
    kind: u8,
) -> Response {
    // The new-ticket form needs nothing from the store (anyone may open it; its submission is
    // checked), and a modal can only be the first answer, never a deferred one: it is sent
    // at once, whatever the database is doing.
    if let Command::New {
        priority,
        description: None,
    } = cmd
    {
        return respond(app, i, &Reply::Form { priority }, kind);
    }
    let likely_private = !cmd.answers_publicly();
    let desks = state.desks.clone();
    let work = tokio::spawn(async move { desks.execute(&inv, cmd).await });
    answer_within(app, i, work, likely_private, kind).await
}

/// Answers with what `work` replies, with `kind` (4 or 7), if it is done within the budget;
/// otherwise defers (publicly unless `likely_private`) and sends the reply when it comes.
async fn answer_within(
    app: &Arc<DiscordApp>,
    i: &Interaction,
    mut work: tokio::task::JoinHandle<Reply>,
    likely_private: bool,
    kind: u8,
) -> Response {
    // A zero budget always defers (used to exercise the followup path).
    let within = if app.budget.is_zero() {
        None
    } else {
        tokio::time::timeout(app.budget, &mut work).await.ok()
    };
    match within.ok_or(()) {
        Ok(Ok(reply)) => respond(app, i, &reply, kind),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "A Discord command task failed.");
            private("Something went wrong on our side; nothing was changed. Please try again.")
        }
        Err(_) => {
            // The interaction names its application; the setting stands in for one that does not.
            let application = Some(i.application_id.clone())
                .filter(|a| !a.is_empty())
                .or_else(|| app.application_id.clone())
                .unwrap_or_default();
            let (app, token) = (app.clone(), i.token.clone());
            // The placeholder is public when a card is being updated (6) or a public message was
            // deferred (5 without flags): a private answer (an error) must not replace it.
            let public_placeholder = kind == 7 || !likely_private;
            tokio::spawn(async move {
                let Ok(reply) = work.await else { return };
                let mut shown = shown(&app, &reply);
                let rest = &app.rest;
                let how = deferred(kind, public_placeholder, &reply, shown.private);
                let sent = if let Deferred::Followup { remove_placeholder } = how {
                    if remove_placeholder
                        && let Err(e) = rest.delete_original(&application, &token).await
                    {
                        tracing::warn!(error = %e, "A deferred placeholder could not be removed.");
                    }
                    if shown.private {
                        shown.body["flags"] = json!(render::EPHEMERAL);
                    }
                    rest.followup(&application, &token, &shown.body).await
                } else {
                    rest.edit_original(&application, &token, &shown.body).await
                };
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "A deferred Discord answer could not be sent.");
                }
            });
            // 5: deferred message (its flags decide who sees the followup); 6: deferred update.
            let deferred = if kind == 7 {
                json!({ "type": 6 })
            } else if likely_private {
                json!({ "type": 5, "data": { "flags": render::EPHEMERAL } })
            } else {
                json!({ "type": 5 })
            };
            Json(deferred).into_response()
        }
    }
}

/// How a deferred answer is sent.
#[derive(Debug, PartialEq, Eq)]
enum Deferred {
    /// It replaces the placeholder (the deferred message, or the clicked card).
    EditOriginal,
    /// It is a message of its own (ephemeral when private), after removing a public
    /// placeholder that would otherwise stay empty.
    Followup { remove_placeholder: bool },
}

/// How the answer to an interaction deferred as `kind` (7: an update of the clicked card; else a
/// message, public or not) is sent. A private answer never replaces a public placeholder, and
/// only a card replaces a clicked card: anything else (an email linked from the card's form)
/// would overwrite the card's text with it.
fn deferred(kind: u8, public_placeholder: bool, reply: &Reply, private: bool) -> Deferred {
    let replaces_card = kind == 7 && matches!(reply, Reply::Card { .. }) && !private;
    match (kind, private && public_placeholder) {
        (7, _) if replaces_card => Deferred::EditOriginal,
        (7, _) => Deferred::Followup {
            remove_placeholder: false,
        },
        (_, true) => Deferred::Followup {
            remove_placeholder: true,
        },
        _ => Deferred::EditOriginal,
    }
}

/// The answer to interaction `i`.
fn respond(app: &DiscordApp, i: &Interaction, reply: &Reply, kind: u8) -> Response {
    match reply {
        // The form carries the id of the interaction that opened it (its submissions' key).
        Reply::Form { priority } => {
            Json(render::new_ticket_modal(*priority, &i.id)).into_response()
        }
        // A button that fails answers privately instead of replacing the card.
        Reply::Error(_) => Json(shown(app, reply).response(4)).into_response(),
        Reply::Card { .. } if kind == 7 => Json(shown(app, reply).response(7)).into_response(),
        _ => Json(shown(app, reply).response(4)).into_response(),
    }
}

async fn command(
    state: &AppState,
    app: &Arc<DiscordApp>,
    i: Interaction,
    inv: Invocation,
) -> Response {
    let Some(data) = i.data.clone() else {
        return refuse(StatusCode::BAD_REQUEST, "a command without data");
    };
    let (path, options) = data.path();
    let Some(sub) = commands::find(&path) else {
        return private(&format!(
            "/ticket {} is not a command this server knows; an admin may need to run piraja discord register.",
            path.join(" ")
        ));
    };
    let cmd = match grammar::parse_parts(&commands::parts(sub, options)) {
        Ok(cmd) => cmd,
        Err(e) => return private(&e.to_string()),
    };
    // A bot cannot take a ticket (nor read the direct message that tells it so).
    if let Command::Assign {
        no,
        who: Who::User(id),
    } = &cmd
        && data.resolved.users.get(id).is_some_and(|u| u.bot)
    {
        return private(&format!(
            "{no}: a bot cannot be assigned a ticket; choose a person. Nothing was changed."
        ));
    }
    answer(state, app, &i, inv, cmd, 4).await
}

async fn component(
    state: &AppState,
    app: &Arc<DiscordApp>,
    i: Interaction,
    inv: Invocation,
) -> Response {
    let Some(data) = i.data.clone() else {
        return refuse(StatusCode::BAD_REQUEST, "a component without data");
    };
    let (action, no) = data.custom_id.split_once(':').unwrap_or_default();
    // A digest's "Assign" button assigns and answers privately, leaving the digest as it is.
    if action == "digest_assign"
        && let Some(no) = TicketNo::parse(no)
    {
        let desks = state.desks.clone();
        let work = tokio::spawn(async move {
            let reply = desks
                .execute(&inv, Command::Assign { no, who: Who::Me })
                .await;
            match reply {
                Reply::Card { card, .. } => Reply::Text {
                    text: format!("You now have {}", card.summary()),
                    private: true,
                },
                other => other,
            }
        });
        // Within the budget like a command (a slow database defers the private answer).
        return answer_within(app, &i, work, true, 4).await;
    }
    let (Some(action), Some(no)) = (CardAction::parse(action), TicketNo::parse(no)) else {
        tracing::debug!(custom_id = %data.custom_id, "A component we did not make was answered politely.");
        return private("That button is not Piraja's, or it is out of date.");
    };
    let cmd = match action {
        CardAction::AddNote | CardAction::LinkEmail => {
            return Json(render::text_modal(action, no.0, &i.id)).into_response();
        }
        CardAction::AssignToMe => Command::Assign { no, who: Who::Me },
        CardAction::Start => Command::Start { no },
        CardAction::Complete => Command::Complete { no, note: None },
        CardAction::Reopen => Command::Reopen { no },
        CardAction::Close => Command::Close { no, reason: None },
        CardAction::SetPriority => match data.values.first().and_then(|v| Priority::parse(v)) {
            Some(level) => Command::Priority { no, level },
            None => return private("Choose low, medium, high or urgent."),
        },
    };
    // The answer updates the clicked card; the outbox only says the change in its thread.
    let inv = Invocation {
        answered: i.message.as_ref().map(|m| m.id.clone()),
        ..inv
    };
    answer(state, app, &i, inv, cmd, 7).await
}

/// The request key of a form opened by interaction `opener` (a snowflake): every submission of
/// that one form shares it.
fn form_key(opener: &str) -> Option<String> {
    ((1..=32).contains(&opener.len()) && opener.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("discord-form:{opener}"))
}

async fn modal(
    state: &AppState,
    app: &Arc<DiscordApp>,
    i: Interaction,
    inv: Invocation,
) -> Response {
    let Some(data) = i.data.clone() else {
        return refuse(StatusCode::BAD_REQUEST, "a modal submission without data");
    };
    let form = data.custom_id.strip_prefix("new_ticket");
    if let Some(rest) = form.filter(|r| r.is_empty() || r.starts_with(':')) {
        // Keyed by the interaction that opened the form, not this submission: submitting the
        // same form again (after a slow answer) replays the ticket instead of making another.
        let mut inv = inv;
        if let Some(key) = form_key(rest.trim_start_matches(':')) {
            inv.key = Some(key);
        }
        let priority = match data.field("priority") {
            None => None,
            Some(p) => match Priority::parse(&p) {
                Some(p) => Some(p),
                None => {
                    return private(&format!(
                        "{p:?} is not a priority: say low, medium, high or urgent. Nothing was created."
                    ));
                }
            },
        };
        let Some(description) = data.field("description") else {
            return private("The description is empty. Nothing was created.");
        };
        let description = match Description::parse(&description) {
            Ok(d) => d.as_str().to_owned(),
            Err(e) => {
                return private(&format!(
                    "The description is not valid: {e}. Nothing was created."
                ));
            }
        };
        let contact = match data.field("contact") {
            None => None,
            Some(e) => match Email::parse(&e) {
                Some(email) => Some(email),
                None => {
                    return private(&format!(
                        "{e:?} is not an email address. Nothing was created."
                    ));
                }
            },
        };
        let form = NewTicketForm {
            priority,
            description,
            contact,
            assignee: None,
        };
        // Within the budget like a command: a slow database defers the answer rather than
        // leave Discord to say the interaction failed while the ticket is made.
        let desks = state.desks.clone();
        let work = tokio::spawn(async move {
            match desks.submit_new_ticket(&inv, form).await {
                Ok(reply) => reply,
                Err(e) => Reply::Error(e.text),
            }
        });
        return answer_within(app, &i, work, false, 4).await;
    }
    // `note:<n>:<opener>` or `link:<n>:<opener>` (a form opened before openers rode along has none).
    let (action, rest) = data.custom_id.split_once(':').unwrap_or_default();
    let (no, opener) = rest.split_once(':').unwrap_or((rest, ""));
    let (Some(action), Some(no)) = (CardAction::parse(action), TicketNo::parse(no)) else {
        return private("That form is not Piraja's, or it is out of date.");
    };
    // Keyed by the interaction that opened the form: submitting it again notes once.
    let mut inv = inv;
    inv.key = form_key(opener);
    inv.keyed_changes = true;
    let text = data.field("text").unwrap_or_default();
    let parts = match action {
        CardAction::LinkEmail => vec![
            Part::Word("link".into()),
            Part::Word(no.0.to_string()),
            Part::Word(text),
        ],
        _ => vec![
            Part::Word("note".into()),
            Part::Word(no.0.to_string()),
            Part::Text(text),
        ],
    };
    let cmd = match grammar::parse_parts(&parts) {
        Ok(cmd) => cmd,
        Err(e) => return private(&e.to_string()),
    };
    // A form opened from a card's button updates that card.
    let kind = if i.message.is_some() { 7 } else { 4 };
    answer(state, app, &i, inv, cmd, kind).await
}

/// Open tickets matching what was typed, most relevant first: the number typed, numbers that
/// start with it, then descriptions that contain it; most urgent first within each.
async fn autocomplete(state: &AppState, i: &Interaction, inv: &Invocation) -> Response {
    let typed = i
        .data
        .as_ref()
        .and_then(|d| find_focused(&d.options))
        .unwrap_or_default();
    let typed = typed.trim().trim_start_matches('#').to_lowercase();
    // Suggestions are worth nothing late: past the budget, none (the typed number still works).
    let choices = match tokio::time::timeout(BUDGET, ticket_choices(state, inv, &typed)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Autocomplete could not read tickets.");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("Autocomplete took longer than the budget; it answered no choices.");
            Vec::new()
        }
    };
    Json(json!({ "type": 8, "data": { "choices": choices } })).into_response()
}

fn find_focused(options: &[payload::Opt]) -> Option<String> {
    options.iter().find_map(|o| {
        if o.focused {
            Some(o.text().unwrap_or_default())
        } else {
            find_focused(&o.options)
        }
    })
}

async fn ticket_choices(
    state: &AppState,
    inv: &Invocation,
    typed: &str,
) -> Result<Vec<Value>, crate::store::StoreError> {
    let Some(desk) = state.desks.store.desk_of_surface(&inv.surface).await? else {
        return Ok(Vec::new());
    };
    let query = ListQuery {
        active_only: true,
        ..ListQuery::default()
    };
    let (records, _) = state.desks.store.list(desk, &query, 500).await?;
    let mut ranked: Vec<(u8, usize, &crate::store::TicketRecord)> = records
        .iter()
        .enumerate()
        .filter_map(|(order, r)| {
            let no = r.ticket.no.0.to_string();
            let rank = if typed.is_empty() {
                2
            } else if no == typed {
                0
            } else if no.starts_with(typed) {
                1
            } else if r.ticket.description.to_lowercase().contains(typed) {
                2
            } else {
                return None;
            };
            Some((rank, order, r))
        })
        .collect();
    ranked.sort_by_key(|(rank, order, _)| (*rank, *order));
    Ok(ranked
        .into_iter()
        .take(render::MAX_CHOICES)
        .map(|(_, _, r)| {
            let name = format!(
                "{} · {} · {}",
                r.ticket.no,
                r.ticket.priority.as_str(),
                r.ticket.description
            );
            json!({ "name": crate::core::view::cut(&name, 100), "value": r.ticket.no.0 })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferred_answer_replaces_a_clicked_card_only_with_a_card() {
        let card = Reply::Card {
            card: crate::core::view::Card {
                no: TicketNo(5),
                description: "VPN".into(),
                priority: Priority::High,
                status: crate::core::ticket::Status::Open,
                assignee: None,
                contact: None,
                sla: None,
                buttons: Vec::new(),
                menu: Vec::new(),
            },
            note: String::new(),
        };
        let linked = Reply::Text {
            text: "Linked an email thread to #5".into(),
            private: false,
        };
        let refused = Reply::Error("#5: no".into());
        assert_eq!(deferred(7, true, &card, false), Deferred::EditOriginal);
        // An email linked from the card's form says so in a message of its own.
        assert_eq!(
            deferred(7, true, &linked, false),
            Deferred::Followup {
                remove_placeholder: false
            }
        );
        assert_eq!(
            deferred(7, true, &refused, true),
            Deferred::Followup {
                remove_placeholder: false
            }
        );
        // A deferred message: a public answer fills it; a private one replaces a public one.
        assert_eq!(deferred(4, true, &linked, false), Deferred::EditOriginal);
        assert_eq!(
            deferred(4, true, &refused, true),
            Deferred::Followup {
                remove_placeholder: true
            }
        );
        assert_eq!(deferred(4, false, &refused, true), Deferred::EditOriginal);
    }
}
