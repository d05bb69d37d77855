//! Individuals, organizations and contact histories in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SqliteStore, at, corrupt, ms};
use crate::core::contact::{Email, HistoryLine, Individual, Organization, is_free_mail};
use crate::core::ticket::{DeskId, Priority, Status, TicketNo};
use crate::store::{ContactStore, Result};

impl SqliteStore {
    async fn individual(&self, desk: DeskId, id: i64) -> Result<Option<Individual>> {
        let Some(row) = sqlx::query!(
            "SELECT i.id, i.name, i.phone, i.organization_id, o.name AS org_name
             FROM individuals i LEFT JOIN organizations o ON o.id = i.organization_id AND o.desk_id = i.desk_id
             WHERE i.desk_id = ? AND i.id = ?",
            desk.0,
            id
        )
        .fetch_optional(&mut *self.read().await?)
        .await?
        else {
            return Ok(None);
        };
        let emails = sqlx::query_scalar!(
            "SELECT email FROM individual_emails WHERE desk_id = ? AND individual_id = ? ORDER BY email",
            desk.0,
            id
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        Ok(Some(Individual {
            id: row.id,
            name: row.name,
            emails,
            phone: row.phone,
            organization: row.organization_id.zip(row.org_name),
        }))
    }

    async fn organization(&self, desk: DeskId, id: i64) -> Result<Option<Organization>> {
        let Some(name) = sqlx::query_scalar!(
            "SELECT name FROM organizations WHERE desk_id = ? AND id = ?",
            desk.0,
            id
        )
        .fetch_optional(&mut *self.read().await?)
        .await?
        else {
            return Ok(None);
        };
        let domains = sqlx::query_scalar!(
            "SELECT domain FROM organization_domains WHERE desk_id = ? AND organization_id = ? ORDER BY domain",
            desk.0,
            id
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        Ok(Some(Organization { id, name, domains }))
    }
}

fn history_line(
    no: i64,
    description: String,
    status: &str,
    priority: &str,
    created_at: i64,
) -> Result<HistoryLine> {
    Ok(HistoryLine {
        no: TicketNo(no),
        description,
        status: Status::parse(status).ok_or_else(|| corrupt(status))?,
        priority: Priority::parse(priority).ok_or_else(|| corrupt(priority))?,
        created_at: at(created_at),
    })
}

#[async_trait]
impl ContactStore for SqliteStore {
    async fn upsert_individual(
        &self,
        desk: DeskId,
        email: &Email,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Individual> {
        let address = email.as_str();
        let domain = email.domain();
        let mut tx = self.write().await?;
        let existing = sqlx::query_scalar!(
            r#"SELECT individual_id AS "individual_id!: i64" FROM individual_emails WHERE desk_id = ? AND email = ?"#,
            desk.0,
            address
        )
        .fetch_optional(&mut *tx)
        .await?;
        let id = match existing {
            Some(id) => {
                sqlx::query!(
                    "UPDATE individuals SET name = COALESCE(name, ?) WHERE desk_id = ? AND id = ?",
                    name,
                    desk.0,
                    id
                )
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                let now = ms(now);
                let id = sqlx::query_scalar!(
                    "INSERT INTO individuals (desk_id, name, organization_id, created_at)
                     VALUES (?1, ?2,
                             (SELECT organization_id FROM organization_domains
                               WHERE desk_id = ?1 AND domain = ?3),
                             ?4)
                     RETURNING id AS \"id!: i64\"",
                    desk.0,
                    name,
                    domain,
                    now
                )
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query!(
                    "INSERT INTO individual_emails (desk_id, email, individual_id) VALUES (?, ?, ?)",
                    desk.0,
                    address,
                    id
                )
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        tx.commit().await?;
        self.individual(desk, id)
            .await?
            .ok_or_else(|| corrupt("individual vanished"))
    }

    async fn upsert_organization(
        &self,
        desk: DeskId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Organization> {
        let key = name.trim().to_lowercase();
        let now = ms(now);
        let mut tx = self.write().await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO organizations (desk_id, name, name_key, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (desk_id, name_key) DO UPDATE SET name_key = excluded.name_key
             RETURNING id AS \"id!: i64\"",
            desk.0,
            name,
            key,
            now
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.organization(desk, id)
            .await?
            .ok_or_else(|| corrupt("organization vanished"))
    }

    async fn join_organization(
        &self,
        desk: DeskId,
        individual: i64,
        organization: i64,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE individuals SET organization_id = ? WHERE desk_id = ? AND id = ?",
            organization,
            desk.0,
            individual
        )
        .execute(&mut *tx)
        .await?;
        let emails = sqlx::query_scalar!(
            "SELECT email FROM individual_emails WHERE desk_id = ? AND individual_id = ?",
            desk.0,
            individual
        )
        .fetch_all(&mut *tx)
        .await?;
        for email in emails {
            let Some(parsed) = Email::parse(&email) else {
                continue;
            };
            let domain = parsed.domain();
            if is_free_mail(domain) {
                continue;
            }
            sqlx::query!(
                "INSERT INTO organization_domains (desk_id, domain, organization_id) VALUES (?, ?, ?)
                 ON CONFLICT (desk_id, domain) DO NOTHING",
                desk.0,
                domain,
                organization
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn find_individual(&self, desk: DeskId, email: &Email) -> Result<Option<Individual>> {
        let address = email.as_str();
        let id = sqlx::query_scalar!(
            r#"SELECT individual_id AS "individual_id!: i64" FROM individual_emails WHERE desk_id = ? AND email = ?"#,
            desk.0,
            address
        )
        .fetch_optional(&mut *self.read().await?)
        .await?;
        match id {
            Some(id) => self.individual(desk, id).await,
            None => Ok(None),
        }
    }

    async fn find_organization(&self, desk: DeskId, name: &str) -> Result<Option<Organization>> {
        let key = name.trim().to_lowercase();
        let id = sqlx::query_scalar!(
            r#"SELECT id AS "id!: i64" FROM organizations WHERE desk_id = ? AND name_key = ?"#,
            desk.0,
            key
        )
        .fetch_optional(&mut *self.read().await?)
        .await?;
        match id {
            Some(id) => self.organization(desk, id).await,
            None => Ok(None),
        }
    }

    async fn history_of_individual(
        &self,
        desk: DeskId,
        individual: i64,
        limit: i64,
    ) -> Result<(Vec<HistoryLine>, i64)> {
        let rows = sqlx::query!(
            "SELECT no, description, status, priority, created_at FROM tickets
             WHERE desk_id = ? AND individual_id = ? ORDER BY created_at DESC, no DESC LIMIT ?",
            desk.0,
            individual,
            limit
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        let total = sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!: i64" FROM tickets WHERE desk_id = ? AND individual_id = ?"#,
            desk.0,
            individual
        )
        .fetch_one(&mut *self.read().await?)
        .await?;
        let lines = rows
            .into_iter()
            .map(|r| history_line(r.no, r.description, &r.status, &r.priority, r.created_at))
            .collect::<Result<_>>()?;
        Ok((lines, total))
    }

    async fn history_of_organization(
        &self,
        desk: DeskId,
        organization: i64,
        limit: i64,
    ) -> Result<(Vec<HistoryLine>, i64)> {
        let rows = sqlx::query!(
            "SELECT no, description, status, priority, created_at FROM tickets
             WHERE desk_id = ?1 AND (organization_id = ?2 OR individual_id IN
                   (SELECT id FROM individuals WHERE desk_id = ?1 AND organization_id = ?2))
             ORDER BY created_at DESC, no DESC LIMIT ?3",
            desk.0,
            organization,
            limit
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        let total = sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!: i64" FROM tickets
               WHERE desk_id = ?1 AND (organization_id = ?2 OR individual_id IN
                     (SELECT id FROM individuals WHERE desk_id = ?1 AND organization_id = ?2))"#,
            desk.0,
            organization
        )
        .fetch_one(&mut *self.read().await?)
        .await?;
        let lines = rows
            .into_iter()
            .map(|r| history_line(r.no, r.description, &r.status, &r.priority, r.created_at))
            .collect::<Result<_>>()?;
        Ok((lines, total))
    }
}
