//! Desks, surfaces and members in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, corrupt, ms};
use crate::core::people::{Platform, Role, Surface, SurfaceRef, UserRef};
use crate::core::ticket::DeskId;
use crate::store::{DeskStore, Membership, Result};

#[async_trait]
impl DeskStore for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query!("SELECT 1 AS one")
            .fetch_one(&mut *self.read().await?)
            .await?;
        Ok(())
    }

    async fn close(&self) {
        self.close_pools().await;
    }

    async fn desk_for_surface(
        &self,
        surface: &SurfaceRef,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<DeskId> {
        if let Some(desk) = self.desk_of_surface(surface).await? {
            return Ok(desk);
        }
        let platform = surface.platform.as_str();
        let mut tx = self.write().await?;
        // Another request may have created it between the read and the write lock.
        let again = sqlx::query_scalar!(
            "SELECT desk_id FROM surfaces WHERE platform = ? AND external_id = ?",
            platform,
            surface.external_id
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(desk) = again {
            return Ok(DeskId(desk));
        }
        let now = ms(now);
        let label = name
            .map(str::to_owned)
            .unwrap_or_else(|| surface.to_string());
        let desk = sqlx::query_scalar!(
            r#"INSERT INTO desks (name, created_at) VALUES (?, ?) RETURNING id AS "id!: i64""#,
            label,
            now
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO surfaces (platform, external_id, desk_id, name, created_at)
             VALUES (?, ?, ?, ?, ?)",
            platform,
            surface.external_id,
            desk,
            name,
            now
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(desk.id = desk, surface = %surface, "A new surface was seen; it has a desk of its own.");
        Ok(DeskId(desk))
    }

    async fn desk_of_surface(&self, surface: &SurfaceRef) -> Result<Option<DeskId>> {
        let platform = surface.platform.as_str();
        let desk = sqlx::query_scalar!(
            "SELECT desk_id FROM surfaces WHERE platform = ? AND external_id = ?",
            platform,
            surface.external_id
        )
        .fetch_optional(&mut *self.read().await?)
        .await?;
        Ok(desk.map(DeskId))
    }

    async fn desk_exists(&self, desk: DeskId) -> Result<bool> {
        let found = sqlx::query_scalar!("SELECT id FROM desks WHERE id = ?", desk.0)
            .fetch_optional(&mut *self.read().await?)
            .await?;
        Ok(found.is_some())
    }

    async fn surfaces(&self, desk: DeskId) -> Result<Vec<Surface>> {
        let rows = sqlx::query!(
            "SELECT platform, external_id, notify_channel FROM surfaces
             WHERE desk_id = ? ORDER BY platform, external_id",
            desk.0
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        rows.into_iter()
            .map(|r| {
                let platform = Platform::parse(&r.platform).ok_or_else(|| corrupt(&r.platform))?;
                Ok(Surface {
                    surface: SurfaceRef::new(platform, r.external_id),
                    notify_channel: r.notify_channel,
                })
            })
            .collect()
    }

    async fn set_notify_channel(
        &self,
        desk: DeskId,
        surface: &SurfaceRef,
        channel: &str,
    ) -> Result<()> {
        let platform = surface.platform.as_str();
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE surfaces SET notify_channel = ?
             WHERE desk_id = ? AND platform = ? AND external_id = ?",
            channel,
            desk.0,
            platform,
            surface.external_id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remember_request(&self, desk: DeskId, key: &str, now: DateTime<Utc>) -> Result<bool> {
        let now = ms(now);
        let mut tx = self.write().await?;
        let inserted = sqlx::query!(
            "INSERT INTO request_keys (desk_id, key, created_at) VALUES (?, ?, ?)
             ON CONFLICT (desk_id, key) DO NOTHING",
            desk.0,
            key,
            now
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted == 1)
    }

    async fn request_known(&self, desk: DeskId, key: &str) -> Result<bool> {
        let known = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM request_keys WHERE desk_id = ? AND key = ?) AS "known!: bool""#,
            desk.0,
            key
        )
        .fetch_one(&mut *self.read().await?)
        .await?;
        Ok(known)
    }

    async fn prune_request_keys(
        &self,
        before: DateTime<Utc>,
        after: Option<(DeskId, String)>,
        window: i64,
    ) -> Result<(u64, Option<(DeskId, String)>)> {
        let before = ms(before);
        let (desk, key) = after.map_or((i64::MIN, String::new()), |(d, k)| (d.0, k));
        let mut tx = self.write().await?;
        // The window's last key bounds the delete, so the rows looked at are the rows pruned.
        let last = sqlx::query!(
            r#"SELECT desk_id AS "desk_id!: i64", key AS "key!: String" FROM
                 (SELECT desk_id, key FROM request_keys WHERE (desk_id, key) > (?1, ?2)
                   ORDER BY desk_id, key LIMIT ?3)
               ORDER BY desk_id DESC, key DESC LIMIT 1"#,
            desk,
            key,
            window
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(last) = last else {
            return Ok((0, None));
        };
        let deleted = sqlx::query!(
            "DELETE FROM request_keys
              WHERE (desk_id, key) > (?1, ?2) AND (desk_id, key) <= (?3, ?4) AND created_at < ?5",
            desk,
            key,
            last.desk_id,
            last.key,
            before
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok((deleted, Some((DeskId(last.desk_id), last.key))))
    }

    async fn set_surface_revoked(
        &self,
        surface: &SurfaceRef,
        at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let platform = surface.platform.as_str();
        let at = at.map(ms);
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE surfaces SET token_revoked_at = ? WHERE platform = ? AND external_id = ?",
            at,
            platform,
            surface.external_id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn see_member(
        &self,
        desk: DeskId,
        user: &UserRef,
        name: Option<&str>,
        first_admin: bool,
        now: DateTime<Utc>,
    ) -> Result<Membership> {
        let user_ref = user.to_string();
        let known = sqlx::query!(
            r#"SELECT role, name,
                      NOT EXISTS (SELECT 1 FROM members a WHERE a.desk_id = m.desk_id AND a.role = 'agent')
                        AS "small_team!: bool"
               FROM members m WHERE desk_id = ? AND user_ref = ?"#,
            desk.0,
            user_ref
        )
        .fetch_optional(&mut *self.read().await?)
        .await?;
        if let Some(row) = known
            && (name.is_none() || name == row.name.as_deref())
        {
            let role = Role::parse(&row.role).ok_or_else(|| corrupt(&row.role))?;
            return Ok(Membership {
                role,
                small_team: row.small_team,
            });
        }
        let mut tx = self.write().await?;
        let now = ms(now);
        // The first member of a desk becomes its admin, where the platform wants that.
        let role = sqlx::query_scalar!(
            r#"INSERT INTO members (desk_id, user_ref, name, role, created_at)
               VALUES (?1, ?2, ?3,
                       CASE WHEN ?5 AND NOT EXISTS (SELECT 1 FROM members WHERE desk_id = ?1)
                            THEN 'admin' ELSE 'member' END,
                       ?4)
               ON CONFLICT (desk_id, user_ref) DO UPDATE SET name = COALESCE(excluded.name, name)
               RETURNING role"#,
            desk.0,
            user_ref,
            name,
            now,
            first_admin
        )
        .fetch_one(&mut *tx)
        .await?;
        let small_team = sqlx::query_scalar!(
            r#"SELECT NOT EXISTS (SELECT 1 FROM members WHERE desk_id = ? AND role = 'agent')
                 AS "small_team!: bool""#,
            desk.0
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let role = Role::parse(&role).ok_or_else(|| corrupt(&role))?;
        Ok(Membership { role, small_team })
    }

    async fn set_role(
        &self,
        desk: DeskId,
        user: &UserRef,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let user_ref = user.to_string();
        let role = role.as_str();
        let now = ms(now);
        let mut tx = self.write().await?;
        sqlx::query!(
            "INSERT INTO members (desk_id, user_ref, role, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (desk_id, user_ref) DO UPDATE SET role = excluded.role",
            desk.0,
            user_ref,
            role,
            now
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_member_profile(
        &self,
        desk: DeskId,
        user: &UserRef,
        name: Option<&str>,
        email: Option<&str>,
    ) -> Result<()> {
        let user_ref = user.to_string();
        let mut tx = self.write().await?;
        // Only members already seen: a profile lookup must not make someone the desk's first
        // member (and so its admin).
        sqlx::query!(
            "UPDATE members SET name = coalesce(?, name), email = coalesce(?, email)
             WHERE desk_id = ? AND user_ref = ?",
            name,
            email,
            desk.0,
            user_ref
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn member_name(&self, desk: DeskId, user: &UserRef) -> Result<Option<String>> {
        let user_ref = user.to_string();
        let name = sqlx::query_scalar!(
            "SELECT name FROM members WHERE desk_id = ? AND user_ref = ?",
            desk.0,
            user_ref
        )
        .fetch_optional(&mut *self.read().await?)
        .await?;
        Ok(name.flatten())
    }
}
