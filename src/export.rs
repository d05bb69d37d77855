//! `piraja export`: a desk's tickets with contact and timeline, as JSON or CSV.

use std::io::Write;

use crate::store::ExportedTicket;

/// Writes the tickets as one pretty JSON array.
pub fn write_json(out: &mut impl Write, tickets: &[ExportedTicket]) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, tickets)?;
    writeln!(out)?;
    Ok(())
}

/// Writes one CSV row per ticket; the timeline is one cell, a line per event.
pub fn write_csv(out: &mut impl Write, tickets: &[ExportedTicket]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "no",
        "description",
        "priority",
        "status",
        "assignee",
        "reporter",
        "contact",
        "source",
        "created_at",
        "updated_at",
        "first_response_at",
        "resolved_at",
        "timeline",
    ])?;
    let time =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for e in tickets {
        let t = &e.ticket;
        let timeline: Vec<String> = e
            .timeline
            .iter()
            .map(crate::core::view::describe_event)
            .collect();
        w.write_record([
            t.no.0.to_string(),
            t.description.clone(),
            t.priority.as_str().to_owned(),
            t.status.as_str().to_owned(),
            t.assignee
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            t.reporter.to_string(),
            t.contact.as_ref().map(|c| c.label()).unwrap_or_default(),
            t.source.as_str().to_owned(),
            time(Some(t.created_at)),
            time(Some(t.updated_at)),
            time(t.first_response_at),
            time(t.resolved_at),
            timeline.join("\n"),
        ])?;
    }
    w.flush()?;
    Ok(())
}
