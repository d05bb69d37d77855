//! Slack installs, OAuth states and desk link codes in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, at, corrupt, ms};
use crate::core::people::{Platform, Role, SurfaceRef, UserRef};
use crate::core::ticket::DeskId;
use crate::store::{DeskStore, InstallStore, OAuthState, Result, SlackInstall};

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
        sqlx::query!(
            "INSERT INTO members (desk_id, user_ref, role, created_at) VALUES (?, ?, ?, ?)
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
        .fetch_optional(&self.reader)
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
        now: DateTime<Utc>,
    ) -> Result<Option<DeskId>> {
        let now = ms(now);
        let platform = surface.platform.as_str();
        let by = by.to_string();
        let admin = Role::Admin.as_str();
        let mut tx = self.write().await?;
        let desk = sqlx::query_scalar!(
            r#"DELETE FROM desk_link_codes WHERE code_hash = ? AND expires_at > ?
               RETURNING desk_id AS "desk_id!: i64""#,
            code_hash,
            now
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(desk) = desk else {
            return Ok(None);
        };
        sqlx::query!(
            "INSERT INTO surfaces (platform, external_id, desk_id, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (platform, external_id) DO UPDATE SET desk_id = excluded.desk_id,
                 notify_channel = NULL",
            platform,
            surface.external_id,
            desk,
            now
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO members (desk_id, user_ref, role, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (desk_id, user_ref) DO UPDATE SET role = excluded.role",
            desk,
            by,
            admin,
            now
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(DeskId(desk)))
    }
}
