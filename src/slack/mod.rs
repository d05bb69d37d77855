//! The Slack adapter: the only module that knows Slack's JSON.
//!
//! Each endpoint verifies the signature on the raw body first (401 on any failure, before
//! parsing), then parses leniently (400 with a short reason when the body is not what Slack
//! sends), builds an [`Invocation`], runs it through [`crate::desk::Desks`] and renders the reply
//! as Block Kit. Work that talks to Slack (opening a modal, answering through `response_url`)
//! runs after the acknowledgement, in a spawned task.

pub mod api;
pub mod install;
pub mod manifest;
pub mod payload;
pub mod people;
pub mod render;
pub mod verify;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::core::command::{Command, Who};
use crate::core::contact::Email;
use crate::core::grammar::{self, Part};
use crate::core::people::{Need, Platform, SurfaceRef, UserRef};
use crate::core::ticket::{Description, DeskId, Priority, TicketNo};
use crate::core::view::CardAction;
use crate::desk::{Invocation, NewTicketForm, Reply};
use crate::http::AppState;
use crate::store::StoreError;
use payload::{Event, EventEnvelope, Interaction, SlashCommand};

/// How long a slash command may run before it is acknowledged and finished via `response_url`.
pub const BUDGET: std::time::Duration = std::time::Duration::from_millis(2000);

/// Slack's configuration as the handlers need it.
pub struct SlackApp {
    pub signing_secret: SecretString,
    /// Bot tokens: `SLACK_BOT_TOKEN`, or each workspace's OAuth install.
    pub tokens: api::Tokens,
    /// Present when workspaces install through OAuth.
    pub oauth: Option<install::OAuthClient>,
    pub api: api::WebApi,
    pub people: people::People,
}

impl std::fmt::Debug for SlackApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApp")
            .field("api", &self.api.base())
            .field("oauth", &self.oauth.is_some())
            .finish_non_exhaustive()
    }
}

impl SlackApp {
    /// The app for `settings`; `sealer` opens the tokens of OAuth installs.
    pub fn new(
        settings: &crate::config::SlackSettings,
        sealer: Option<crate::secret::Sealer>,
        store: Arc<dyn crate::store::Store>,
    ) -> SlackApp {
        let oauth = match (&settings.client_id, &settings.client_secret) {
            (Some(id), Some(secret)) => Some(install::OAuthClient {
                client_id: id.clone(),
                client_secret: secret.clone(),
            }),
            _ => None,
        };
        SlackApp {
            signing_secret: settings.signing_secret.clone(),
            tokens: api::Tokens {
                single: settings.bot_token.clone(),
                sealer,
                store,
            },
            oauth,
            api: api::WebApi::new(&settings.api_url),
            people: people::People::default(),
        }
    }

    /// The outbox sender that posts for this app.
    pub fn sender(&self) -> api::SlackSender {
        api::SlackSender {
            api: self.api.clone(),
            store: self.tokens.store.clone(),
            tokens: self.tokens.clone(),
            paused: Default::default(),
        }
    }
}

/// The Slack routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .route("/slack/events", post(events))
        .route("/slack/install", get(install::install))
        .route("/slack/oauth/callback", get(install::callback))
}

fn refuse(status: StatusCode, reason: &str) -> Response {
    (status, format!("{reason}\n")).into_response()
}

/// A refusal: the status and a short reason.
type Refusal = (StatusCode, &'static str);

/// The Slack app when the request is signed by Slack; otherwise why not.
fn verified(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Arc<SlackApp>, Refusal> {
    let Some(app) = state.slack.clone() else {
        return Err((
            StatusCode::NOT_FOUND,
            "Slack is not configured on this server\n",
        ));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    verify::verify(
        app.signing_secret.expose_secret().as_bytes(),
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
        state.desks.clock.now(),
    )
    .map_err(|e| {
        tracing::warn!(reason = %e, "A Slack request was refused: bad signature.");
        (StatusCode::UNAUTHORIZED, "invalid signature\n")
    })?;
    Ok(app)
}

fn invocation(
    team: &str,
    user: &str,
    user_name: Option<String>,
    channel: Option<&str>,
    key: Option<&str>,
) -> Invocation {
    Invocation {
        surface: SurfaceRef::new(Platform::Slack, team),
        surface_name: None,
        user: UserRef::slack(user),
        user_name,
        channel: channel.map(str::to_owned),
        key: key.map(|k| format!("slack:{k}")),
        keyed_changes: false,
        surface_admin: false,
        post_in_channel: true,
        answered: None,
    }
}

async fn commands(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let app = match verified(&state, &headers, &body) {
        Ok(app) => app,
        Err(r) => return r.into_response(),
    };
    let Ok(form) = serde_urlencoded::from_bytes::<SlashCommand>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "not a slash command form");
    };
    if form.team_id.is_empty() || form.user_id.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "team_id and user_id are required");
    }
    let cmd = match grammar::parse(&form.text) {
        Ok(cmd) => cmd,
        Err(e) => {
            return Json(render::message(&Reply::Error(e.to_string())).response(None))
                .into_response();
        }
    };
    // The new-ticket form needs nothing from the store (anyone may open it; its submission is
    // checked), and its trigger_id expires three seconds after the command: it opens at once,
    // whatever the database is doing.
    if let Command::New {
        priority,
        description: None,
    } = cmd
    {
        let view =
            render::new_ticket_modal(priority, form.channel_id.as_deref().unwrap_or_default());
        people::learn(&app, &state.desks.store, &form.team_id, &[&form.user_id]);
        open_view(
            &app,
            &form.team_id,
            form.trigger_id,
            view,
            form.response_url,
        );
        return StatusCode::OK.into_response();
    }
    // The profile from users.info beats the slash command's handle once we have it.
    let hint = form
        .user_name
        .clone()
        .filter(|_| !app.people.knows(&form.team_id, &form.user_id));
    let mut inv = invocation(
        &form.team_id,
        &form.user_id,
        hint,
        form.channel_id.as_deref(),
        form.trigger_id.as_deref(),
    );
    let target = match &cmd {
        Command::Assign {
            who: Who::User(u), ..
        } => Some(u.clone()),
        _ => None,
    };
    // Slack drops an answer after 3 seconds: work that takes longer than the budget (fetching
    // a mail thread) is acknowledged at once and answered through response_url.
    let (desks, looker) = (state.desks.clone(), app.clone());
    let mut work = tokio::spawn(async move {
        // Workspace admins and owners are desk admins (asked, within the budget, only when the
        // command needs one).
        if cmd.need() == Need::Admin {
            let (team, user) = (inv.surface.external_id.clone(), inv.user.id.clone());
            inv.surface_admin = people::workspace_admin(&looker, &team, &user).await;
        }
        desks.execute(&inv, cmd).await
    });
    let reply = match tokio::time::timeout(BUDGET, &mut work).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "A Slack command task failed.");
            Reply::Error("Something went wrong on our side; nothing was changed.".into())
        }
        Err(_) => {
            let (app, url) = (app.clone(), form.response_url.clone());
            tokio::spawn(async move {
                if let Ok(reply) = work.await {
                    respond_later(&app, url, render::message(&reply).response(None));
                }
            });
            let working = Reply::Text {
                text: "Working on it; the answer follows here in a moment.".into(),
                private: true,
            };
            return Json(render::message(&working).response(None)).into_response();
        }
    };
    let mut users = vec![form.user_id.as_str()];
    users.extend(target.as_deref());
    people::learn(&app, &state.desks.store, &form.team_id, &users);
    Json(render::message(&reply).response(None)).into_response()
}

/// Opens a modal after the acknowledgement; a failure is told through `response_url`.
fn open_view(
    app: &Arc<SlackApp>,
    team: &str,
    trigger_id: Option<String>,
    view: Value,
    response_url: Option<String>,
) {
    let (app, team) = (app.clone(), team.to_owned());
    tokio::spawn(async move {
        let token = app.tokens.for_team(&team).await.ok().flatten();
        let result = match (token, trigger_id) {
            (Some(token), Some(trigger)) => app
                .api
                .call(
                    &token,
                    "views.open",
                    &json!({ "trigger_id": trigger, "view": view }),
                )
                .await
                .map(|_| ()),
            _ => Err(api::ApiError::Slack("no bot token or trigger".into())),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "A Slack modal could not be opened.");
            if let Some(url) = response_url {
                let text = "The form could not be opened. Try /ticket new <description> instead.";
                let _ = app
                    .api
                    .respond(&url, &json!({ "response_type": "ephemeral", "text": text }))
                    .await;
            }
        }
    });
}

/// Answers through `response_url` after the acknowledgement.
fn respond_later<B: serde::Serialize + Send + Sync + 'static>(
    app: &Arc<SlackApp>,
    url: Option<String>,
    body: B,
) {
    let Some(url) = url else { return };
    let app = app.clone();
    tokio::spawn(async move {
        if let Err(e) = app.api.respond(&url, &body).await {
            tracing::warn!(error = %e, "A Slack response_url answer failed.");
        }
    });
}

async fn interactions(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let app = match verified(&state, &headers, &body) {
        Ok(app) => app,
        Err(r) => return r.into_response(),
    };
    #[derive(serde::Deserialize)]
    struct Form {
        payload: String,
    }
    let Ok(form) = serde_urlencoded::from_bytes::<Form>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "the payload field is missing");
    };
    let Ok(payload) = serde_json::from_str::<Interaction>(&form.payload) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the payload is not JSON of an interaction",
        );
    };
    let Some(team) = payload.team_id().map(str::to_owned) else {
        return refuse(StatusCode::BAD_REQUEST, "the payload names no team");
    };
    match payload.kind.as_str() {
        "block_actions" => block_actions(&state, &app, &team, payload).await,
        "view_submission" => view_submission(&state, &app, &team, payload).await,
        other => {
            tracing::debug!(
                kind = other,
                "An interaction type we do not handle was acknowledged."
            );
            StatusCode::OK.into_response()
        }
    }
}

async fn block_actions(
    state: &AppState,
    app: &Arc<SlackApp>,
    team: &str,
    p: Interaction,
) -> Response {
    let Some(action) = p.actions.first() else {
        return StatusCode::OK.into_response();
    };
    let channel = p.channel_id().map(str::to_owned);
    let number = |v: &str| TicketNo::parse(v);
    // A digest's "Assign to me" assigns and answers privately, leaving the digest as it is.
    if action.action_id == "digest_assign" {
        let Some(no) = action.value.as_deref().and_then(number) else {
            return StatusCode::OK.into_response();
        };
        let inv = invocation(team, &p.user.id, None, channel.as_deref(), None);
        let reply = state
            .desks
            .execute(&inv, Command::Assign { no, who: Who::Me })
            .await;
        let text = match &reply {
            Reply::Card { card, .. } => render::escape(&format!("You now have {}", card.summary())),
            other => render::message(other).text,
        };
        let body = json!({ "response_type": "ephemeral", "replace_original": false, "text": text });
        respond_later(app, p.response_url.clone(), body);
        return StatusCode::OK.into_response();
    }
    let (cmd, no) = match action.action_id.as_str() {
        "menu" => {
            let chosen = action
                .selected_option
                .as_ref()
                .map(|o| o.value.as_str())
                .unwrap_or_default();
            let (what, n) = chosen.split_once(':').unwrap_or_default();
            let Some(no) = number(n) else {
                return StatusCode::OK.into_response();
            };
            match CardAction::parse(what) {
                Some(a @ (CardAction::AddNote | CardAction::LinkEmail)) => {
                    let view = render::text_modal(a, no.0, channel.as_deref().unwrap_or_default());
                    open_view(
                        app,
                        team,
                        p.trigger_id.clone(),
                        view,
                        p.response_url.clone(),
                    );
                    return StatusCode::OK.into_response();
                }
                Some(CardAction::Close) => (Command::Close { no, reason: None }, no),
                _ => return StatusCode::OK.into_response(),
            }
        }
        id => {
            let Some(no) = action.value.as_deref().and_then(number).or_else(|| {
                action
                    .block_id
                    .as_deref()
                    .and_then(|b| b.strip_prefix("actions:"))
                    .and_then(number)
            }) else {
                tracing::debug!(
                    action = id,
                    "A block action without a ticket was acknowledged."
                );
                return StatusCode::OK.into_response();
            };
            let cmd = match CardAction::parse(id) {
                Some(CardAction::AssignToMe) => Command::Assign { no, who: Who::Me },
                Some(CardAction::Start) => Command::Start { no },
                Some(CardAction::Complete) => Command::Complete { no, note: None },
                Some(CardAction::Reopen) => Command::Reopen { no },
                Some(CardAction::SetPriority) => {
                    let level = action
                        .selected_option
                        .as_ref()
                        .and_then(|o| Priority::parse(&o.value));
                    let Some(level) = level else {
                        return StatusCode::OK.into_response();
                    };
                    Command::Priority { no, level }
                }
                _ => return StatusCode::OK.into_response(),
            };
            (cmd, no)
        }
    };
    let hint = p
        .user
        .name
        .clone()
        .or(p.user.username.clone())
        .filter(|_| !app.people.knows(team, &p.user.id));
    let inv = invocation(team, &p.user.id, hint, channel.as_deref(), None);
    let reply = state.desks.execute(&inv, cmd).await;
    people::learn(app, &state.desks.store, team, &[p.user.id.as_str()]);
    tracing::debug!(ticket.no = no.0, "A card button was handled.");
    let mut posted = p.container.as_ref().is_some_and(|c| c.is_posted_message());
    if let (Reply::Card { .. }, Some((channel, ts))) =
        (&reply, p.container.as_ref().and_then(|c| c.unsure()))
    {
        // Whether the clicked message is a card we posted, from what we stored.
        let surface = SurfaceRef::new(Platform::Slack, team);
        if let Ok(Some(desk)) = state.desks.store.desk_of_surface(&surface).await {
            let card = (state.desks.store)
                .ticket_of_card(desk, &surface, channel, ts)
                .await;
            posted = matches!(card, Ok(Some(_)));
        }
    }
    let body = match &reply {
        // A click on a posted card: the change queued a `chat.update` of every card of the
        // ticket, this one included, so answering through response_url too would edit the same
        // message twice (and race the outbox's edit).
        Reply::Card { .. } if posted => {
            return StatusCode::OK.into_response();
        }
        // An ephemeral reply (`/ticket show`'s detail) is not a posted card: only its
        // response_url can replace it.
        Reply::Card { card, .. } => json!({
            "replace_original": true,
            "text": render::card_text(card),
            "blocks": render::card_blocks(card),
        }),
        other => json!(render::message(other).response(Some(false))),
    };
    respond_later(app, p.response_url.clone(), body);
    StatusCode::OK.into_response()
}

async fn view_submission(
    state: &AppState,
    app: &Arc<SlackApp>,
    team: &str,
    p: Interaction,
) -> Response {
    let Some(view) = p.view.clone() else {
        return refuse(StatusCode::BAD_REQUEST, "a view submission without a view");
    };
    let user_name = p.user.name.clone().or(p.user.username.clone());
    let errors = |block: &str, msg: String| {
        Json(json!({ "response_action": "errors", "errors": { block: msg } })).into_response()
    };
    match view.callback_id.as_str() {
        "new_ticket" => {
            let channel = Some(view.private_metadata.as_str()).filter(|c| !c.is_empty());
            let description =
                match Description::parse(&view.state.get("description").unwrap_or_default()) {
                    Ok(d) => d,
                    Err(e) => {
                        return errors(
                            "description",
                            format!("The description is not valid: {e}."),
                        );
                    }
                };
            let priority = view.state.get("priority").and_then(|p| Priority::parse(&p));
            let contact = match view.state.get("contact") {
                None => None,
                Some(e) => match Email::parse(&e) {
                    Some(email) => Some(email),
                    None => return errors("contact", format!("{e:?} is not an email address.")),
                },
            };
            let form = NewTicketForm {
                priority,
                description: description.as_str().to_owned(),
                contact,
                assignee: view.state.get("assignee"),
            };
            // Names and emails of the submitter and the assignee chosen, as after a command.
            let assignee = form.assignee.clone().unwrap_or_default();
            people::learn(app, &state.desks.store, team, &[&p.user.id, &assignee]);
            let inv = invocation(team, &p.user.id, user_name, channel, view.id.as_deref());
            // A form's errors are plain text, not mrkdwn: said as they are.
            match state.desks.submit_new_ticket(&inv, form).await {
                Ok(Reply::Created { .. }) => StatusCode::OK.into_response(),
                Ok(Reply::Error(e)) => errors("description", e),
                Ok(other) => errors("description", render::message(&other).text),
                Err(e) => errors(e.field, e.text),
            }
        }
        "add_note" | "link_email" => {
            let (n, channel) = view
                .private_metadata
                .split_once('|')
                .unwrap_or((&view.private_metadata, ""));
            let Some(no) = TicketNo::parse(n) else {
                return refuse(StatusCode::BAD_REQUEST, "the form lost its ticket number");
            };
            let text = view.state.get("text").unwrap_or_default();
            let cmd = if view.callback_id == "add_note" {
                // A form's text is as typed (no markup, no quoting): it is one argument.
                let parts = [
                    Part::Word("note".into()),
                    Part::Word(no.0.to_string()),
                    Part::Text(text),
                ];
                match grammar::parse_parts(&parts) {
                    Ok(cmd) => cmd,
                    Err(e) => return errors("text", e.to_string()),
                }
            } else {
                Command::Link {
                    no,
                    thread: text.trim().to_owned(),
                }
            };
            // Keyed by the form: submitting it again (after a slow answer) notes once.
            let inv = Invocation {
                keyed_changes: true,
                ..invocation(
                    team,
                    &p.user.id,
                    user_name,
                    Some(channel).filter(|c| !c.is_empty()),
                    view.id.as_deref(),
                )
            };
            match state.desks.execute(&inv, cmd).await {
                Reply::Error(e) => errors("text", e),
                _ => StatusCode::OK.into_response(),
            }
        }
        other => {
            tracing::debug!(
                callback = other,
                "A view submission we do not know was acknowledged."
            );
            StatusCode::OK.into_response()
        }
    }
}

/// What an emoji reaction on a card does.
fn reaction_command(reaction: &str, no: TicketNo) -> Option<Command> {
    match reaction {
        "eyes" => Some(Command::Assign { no, who: Who::Me }),
        "white_check_mark" | "heavy_check_mark" => Some(Command::Complete { no, note: None }),
        "rotating_light" => Some(Command::Priority {
            no,
            level: Priority::Urgent,
        }),
        _ => None,
    }
}

async fn events(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = verified(&state, &headers, &body) {
        return r.into_response();
    }
    let Some(envelope) = serde_json::from_slice::<EventEnvelope>(&body)
        .ok()
        .filter(|e| !e.kind.is_empty())
    else {
        return refuse(StatusCode::BAD_REQUEST, "not an Events API request");
    };
    if envelope.kind == "url_verification" {
        return match envelope.challenge {
            Some(challenge) => Json(json!({ "challenge": challenge })).into_response(),
            None => refuse(
                StatusCode::BAD_REQUEST,
                "a url_verification without a challenge",
            ),
        };
    }
    let (Some(team), Some(event)) = (envelope.team_id.as_deref(), envelope.event.as_ref()) else {
        if envelope.kind == "event_callback" {
            return refuse(
                StatusCode::BAD_REQUEST,
                "an event_callback without a team_id or an event",
            );
        }
        // Other envelopes Slack sends (app_rate_limited, and any it adds) are acknowledged.
        tracing::debug!(kind = %envelope.kind, "An Events API envelope without an event was acknowledged.");
        return StatusCode::OK.into_response();
    };
    let surface = SurfaceRef::new(Platform::Slack, team);
    let now = state.desks.clock.now();
    let desk = match state
        .desks
        .store
        .desk_for_surface(&surface, None, now)
        .await
    {
        Ok(desk) => desk,
        Err(e) => {
            tracing::error!(error = %e, "An event could not be stored.");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    };
    // Slack retries an event it thinks we missed (no answer in 3 s, or an error). An event is
    // remembered by its id once its effect is done: a retry of one that took effect does
    // nothing, and one that failed in the store is answered 503 so that Slack's retry does it.
    // A reaction's change is keyed by the same id in its own write, and a refusal's DM and a
    // mention's answer are queued under keys of it, so a retry that races a slow first
    // delivery, or follows a crash before the id was remembered, changes nothing more.
    let key = envelope
        .event_id
        .as_ref()
        .map(|id| format!("slack:event:{id}"));
    if let Some(key) = &key {
        match state.desks.store.request_known(desk, key).await {
            Ok(false) => {}
            Ok(true) => return StatusCode::OK.into_response(),
            Err(e) => {
                tracing::error!(error = %e, "An event id could not be looked up.");
                return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again");
            }
        }
    }
    if let Err(e) = event_effect(&state, &envelope, event, desk, &surface, team, now).await {
        tracing::error!(error = %e, kind = %event.kind, "An event could not be handled; Slack will retry it.");
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again");
    }
    if let Some(key) = &key
        && let Err(e) = state.desks.store.remember_request(desk, key, now).await
    {
        // The effect is done; a retry of it would change nothing.
        tracing::warn!(error = %e, "An event id could not be recorded.");
    }
    StatusCode::OK.into_response()
}

/// Does what an event asks. A failure of the store is returned, for Slack to retry the event.
async fn event_effect(
    state: &AppState,
    envelope: &EventEnvelope,
    event: &Event,
    desk: DeskId,
    surface: &SurfaceRef,
    team: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    match event.kind.as_str() {
        "reaction_added" => {
            let (Some(user), Some(reaction), Some(item)) =
                (&event.user, &event.reaction, &event.item)
            else {
                return Ok(());
            };
            let (Some(channel), Some(ts)) = (&item.channel, &item.ts) else {
                return Ok(());
            };
            let Some(ticket) = (state.desks.store)
                .ticket_of_card(desk, surface, channel, ts)
                .await?
            else {
                return Ok(());
            };
            let Some(record) = state.desks.store.ticket_by_id(desk, ticket).await? else {
                return Ok(());
            };
            if let Some(cmd) = reaction_command(reaction, record.ticket.no) {
                // The change is keyed by the event, in its own write: a retry that races a
                // slow first delivery is a replay, not the reaction made again over a newer
                // change.
                let key = envelope.event_id.as_ref().map(|id| format!("event:{id}"));
                let inv = Invocation {
                    keyed_changes: true,
                    ..invocation(team, user, None, Some(channel), key.as_deref())
                };
                let reply = state.desks.try_execute(&inv, cmd).await?;
                if let Reply::Error(e) = reply {
                    // A refusal is said privately, as a command's is: a direct message.
                    tracing::debug!(reason = %e, "A reaction on a card was not applied.");
                    let msg = crate::core::outgoing::Outgoing::DirectMessage {
                        surface: surface.clone(),
                        user: UserRef::slack(user),
                        text: {
                            let no = record.ticket.no;
                            // The error names the ticket first (`#n: …`); this says it already.
                            let why = e.strip_prefix(&format!("{no}: ")).unwrap_or(&e);
                            format!("Your :{reaction}: on {no} did nothing: {why}")
                        },
                        ticket: Some(ticket),
                    };
                    let key = format!(
                        "reaction:{}:{user}:{reaction}:{channel}:{ts}",
                        envelope.event_id.as_deref().unwrap_or_default()
                    );
                    state.desks.store.enqueue(desk, &key, &[msg], now).await?;
                    state.desks.outbox_wake.notify_one();
                }
            }
        }
        "app_mention" => {
            if let (Some(channel), Some(id)) = (&event.channel, &envelope.event_id)
                && let Reply::Text { text, .. } = crate::desk::help(None)
            {
                let msg = crate::core::outgoing::Outgoing::ChannelMessage {
                    surface: surface.clone(),
                    channel: channel.clone(),
                    text,
                };
                (state.desks.store)
                    .enqueue(desk, &format!("mention:{id}"), &[msg], now)
                    .await?;
                state.desks.outbox_wake.notify_one();
            }
        }
        // Only user tokens revoked: the bot's token, which is all we post with, still works.
        "tokens_revoked" if event.tokens.as_ref().is_some_and(|t| t.bot.is_empty()) => {
            tracing::info!(surface = %surface, "Slack revoked user tokens only; the bot goes on.");
        }
        "app_uninstalled" | "tokens_revoked" => {
            (state.desks.store)
                .set_surface_revoked(surface, Some(now))
                .await?;
            tracing::info!(surface = %surface, "Slack revoked this workspace's token; posting there stops.");
        }
        other => tracing::debug!(
            kind = other,
            "An event type we do not handle was acknowledged."
        ),
    }
    Ok(())
}
