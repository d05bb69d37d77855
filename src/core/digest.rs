//! A digest of a desk's queue: the neutral view that Slack and Discord render, computed by the
//! store at the time it is posted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sla::human;
use super::ticket::{Priority, Status, TicketNo};
use super::view::Person;

/// The most tickets listed in one section; the rest are counted.
pub const SECTION_LINES: usize = 5;

/// One listed ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub no: TicketNo,
    pub priority: Priority,
    pub status: Status,
    pub description: String,
    pub assignee: Option<Person>,
    pub created_at: DateTime<Utc>,
    /// The target that matters for this section, when one does.
    pub due: Option<DateTime<Utc>>,
    /// When a breached ticket whose clock is paused (no `due` then) was found breached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breached_at: Option<DateTime<Utc>>,
}

/// A section: how many tickets there are, and the first few.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub total: i64,
    pub lines: Vec<Line>,
}

/// Share of SLA targets met over a window, for one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compliance {
    pub priority: Priority,
    pub first_met: i64,
    pub first_total: i64,
    pub resolution_met: i64,
    pub resolution_total: i64,
}

/// The digest of one desk (or of one person's queue) at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub title: String,
    pub at: DateTime<Utc>,
    /// Where "created" and "resolved" count from.
    pub since: DateTime<Utc>,
    /// Open tickets by priority (most urgent first) and status: open, in progress, waiting.
    pub by_priority: Vec<(Priority, [i64; 3])>,
    pub breached: Section,
    pub at_risk: Section,
    pub unassigned: Section,
    pub oldest: Section,
    /// Open tickets per assignee, most first.
    pub per_assignee: Vec<(Person, i64)>,
    pub created: i64,
    pub resolved: i64,
    /// The last 7 days, per priority.
    pub compliance: Vec<Compliance>,
    /// The IANA timezone its times are shown in (the schedule's, or the desk's); UTC in
    /// digests queued before it existed.
    #[serde(default = "utc_name")]
    pub timezone: String,
}

fn utc_name() -> String {
    "UTC".into()
}

/// `at` as a reader in `timezone` reads it: "2026-12-04 09:00 EET".
pub fn local_time(at: DateTime<Utc>, timezone: &str) -> String {
    let tz = crate::core::sla::find_tz(timezone).unwrap_or(chrono_tz::UTC);
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

impl Digest {
    /// All open tickets.
    pub fn open_total(&self) -> i64 {
        self.by_priority
            .iter()
            .map(|(_, c)| c.iter().sum::<i64>())
            .sum()
    }

    /// The plain-text summary (Slack `text`, Discord `content`): the counts, then every ticket
    /// the digest lists, as `#n`, by section (at most five a section, so it stays short).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} open, {} breached, {} at risk, {} unassigned",
            self.title,
            self.open_total(),
            self.breached.total,
            self.at_risk.total,
            self.unassigned.total
        );
        let named: Vec<String> = [
            ("breached", &self.breached),
            ("at risk", &self.at_risk),
            ("unassigned", &self.unassigned),
            ("oldest", &self.oldest),
        ]
        .into_iter()
        .filter(|(_, section)| !section.lines.is_empty())
        .map(|(name, section)| {
            let nos: Vec<String> = section.lines.iter().map(|l| l.no.to_string()).collect();
            format!("{name} {}", nos.join(", "))
        })
        .collect();
        if !named.is_empty() {
            s.push_str(&format!(" ({})", named.join("; ")));
        }
        s
    }

    /// Every ticket listed anywhere in the digest, once, in order of appearance.
    pub fn listed(&self) -> Vec<TicketNo> {
        let mut out: Vec<TicketNo> = Vec::new();
        for s in [
            &self.breached,
            &self.at_risk,
            &self.unassigned,
            &self.oldest,
        ] {
            for l in &s.lines {
                if !out.contains(&l.no) {
                    out.push(l.no);
                }
            }
        }
        out
    }

    /// One line per priority: "`**`urgent`**`: 3 open · 1 in progress · 0 waiting", with
    /// `bold` around the priority (Slack `*`, Discord `**`).
    pub fn open_lines(&self, bold: &str) -> Vec<String> {
        self.by_priority
            .iter()
            .map(|(p, [o, i, w])| {
                format!("{bold}{p}{bold}: {o} open · {i} in progress · {w} waiting")
            })
            .collect()
    }

    /// The flow since the last digest and the week's SLA compliance.
    pub fn footer(&self) -> String {
        let mut footer = format!(
            "Since {}: {} created, {} resolved.",
            local_time(self.since, &self.timezone),
            self.created,
            self.resolved
        );
        let compliance = self.compliance_lines();
        if !compliance.is_empty() {
            footer.push_str(&format!(
                "\nSLA met, last 7 days: {}",
                compliance.join("; ")
            ));
        }
        footer
    }

    /// The compliance line, e.g. "urgent 9/10 first responses, 7/8 resolutions in time".
    pub fn compliance_lines(&self) -> Vec<String> {
        self.compliance
            .iter()
            .filter(|c| c.first_total + c.resolution_total > 0)
            .map(|c| {
                format!(
                    "{}: first response {}, resolution {}",
                    c.priority,
                    share(c.first_met, c.first_total),
                    share(c.resolution_met, c.resolution_total)
                )
            })
            .collect()
    }
}

fn share(met: i64, total: i64) -> String {
    if total == 0 {
        "—".into()
    } else {
        format!("{}% ({met}/{total})", met * 100 / total)
    }
}

impl Line {
    /// The line's words for a section: "overdue by 2h", "1h 20m left", "open 3d", and for a
    /// ticket waiting on the customer, whose clock is paused (it has no due time then): "SLA
    /// paused (waiting), open 3d", or "SLA paused (waiting), breached 2h ago" once breached.
    pub fn when(&self, now: DateTime<Utc>) -> String {
        match self.due {
            Some(due) if due <= now => format!("overdue by {}", human(now - due)),
            Some(due) => format!("{} left", human(due - now)),
            None if self.status == Status::Waiting => match self.breached_at {
                Some(at) => format!("SLA paused (waiting), breached {} ago", human(now - at)),
                None => format!(
                    "SLA paused (waiting), open {}",
                    human(now - self.created_at)
                ),
            },
            None => format!("open {}", human(now - self.created_at)),
        }
    }
}

/// A digest of a busy desk for renderer tests: 10,000 open tickets, every section full.
#[cfg(test)]
pub fn sample() -> Digest {
    use super::people::UserRef;
    let at = DateTime::parse_from_rfc3339("2026-12-04T09:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    let line = |n: i64, due: Option<i64>| Line {
        no: TicketNo(n),
        priority: Priority::Urgent,
        status: Status::Open,
        description: format!(
            "Customer {n} cannot log in <script> & *bold* @everyone {}",
            "x".repeat(60)
        ),
        assignee: (n % 2 == 0).then(|| Person {
            user: UserRef::slack(format!("U{n}")),
            name: Some(format!("Agent {n}")),
        }),
        created_at: at - chrono::TimeDelta::days(n),
        due: due.map(|m| at + chrono::TimeDelta::minutes(m)),
        breached_at: None,
    };
    let section = |base: i64, due: Option<i64>| Section {
        total: 2_500,
        lines: (0..SECTION_LINES as i64)
            .map(|i| line(base + i, due))
            .collect(),
    };
    Digest {
        title: "Support queue, 2026-12-04 09:00 UTC".into(),
        at,
        since: at - chrono::TimeDelta::days(1),
        by_priority: vec![
            (Priority::Urgent, [1000, 1000, 500]),
            (Priority::High, [1000, 1000, 500]),
            (Priority::Medium, [1000, 1000, 500]),
            (Priority::Low, [1000, 1000, 500]),
        ],
        breached: section(100, Some(-90)),
        at_risk: section(200, Some(25)),
        unassigned: section(300, None),
        oldest: section(400, None),
        per_assignee: (0..10)
            .map(|i| {
                (
                    Person {
                        user: UserRef::slack(format!("U{i}")),
                        name: None,
                    },
                    100 - i,
                )
            })
            .collect(),
        created: 340,
        resolved: 310,
        compliance: vec![Compliance {
            priority: Priority::Urgent,
            first_met: 9,
            first_total: 10,
            resolution_met: 7,
            resolution_total: 8,
        }],
        timezone: "UTC".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_how_its_clock_stands() {
        let at: DateTime<Utc> = "2026-12-04T09:00:00Z".parse().unwrap();
        let mut line = sample().breached.lines[0].clone();
        line.created_at = at - chrono::Duration::days(3);
        line.due = Some(at - chrono::Duration::hours(2));
        assert_eq!(line.when(at), "overdue by 2h");
        line.due = Some(at + chrono::Duration::minutes(80));
        assert_eq!(line.when(at), "1h 20m left");
        line.due = None;
        assert_eq!(line.when(at), "open 3d");
        line.status = Status::Waiting;
        assert_eq!(line.when(at), "SLA paused (waiting), open 3d");
        line.breached_at = Some(at - chrono::Duration::minutes(150));
        assert_eq!(line.when(at), "SLA paused (waiting), breached 2h 30m ago");
    }

    #[test]
    fn times_read_in_the_digests_timezone() {
        let at = "2026-12-04T07:00:00Z".parse().unwrap();
        assert_eq!(local_time(at, "Europe/Helsinki"), "2026-12-04 09:00 EET");
        assert_eq!(local_time(at, "UTC"), "2026-12-04 07:00 UTC");
        // A zone that no longer parses reads as UTC.
        assert_eq!(local_time(at, "Nowhere/Else"), "2026-12-04 07:00 UTC");
    }
}
