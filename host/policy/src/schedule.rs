//! `[[schedules]]`: when a plugin's `scheduled` entry point runs.
//!
//! ```toml
//! [[schedules]]
//! name = "reconcile"
//! every = "5m"            # or cron = "*/15 * * * *" (UTC, 5 fields)
//! jitter = "30s"          # optional: each slot runs up to this much later
//! missed = "run-once"     # or "skip": a slot due while fieldhook was down
//! source = "servicetrade" # where the events it emits are stored
//! ```
//!
//! Slots are fixed points in time (multiples of `every` since the Unix
//! epoch, or the cron's minutes), so a restart finds the same next slot.
//! Pure rules: the pipeline keeps the slots durable.

use serde::Deserialize;

/// Shortest `every`: the scheduler's granularity.
pub const MIN_EVERY_MS: u64 = 1000;

/// A validated schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Name, passed to `scheduled(name)`; unique in the manifest.
    pub name: String,
    /// When its slots fall.
    pub when: When,
    /// Each slot runs a stable pseudo-random delay up to this late, ms, so
    /// many plugins on the same period do not poll at the same instant.
    pub jitter_ms: u64,
    /// What a slot that fell due while the daemon was down does.
    pub missed: Missed,
    /// The source the events it emits are stored under; none: it may not
    /// emit.
    pub source: Option<String>,
}

/// When a schedule's slots fall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// Every so many ms, at multiples of it since the Unix epoch.
    Every(u64),
    /// The minutes a cron expression names, UTC.
    Cron(Cron),
}

/// A slot missed while the daemon was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// Run once at start (however many slots were missed).
    RunOnce,
    /// Skip it; the next slot runs as usual.
    Skip,
}

/// `[[schedules]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    name: String,
    every: Option<String>,
    cron: Option<String>,
    jitter: Option<String>,
    missed: Option<String>,
    source: Option<String>,
}

impl RawSchedule {
    /// Validates one schedule; the error names the key to fix.
    pub(crate) fn validate(self) -> Result<Schedule, String> {
        let at = format!("schedules `{}`", self.name);
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "schedules: name `{}` must be non-empty and use only a-z, 0-9, `-` and `_`",
                self.name
            ));
        }
        let when = match (self.every, self.cron) {
            (Some(every), None) => {
                let ms = parse_duration(&every).map_err(|e| format!("{at}: every: {e}"))?;
                if ms < MIN_EVERY_MS {
                    return Err(format!("{at}: every = \"{every}\" is shorter than 1s"));
                }
                When::Every(ms)
            }
            (None, Some(cron)) => {
                When::Cron(Cron::parse(&cron).map_err(|e| format!("{at}: cron = \"{cron}\": {e}"))?)
            }
            (Some(_), Some(_)) => return Err(format!("{at}: set `every` or `cron`, not both")),
            (None, None) => {
                return Err(format!(
                    "{at}: say when it runs: every = \"5m\" or cron = \"*/5 * * * *\""
                ));
            }
        };
        let jitter_ms = match self.jitter {
            None => 0,
            Some(j) => parse_duration(&j).map_err(|e| format!("{at}: jitter: {e}"))?,
        };
        let period = match &when {
            When::Every(ms) => *ms,
            When::Cron(_) => 60_000,
        };
        if jitter_ms >= period {
            return Err(format!(
                "{at}: jitter must be shorter than the time between slots ({period} ms)"
            ));
        }
        let missed = match self.missed.as_deref() {
            None | Some("run-once") => Missed::RunOnce,
            Some("skip") => Missed::Skip,
            Some(other) => {
                return Err(format!(
                    "{at}: missed = \"{other}\"; use \"run-once\" or \"skip\""
                ));
            }
        };
        if self.source.as_deref().is_some_and(str::is_empty) {
            return Err(format!("{at}: source must name a configured source"));
        }
        Ok(Schedule {
            name: self.name,
            when,
            jitter_ms,
            missed,
            source: self.source,
        })
    }
}

impl Schedule {
    /// The first slot strictly after `t_ms` (Unix ms), before jitter.
    pub fn next_slot_after(&self, t_ms: u64) -> u64 {
        match &self.when {
            When::Every(every) => (t_ms / every).saturating_add(1).saturating_mul(*every),
            When::Cron(cron) => cron.next_after(t_ms),
        }
    }

    /// When the slot at `slot_ms` is due: the slot plus this plugin's
    /// stable jitter for it (the same after a restart).
    pub fn due_ms(&self, plugin: &str, slot_ms: u64) -> u64 {
        if self.jitter_ms == 0 {
            return slot_ms;
        }
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in plugin
            .bytes()
            .chain([0])
            .chain(self.name.bytes())
            .chain(slot_ms.to_be_bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        slot_ms.saturating_add(h % self.jitter_ms)
    }
}

/// `30s`, `5m`, `2h`, `1d`, `500ms` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like \"30s\", \"5m\" or \"1h\""))?;
    let scale = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use ms, s, m, h or d)"
            ));
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// A five-field cron expression (minute hour day-of-month month
/// day-of-week), in UTC: numbers, `*`, ranges `a-b`, lists `a,b` and steps
/// `*/n` or `a-b/n`; day-of-week 0 or 7 is Sunday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Both day fields restricted: a day matches either (cron's rule).
    either_day: bool,
}

impl Cron {
    /// Parses an expression; the error names the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [m, h, dom, mon, dow] = fields[..] else {
            return Err(format!(
                "needs 5 fields (minute hour day month weekday), found {}",
                fields.len()
            ));
        };
        let mut weekdays = field(dow, 0, 7, "weekday")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            minutes: field(m, 0, 59, "minute")?,
            hours: field(h, 0, 23, "hour")?,
            days: field(dom, 1, 31, "day")?,
            months: field(mon, 1, 12, "month")?,
            weekdays: weekdays & 0x7f,
            either_day: dom != "*" && dow != "*",
        })
    }

    /// The first matching minute strictly after `t_ms`, Unix ms; a cron
    /// that never matches (`0 0 31 2 *`) gives `u64::MAX`.
    pub fn next_after(&self, t_ms: u64) -> u64 {
        let mut minute = t_ms / 60_000 + 1;
        // Five years covers every combination of a day and a weekday.
        for _ in 0..(366 * 5) {
            let day = minute / 1440;
            let (_, month, dom) = civil(day);
            let weekday = (day + 4) % 7; // 1970-01-01 was a Thursday
            let by_dom = self.days & (1 << dom) != 0;
            let by_dow = self.weekdays & (1 << weekday) != 0;
            let day_ok = if self.either_day {
                by_dom || by_dow
            } else {
                by_dom && by_dow
            };
            if self.months & (1 << month) != 0 && day_ok {
                let mut m = minute % 1440;
                while m < 1440 {
                    if self.hours & (1 << (m / 60)) != 0 && self.minutes & (1 << (m % 60)) != 0 {
                        return (day * 1440 + m) * 60_000;
                    }
                    m += 1;
                }
            }
            minute = (day + 1) * 1440;
        }
        u64::MAX
    }
}

fn field(text: &str, lo: u32, hi: u32, what: &str) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what}: bad step in `{item}`"))?,
            ),
            None => (item, 1),
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| format!("{what}: `{s}` is not a number in {lo}-{hi}"))
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None if step > 1 => (num(r)?, hi),
                None => {
                    let n = num(r)?;
                    (n, n)
                }
            },
        };
        if a > b {
            return Err(format!("{what}: range `{range}` goes backwards"));
        }
        let mut n = a;
        while n <= b {
            bits |= 1 << n;
            n += step;
        }
    }
    Ok(bits)
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
fn civil(days: u64) -> (i64, u64, u64) {
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> Result<Schedule, String> {
        toml::from_str::<RawSchedule>(toml_text)
            .map_err(|e| e.to_string())?
            .validate()
    }

    #[test]
    fn every_slots_fall_on_multiples_of_the_period() {
        let s = raw(r#"name = "r"
every = "5m""#)
        .unwrap();
        assert_eq!(s.when, When::Every(300_000));
        assert_eq!(s.next_slot_after(0), 300_000);
        assert_eq!(s.next_slot_after(299_999), 300_000);
        assert_eq!(s.next_slot_after(300_000), 600_000);
        assert_eq!(s.missed, Missed::RunOnce);
    }

    #[test]
    fn jitter_is_stable_and_below_its_bound() {
        let s = raw(r#"name = "r"
every = "1h"
jitter = "10m""#)
        .unwrap();
        let due = s.due_ms("p", 3_600_000);
        assert_eq!(due, s.due_ms("p", 3_600_000));
        assert!((3_600_000..3_600_000 + 600_000).contains(&due));
    }

    #[test]
    fn cron_finds_the_next_matching_minute_in_utc() {
        // 2024-01-01T00:00:00Z was a Monday.
        let monday = 1_704_067_200_000;
        let c = Cron::parse("30 9 * * 1-5").unwrap();
        assert_eq!(c.next_after(monday), monday + (9 * 60 + 30) * 60_000);
        let c = Cron::parse("*/15 * * * *").unwrap();
        assert_eq!(c.next_after(monday), monday + 15 * 60_000);
        // Sundays (0 and 7 alike): 2024-01-07.
        let c = Cron::parse("0 0 * * 7").unwrap();
        assert_eq!(c.next_after(monday), monday + 6 * 86_400_000);
        let c = Cron::parse("0 0 29 2 *").unwrap();
        assert_eq!(c.next_after(monday), 1_709_164_800_000); // 2024-02-29
    }

    #[test]
    fn mistakes_name_the_key_to_fix() {
        let e = raw(r#"name = "r""#).unwrap_err();
        assert!(e.contains("every = \"5m\" or cron"), "{e}");
        let e = raw(r#"name = "r"
every = "5x""#)
        .unwrap_err();
        assert!(
            e.contains("schedules `r`: every") && e.contains("unknown unit"),
            "{e}"
        );
        let e = raw(r#"name = "r"
every = "5m"
cron = "* * * * *""#)
        .unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = raw(r#"name = "r"
cron = "61 * * * *""#)
        .unwrap_err();
        assert!(e.contains("minute: `61`"), "{e}");
        let e = raw(r#"name = "r"
every = "5m"
missed = "later""#)
        .unwrap_err();
        assert!(e.contains("\"run-once\" or \"skip\""), "{e}");
        let e = raw(r#"name = "r"
every = "1m"
jitter = "2m""#)
        .unwrap_err();
        assert!(e.contains("jitter must be shorter"), "{e}");
        let e = raw(r#"name = "r"
every = "500ms""#)
        .unwrap_err();
        assert!(e.contains("shorter than 1s"), "{e}");
    }
}
