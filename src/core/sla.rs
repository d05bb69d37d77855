//! SLA clocks: targets per priority, business-hours calendars and the
//! arithmetic that turns a ticket's history into "due in 1h 20m".
//!
//! Everything here is pure: no I/O and no reading of the system clock. `now`
//! is always a parameter.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use super::ticket::{Priority, Status};

/// Smallest target a policy accepts.
pub const MIN_TARGET: TimeDelta = TimeDelta::seconds(30);
/// Largest target a policy accepts.
pub const MAX_TARGET: TimeDelta = TimeDelta::days(90);
/// Default share of a target after which a clock is "at risk".
pub const DEFAULT_RISK_RATIO: f64 = 0.75;

/// How many calendar days the business-hours loops look at, at most (about
/// ten years). Past that, `working_time` stops counting and `add_working`
/// saturates.
const HORIZON_DAYS: u32 = 3660;

const ZERO: TimeDelta = TimeDelta::zero();

fn sat_add(a: TimeDelta, b: TimeDelta) -> TimeDelta {
    a.checked_add(&b).unwrap_or(if b > ZERO {
        TimeDelta::MAX
    } else {
        TimeDelta::MIN
    })
}

fn sat_sub(a: TimeDelta, b: TimeDelta) -> TimeDelta {
    a.checked_sub(&b).unwrap_or(if b < ZERO {
        TimeDelta::MAX
    } else {
        TimeDelta::MIN
    })
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a policy or a calendar setting was rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum SlaError {
    /// A target was outside `MIN_TARGET..=MAX_TARGET`.
    TargetOutOfRange {
        /// Which target: "first response" or "resolution".
        which: &'static str,
        /// The rejected value.
        got: TimeDelta,
    },
    /// The at-risk ratio was not strictly between 0 and 1.
    RiskRatio(f64),
    /// The days part of business hours could not be read.
    Days {
        /// The text given.
        input: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The hours part of business hours could not be read.
    Hours {
        /// The text given.
        input: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The time zone is not a known IANA name.
    TimeZone {
        /// The text given.
        input: String,
    },
    /// A whole "DAYS HH:MM-HH:MM ZONE" line did not have three parts.
    Format {
        /// The text given.
        input: String,
    },
}

impl fmt::Display for SlaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlaError::TargetOutOfRange { which, got } => write!(
                f,
                "{which} target {} is out of range: targets must be between {} and {}",
                human(*got),
                human(MIN_TARGET),
                human(MAX_TARGET)
            ),
            SlaError::RiskRatio(r) => write!(
                f,
                "at-risk ratio must be between 0 and 1 (exclusive), got {r}"
            ),
            SlaError::Days { input, reason } => write!(f, "invalid days \"{input}\": {reason}"),
            SlaError::Hours { input, reason } => write!(f, "invalid hours \"{input}\": {reason}"),
            SlaError::TimeZone { input } => write!(
                f,
                "unknown time zone \"{input}\" (expected an IANA name like Europe/Helsinki)"
            ),
            SlaError::Format { input } => write!(
                f,
                "invalid business hours \"{input}\": expected \"DAYS HH:MM-HH:MM ZONE\", e.g. \"Mon-Fri 09:00-17:00 Europe/Helsinki\""
            ),
        }
    }
}

impl std::error::Error for SlaError {}

// ---------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------

/// The first-response and resolution targets for one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    /// Business time allowed until the first response.
    pub first_response: TimeDelta,
    /// Business time allowed until the ticket is resolved.
    pub resolution: TimeDelta,
}

impl Targets {
    /// Checked constructor: both targets must be within `MIN_TARGET..=MAX_TARGET`.
    pub fn new(first_response: TimeDelta, resolution: TimeDelta) -> Result<Targets, SlaError> {
        for (which, got) in [
            ("first response", first_response),
            ("resolution", resolution),
        ] {
            if !(MIN_TARGET..=MAX_TARGET).contains(&got) {
                return Err(SlaError::TargetOutOfRange { which, got });
            }
        }
        Ok(Targets {
            first_response,
            resolution,
        })
    }
}

/// SLA targets for every priority plus the at-risk ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    targets: [Targets; 4],
    risk_ratio: f64,
}

fn priority_index(p: Priority) -> usize {
    match p {
        Priority::Low => 0,
        Priority::Medium => 1,
        Priority::High => 2,
        Priority::Urgent => 3,
    }
}

impl Default for Policy {
    /// Urgent 1h/4h, high 4h/1d, medium 8h/3d, low 1d/7d; at risk at 75%.
    fn default() -> Self {
        let t = |first_response, resolution| Targets {
            first_response,
            resolution,
        };
        Policy {
            targets: [
                t(TimeDelta::days(1), TimeDelta::days(7)),
                t(TimeDelta::hours(8), TimeDelta::days(3)),
                t(TimeDelta::hours(4), TimeDelta::days(1)),
                t(TimeDelta::hours(1), TimeDelta::hours(4)),
            ],
            risk_ratio: DEFAULT_RISK_RATIO,
        }
    }
}

impl Policy {
    /// The targets for a priority.
    pub fn get(&self, priority: Priority) -> Targets {
        self.targets[priority_index(priority)]
    }

    /// Replaces the targets for a priority (use `Targets::new` to validate them).
    pub fn set(&mut self, priority: Priority, targets: Targets) {
        self.targets[priority_index(priority)] = targets;
    }

    /// Share of a target after which a running clock is "at risk" (default 0.75).
    pub fn risk_ratio(&self) -> f64 {
        self.risk_ratio
    }

    /// Sets the at-risk ratio; it must be strictly between 0 and 1.
    pub fn set_risk_ratio(&mut self, ratio: f64) -> Result<(), SlaError> {
        if ratio > 0.0 && ratio < 1.0 {
            self.risk_ratio = ratio;
            Ok(())
        } else {
            Err(SlaError::RiskRatio(ratio))
        }
    }

    /// Business time after which a clock with this target is at risk.
    fn risk_threshold(&self, target: TimeDelta) -> TimeDelta {
        let ms = (target.num_milliseconds() as f64 * self.risk_ratio).ceil();
        TimeDelta::try_milliseconds(ms as i64).unwrap_or(target)
    }
}

// ---------------------------------------------------------------------------
// Business hours
// ---------------------------------------------------------------------------

const DAY_ABBR: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const DAY_FULL: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Weekly opening hours in one time zone.
///
/// `close` of 00:00 means midnight at the end of the day ("24:00"), so
/// `open` 00:00 with `close` 00:00 is the whole day. A day whose `close` is
/// otherwise not after `open` has no working time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusinessHours {
    /// Working weekdays, Monday first.
    pub days: [bool; 7],
    /// Local opening time.
    pub open: NaiveTime,
    /// Local closing time; 00:00 means the end of the day.
    pub close: NaiveTime,
    /// The time zone the hours (and holidays) are in.
    pub tz: Tz,
}

fn day_index(name: &str) -> Option<usize> {
    let n = name.trim().to_ascii_lowercase();
    if n.len() < 3 {
        return None;
    }
    // "mon", "monday", and in-between prefixes like "tues" or "thurs".
    DAY_FULL.iter().position(|full| full.starts_with(&n))
}

fn parse_days(input: &str) -> Result<[bool; 7], SlaError> {
    let err = |reason: String| SlaError::Days {
        input: input.to_string(),
        reason,
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(err("no days given (e.g. \"Mon-Fri\")".into()));
    }
    let lower = text.to_ascii_lowercase();
    if lower == "daily" || lower == "every day" || lower == "everyday" {
        return Ok([true; 7]);
    }
    let unknown = |name: &str| {
        err(format!(
            "unknown day \"{}\" (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)",
            name.trim()
        ))
    };
    let mut days = [false; 7];
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(err("empty entry in the day list".into()));
        }
        if let Some((a, b)) = item.split_once('-') {
            if a.trim().is_empty() || b.trim().is_empty() {
                return Err(err(format!("incomplete day range \"{item}\"")));
            }
            let first = day_index(a).ok_or_else(|| unknown(a))?;
            let last = day_index(b).ok_or_else(|| unknown(b))?;
            let mut i = first;
            for _ in 0..7 {
                days[i] = true;
                if i == last {
                    break;
                }
                i = (i + 1) % 7;
            }
        } else {
            days[day_index(item).ok_or_else(|| unknown(item))?] = true;
        }
    }
    Ok(days)
}

/// Minutes since midnight for "H:MM" / "HH:MM"; allows "24:00".
fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !digits(h) || !digits(m) {
        return None;
    }
    let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

fn parse_hours(input: &str) -> Result<(NaiveTime, NaiveTime), SlaError> {
    let err = |reason: String| SlaError::Hours {
        input: input.to_string(),
        reason,
    };
    let Some((a, b)) = input.trim().split_once('-') else {
        return Err(err("expected HH:MM-HH:MM, e.g. 09:00-17:00".into()));
    };
    let open = parse_hhmm(a).ok_or_else(|| {
        err(format!(
            "bad opening time \"{}\" (expected HH:MM)",
            a.trim()
        ))
    })?;
    let close = parse_hhmm(b).ok_or_else(|| {
        err(format!(
            "bad closing time \"{}\" (expected HH:MM, or 24:00)",
            b.trim()
        ))
    })?;
    if open >= 24 * 60 {
        return Err(err("opening time cannot be 24:00".into()));
    }
    if close <= open {
        return Err(err("opening time must be before closing time".into()));
    }
    let time = |mins: u32| NaiveTime::from_hms_opt((mins / 60) % 24, mins % 60, 0);
    match (time(open), time(close)) {
        (Some(o), Some(c)) => Ok((o, c)),
        _ => Err(err("time out of range".into())),
    }
}

fn parse_tz(input: &str) -> Result<Tz, SlaError> {
    find_tz(input).ok_or_else(|| SlaError::TimeZone {
        input: input.to_string(),
    })
}

/// An IANA timezone by name, as spelt or in any case (`europe/helsinki`).
pub fn find_tz(name: &str) -> Option<Tz> {
    let name = name.trim();
    name.parse::<Tz>().ok().or_else(|| {
        (chrono_tz::TZ_VARIANTS.iter())
            .find(|tz| tz.name().eq_ignore_ascii_case(name))
            .copied()
    })
}

impl BusinessHours {
    /// Parses days ("Mon-Fri", "Mon,Wed,Fri", "Fri-Mon", "daily"; case-insensitive,
    /// short or full names), hours ("09:00-17:00"; "00:00-24:00" is the whole day)
    /// and an IANA time zone ("Europe/Helsinki").
    pub fn parse(days: &str, hours: &str, tz: &str) -> Result<BusinessHours, SlaError> {
        let days = parse_days(days)?;
        let (open, close) = parse_hours(hours)?;
        let tz = parse_tz(tz)?;
        Ok(BusinessHours {
            days,
            open,
            close,
            tz,
        })
    }

    /// The working window of one local day as UTC instants, if it has one.
    fn window(
        &self,
        date: NaiveDate,
        holidays: &BTreeSet<NaiveDate>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let weekday = date.weekday().num_days_from_monday() as usize;
        if !self.days.get(weekday).copied().unwrap_or(false) || holidays.contains(&date) {
            return None;
        }
        let start = local_to_utc(self.tz, date.and_time(self.open))?;
        let end = if self.close == NaiveTime::MIN {
            local_to_utc(self.tz, date.succ_opt()?.and_time(NaiveTime::MIN))?
        } else if self.close > self.open {
            local_to_utc(self.tz, date.and_time(self.close))?
        } else {
            return None;
        };
        (end > start).then_some((start, end))
    }
}

fn fmt_hhmm(t: NaiveTime) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

fn fmt_days(days: &[bool; 7]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < 7 {
        if !days[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i + 1 < 7 && days[i + 1] {
            i += 1;
        }
        if start == i {
            parts.push(DAY_ABBR[i].to_string());
        } else {
            parts.push(format!("{}-{}", DAY_ABBR[start], DAY_ABBR[i]));
        }
        i += 1;
    }
    parts.join(",")
}

impl fmt::Display for BusinessHours {
    /// "Mon-Fri 09:00-17:00 Europe/Helsinki"; parses back with `FromStr`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let close = if self.close == NaiveTime::MIN {
            "24:00".to_string()
        } else {
            fmt_hhmm(self.close)
        };
        write!(
            f,
            "{} {}-{} {}",
            fmt_days(&self.days),
            fmt_hhmm(self.open),
            close,
            self.tz.name()
        )
    }
}

impl FromStr for BusinessHours {
    type Err = SlaError;

    /// Parses the `Display` form: "DAYS HH:MM-HH:MM ZONE".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let words: Vec<&str> = s.split_whitespace().collect();
        match words.as_slice() {
            [days @ .., hours, tz] if !days.is_empty() => {
                BusinessHours::parse(&days.join(" "), hours, tz)
            }
            _ => Err(SlaError::Format {
                input: s.to_string(),
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// Time-zone helpers (never panic, even at the ends of chrono's range)
// ---------------------------------------------------------------------------

fn utc_to_local(tz: Tz, t: NaiveDateTime) -> Option<NaiveDateTime> {
    t.checked_add_offset(tz.offset_from_utc_datetime(&t).fix())
}

fn local_date(tz: Tz, t: DateTime<Utc>) -> NaiveDate {
    utc_to_local(tz, t.naive_utc())
        .map(|l| l.date())
        .unwrap_or_else(|| t.date_naive())
}

/// The UTC instant of a local time: the earliest one when the local time
/// happens twice, the first valid instant after the gap when it is skipped.
fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let at = |off: <Tz as TimeZone>::Offset| local.checked_sub_offset(off.fix());
    match tz.offset_from_local_datetime(&local) {
        LocalResult::Single(o) => at(o).map(|n| n.and_utc()),
        LocalResult::Ambiguous(a, b) => match (at(a), at(b)) {
            (Some(x), Some(y)) => Some(x.min(y).and_utc()),
            (x, y) => x.or(y).map(|n| n.and_utc()),
        },
        LocalResult::None => first_valid_after(tz, local),
    }
}

/// For a local time inside a gap: the transition instant, i.e. the first UTC
/// instant whose local time is at or after `local`. Bisection over +-40h.
fn first_valid_after(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    const SPAN: TimeDelta = TimeDelta::hours(40);
    const STEP: TimeDelta = TimeDelta::nanoseconds(1);
    let reached = |u: NaiveDateTime| utc_to_local(tz, u).is_some_and(|l| l >= local);
    let mut lo = local.checked_sub_signed(SPAN)?;
    let mut hi = local.checked_add_signed(SPAN)?;
    if reached(lo) || !reached(hi) {
        return None;
    }
    while hi - lo > STEP {
        let mid = lo.checked_add_signed((hi - lo) / 2)?;
        if reached(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi.and_utc())
}

// ---------------------------------------------------------------------------
// Calendar
// ---------------------------------------------------------------------------

/// When SLA clocks run: business hours plus holidays, or 24/7.
///
/// With `hours: None` the clock runs 24/7 and `holidays` are ignored.
/// Holidays are whole local days in the business hours' time zone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    /// Weekly hours; `None` means 24/7.
    pub hours: Option<BusinessHours>,
    /// Local dates with no working time.
    pub holidays: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// A 24/7 calendar.
    pub fn always() -> Calendar {
        Calendar::default()
    }

    /// A calendar with business hours and holidays.
    pub fn new(hours: BusinessHours, holidays: impl IntoIterator<Item = NaiveDate>) -> Calendar {
        Calendar {
            hours: Some(hours),
            holidays: holidays.into_iter().collect(),
        }
    }

    /// Business time in `[from, to)`; zero when `to <= from`.
    ///
    /// With business hours only about ten years after `from` are counted.
    pub fn working_time(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> TimeDelta {
        if to <= from {
            return ZERO;
        }
        let Some(bh) = &self.hours else {
            return to.signed_duration_since(from);
        };
        let last = local_date(bh.tz, to);
        let first = local_date(bh.tz, from);
        // Start a day early: cheap, and safe around odd offsets.
        let mut date = first.pred_opt().unwrap_or(first);
        let mut total = ZERO;
        for _ in 0..HORIZON_DAYS {
            if date > last {
                break;
            }
            if let Some((s, e)) = bh.window(date, &self.holidays) {
                let (a, b) = (s.max(from), e.min(to));
                if b > a {
                    total = sat_add(total, b.signed_duration_since(a));
                }
            }
            match date.succ_opt() {
                Some(d) => date = d,
                None => break,
            }
        }
        total
    }

    /// The earliest instant `t >= from` with `working_time(from, t) == amount`.
    ///
    /// `amount <= 0` returns `from` unchanged (even outside business hours).
    /// Returns `DateTime::<Utc>::MAX_UTC` when the amount does not fit in about
    /// ten years of the calendar (or in chrono's range).
    pub fn add_working(&self, from: DateTime<Utc>, amount: TimeDelta) -> DateTime<Utc> {
        if amount <= ZERO {
            return from;
        }
        let Some(bh) = &self.hours else {
            return from
                .checked_add_signed(amount)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
        };
        let first = local_date(bh.tz, from);
        let mut date = first.pred_opt().unwrap_or(first);
        let mut remaining = amount;
        for _ in 0..HORIZON_DAYS {
            if let Some((s, e)) = bh.window(date, &self.holidays) {
                let a = s.max(from);
                if e > a {
                    let avail = e.signed_duration_since(a);
                    if remaining <= avail {
                        return a.checked_add_signed(remaining).unwrap_or(e);
                    }
                    remaining = sat_sub(remaining, avail);
                }
            }
            match date.succ_opt() {
                Some(d) => date = d,
                None => break,
            }
        }
        DateTime::<Utc>::MAX_UTC
    }
}

// ---------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------

/// One thing that happened to a ticket, as far as SLAs care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: SlaEventKind,
}

/// The kinds of ticket events that move SLA clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaEventKind {
    /// The ticket was created; both clocks start.
    Created {
        /// Priority at creation.
        priority: Priority,
    },
    /// The status changed.
    Status {
        /// The new status.
        to: Status,
    },
    /// The priority changed; targets change, used time is kept.
    Priority {
        /// The new priority.
        to: Priority,
    },
    /// An action that counts as the first response.
    FirstResponse,
}

/// Where a clock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Level {
    /// Running, below the at-risk share of the target.
    #[default]
    Ok,
    /// Running, at or past the at-risk share.
    AtRisk,
    /// The whole target has been used.
    Breached,
    /// Met in time.
    Met,
    /// Met after the target was used up (meeting at the very instant it
    /// ran out still counts as on time).
    MetLate,
}

/// One SLA clock (first response or resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clock {
    /// Business time allowed (for a met clock: the target when it was met).
    pub target: TimeDelta,
    /// Business time consumed up to now, or up to when the clock was met.
    pub used: TimeDelta,
    /// When the target is (or was) used up; `None` when met or paused.
    /// In the past for a breached clock: overdue by `now - due`.
    pub due: Option<DateTime<Utc>>,
    /// When the clock was met.
    pub met_at: Option<DateTime<Utc>>,
    /// Stopped because the ticket is waiting on the customer (never set on
    /// a met clock).
    pub paused: bool,
    /// Where the clock stands.
    pub level: Level,
}

/// Both SLA clocks of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clocks {
    /// Time to first response.
    pub first_response: Clock,
    /// Time to resolution.
    pub resolution: Clock,
}

impl Clocks {
    /// True for the value returned when the events had no `Created` (up to `now`).
    pub fn is_empty(&self) -> bool {
        *self == Clocks::default()
    }
}

/// Running state of one clock while replaying events.
#[derive(Debug, Clone, Default)]
struct Track {
    used: TimeDelta,
    /// Stretches during which the clock ran: start and business time used. `None` in a
    /// [`Memo`]'s replay, which keeps no history: a clock that needs it (one used up) is
    /// replayed whole.
    segments: Option<Vec<(DateTime<Utc>, TimeDelta)>>,
    /// When it was met and the target in force then.
    met: Option<(DateTime<Utc>, TimeDelta)>,
}

impl Track {
    fn new(record: bool) -> Track {
        Track {
            segments: record.then(Vec::new),
            ..Track::default()
        }
    }

    fn run(&mut self, cal: &Calendar, from: DateTime<Utc>, to: DateTime<Utc>) {
        if self.met.is_some() {
            return;
        }
        let w = cal.working_time(from, to);
        if w > ZERO {
            if let Some(segments) = &mut self.segments {
                segments.push((from, w));
            }
            self.used = sat_add(self.used, w);
        }
    }

    /// The instant the used time reached `target` (assumes it did); `None` without the
    /// stretches to find it in.
    fn crossing(
        &self,
        cal: &Calendar,
        target: TimeDelta,
        start: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let segments = self.segments.as_ref()?;
        if target <= ZERO {
            return Some(start);
        }
        let mut acc = ZERO;
        for &(s, w) in segments {
            let next = sat_add(acc, w);
            if next >= target {
                return Some(cal.add_working(s, sat_sub(target, acc)));
            }
            acc = next;
        }
        Some(start)
    }

    /// The clock at `now`; `None` when it was used up and this track kept no stretches.
    fn finish(
        &self,
        policy: &Policy,
        cal: &Calendar,
        target: TimeDelta,
        paused: bool,
        created: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Clock> {
        let used = self.used;
        if let Some((met_at, target)) = self.met {
            let late = used >= target && self.crossing(cal, target, created)? < met_at;
            return Some(Clock {
                target,
                used,
                due: None,
                met_at: Some(met_at),
                paused: false,
                level: if late { Level::MetLate } else { Level::Met },
            });
        }
        let level = if used >= target {
            Level::Breached
        } else if used >= policy.risk_threshold(target) {
            Level::AtRisk
        } else {
            Level::Ok
        };
        let due = if paused {
            None
        } else if used < target {
            Some(cal.add_working(now, sat_sub(target, used)))
        } else {
            Some(self.crossing(cal, target, created)?)
        };
        Some(Clock {
            target,
            used,
            due,
            met_at: None,
            paused,
            level,
        })
    }
}

/// Both clocks replayed up to the event at `t`.
#[derive(Debug, Clone)]
struct Replay {
    created: DateTime<Utc>,
    status: Status,
    priority: Priority,
    t: DateTime<Utc>,
    fr: Track,
    res: Track,
}

impl Replay {
    fn start(created: DateTime<Utc>, priority: Priority, record: bool) -> Replay {
        Replay {
            created,
            status: Status::Open,
            priority,
            t: created,
            fr: Track::new(record),
            res: Track::new(record),
        }
    }

    /// Replays one event, at or after the last.
    fn step(&mut self, policy: &Policy, cal: &Calendar, e: &SlaEvent) {
        if self.status != Status::Waiting {
            self.fr.run(cal, self.t, e.at);
            self.res.run(cal, self.t, e.at);
        }
        self.t = e.at;
        let targets = policy.get(self.priority);
        match e.kind {
            SlaEventKind::Created { .. } => {}
            SlaEventKind::Priority { to } => self.priority = to,
            SlaEventKind::FirstResponse => {
                if self.fr.met.is_none() {
                    self.fr.met = Some((e.at, targets.first_response));
                }
            }
            SlaEventKind::Status { to } => {
                match to {
                    Status::Completed | Status::Closed => {
                        if self.res.met.is_none() {
                            self.res.met = Some((e.at, targets.resolution));
                            if self.fr.met.is_none() {
                                self.fr.met = Some((e.at, targets.first_response));
                            }
                        }
                    }
                    Status::Open | Status::InProgress | Status::Waiting => self.res.met = None,
                }
                self.status = to;
            }
        }
    }

    /// Both clocks at `now` (not before the last event); `None` when one was used up and the
    /// replay kept no stretches.
    fn finish(self, policy: &Policy, cal: &Calendar, now: DateTime<Utc>) -> Option<Clocks> {
        let (mut fr, mut res) = (self.fr, self.res);
        let paused = self.status == Status::Waiting;
        if !paused {
            fr.run(cal, self.t, now);
            res.run(cal, self.t, now);
        }
        let targets = policy.get(self.priority);
        let created = self.created;
        Some(Clocks {
            first_response: fr.finish(policy, cal, targets.first_response, paused, created, now)?,
            resolution: res.finish(policy, cal, targets.resolution, paused, created, now)?,
        })
    }
}

/// Replays a ticket's events up to `now` and returns both clocks.
///
/// Events are sorted by time (stable); events after `now` or before the first
/// `Created` (in time) are ignored, and without a `Created` the result is
/// `Clocks::default()` (see `Clocks::is_empty`). Waiting pauses both clocks.
/// Completed/Closed meets the resolution clock and, if still running, the
/// first-response clock too (at the same instant). Any later status other than
/// Completed/Closed reopens: resolution resumes with its used time kept (a
/// reopen into Waiting stays paused); first response stays met. Priority
/// changes switch targets and keep used time; a met clock keeps the target it
/// was met against.
pub fn clocks(policy: &Policy, cal: &Calendar, events: &[SlaEvent], now: DateTime<Utc>) -> Clocks {
    replay(policy, cal, events, now, true)
        .and_then(|r| r.finish(policy, cal, now))
        .unwrap_or_default()
}

/// [`clocks`]' replay of `events` up to `now` (`None` without a `Created`), keeping each
/// clock's stretches if `record`.
fn replay(
    policy: &Policy,
    cal: &Calendar,
    events: &[SlaEvent],
    now: DateTime<Utc>,
    record: bool,
) -> Option<Replay> {
    let mut evs: Vec<&SlaEvent> = events.iter().filter(|e| e.at <= now).collect();
    evs.sort_by_key(|e| e.at);
    let (start, created, priority) = evs.iter().enumerate().find_map(|(i, e)| match e.kind {
        SlaEventKind::Created { priority } => Some((i, e.at, priority)),
        _ => None,
    })?;
    let mut r = Replay::start(created, priority, record);
    // Events at the creation instant count even if listed before Created.
    for (_, e) in evs
        .iter()
        .enumerate()
        .filter(|&(i, e)| i != start && e.at >= created)
    {
        r.step(policy, cal, e);
    }
    Some(r)
}

/// What a ticket's clocks were last computed from, so that the next computation replays only
/// the steps added since ([`clocks_of`]). A busy ticket's timeline grows with every change; a
/// change batch keeps this beside the ticket's steps, and replaying the whole timeline on every
/// change cost a quarter of the change task's time once the bench's tickets had some hundred
/// steps (BENCHMARKS.md, session 15).
#[derive(Debug, Clone)]
pub struct Memo {
    policy: Policy,
    calendar: std::sync::Arc<Calendar>,
    /// How many of the timeline's steps are in, and the last of them.
    steps: usize,
    last: Option<Step>,
    /// The priority the ticket was created with, as [`events_of`] reads it.
    initial: Priority,
    /// The first response replayed, if any.
    first_response: Option<DateTime<Utc>>,
    replay: Replay,
}

impl Memo {
    /// The steps of `timeline` that the memo's replay does not hold, as events in the order
    /// [`clocks`] would replay them after it (the ticket's first response among them if it is
    /// new); `None` when the memo cannot be carried on: other rules, another prefix, or an
    /// event that [`clocks`] would order before one replayed already or leave out at `now`.
    fn rest(
        &self,
        policy: &Policy,
        cal: &std::sync::Arc<Calendar>,
        ticket: &super::ticket::Ticket,
        timeline: &[Step],
        initial: Priority,
        now: DateTime<Utc>,
    ) -> Option<Vec<SlaEvent>> {
        let same_rules = self.policy == *policy
            && (std::sync::Arc::ptr_eq(&self.calendar, cal) || *self.calendar == **cal);
        let same_start = self.replay.created == ticket.created_at
            && self.initial == initial
            && self.steps <= timeline.len()
            && self.last == self.steps.checked_sub(1).map(|i| timeline[i]);
        if !same_rules || !same_start || now < self.replay.t {
            return None;
        }
        let mut rest: Vec<SlaEvent> = timeline[self.steps..].iter().map(Step::event).collect();
        match (self.first_response, ticket.first_response_at) {
            (replayed, stored) if replayed == stored => {}
            (None, Some(at)) => rest.push(SlaEvent {
                at,
                kind: SlaEventKind::FirstResponse,
            }),
            _ => return None,
        }
        rest.sort_by_key(|e| e.at);
        // [`clocks`] sorts the whole history by time, the first response after the steps of
        // its instant: an event before the last replayed, or beside a replayed first response
        // at that instant, would go elsewhere there.
        let t = self.replay.t;
        let ordered =
            (rest.iter()).all(|e| e.at > t || (e.at == t && self.first_response != Some(t)));
        (ordered && rest.iter().all(|e| e.at <= now)).then_some(rest)
    }
}

/// A ticket's clocks from its timeline ([`events_of`] and [`clocks`]), replaying only what
/// `memo` does not hold, and leaving in `memo` what the next call needs. The result is always
/// [`clocks`]' own: where the memo cannot be carried on, or a clock was used up (its crossing
/// needs the stretches a memo does not keep), the whole timeline is replayed.
pub fn clocks_of(
    policy: &Policy,
    cal: &std::sync::Arc<Calendar>,
    ticket: &super::ticket::Ticket,
    timeline: &[Step],
    memo: &mut Option<Memo>,
    now: DateTime<Utc>,
) -> Clocks {
    let initial = initial_priority(ticket, timeline);
    let kept = memo.take().and_then(|m| {
        let rest = m.rest(policy, cal, ticket, timeline, initial, now)?;
        Some((m.replay, rest))
    });
    let (replayed, whole) = match kept {
        Some((mut r, rest)) => {
            for e in &rest {
                r.step(policy, cal, e);
            }
            (Some(r), true)
        }
        None => {
            let r = replay(policy, cal, &events_of(ticket, timeline), now, false);
            // A replay that left out events after `now` does not hold the whole timeline.
            let whole = (timeline.iter().map(|s| s.event().at))
                .chain(ticket.first_response_at)
                .all(|at| at <= now);
            (r, whole)
        }
    };
    let Some(replayed) = replayed else {
        return Clocks::default();
    };
    // The memo's replay keeps no stretches, so the copy is small.
    let finished = replayed.clone().finish(policy, cal, now);
    *memo = whole.then(|| Memo {
        policy: *policy,
        calendar: cal.clone(),
        steps: timeline.len(),
        last: timeline.last().copied(),
        initial,
        first_response: ticket.first_response_at,
        replay: replayed,
    });
    finished.unwrap_or_else(|| clocks(policy, cal, &events_of(ticket, timeline), now))
}

/// The next instant after `now` when a running clock's level changes (reaches
/// at-risk or breach), so a watcher can sleep until then. `None` when nothing
/// will change without a new event (all clocks met, paused or breached, or the
/// calendar has no working time ahead).
pub fn next_change(
    policy: &Policy,
    cal: &Calendar,
    events: &[SlaEvent],
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    next_change_of(policy, cal, &clocks(policy, cal, events, now), now)
}

/// [`next_change`] of clocks computed already at `now`.
pub fn next_change_of(
    policy: &Policy,
    cal: &Calendar,
    c: &Clocks,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    [c.first_response, c.resolution]
        .iter()
        .filter(|k| k.met_at.is_none() && !k.paused && k.due.is_some())
        .filter_map(|k| {
            let risk = policy.risk_threshold(k.target);
            let left = if k.used < risk {
                sat_sub(risk, k.used)
            } else if k.used < k.target {
                sat_sub(k.target, k.used)
            } else {
                return None;
            };
            let at = cal.add_working(now, left);
            (at > now && at != DateTime::<Utc>::MAX_UTC).then_some(at)
        })
        .min()
}

// ---------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------

/// The most pressing SLA line for a ticket card, or `None` when nothing is
/// pending (both met, or no clocks). A paused clock wins; otherwise the
/// unmet clock with the earliest due (first response on a tie).
pub fn describe(clocks: &Clocks, now: DateTime<Utc>) -> Option<String> {
    let pending: Vec<(&str, &Clock)> = [
        ("first response", &clocks.first_response),
        ("resolution", &clocks.resolution),
    ]
    .into_iter()
    .filter(|(_, c)| c.met_at.is_none() && (c.paused || c.due.is_some()))
    .collect();
    if pending.iter().any(|(_, c)| c.paused) {
        return Some("SLA paused (waiting on the customer)".to_string());
    }
    let (name, due) = pending
        .iter()
        .filter_map(|(name, c)| c.due.map(|d| (*name, d)))
        .min_by_key(|(_, d)| *d)?;
    Some(if due <= now {
        format!(
            "{name} overdue by {}",
            human(now.signed_duration_since(due))
        )
    } else {
        format!("{name} due in {}", human(due.signed_duration_since(now)))
    })
}

/// A duration in at most two units, truncated: "45s", "15m", "1h 20m",
/// "2d 3h", "90d"; "0s" for zero, a leading "-" when negative.
pub fn human(d: TimeDelta) -> String {
    let total = d.num_seconds().unsigned_abs();
    let units = [
        (total / 86_400, "d"),
        (total % 86_400 / 3_600, "h"),
        (total % 3_600 / 60, "m"),
        (total % 60, "s"),
    ];
    let Some(i) = units.iter().position(|(n, _)| *n > 0) else {
        return "0s".to_string();
    };
    let mut s = format!("{}{}", units[i].0, units[i].1);
    if let Some((n, u)) = units.get(i + 1).filter(|(n, _)| *n > 0) {
        s.push_str(&format!(" {n}{u}"));
    }
    if d < ZERO { format!("-{s}") } else { s }
}

/// A ticket's clocks as stored: when each unmet, running target falls due, and whether the
/// clocks are paused. Cards read their SLA line from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlaDue {
    pub first_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    pub paused: bool,
}

impl SlaDue {
    /// The due times of computed clocks.
    pub fn of(clocks: &Clocks) -> SlaDue {
        let running = |c: &Clock| c.met_at.is_none().then_some(c.due).flatten();
        SlaDue {
            first_due: running(&clocks.first_response),
            resolution_due: running(&clocks.resolution),
            paused: clocks.first_response.paused || clocks.resolution.paused,
        }
    }

    /// The card's SLA line: the most pressing target, "first response due in 1h 20m" or
    /// "resolution overdue by 15m"; paused clocks say so; `None` when nothing is running.
    pub fn line(&self, now: DateTime<Utc>) -> Option<String> {
        if self.paused {
            return Some("SLA paused (waiting on the customer)".into());
        }
        let (what, due) = match (self.first_due, self.resolution_due) {
            (Some(f), Some(r)) if r < f => ("resolution", r),
            (Some(f), _) => ("first response", f),
            (None, Some(r)) => ("resolution", r),
            (None, None) => return None,
        };
        Some(if due > now {
            format!("{what} due in {}", human(due - now))
        } else {
            format!("{what} overdue by {}", human(now - due))
        })
    }
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::AtRisk => "at_risk",
            Level::Breached => "breached",
            Level::Met => "met",
            Level::MetLate => "met_late",
        }
    }

    /// The alert levels (`at_risk`, `breached`) a clock at this level has fallen back below:
    /// its deadline moved away (a lower priority, a longer target), so alerts sent at those
    /// levels no longer stand, and reaching them again alerts again. A met clock keeps its
    /// alerts (it cannot breach again), as does a breached one.
    pub fn withdrawn(self) -> &'static [&'static str] {
        match self {
            Level::Ok => &["at_risk", "breached"],
            Level::AtRisk => &["breached"],
            Level::Breached | Level::Met | Level::MetLate => &[],
        }
    }
}

/// What the clocks read of a timeline event: a status or priority change and its time. Small
/// and plain (no text), so a ticket's whole history is cheap to read and to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Status {
        to: Status,
        at: DateTime<Utc>,
    },
    Priority {
        from: Option<Priority>,
        to: Priority,
        at: DateTime<Utc>,
    },
}

impl Step {
    /// The step an event of `kind` from `old` to `new` at `at` is; `None` for the kinds the
    /// clocks do not read (and for values that do not parse).
    pub fn of(
        kind: super::ticket::EventKind,
        old: Option<&str>,
        new: Option<&str>,
        at: DateTime<Utc>,
    ) -> Option<Step> {
        use super::ticket::EventKind;
        match kind {
            EventKind::Status => Some(Step::Status {
                to: Status::parse(new?)?,
                at,
            }),
            EventKind::Priority => Some(Step::Priority {
                from: old.and_then(Priority::parse),
                to: Priority::parse(new?)?,
                at,
            }),
            _ => None,
        }
    }

    /// The step a timeline event is, if the clocks read it.
    pub fn of_event(e: &super::ticket::Event) -> Option<Step> {
        Step::of(e.kind, e.old_value.as_deref(), e.new_value.as_deref(), e.at)
    }

    /// The event the clocks replay for this step.
    fn event(&self) -> SlaEvent {
        match *self {
            Step::Status { to, at } => SlaEvent {
                at,
                kind: SlaEventKind::Status { to },
            },
            Step::Priority { to, at, .. } => SlaEvent {
                at,
                kind: SlaEventKind::Priority { to },
            },
        }
    }
}

/// A ticket's SLA history from its timeline: created (at the first priority it had), every
/// status and priority change, and the first response.
pub fn events_of(ticket: &super::ticket::Ticket, timeline: &[Step]) -> Vec<SlaEvent> {
    let mut out = vec![SlaEvent {
        at: ticket.created_at,
        kind: SlaEventKind::Created {
            priority: initial_priority(ticket, timeline),
        },
    }];
    out.extend(timeline.iter().map(Step::event));
    if let Some(at) = ticket.first_response_at {
        out.push(SlaEvent {
            at,
            kind: SlaEventKind::FirstResponse,
        });
    }
    out.sort_by_key(|e| e.at);
    out
}

/// The priority a ticket was created with: the first priority change's old one, else its own.
fn initial_priority(ticket: &super::ticket::Ticket, timeline: &[Step]) -> Priority {
    timeline
        .iter()
        .find_map(|s| match s {
            Step::Priority { from, .. } => Some(*from),
            Step::Status { .. } => None,
        })
        .flatten()
        .unwrap_or(ticket.priority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
            .with_timezone(&Utc)
    }
    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    fn dur(s: &str) -> TimeDelta {
        crate::core::grammar::parse_duration(s)
            .and_then(|d| TimeDelta::from_std(d).ok())
            .unwrap_or_else(|| panic!("bad test duration {s}"))
    }
    fn hours(days: &str, hours: &str, tz: &str) -> BusinessHours {
        BusinessHours::parse(days, hours, tz).unwrap()
    }
    fn cal(days: &str, h: &str, tz: &str, holidays: &[&str]) -> Calendar {
        Calendar::new(hours(days, h, tz), holidays.iter().map(|s| d(s)))
    }
    fn ev(at: &str, kind: SlaEventKind) -> SlaEvent {
        SlaEvent { at: t(at), kind }
    }
    fn created(at: &str, priority: Priority) -> SlaEvent {
        ev(at, SlaEventKind::Created { priority })
    }
    fn status(at: &str, to: Status) -> SlaEvent {
        ev(at, SlaEventKind::Status { to })
    }
    fn responded(at: &str) -> SlaEvent {
        ev(at, SlaEventKind::FirstResponse)
    }
    fn prio(at: &str, to: Priority) -> SlaEvent {
        ev(at, SlaEventKind::Priority { to })
    }

    #[test]
    fn calendar_dates_used_below_are_the_weekdays_we_think() {
        for (date, wd) in [
            ("2026-03-06", Weekday::Fri),
            ("2026-03-07", Weekday::Sat),
            ("2026-03-08", Weekday::Sun), // US DST starts (2nd Sunday of March)
            ("2026-03-09", Weekday::Mon),
            ("2026-03-29", Weekday::Sun), // EU DST starts (last Sunday of March)
            ("2026-10-25", Weekday::Sun), // EU DST ends (last Sunday of October)
            ("2026-11-01", Weekday::Sun), // US DST ends (1st Sunday of November)
        ] {
            assert_eq!(d(date).weekday(), wd, "{date}");
        }
    }

    #[test]
    fn policy_defaults_and_validation() {
        let p = Policy::default();
        let table = [
            (Priority::Urgent, "1h", "4h"),
            (Priority::High, "4h", "1d"),
            (Priority::Medium, "8h", "3d"),
            (Priority::Low, "1d", "7d"),
        ];
        for (pr, f, r) in table {
            assert_eq!(p.get(pr), Targets::new(dur(f), dur(r)).unwrap(), "{pr:?}");
        }
        assert_eq!(p.risk_ratio(), 0.75);

        let mut p = Policy::default();
        p.set(Priority::Low, Targets::new(dur("2h"), dur("2d")).unwrap());
        assert_eq!(p.get(Priority::Low).first_response, dur("2h"));
        assert_eq!(p.get(Priority::High), Policy::default().get(Priority::High));

        assert!(Targets::new(MIN_TARGET, MAX_TARGET).is_ok());
        let bad = [
            ("29s", "1h", "first response target 29s is out of range"),
            ("1h", "91d", "resolution target 91d is out of range"),
            ("0s", "1h", "first response target 0s"),
        ];
        for (f, r, msg) in bad {
            let e = Targets::new(dur(f), dur(r)).unwrap_err().to_string();
            assert!(e.contains(msg), "{e}");
            assert!(e.contains("targets must be between 30s and 90d"), "{e}");
        }
        assert!(Targets::new(TimeDelta::seconds(-5), dur("1h")).is_err());

        for ok in [0.5, 0.01, 0.99] {
            assert!(p.set_risk_ratio(ok).is_ok(), "{ok}");
            assert_eq!(p.risk_ratio(), ok);
        }
        for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
            let e = p.set_risk_ratio(bad).unwrap_err().to_string();
            assert!(e.contains("between 0 and 1"), "{e}");
        }
        assert_eq!(p.risk_ratio(), 0.99, "failed sets keep the old ratio");
    }

    #[test]
    fn parse_business_hours_accepts() {
        const MF: [bool; 7] = [true, true, true, true, true, false, false];
        let table: [(&str, &str, &str, [bool; 7], &str); 13] = [
            (
                "Mon-Fri",
                "09:00-17:00",
                "Europe/Helsinki",
                MF,
                "Mon-Fri 09:00-17:00 Europe/Helsinki",
            ),
            (
                "mon-fri",
                "9:00-17:00",
                " UTC ",
                MF,
                "Mon-Fri 09:00-17:00 UTC",
            ),
            (
                "Monday-Friday",
                "09:00 - 17:30",
                "America/New_York",
                MF,
                "Mon-Fri 09:00-17:30 America/New_York",
            ),
            (
                "MON - FRI",
                "08:00-16:00",
                "UTC",
                MF,
                "Mon-Fri 08:00-16:00 UTC",
            ),
            (
                "Mon,Wed,Fri",
                "09:00-17:00",
                "UTC",
                [true, false, true, false, true, false, false],
                "Mon,Wed,Fri 09:00-17:00 UTC",
            ),
            (
                "Sat-Sun",
                "10:00-14:00",
                "UTC",
                [false, false, false, false, false, true, true],
                "Sat-Sun 10:00-14:00 UTC",
            ),
            (
                "Mon-Fri,Sun",
                "09:00-17:00",
                "UTC",
                [true, true, true, true, true, false, true],
                "Mon-Fri,Sun 09:00-17:00 UTC",
            ),
            (
                "daily",
                "00:00-24:00",
                "UTC",
                [true; 7],
                "Mon-Sun 00:00-24:00 UTC",
            ),
            (
                "Mon-Sun",
                "12:00-24:00",
                "UTC",
                [true; 7],
                "Mon-Sun 12:00-24:00 UTC",
            ),
            (
                "Fri-Mon",
                "09:00-17:00",
                "UTC",
                [true, false, false, false, true, true, true],
                "Mon,Fri-Sun 09:00-17:00 UTC",
            ),
            (
                "Sun-Sat",
                "09:00-17:00",
                "UTC",
                [true; 7],
                "Mon-Sun 09:00-17:00 UTC",
            ),
            (
                "tues,Thurs",
                "09:00-17:00",
                "UTC",
                [false, true, false, true, false, false, false],
                "Tue,Thu 09:00-17:00 UTC",
            ),
            (
                "Wed-Wed",
                "00:00-00:30",
                "UTC",
                [false, false, true, false, false, false, false],
                "Wed 00:00-00:30 UTC",
            ),
        ];
        for (days, h, tz, want_days, shown) in table {
            let bh = BusinessHours::parse(days, h, tz)
                .unwrap_or_else(|e| panic!("{days} {h} {tz}: {e}"));
            assert_eq!(bh.days, want_days, "{days}");
            assert_eq!(bh.to_string(), shown);
            // Display round-trips through FromStr.
            assert_eq!(shown.parse::<BusinessHours>(), Ok(bh), "{shown}");
        }
        let whole = hours("daily", "00:00-24:00", "UTC");
        assert_eq!((whole.open, whole.close), (NaiveTime::MIN, NaiveTime::MIN));
    }

    #[test]
    fn parse_business_hours_rejects_with_clear_messages() {
        let table = [
            ("", "09:00-17:00", "UTC", "invalid days \"\": no days given"),
            ("  ", "09:00-17:00", "UTC", "no days given"),
            ("Mon-Funday", "09:00-17:00", "UTC", "unknown day \"Funday\""),
            ("Mo", "09:00-17:00", "UTC", "unknown day \"Mo\""),
            (
                "Mon,,Fri",
                "09:00-17:00",
                "UTC",
                "empty entry in the day list",
            ),
            (
                "Mon-",
                "09:00-17:00",
                "UTC",
                "incomplete day range \"Mon-\"",
            ),
            (
                "Mon-Tue-Wed",
                "09:00-17:00",
                "UTC",
                "unknown day \"Tue-Wed\"",
            ),
            ("Mon-Fri", "9-5", "UTC", "bad opening time \"9\""),
            (
                "Mon-Fri",
                "09:00",
                "UTC",
                "invalid hours \"09:00\": expected HH:MM-HH:MM",
            ),
            (
                "Mon-Fri",
                "17:00-09:00",
                "UTC",
                "opening time must be before closing time",
            ),
            (
                "Mon-Fri",
                "09:00-09:00",
                "UTC",
                "opening time must be before closing time",
            ),
            (
                "Mon-Fri",
                "00:00-00:00",
                "UTC",
                "opening time must be before closing time",
            ),
            (
                "Mon-Fri",
                "25:00-26:00",
                "UTC",
                "bad opening time \"25:00\"",
            ),
            (
                "Mon-Fri",
                "09:60-10:00",
                "UTC",
                "bad opening time \"09:60\"",
            ),
            (
                "Mon-Fri",
                "09:00-24:30",
                "UTC",
                "bad closing time \"24:30\"",
            ),
            (
                "Mon-Fri",
                "24:00-24:00",
                "UTC",
                "opening time cannot be 24:00",
            ),
            (
                "Mon-Fri",
                "09:00-17:00",
                "Mars/Base",
                "unknown time zone \"Mars/Base\"",
            ),
            ("Mon-Fri", "09:00-17:00", "", "unknown time zone \"\""),
        ];
        for (days, h, tz, msg) in table {
            let e = BusinessHours::parse(days, h, tz)
                .expect_err(&format!("{days:?} {h:?} {tz:?} should fail"))
                .to_string();
            assert!(
                e.contains(msg),
                "{days:?} {h:?} {tz:?}: got {e:?}, want {msg:?}"
            );
        }
        for bad in ["", "Mon-Fri", "09:00-17:00 UTC"] {
            let e = bad.parse::<BusinessHours>().unwrap_err().to_string();
            assert!(e.contains("expected \"DAYS HH:MM-HH:MM ZONE\""), "{e}");
        }
    }

    /// (calendar, from, amount, expected add_working(from, amount)).
    /// Every row is also checked the other way: working_time(from, due) == amount.
    #[test]
    fn add_working_table() {
        let always = Calendar::always();
        let utc_office = cal("Mon-Fri", "09:00-17:00", "UTC", &[]);
        let utc_office_hol = cal("Mon-Fri", "09:00-17:00", "UTC", &["2026-03-09"]);
        let hel_office_hol = cal("Mon-Fri", "09:00-17:00", "Europe/Helsinki", &["2026-03-09"]);
        let hel_daily = cal("daily", "09:00-17:00", "Europe/Helsinki", &[]);
        let hel_24 = cal("daily", "00:00-24:00", "Europe/Helsinki", &[]);
        let ny_daily = cal("daily", "09:00-17:00", "America/New_York", &[]);
        let ny_night = cal("daily", "02:00-05:00", "America/New_York", &[]);
        let always_hol = Calendar {
            hours: None,
            holidays: [d("2026-03-09")].into(),
        };
        let table: Vec<(&str, &Calendar, &str, &str, &str)> = vec![
            // 24/7: plain addition.
            (
                "24/7",
                &always,
                "2026-03-06T16:00:00Z",
                "4h",
                "2026-03-06T20:00:00Z",
            ),
            // 24/7 ignores holidays: 48h later is 48h later.
            (
                "24/7 holidays ignored",
                &always_hol,
                "2026-03-08T12:00:00Z",
                "2d",
                "2026-03-10T12:00:00Z",
            ),
            // Fri 16:00 + 4h: Fri 16-17 gives 1h, weekend skipped, Mon 09:00 + 3h.
            (
                "weekend skipped",
                &utc_office,
                "2026-03-06T16:00:00Z",
                "4h",
                "2026-03-09T12:00:00Z",
            ),
            // Same, Monday is a holiday: Tue 09:00 + 3h.
            (
                "holiday skipped",
                &utc_office_hol,
                "2026-03-06T16:00:00Z",
                "4h",
                "2026-03-10T12:00:00Z",
            ),
            // Saturday: nothing until Mon 09:00, + 4h.
            (
                "created on Saturday",
                &utc_office,
                "2026-03-07T10:00:00Z",
                "4h",
                "2026-03-09T13:00:00Z",
            ),
            // Filling a day exactly ends at closing time, not the next opening.
            (
                "exactly one day",
                &utc_office,
                "2026-03-06T09:00:00Z",
                "8h",
                "2026-03-06T17:00:00Z",
            ),
            // Before opening: starts at opening.
            (
                "before opening",
                &utc_office,
                "2026-03-06T03:00:00Z",
                "30m",
                "2026-03-06T09:30:00Z",
            ),
            // Helsinki holiday is a local day: Fri 16:00 EET (14:00Z) gives 1h,
            // Mon 9th holiday, Tue 09:00 EET = 07:00Z + 3h = 10:00Z.
            (
                "holiday in local zone",
                &hel_office_hol,
                "2026-03-06T14:00:00Z",
                "4h",
                "2026-03-10T10:00:00Z",
            ),
            // Helsinki spring forward (Sun 29 Mar, 03:00 EET -> 04:00 EEST).
            // Sat 16:00 EET = 14:00Z gives 1h; Sun 09:00 EEST = 06:00Z + 3h = 09:00Z.
            (
                "Helsinki spring 9-17",
                &hel_daily,
                "2026-03-28T14:00:00Z",
                "4h",
                "2026-03-29T09:00:00Z",
            ),
            // Helsinki fall back (Sun 25 Oct, 04:00 EEST -> 03:00 EET).
            // Sat 16:00 EEST = 13:00Z gives 1h; Sun 09:00 EET = 07:00Z + 3h = 10:00Z.
            (
                "Helsinki autumn 9-17",
                &hel_daily,
                "2026-10-24T13:00:00Z",
                "4h",
                "2026-10-25T10:00:00Z",
            ),
            // Whole-day hours across the change: 24 real hours, like 24/7.
            (
                "Helsinki spring 24h",
                &hel_24,
                "2026-03-28T12:00:00Z",
                "24h",
                "2026-03-29T12:00:00Z",
            ),
            (
                "Helsinki autumn 24h",
                &hel_24,
                "2026-10-24T12:00:00Z",
                "24h",
                "2026-10-25T12:00:00Z",
            ),
            (
                "24/7 across EU spring",
                &always,
                "2026-03-28T12:00:00Z",
                "24h",
                "2026-03-29T12:00:00Z",
            ),
            // New York spring forward (Sun 8 Mar, 02:00 EST -> 03:00 EDT).
            // Sat 16:00 EST = 21:00Z gives 1h; Sun 09:00 EDT = 13:00Z + 3h = 16:00Z.
            (
                "NY spring 9-17",
                &ny_daily,
                "2026-03-07T21:00:00Z",
                "4h",
                "2026-03-08T16:00:00Z",
            ),
            // New York fall back (Sun 1 Nov, 02:00 EDT -> 01:00 EST).
            // Sat 16:00 EDT = 20:00Z gives 1h; Sun 09:00 EST = 14:00Z + 3h = 17:00Z.
            (
                "NY autumn 9-17",
                &ny_daily,
                "2026-10-31T20:00:00Z",
                "4h",
                "2026-11-01T17:00:00Z",
            ),
            (
                "24/7 across US autumn",
                &always,
                "2026-10-31T20:00:00Z",
                "1d",
                "2026-11-01T20:00:00Z",
            ),
            // 02:00-05:00 on 8 Mar: 02:00 does not exist, the window starts at
            // the first real instant 03:00 EDT = 07:00Z and ends 05:00 EDT = 09:00Z.
            (
                "NY gap, inside",
                &ny_night,
                "2026-03-08T05:00:00Z",
                "1h",
                "2026-03-08T08:00:00Z",
            ),
            // 2h on the 8th, then Mon 9th 02:00 EDT = 06:00Z + 30m.
            (
                "NY gap, spill over",
                &ny_night,
                "2026-03-08T05:00:00Z",
                "2h30m",
                "2026-03-09T06:30:00Z",
            ),
        ];
        for (name, c, from, amount, want) in table {
            let (from, amount, want) = (t(from), dur(amount), t(want));
            let got = c.add_working(from, amount);
            assert_eq!(got, want, "{name}: add_working");
            assert_eq!(c.working_time(from, got), amount, "{name}: working_time");
        }
        // amount <= 0 returns `from`, even outside hours.
        let sat = t("2026-03-07T10:00:00Z");
        assert_eq!(utc_office.add_working(sat, ZERO), sat);
        assert_eq!(utc_office.add_working(sat, dur("1h") * -1), sat);
    }

    /// (calendar, from, to, expected working_time).
    #[test]
    fn working_time_table() {
        let utc_office = cal("Mon-Fri", "09:00-17:00", "UTC", &[]);
        let hel_daily = cal("daily", "09:00-17:00", "Europe/Helsinki", &[]);
        let hel_24 = cal("daily", "00:00-24:00", "Europe/Helsinki", &[]);
        let ny_daily = cal("daily", "09:00-17:00", "America/New_York", &[]);
        let ny_24 = cal("daily", "00:00-24:00", "America/New_York", &[]);
        let ny_gap = cal("daily", "02:00-05:00", "America/New_York", &[]);
        let ny_fold = cal("daily", "01:00-05:00", "America/New_York", &[]);
        let always = Calendar::always();
        let table: Vec<(&str, &Calendar, &str, &str, &str)> = vec![
            (
                "empty range",
                &utc_office,
                "2026-03-06T12:00:00Z",
                "2026-03-06T12:00:00Z",
                "0s",
            ),
            (
                "reversed range",
                &utc_office,
                "2026-03-06T13:00:00Z",
                "2026-03-06T12:00:00Z",
                "0s",
            ),
            (
                "inside one day",
                &utc_office,
                "2026-03-06T10:00:00Z",
                "2026-03-06T12:30:00Z",
                "2h30m",
            ),
            // Sat 10:00 -> Mon 09:00: weekend, nothing.
            (
                "weekend",
                &utc_office,
                "2026-03-07T10:00:00Z",
                "2026-03-09T09:00:00Z",
                "0s",
            ),
            // Fri 16:00 -> Mon 12:00: 1h + 3h.
            (
                "over a weekend",
                &utc_office,
                "2026-03-06T16:00:00Z",
                "2026-03-09T12:00:00Z",
                "4h",
            ),
            // A full week Mon 00:00 -> next Mon 00:00: 5 x 8h.
            (
                "a week",
                &utc_office,
                "2026-03-02T00:00:00Z",
                "2026-03-09T00:00:00Z",
                "40h",
            ),
            // Sat 28 Mar 07:00Z-15:00Z (EET) + Sun 29 Mar 06:00Z-14:00Z (EEST).
            (
                "Helsinki spring 9-17",
                &hel_daily,
                "2026-03-28T00:00:00Z",
                "2026-03-30T00:00:00Z",
                "16h",
            ),
            // Sat 24 Oct 06:00Z-14:00Z (EEST) + Sun 25 Oct 07:00Z-15:00Z (EET).
            (
                "Helsinki autumn 9-17",
                &hel_daily,
                "2026-10-24T00:00:00Z",
                "2026-10-26T00:00:00Z",
                "16h",
            ),
            // Local day 29 Mar: 00:00 EET = 28th 22:00Z to 30th 00:00 EEST = 29th 21:00Z.
            (
                "Helsinki spring day is 23h",
                &hel_24,
                "2026-03-28T22:00:00Z",
                "2026-03-29T21:00:00Z",
                "23h",
            ),
            (
                "24/7 same span",
                &always,
                "2026-03-28T22:00:00Z",
                "2026-03-29T21:00:00Z",
                "23h",
            ),
            // Local day 25 Oct: 00:00 EEST = 24th 21:00Z to 26th 00:00 EET = 25th 22:00Z.
            (
                "Helsinki autumn day is 25h",
                &hel_24,
                "2026-10-24T21:00:00Z",
                "2026-10-25T22:00:00Z",
                "25h",
            ),
            // Sat 7 Mar 14:00Z-22:00Z (EST) + Sun 8 Mar 13:00Z-21:00Z (EDT).
            (
                "NY spring 9-17",
                &ny_daily,
                "2026-03-07T00:00:00Z",
                "2026-03-09T00:00:00Z",
                "16h",
            ),
            // Sat 31 Oct 13:00Z-21:00Z (EDT) + Sun 1 Nov 14:00Z-22:00Z (EST).
            (
                "NY autumn 9-17",
                &ny_daily,
                "2026-10-31T00:00:00Z",
                "2026-11-02T00:00:00Z",
                "16h",
            ),
            // Local 8 Mar: 00:00 EST = 05:00Z to 9 Mar 00:00 EDT = 04:00Z.
            (
                "NY spring day is 23h",
                &ny_24,
                "2026-03-08T05:00:00Z",
                "2026-03-09T04:00:00Z",
                "23h",
            ),
            // Local 1 Nov: 00:00 EDT = 04:00Z to 2 Nov 00:00 EST = 05:00Z.
            (
                "NY autumn day is 25h",
                &ny_24,
                "2026-11-01T04:00:00Z",
                "2026-11-02T05:00:00Z",
                "25h",
            ),
            (
                "24/7 same span",
                &always,
                "2026-11-01T04:00:00Z",
                "2026-11-02T05:00:00Z",
                "25h",
            ),
            // 02:00-05:00 on 8 Mar: only 03:00-05:00 EDT (07:00Z-09:00Z) is real.
            (
                "NY skipped hour not counted",
                &ny_gap,
                "2026-03-08T00:00:00Z",
                "2026-03-09T00:00:00Z",
                "2h",
            ),
            // The day before: 02:00-05:00 EST = 07:00Z-10:00Z, 3h.
            (
                "NY normal night",
                &ny_gap,
                "2026-03-07T00:00:00Z",
                "2026-03-08T00:00:00Z",
                "3h",
            ),
            // 01:00-05:00 on 1 Nov: 01:00 happens twice, take the earlier
            // (01:00 EDT = 05:00Z) to 05:00 EST = 10:00Z: 5 real hours.
            (
                "NY repeated hour counted",
                &ny_fold,
                "2026-11-01T00:00:00Z",
                "2026-11-02T00:00:00Z",
                "5h",
            ),
        ];
        for (name, c, from, to, want) in table {
            assert_eq!(c.working_time(t(from), t(to)), dur(want), "{name}");
        }
    }

    /// add_working and working_time are inverses, and add_working returns
    /// the earliest such instant, over a grid of starts around all four DST
    /// changes and many amounts.
    #[test]
    fn add_working_inverts_working_time_on_a_grid() {
        let calendars = [
            Calendar::always(),
            cal(
                "Mon-Fri",
                "09:00-17:00",
                "Europe/Helsinki",
                &["2026-03-30", "2026-10-26"],
            ),
            cal("daily", "02:00-05:00", "America/New_York", &[]),
            cal("daily", "01:00-05:00", "America/New_York", &[]),
            cal(
                "Sat-Sun",
                "00:00-24:00",
                "America/New_York",
                &["2026-11-01"],
            ),
            cal("Fri-Mon", "22:00-24:00", "Australia/Lord_Howe", &[]),
        ];
        let amounts = [
            "1s", "30s", "15m", "1h", "2h59m", "7h59m", "8h", "1d", "3d", "30d",
        ];
        let step = dur("7h37m") + TimeDelta::seconds(13);
        let one_ns = TimeDelta::nanoseconds(1);
        let mut checked = 0;
        for c in &calendars {
            for base in [
                "2026-03-04T00:00:00Z",
                "2026-03-25T00:00:00Z",
                "2026-10-21T00:00:00Z",
            ] {
                for i in 0..40 {
                    let from = t(base) + step * i;
                    for a in amounts {
                        let a = dur(a);
                        let due = c.add_working(from, a);
                        assert!(due > from);
                        assert_eq!(c.working_time(from, due), a, "{c:?} {from} {a}");
                        assert!(
                            c.working_time(from, due - one_ns) < a,
                            "not earliest: {from} {a}"
                        );
                        // The other direction: add_working(from, working_time(from, to)) <= to.
                        let to = from + a;
                        assert!(c.add_working(from, c.working_time(from, to)) <= to);
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 6 * 3 * 40 * 10);
    }

    #[test]
    fn ninety_day_target_with_hours_terminates_quickly() {
        let c = cal(
            "Mon-Fri",
            "09:00-17:00",
            "Europe/Helsinki",
            &["2026-12-24", "2026-12-25"],
        );
        let from = t("2026-03-06T14:00:00Z");
        let started = std::time::Instant::now();
        let due = c.add_working(from, MAX_TARGET);
        let elapsed = started.elapsed();
        // 90 x 24h = 270 working days of 8h, about 54 weeks.
        assert!(
            due > t("2027-03-01T00:00:00Z") && due < t("2027-04-01T00:00:00Z"),
            "{due}"
        );
        assert_eq!(c.working_time(from, due), MAX_TARGET);
        // Generous for debug builds on a shared machine; release is far faster.
        assert!(
            elapsed < std::time::Duration::from_millis(50),
            "{elapsed:?}"
        );

        // A calendar with one minute a week cannot fit 90 days in the horizon:
        // saturates instead of looping.
        let tiny = Calendar::new(hours("Sun", "00:00-00:01", "UTC"), []);
        assert_eq!(tiny.add_working(from, MAX_TARGET), DateTime::<Utc>::MAX_UTC);
        // Hand-built calendars parse would reject: no days, or close before open.
        let mut none = hours("Mon-Fri", "09:00-17:00", "UTC");
        none.days = [false; 7];
        let none = Calendar::new(none, []);
        assert_eq!(none.add_working(from, dur("1h")), DateTime::<Utc>::MAX_UTC);
        assert_eq!(none.working_time(from, from + dur("30d")), ZERO);
        let mut inverted = hours("Mon-Fri", "09:00-17:00", "UTC");
        inverted.open = NaiveTime::from_hms_opt(18, 0, 0).unwrap();
        let inverted = Calendar::new(inverted, []);
        assert_eq!(
            inverted.add_working(from, dur("1h")),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        let cals = [
            Calendar::always(),
            cal("daily", "00:00-24:00", "Pacific/Kiritimati", &[]),
            cal("Mon-Fri", "09:00-17:00", "Pacific/Pago_Pago", &[]),
            cal("daily", "02:00-05:00", "America/New_York", &[]),
        ];
        let big = [TimeDelta::MAX, TimeDelta::MIN, MAX_TARGET, dur("1h")];
        for c in &cals {
            for a in [min, max, t("2026-03-08T07:00:00Z")] {
                for b in [min, max] {
                    let _ = c.working_time(a, b);
                }
                for amount in big {
                    let _ = c.add_working(a, amount);
                }
            }
            let evs = [
                created("2026-03-08T00:00:00Z", Priority::Urgent),
                SlaEvent {
                    at: min,
                    kind: SlaEventKind::FirstResponse,
                },
            ];
            let mut weird = Policy::default();
            weird.set(
                Priority::Urgent,
                Targets {
                    first_response: TimeDelta::MIN,
                    resolution: TimeDelta::MAX,
                },
            );
            for p in [Policy::default(), weird] {
                for now in [min, max, t("2026-03-09T00:00:00Z")] {
                    let k = clocks(&p, c, &evs, now);
                    let _ = describe(&k, now);
                    let _ = next_change(&p, c, &evs, now);
                }
            }
        }
        let _ = human(TimeDelta::MIN);
        let _ = human(TimeDelta::MAX);
    }

    #[test]
    fn clocks_24_7_basics_and_levels() {
        let p = Policy::default();
        let c = Calendar::always();
        let evs = [created("2026-03-02T00:00:00Z", Priority::Urgent)];
        // Urgent: first response 1h, resolution 4h; at risk from 45m / 3h.
        // (now, fr used, fr level, fr due, res level, describe)
        let table = [
            (
                "2026-03-02T00:30:00Z",
                "30m",
                Level::Ok,
                "2026-03-02T01:00:00Z",
                Level::Ok,
                "first response due in 30m",
            ),
            (
                "2026-03-02T00:44:59Z",
                "44m59s",
                Level::Ok,
                "2026-03-02T01:00:00Z",
                Level::Ok,
                "first response due in 15m 1s",
            ),
            (
                "2026-03-02T00:45:00Z",
                "45m",
                Level::AtRisk,
                "2026-03-02T01:00:00Z",
                Level::Ok,
                "first response due in 15m",
            ),
            (
                "2026-03-02T00:59:59Z",
                "59m59s",
                Level::AtRisk,
                "2026-03-02T01:00:00Z",
                Level::Ok,
                "first response due in 1s",
            ),
            // Used == target: breached, due is when it was used up.
            (
                "2026-03-02T01:00:00Z",
                "1h",
                Level::Breached,
                "2026-03-02T01:00:00Z",
                Level::Ok,
                "first response overdue by 0s",
            ),
            (
                "2026-03-02T01:15:00Z",
                "1h15m",
                Level::Breached,
                "2026-03-02T01:00:00Z",
                Level::Ok,
                "first response overdue by 15m",
            ),
            (
                "2026-03-02T03:00:00Z",
                "3h",
                Level::Breached,
                "2026-03-02T01:00:00Z",
                Level::AtRisk,
                "first response overdue by 2h",
            ),
            (
                "2026-03-02T04:20:00Z",
                "4h20m",
                Level::Breached,
                "2026-03-02T01:00:00Z",
                Level::Breached,
                "first response overdue by 3h 20m",
            ),
        ];
        for (now, used, fr_level, fr_due, res_level, text) in table {
            let k = clocks(&p, &c, &evs, t(now));
            assert_eq!(k.first_response.target, dur("1h"));
            assert_eq!(k.first_response.used, dur(used), "{now}");
            assert_eq!(k.first_response.level, fr_level, "{now}");
            assert_eq!(k.first_response.due, Some(t(fr_due)), "{now}");
            assert_eq!(k.resolution.level, res_level, "{now}");
            assert_eq!(k.resolution.due, Some(t("2026-03-02T04:00:00Z")), "{now}");
            assert_eq!(describe(&k, t(now)).as_deref(), Some(text), "{now}");
        }
    }

    #[test]
    fn clocks_with_business_hours() {
        let p = Policy::default();
        let c = cal("Mon-Fri", "09:00-17:00", "UTC", &[]);
        // High (4h / 1d) created Fri 16:00, looked at on Saturday.
        let evs = [created("2026-03-06T16:00:00Z", Priority::High)];
        let k = clocks(&p, &c, &evs, t("2026-03-07T12:00:00Z"));
        // 1h used on Friday; 3h left from Mon 09:00 -> Mon 12:00.
        assert_eq!(k.first_response.used, dur("1h"));
        assert_eq!(k.first_response.due, Some(t("2026-03-09T12:00:00Z")));
        // Resolution 24h business: 23h left = Mon 8h + Tue 8h + Wed 09:00+7h.
        assert_eq!(k.resolution.due, Some(t("2026-03-11T16:00:00Z")));
        assert_eq!(
            describe(&k, t("2026-03-07T12:00:00Z")).as_deref(),
            Some("first response due in 2d")
        );

        // Created on Saturday: counting starts Monday 09:00.
        let evs = [created("2026-03-07T10:00:00Z", Priority::High)];
        let k = clocks(&p, &c, &evs, t("2026-03-09T09:00:00Z"));
        assert_eq!(k.first_response.used, ZERO);
        assert_eq!(k.first_response.due, Some(t("2026-03-09T13:00:00Z")));

        // Breached during business hours, then the weekend: the overdue time is
        // wall time since the instant the target was used up (Fri 17:00).
        let evs = [created("2026-03-06T13:00:00Z", Priority::High)];
        let k = clocks(&p, &c, &evs, t("2026-03-07T12:00:00Z"));
        assert_eq!(k.first_response.level, Level::Breached);
        assert_eq!(k.first_response.due, Some(t("2026-03-06T17:00:00Z")));
        assert_eq!(
            describe(&k, t("2026-03-07T12:00:00Z")).as_deref(),
            Some("first response overdue by 19h")
        );
    }

    #[test]
    fn waiting_pauses_and_resumes() {
        let p = Policy::default();
        let c = Calendar::always();
        // Medium: 8h / 3d.
        let evs = [
            created("2026-03-02T00:00:00Z", Priority::Medium),
            responded("2026-03-02T01:00:00Z"),
            status("2026-03-02T02:00:00Z", Status::Waiting),
            status("2026-03-02T12:00:00Z", Status::Open),
        ];
        // During the pause: 2h used, no due, level kept.
        let k = clocks(&p, &c, &evs, t("2026-03-02T05:00:00Z"));
        assert!(k.resolution.paused);
        assert_eq!(k.resolution.due, None);
        assert_eq!(k.resolution.used, dur("2h"));
        assert_eq!(k.resolution.level, Level::Ok);
        assert!(!k.first_response.paused, "met clocks are not paused");
        assert_eq!(k.first_response.level, Level::Met);
        assert_eq!(
            describe(&k, t("2026-03-02T05:00:00Z")).as_deref(),
            Some("SLA paused (waiting on the customer)")
        );
        assert_eq!(next_change(&p, &c, &evs, t("2026-03-02T05:00:00Z")), None);

        // After: 2h before + 2h since 12:00 = 4h; 68h left from 14:00 -> Thu 5th 10:00.
        let k = clocks(&p, &c, &evs, t("2026-03-02T14:00:00Z"));
        assert!(!k.resolution.paused);
        assert_eq!(k.resolution.used, dur("4h"));
        assert_eq!(k.resolution.due, Some(t("2026-03-05T10:00:00Z")));
        assert_eq!(k.first_response.met_at, Some(t("2026-03-02T01:00:00Z")));
        assert_eq!(k.first_response.used, dur("1h"));
        assert_eq!(
            describe(&k, t("2026-03-02T14:00:00Z")).as_deref(),
            Some("resolution due in 2d 20h")
        );

        // Waiting also pauses the first-response clock.
        let evs = [
            created("2026-03-02T00:00:00Z", Priority::Urgent),
            status("2026-03-02T00:10:00Z", Status::Waiting),
            status("2026-03-02T05:00:00Z", Status::InProgress),
        ];
        let k = clocks(&p, &c, &evs, t("2026-03-02T05:20:00Z"));
        assert_eq!(k.first_response.used, dur("30m"));
        assert_eq!(k.first_response.due, Some(t("2026-03-02T05:50:00Z")));
    }

    #[test]
    fn reopen_resumes_resolution() {
        let p = Policy::default();
        let c = Calendar::always();
        // Urgent: resolution 4h.
        let mut evs = vec![
            created("2026-03-02T00:00:00Z", Priority::Urgent),
            responded("2026-03-02T00:10:00Z"),
            status("2026-03-02T01:00:00Z", Status::Completed),
            status("2026-03-02T10:00:00Z", Status::Open),
        ];
        let k = clocks(&p, &c, &evs, t("2026-03-02T05:00:00Z"));
        assert_eq!(k.resolution.level, Level::Met);
        assert_eq!(k.resolution.met_at, Some(t("2026-03-02T01:00:00Z")));
        assert_eq!(k.resolution.used, dur("1h"));
        assert_eq!(describe(&k, t("2026-03-02T05:00:00Z")), None, "both met");

        // Reopened at 10:00: 1h kept + 1h since -> due 13:00.
        let k = clocks(&p, &c, &evs, t("2026-03-02T11:00:00Z"));
        assert_eq!(k.resolution.met_at, None);
        assert_eq!(k.resolution.used, dur("2h"));
        assert_eq!(k.resolution.due, Some(t("2026-03-02T13:00:00Z")));
        assert_eq!(k.resolution.level, Level::Ok);
        assert_eq!(
            k.first_response.level,
            Level::Met,
            "first response stays met"
        );

        // Closed at 14:00: 1h + 4h = 5h; the 4h were used up at 13:00 -> late.
        evs.push(status("2026-03-02T14:00:00Z", Status::Closed));
        let k = clocks(&p, &c, &evs, t("2026-03-02T15:00:00Z"));
        assert_eq!(k.resolution.level, Level::MetLate);
        assert_eq!(k.resolution.met_at, Some(t("2026-03-02T14:00:00Z")));
        assert_eq!(k.resolution.used, dur("5h"));

        // Completed then Closed: met at the first of them.
        let evs = [
            created("2026-03-02T00:00:00Z", Priority::Urgent),
            status("2026-03-02T00:20:00Z", Status::Completed),
            status("2026-03-02T09:00:00Z", Status::Closed),
        ];
        let k = clocks(&p, &c, &evs, t("2026-03-02T10:00:00Z"));
        assert_eq!(k.resolution.met_at, Some(t("2026-03-02T00:20:00Z")));
        assert_eq!(k.resolution.level, Level::Met);
        // Resolved before any response: first response is met then too.
        assert_eq!(k.first_response.met_at, Some(t("2026-03-02T00:20:00Z")));
        assert_eq!(k.first_response.used, dur("20m"));
        assert_eq!(k.first_response.level, Level::Met);
    }

    #[test]
    fn priority_and_policy_changes_mid_flight() {
        let p = Policy::default();
        let c = Calendar::always();
        // Low (1d) raised to Urgent (1h) at 00:30: 30m used is kept.
        let evs = [
            created("2026-03-02T00:00:00Z", Priority::Low),
            prio("2026-03-02T00:30:00Z", Priority::Urgent),
        ];
        let table = [
            (
                "2026-03-02T00:20:00Z",
                "1d",
                Level::Ok,
                "2026-03-03T00:00:00Z",
            ),
            (
                "2026-03-02T00:40:00Z",
                "1h",
                Level::Ok,
                "2026-03-02T01:00:00Z",
            ),
            (
                "2026-03-02T00:50:00Z",
                "1h",
                Level::AtRisk,
                "2026-03-02T01:00:00Z",
            ),
        ];
        for (now, target, level, due) in table {
            let k = clocks(&p, &c, &evs, t(now));
            assert_eq!(k.first_response.target, dur(target), "{now}");
            assert_eq!(k.first_response.level, level, "{now}");
            assert_eq!(k.first_response.due, Some(t(due)), "{now}");
        }

        // Raised at 02:00, after 2h: already past the new 1h target, so it is
        // breached and due is in the past, at the instant 1h was used (01:00).
        let evs = [
            created("2026-03-02T00:00:00Z", Priority::Low),
            prio("2026-03-02T02:00:00Z", Priority::Urgent),
        ];
        let k = clocks(&p, &c, &evs, t("2026-03-02T02:10:00Z"));
        assert_eq!(k.first_response.level, Level::Breached);
        assert_eq!(k.first_response.due, Some(t("2026-03-02T01:00:00Z")));
        assert_eq!(
            describe(&k, t("2026-03-02T02:10:00Z")).as_deref(),
            Some("first response overdue by 1h 10m")
        );

        // Same events, different policy: different due.
        let evs = [created("2026-03-02T00:00:00Z", Priority::High)];
        let now = t("2026-03-02T01:00:00Z");
        let mut custom = Policy::default();
        custom.set(Priority::High, Targets::new(dur("2h"), dur("1d")).unwrap());
        let before = clocks(&p, &c, &evs, now);
        let after = clocks(&custom, &c, &evs, now);
        assert_eq!(before.first_response.due, Some(t("2026-03-02T04:00:00Z")));
        assert_eq!(after.first_response.due, Some(t("2026-03-02T02:00:00Z")));
        assert_eq!(after.first_response.level, Level::Ok); // 1h of 2h = 50%
        // And a lower at-risk ratio changes the level.
        custom.set_risk_ratio(0.5).unwrap();
        assert_eq!(
            clocks(&custom, &c, &evs, now).first_response.level,
            Level::AtRisk
        );
    }

    #[test]
    fn met_and_met_late() {
        let p = Policy::default();
        let c = Calendar::always();
        // Urgent first response 1h. Met exactly at the deadline counts as on time.
        let table = [
            ("2026-03-02T00:50:00Z", Level::Met),
            ("2026-03-02T01:00:00Z", Level::Met),
            ("2026-03-02T01:10:00Z", Level::MetLate),
        ];
        for (at, level) in table {
            let evs = [
                created("2026-03-02T00:00:00Z", Priority::Urgent),
                responded(at),
            ];
            let k = clocks(&p, &c, &evs, t("2026-03-02T02:00:00Z"));
            assert_eq!(k.first_response.level, level, "{at}");
            assert_eq!(k.first_response.met_at, Some(t(at)));
            assert_eq!(k.first_response.due, None);
        }

        // Business hours: created Fri 16:30, 30m used by close; due Mon 09:30.
        let c = cal("Mon-Fri", "09:00-17:00", "UTC", &[]);
        let table = [
            // Answered on Saturday: only 30m used, on time.
            ("2026-03-07T10:00:00Z", "30m", Level::Met),
            // Answered Mon 09:40: 30m + 40m = 70m > 1h.
            ("2026-03-09T09:40:00Z", "1h10m", Level::MetLate),
        ];
        for (at, used, level) in table {
            let evs = [
                created("2026-03-06T16:30:00Z", Priority::Urgent),
                responded(at),
            ];
            let k = clocks(&p, &c, &evs, t("2026-03-10T00:00:00Z"));
            assert_eq!(k.first_response.used, dur(used), "{at}");
            assert_eq!(k.first_response.level, level, "{at}");
        }
    }

    #[test]
    fn messy_event_lists() {
        let p = Policy::default();
        let c = Calendar::always();
        // Unsorted, plus a response before Created that must be ignored.
        let evs = [
            responded("2026-03-02T00:30:00Z"),
            created("2026-03-02T00:00:00Z", Priority::Urgent),
            responded("2026-03-01T23:00:00Z"),
        ];
        let k = clocks(&p, &c, &evs, t("2026-03-02T01:00:00Z"));
        assert_eq!(k.first_response.met_at, Some(t("2026-03-02T00:30:00Z")));
        assert_eq!(k.first_response.used, dur("30m"));

        // A response at the creation instant counts even if listed first.
        let evs = [
            responded("2026-03-02T00:00:00Z"),
            created("2026-03-02T00:00:00Z", Priority::Urgent),
        ];
        let k = clocks(&p, &c, &evs, t("2026-03-02T01:00:00Z"));
        assert_eq!(k.first_response.met_at, Some(t("2026-03-02T00:00:00Z")));
        assert_eq!(k.first_response.level, Level::Met);
        let evs = [
            responded("2026-03-02T00:30:00Z"),
            created("2026-03-02T00:00:00Z", Priority::Urgent),
            responded("2026-03-01T23:00:00Z"),
        ];

        // Events after `now` have not happened yet.
        let k = clocks(&p, &c, &evs, t("2026-03-02T00:20:00Z"));
        assert_eq!(k.first_response.met_at, None);
        assert_eq!(k.first_response.used, dur("20m"));

        // No Created (or only in the future): empty clocks.
        for (evs, now) in [
            (
                vec![responded("2026-03-02T00:30:00Z")],
                "2026-03-02T01:00:00Z",
            ),
            (vec![], "2026-03-02T01:00:00Z"),
            (
                vec![created("2026-03-02T00:00:00Z", Priority::Low)],
                "2026-03-01T00:00:00Z",
            ),
        ] {
            let k = clocks(&p, &c, &evs, t(now));
            assert!(k.is_empty());
            assert_eq!(describe(&k, t(now)), None);
            assert_eq!(next_change(&p, &c, &evs, t(now)), None);
        }
    }

    #[test]
    fn dst_clocks_end_to_end() {
        let p = Policy::default();
        // High first response 4h, created Saturday 16:00 local on the eve of
        // each DST change, with daily 09:00-17:00 hours: 1h Saturday, then
        // Sunday 09:00 local + 3h = 12:00 local.
        let table = [
            (
                "Europe/Helsinki",
                "2026-03-28T14:00:00Z",
                "2026-03-29T09:00:00Z",
            ), // 12:00 EEST
            (
                "Europe/Helsinki",
                "2026-10-24T13:00:00Z",
                "2026-10-25T10:00:00Z",
            ), // 12:00 EET
            (
                "America/New_York",
                "2026-03-07T21:00:00Z",
                "2026-03-08T16:00:00Z",
            ), // 12:00 EDT
            (
                "America/New_York",
                "2026-10-31T20:00:00Z",
                "2026-11-01T17:00:00Z",
            ), // 12:00 EST
        ];
        for (tz, at, due) in table {
            let c = cal("daily", "09:00-17:00", tz, &[]);
            let evs = [created(at, Priority::High)];
            let now = t(at) + dur("30m");
            let k = clocks(&p, &c, &evs, now);
            assert_eq!(k.first_response.due, Some(t(due)), "{tz} {at}");
            // at risk after 3h of business time: Sunday 09:00 local + 2h.
            let risk = t(due) - dur("1h");
            assert_eq!(next_change(&p, &c, &evs, now), Some(risk), "{tz} {at}");
        }
    }

    #[test]
    fn next_change_table() {
        let p = Policy::default();
        let always = Calendar::always();
        let office = cal("Mon-Fri", "09:00-17:00", "UTC", &[]);
        let urgent = [created("2026-03-02T00:00:00Z", Priority::Urgent)];
        let friday = [created("2026-03-06T16:30:00Z", Priority::Urgent)];
        let waiting = [
            created("2026-03-02T00:00:00Z", Priority::Urgent),
            status("2026-03-02T00:05:00Z", Status::Waiting),
        ];
        let done = [
            created("2026-03-02T00:00:00Z", Priority::Urgent),
            status("2026-03-02T00:05:00Z", Status::Closed),
        ];
        let table: Vec<(&Calendar, &[SlaEvent], &str, Option<&str>)> = vec![
            // First response reaches 45m (at risk) at 00:45.
            (
                &always,
                &urgent,
                "2026-03-02T00:10:00Z",
                Some("2026-03-02T00:45:00Z"),
            ),
            // At risk already: next is the breach at 01:00.
            (
                &always,
                &urgent,
                "2026-03-02T00:50:00Z",
                Some("2026-03-02T01:00:00Z"),
            ),
            // First response breached: resolution at risk at 3h.
            (
                &always,
                &urgent,
                "2026-03-02T01:30:00Z",
                Some("2026-03-02T03:00:00Z"),
            ),
            (
                &always,
                &urgent,
                "2026-03-02T03:30:00Z",
                Some("2026-03-02T04:00:00Z"),
            ),
            // Both breached: nothing more to wait for.
            (&always, &urgent, "2026-03-02T04:30:00Z", None),
            // Fri 16:30 + 45m of business time: 30m Friday, Mon 09:15.
            (
                &office,
                &friday,
                "2026-03-06T16:40:00Z",
                Some("2026-03-09T09:15:00Z"),
            ),
            (&always, &waiting, "2026-03-02T01:00:00Z", None),
            (&always, &done, "2026-03-02T01:00:00Z", None),
        ];
        for (c, evs, now, want) in table {
            assert_eq!(next_change(&p, c, evs, t(now)), want.map(t), "{now}");
        }
        // At the reported instant the level really changes.
        let now = t("2026-03-06T16:40:00Z");
        let at = next_change(&p, &office, &friday, now).unwrap();
        let before = clocks(&p, &office, &friday, at - TimeDelta::nanoseconds(1));
        let after = clocks(&p, &office, &friday, at);
        assert_eq!(before.first_response.level, Level::Ok);
        assert_eq!(after.first_response.level, Level::AtRisk);
    }

    #[test]
    fn describe_picks_the_most_pressing_line() {
        let now = t("2026-03-02T12:00:00Z");
        let running = |due: &str| Clock {
            target: dur("4h"),
            used: dur("1h"),
            due: Some(t(due)),
            ..Clock::default()
        };
        let met = Clock {
            met_at: Some(t("2026-03-02T01:00:00Z")),
            level: Level::Met,
            ..Clock::default()
        };
        let paused = Clock {
            paused: true,
            ..Clock::default()
        };
        let table = [
            (
                running("2026-03-02T13:20:00Z"),
                running("2026-03-04T15:00:00Z"),
                Some("first response due in 1h 20m"),
            ),
            (
                running("2026-03-02T11:45:00Z"),
                running("2026-03-04T15:00:00Z"),
                Some("first response overdue by 15m"),
            ),
            (
                met,
                running("2026-03-04T15:00:00Z"),
                Some("resolution due in 2d 3h"),
            ),
            (
                met,
                running("2026-03-02T11:45:00Z"),
                Some("resolution overdue by 15m"),
            ),
            // Resolution is the more urgent one here.
            (
                running("2026-03-02T18:00:00Z"),
                running("2026-03-02T11:00:00Z"),
                Some("resolution overdue by 1h"),
            ),
            (paused, paused, Some("SLA paused (waiting on the customer)")),
            (met, paused, Some("SLA paused (waiting on the customer)")),
            (met, met, None),
            (Clock::default(), Clock::default(), None),
        ];
        for (first_response, resolution, want) in table {
            let k = Clocks {
                first_response,
                resolution,
            };
            assert_eq!(describe(&k, now).as_deref(), want);
        }
    }

    #[test]
    fn human_prints_two_units_at_most() {
        let table = [
            (TimeDelta::zero(), "0s"),
            (TimeDelta::milliseconds(999), "0s"),
            (TimeDelta::seconds(45), "45s"),
            (TimeDelta::minutes(15), "15m"),
            (TimeDelta::seconds(15 * 60 + 7), "15m 7s"),
            (TimeDelta::minutes(80), "1h 20m"),
            (TimeDelta::seconds(3600 + 20 * 60 + 59), "1h 20m"),
            (TimeDelta::hours(1) + TimeDelta::seconds(30), "1h"),
            (TimeDelta::hours(51), "2d 3h"),
            (TimeDelta::days(2) + TimeDelta::minutes(5), "2d"),
            (TimeDelta::days(90), "90d"),
            (TimeDelta::minutes(-15), "-15m"),
        ];
        for (d, s) in table {
            assert_eq!(human(d), s);
        }
    }

    #[test]
    fn a_clock_withdraws_the_alerts_above_its_level() {
        assert_eq!(Level::Ok.withdrawn(), ["at_risk", "breached"]);
        assert_eq!(Level::AtRisk.withdrawn(), ["breached"]);
        for kept in [Level::Breached, Level::Met, Level::MetLate] {
            assert!(kept.withdrawn().is_empty(), "{kept:?}");
        }
    }

    proptest::proptest! {
        /// [`clocks_of`] carrying its memo from change to change, as the change task does, gives
        /// exactly [`clocks`] of the whole timeline, whatever the order of the events, the
        /// rules changing between two computations, clocks running out, the first response,
        /// and `now` before the last event. Each op is a change: minutes after the last
        /// (negative: a clock that went back), then a status (0–4), a priority (5–8), the
        /// first response (9) or a priority change without its old value (10), and the
        /// evaluation's `now` in minutes after it (negative: before
        /// it) under rules 0–3.
        #[test]
        fn a_memo_carried_from_change_to_change_gives_the_whole_replay(
            ops in proptest::collection::vec(
                (-30i64..600, 0u8..11, -60i64..3000, 0u8..4), 1..40
            )
        ) {
            let office = std::sync::Arc::new(cal("mon-fri", "09:00-17:00", "Europe/Helsinki", &["2026-03-04"]));
            let always = std::sync::Arc::new(Calendar::always());
            let mut tight = Policy::default();
            for p in [Priority::Low, Priority::Medium, Priority::High, Priority::Urgent] {
                tight.set(p, Targets::new(TimeDelta::hours(1), TimeDelta::hours(3)).unwrap());
            }
            let rules = [
                (Policy::default(), office.clone()),
                (tight, office.clone()),
                (Policy::default(), always.clone()),
                (tight, always),
            ];
            let mut ticket = memo_ticket(t("2026-03-02T08:30:00Z"), Priority::Medium);
            let created = ticket.created_at;
            let statuses = [Status::Open, Status::InProgress, Status::Waiting, Status::Completed, Status::Closed];
            let priorities = [Priority::Low, Priority::Medium, Priority::High, Priority::Urgent];
            let (mut at, mut timeline, mut memo) = (created, Vec::new(), None);
            for (after, what, then, rule) in ops {
                at += TimeDelta::minutes(after);
                match what {
                    0..=4 => timeline.push(Step::Status { to: statuses[usize::from(what)], at }),
                    5..=8 => {
                        let to = priorities[usize::from(what - 5)];
                        timeline.push(Step::Priority { from: Some(ticket.priority), to, at });
                        ticket.priority = to;
                    }
                    9 => {
                        ticket.first_response_at.get_or_insert(at);
                    }
                    _ => {
                        // A priority change whose old value was not recorded.
                        timeline.push(Step::Priority { from: None, to: Priority::Urgent, at });
                        ticket.priority = Priority::Urgent;
                    }
                }
                let now = at + TimeDelta::minutes(then);
                let (policy, calendar) = &rules[usize::from(rule)];
                let got = clocks_of(policy, calendar, &ticket, &timeline, &mut memo, now);
                let want = clocks(policy, calendar, &events_of(&ticket, &timeline), now);
                proptest::prop_assert_eq!(got, want, "after {} steps at {}", timeline.len(), now);
            }
        }
    }

    /// A ticket created at `created` with `priority`, for the memo's tests.
    fn memo_ticket(created: DateTime<Utc>, priority: Priority) -> super::super::ticket::Ticket {
        use super::super::ticket::{DeskId, Source, Ticket, TicketId, TicketNo};
        Ticket {
            id: TicketId(1),
            desk: DeskId(1),
            no: TicketNo(1),
            description: "d".into(),
            priority,
            status: Status::Open,
            assignee: None,
            reporter: crate::core::people::UserRef::slack("U1"),
            contact: None,
            source: Source::Slack,
            created_at: created,
            updated_at: created,
            first_response_at: None,
            sla: SlaDue::default(),
            resolved_at: None,
        }
    }

    #[test]
    fn a_memo_replays_only_the_steps_added_since() {
        let policy = Policy::default();
        let always = std::sync::Arc::new(Calendar::always());
        let mut ticket = memo_ticket(t("2026-03-02T08:00:00Z"), Priority::High);
        let step = |to, at| Step::Status { to, at: t(at) };
        let mut timeline = vec![step(Status::InProgress, "2026-03-02T09:00:00Z")];
        let mut memo = None;
        let now = t("2026-03-02T10:00:00Z");
        clocks_of(&policy, &always, &ticket, &timeline, &mut memo, now);
        let m = memo.unwrap();
        assert_eq!((m.steps, m.replay.t), (1, t("2026-03-02T09:00:00Z")));
        // How many events are left to replay, if the memo can be carried on.
        let rest = |calendar: &std::sync::Arc<Calendar>,
                    ticket: &super::super::ticket::Ticket,
                    timeline: &[Step],
                    now: &str| {
            m.rest(&policy, calendar, ticket, timeline, Priority::High, t(now))
                .map(|r| r.len())
        };
        let later = "2026-03-02T12:00:00Z";
        // A step added: only it is left to replay.
        timeline.push(step(Status::Waiting, "2026-03-02T11:00:00Z"));
        assert_eq!(rest(&always, &ticket, &timeline, later), Some(1));
        // Not carried on: another calendar, a step before the last replayed, a first response
        // before it, `now` before it, or another first step (another timeline).
        let office = std::sync::Arc::new(cal("mon-fri", "09:00-17:00", "UTC", &[]));
        assert_eq!(rest(&office, &ticket, &timeline, later), None);
        let early = [timeline[0], step(Status::Waiting, "2026-03-02T08:30:00Z")];
        assert_eq!(rest(&always, &ticket, &early, later), None);
        let other = [step(Status::Waiting, "2026-03-02T09:00:00Z")];
        assert_eq!(rest(&always, &ticket, &other, later), None);
        assert_eq!(
            rest(&always, &ticket, &timeline, "2026-03-02T08:59:00Z"),
            None
        );
        ticket.first_response_at = Some(t("2026-03-02T08:45:00Z"));
        assert_eq!(rest(&always, &ticket, &timeline, later), None);
    }

    #[test]
    fn a_timezone_is_found_in_any_case() {
        assert_eq!(
            find_tz("Europe/Helsinki"),
            Some(chrono_tz::Europe::Helsinki)
        );
        assert_eq!(
            find_tz(" europe/helsinki "),
            Some(chrono_tz::Europe::Helsinki)
        );
        assert_eq!(find_tz("utc"), Some(chrono_tz::UTC));
        assert_eq!(find_tz("Mars/Olympus"), None);
    }
}
