//! Slack installs, OAuth states and desk link codes in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, at, corrupt, ms};
use crate::core::people::{Platform, Role, SurfaceRef, UserRef};
use crate::core::ticket::DeskId;
use crate::store::{DeskStore, InstallStore, OAuthState, Redeemed, Result, SlackInstall};

fn user(s: Option<String>) -> Result<Option<UserRef>> {
    s.map(|u| u.parse().map_err(|_| corrupt(format!("user {u:?}"))))
        .transpose()
}

#[async_trait]
impl InstallStore for SqliteStore {
    async fn save_slack_install(
        &self,
        install: &SlackInstall,
        now: DateTime<Utc>,
    ) -> Result<DeskId> {
        let surface = SurfaceRef::new(Platform::Slack, &install.team_id);
        let desk = self
            .desk_for_surface(&surface, install.team_name.as_deref(), now)
            .await?;
        let installer = install.installer.to_string();
        let admin = Role::Admin.as_str();
        let now = ms(now);
        let mut tx = self.write().await?;
        sqlx::query!(
            "INSERT INTO slack_installs (team_id, team_name, bot_user_id, installer, bot_token, installed_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (team_id) DO UPDATE SET team_name = excluded.team_name,
                 bot_user_id = excluded.bot_user_id, installer = excluded.installer,
                 bot_token = excluded.bot_token, installed_at = excluded.installed_at",
            install.team_id,
            install.team_name,
            install.bot_user_id,
            installer,
            install.bot_token,
            now
        )
        .execute(&mut *tx)
        .await?;
        // The installer becomes the admin of a desk that has none; a reinstall by someone
        // else does not promote them.
        sqlx::query!(
            "INSERT INTO members (desk_id, user_ref, role, created_at)
             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM members WHERE desk_id = ?1 AND role = 'admin')
             ON CONFLICT (desk_id, user_ref) DO UPDATE SET role = excluded.role",
            desk.0,
            installer,
            admin,
            now
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE surfaces SET token_revoked_at = NULL, name = coalesce(?, name)
             WHERE platform = 'slack' AND external_id = ?",
            install.team_name,
            install.team_id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(desk)
    }

    async fn slack_install(&self, team_id: &str) -> Result<Option<SlackInstall>> {
        let row = sqlx::query!(
            "SELECT team_id, team_name, bot_user_id, installer, bot_token
             FROM slack_installs WHERE team_id = ?",
            team_id
        )
        .fetch_optional(&mut *self.read().await?)
        .await?;
        row.map(|r| {
            Ok(SlackInstall {
                team_id: r.team_id,
                team_name: r.team_name,
                bot_user_id: r.bot_user_id,
                installer: user(Some(r.installer))?.ok_or_else(|| corrupt("installer"))?,
                bot_token: r.bot_token,
            })
        })
        .transpose()
    }

    async fn save_oauth_state(&self, state: &OAuthState, now: DateTime<Utc>) -> Result<()> {
        let desk = state.desk.map(|d| d.0);
        let user_ref = state.user.as_ref().map(UserRef::to_string);
        let expires = ms(state.expires_at);
        let now = ms(now);
        let mut tx = self.write().await?;
        // Expired flows are swept whenever a new one starts, so the table stays small.
        sqlx::query!("DELETE FROM oauth_states WHERE expires_at <= ?", now)
            .execute(&mut *tx)
            .await?;
        sqlx::query!(
            "INSERT INTO oauth_states (state, purpose, desk_id, user_ref, verifier, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
            state.state,
            state.purpose,
            desk,
            user_ref,
            state.verifier,
            expires
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn peek_oauth_state(
        &self,
        state: &str,
        purpose: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthState>> {
        let now = ms(now);
        let row = sqlx::query!(
            r#"SELECT state AS "state!", purpose, desk_id, user_ref, verifier, expires_at
               FROM oauth_states WHERE state = ? AND purpose = ? AND expires_at > ?"#,
            state,
            purpose,
            now
        )
        .fetch_optional(&mut *self.read().await?)
        .await?;
        row.map(|r| {
            Ok(OAuthState {
                state: r.state,
                purpose: r.purpose,
                desk: r.desk_id.map(DeskId),
                user: user(r.user_ref)?,
                verifier: r.verifier,
                expires_at: at(r.expires_at),
            })
        })
        .transpose()
    }

    async fn take_oauth_state(
        &self,
        state: &str,
        purpose: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OAuthState>> {
        let now = ms(now);
        let mut tx = self.write().await?;
        let row = sqlx::query!(
            r#"DELETE FROM oauth_states WHERE state = ? AND purpose = ?
               RETURNING state AS "state!", purpose AS "purpose!", desk_id, user_ref, verifier,
                         expires_at AS "expires_at!: i64""#,
            state,
            purpose
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(r) = row.filter(|r| r.expires_at > now) else {
            return Ok(None);
        };
        Ok(Some(OAuthState {
            state: r.state,
            purpose: r.purpose,
            desk: r.desk_id.map(DeskId),
            user: user(r.user_ref)?,
            verifier: r.verifier,
            expires_at: at(r.expires_at),
        }))
    }

    async fn save_link_code(
        &self,
        desk: DeskId,
        code_hash: &str,
        by: &UserRef,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let by = by.to_string();
        let expires = ms(expires_at);
        let mut tx = self.write().await?;
        sqlx::query!(
            "INSERT INTO desk_link_codes (code_hash, desk_id, created_by, expires_at) VALUES (?, ?, ?, ?)",
            code_hash,
            desk.0,
            by,
            expires
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn redeem_link_code(
        &self,
        code_hash: &str,
        surface: &SurfaceRef,
        by: &UserRef,
        merge: bool,
        now: DateTime<Utc>,
    ) -> Result<Redeemed> {
        let now = ms(now);
        let platform = surface.platform.as_str();
        let by = by.to_string();
        let admin = Role::Admin.as_str();
        let mut tx = self.write().await?;
        let target = sqlx::query_scalar!(
            r#"SELECT desk_id AS "desk_id!: i64" FROM desk_link_codes
               WHERE code_hash = ? AND expires_at > ?"#,
            code_hash,
            now
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(target) = target else {
            return Ok(Redeemed::Invalid);
        };
        let own = sqlx::query_scalar!(
            "SELECT desk_id FROM surfaces WHERE platform = ? AND external_id = ?",
            platform,
            surface.external_id
        )
        .fetch_optional(&mut *tx)
        .await?;
        if own == Some(target) {
            return Ok(Redeemed::AlreadyJoined);
        }
        let mut moved = 0;
        let mut first_no = 0;
        // A desk this surface shares with others stays theirs, whole: this surface alone
        // moves, and takes nothing with it (merging would empty the desk under the others).
        let shared = match own {
            Some(source) => {
                sqlx::query_scalar!(
                    r#"SELECT count(*) AS "n!: i64" FROM surfaces
                        WHERE desk_id = ? AND NOT (platform = ? AND external_id = ?)"#,
                    source,
                    platform,
                    surface.external_id
                )
                .fetch_one(&mut *tx)
                .await?
                    > 0
            }
            None => false,
        };
        if let Some(source) = own.filter(|_| !shared) {
            moved = sqlx::query_scalar!(
                r#"SELECT count(*) AS "n!: i64" FROM tickets WHERE desk_id = ?"#,
                source
            )
            .fetch_one(&mut *tx)
            .await?;
            if moved > 0 && !merge {
                return Ok(Redeemed::HasTickets(moved));
            }
            // Contacts, mailboxes, schedules and members come along even without tickets.
            first_no = merge_desks(&mut tx, source, target).await?;
        }
        // Leaving a shared desk, the surface's own digests (its channels', its people's) go
        // with it: left behind, they would keep posting the old desk's queue where it no longer
        // reaches, and `digest off` there, asking the new desk, could not stop them.
        if let Some(source) = own.filter(|_| shared) {
            sqlx::query!(
                "UPDATE digest_schedules SET desk_id = ? WHERE desk_id = ? AND platform = ? AND surface_id = ?",
                target,
                source,
                platform,
                surface.external_id
            )
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query!("DELETE FROM desk_link_codes WHERE code_hash = ?", code_hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query!(
            "INSERT INTO surfaces (platform, external_id, desk_id, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (platform, external_id) DO UPDATE SET desk_id = excluded.desk_id,
                 notify_channel = NULL",
            platform,
            surface.external_id,
            target,
            now
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO members (desk_id, user_ref, role, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (desk_id, user_ref) DO UPDATE SET role = excluded.role",
            target,
            by,
            admin,
            now
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Redeemed::Joined {
            desk: DeskId(target),
            moved,
            first_no,
        })
    }
}

/// Moves every ticket of desk `from` (with events, cards, request keys, pending messages,
/// members and contacts) into desk `to`, numbered after `to`'s own. Contacts that `to` already
/// knows (the same email, the same organization name) are merged into `to`'s. Returns the
/// first new number.
async fn merge_desks(tx: &mut super::Write, from: i64, to: i64) -> Result<i64> {
    let first_no =
        sqlx::query_scalar!(r#"SELECT next_no AS "n!: i64" FROM desks WHERE id = ?"#, to)
            .fetch_one(&mut **tx)
            .await?;
    // A map of merged contacts: organizations `to` has by name, individuals it has by email.
    // Plain queries: the temporary table does not exist when the macros check queries.
    for statement in [
        "CREATE TEMP TABLE IF NOT EXISTS merge_map (kind TEXT, old INTEGER, new INTEGER)",
        "DELETE FROM merge_map WHERE ?1 IS NOT NULL AND ?2 IS NOT NULL",
        "INSERT INTO merge_map (kind, old, new)
         SELECT 'org', o.id, t.id FROM organizations o
         JOIN organizations t ON t.desk_id = ?2 AND t.name_key = o.name_key
         WHERE o.desk_id = ?1",
        "INSERT INTO merge_map (kind, old, new)
         SELECT DISTINCT 'ind', e.individual_id, t.individual_id FROM individual_emails e
         JOIN individual_emails t ON t.desk_id = ?2 AND t.email = e.email
         WHERE e.desk_id = ?1",
        "UPDATE tickets SET
           organization_id = coalesce((SELECT new FROM merge_map WHERE kind = 'org' AND old = organization_id), organization_id),
           individual_id = coalesce((SELECT new FROM merge_map WHERE kind = 'ind' AND old = individual_id), individual_id)
         WHERE desk_id = ?1 AND ?2 IS NOT NULL",
        "UPDATE individuals SET
           organization_id = coalesce((SELECT new FROM merge_map WHERE kind = 'org' AND old = organization_id), organization_id)
         WHERE desk_id = ?1 AND ?2 IS NOT NULL",
    ] {
        let query = sqlx::query(statement);
        let query = if statement.starts_with("CREATE") {
            query
        } else {
            query.bind(from).bind(to)
        };
        query.execute(&mut **tx).await?;
    }
    // Contacts: move what `to` lacks; drop what was merged.
    for statement in [
        "UPDATE OR IGNORE organization_domains SET desk_id = ?2,
           organization_id = coalesce((SELECT new FROM merge_map WHERE kind = 'org' AND old = organization_id), organization_id)
         WHERE desk_id = ?1",
        "DELETE FROM organization_domains WHERE desk_id = ?1 AND ?2 IS NOT NULL",
        "UPDATE OR IGNORE individual_emails SET desk_id = ?2,
           individual_id = coalesce((SELECT new FROM merge_map WHERE kind = 'ind' AND old = individual_id), individual_id)
         WHERE desk_id = ?1",
        "DELETE FROM individual_emails WHERE desk_id = ?1 AND ?2 IS NOT NULL",
        "UPDATE OR IGNORE individual_identities SET desk_id = ?2,
           individual_id = coalesce((SELECT new FROM merge_map WHERE kind = 'ind' AND old = individual_id), individual_id)
         WHERE desk_id = ?1",
        "DELETE FROM individual_identities WHERE desk_id = ?1 AND ?2 IS NOT NULL",
        "DELETE FROM individuals WHERE desk_id = ?1 AND id IN (SELECT old FROM merge_map WHERE kind = 'ind') AND ?2 IS NOT NULL",
        "UPDATE individuals SET desk_id = ?2 WHERE desk_id = ?1",
        "DELETE FROM organizations WHERE desk_id = ?1 AND id IN (SELECT old FROM merge_map WHERE kind = 'org') AND ?2 IS NOT NULL",
        "UPDATE organizations SET desk_id = ?2 WHERE desk_id = ?1",
        // Tickets, renumbered after `to`'s (numbers stay gapless: `from`'s run 1..n).
        "UPDATE tickets SET desk_id = ?2, no = no + (SELECT next_no - 1 FROM desks WHERE id = ?2)
         WHERE desk_id = ?1",
        "UPDATE desks SET next_no = next_no + (SELECT next_no - 1 FROM desks WHERE id = ?1) WHERE id = ?2",
        "UPDATE desks SET next_no = 1 WHERE id = ?1",
        "UPDATE events SET desk_id = ?2 WHERE desk_id = ?1",
        "UPDATE card_messages SET desk_id = ?2 WHERE desk_id = ?1",
        "UPDATE outbox SET desk_id = ?2 WHERE desk_id = ?1",
        "UPDATE sla_alerts SET desk_id = ?2 WHERE desk_id = ?1",
        "UPDATE OR IGNORE mailboxes SET desk_id = ?2 WHERE desk_id = ?1",
        "UPDATE mail_messages SET desk_id = ?2 WHERE desk_id = ?1",
        "UPDATE ticket_threads SET desk_id = ?2 WHERE desk_id = ?1",
        "UPDATE digest_schedules SET desk_id = ?2 WHERE desk_id = ?1",
        "UPDATE OR IGNORE request_keys SET desk_id = ?2 WHERE desk_id = ?1",
        "DELETE FROM request_keys WHERE desk_id = ?1 AND ?2 IS NOT NULL",
        "INSERT OR IGNORE INTO members (desk_id, user_ref, name, email, role, created_at)
         SELECT ?2, user_ref, name, email, role, created_at FROM members WHERE desk_id = ?1",
    ] {
        sqlx::query(statement)
            .bind(from)
            .bind(to)
            .execute(&mut **tx)
            .await?;
    }
    Ok(first_no)
}
