//! Packet time. Everything downstream of the capture source measures time with [`Ts`], taken from
//! the packet, never from the wall clock (only the live source reads the clock), so analysing a
//! file gives the answers the daemon would have given live.

use std::fmt;

/// Nanoseconds since the Unix epoch (UTC). i64 covers ±292 years, beyond any capture format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub i64);

pub const NANOS_PER_SEC: i64 = 1_000_000_000;

impl Ts {
    pub fn from_secs_nanos(secs: i64, nanos: i64) -> Ts {
        Ts(secs.saturating_mul(NANOS_PER_SEC).saturating_add(nanos))
    }
    pub fn secs(self) -> i64 {
        self.0.div_euclid(NANOS_PER_SEC)
    }
    pub fn subsec_nanos(self) -> i64 {
        self.0.rem_euclid(NANOS_PER_SEC)
    }
    /// Start of the minute containing this instant, in seconds since the epoch.
    pub fn minute(self) -> i64 {
        self.secs().div_euclid(60) * 60
    }
    /// `self - earlier` in nanoseconds (may be negative: merged captures run backwards at times).
    pub fn since(self, earlier: Ts) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
    /// RFC 3339 UTC with microseconds, e.g. `2024-01-01T00:00:00.370000Z`.
    pub fn rfc3339(self) -> String {
        self.to_string()
    }
}

/// How far beyond the wall clock a packet timestamp may be and still be trusted. Further is a
/// clock that is wrong (a Pi without a real-time clock, a damaged or crafted file): such a frame
/// is analysed at the last trusted time and counted as a time jump, so it can neither create a
/// minute in 2099 that retention would measure from, nor move the alert windows.
pub const FUTURE_TOLERANCE_SECS: i64 = 86_400;

/// No clock that reads earlier than this (2026-01-01T00:00:00Z, before this release) is right:
/// a Raspberry Pi has no real-time clock and boots in 1970 (or at fake-hwclock's last save)
/// until NTP sets it. Minutes stamped before it never become what retention or a baseline is
/// measured from.
pub const CLOCK_FLOOR_SECS: i64 = 1_767_225_600;

/// Where systemd-timesyncd says it has synchronised the clock (the file exists once it has).
pub const TIMESYNC_DIR: &str = "/run/systemd/timesync";

/// Whether the wall clock can be trusted, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClockStatus {
    pub synchronized: bool,
    pub reason: String,
}

/// The clock is synchronised unless it reads before [`CLOCK_FLOOR_SECS`], or systemd-timesyncd
/// runs (its directory `timesync_dir` exists) and has not said `synchronized` yet. (With
/// another NTP client, a clock past the floor is taken as set.)
pub fn clock_status(now_secs: i64, timesync_dir: &std::path::Path) -> ClockStatus {
    if now_secs < CLOCK_FLOOR_SECS {
        return ClockStatus {
            synchronized: false,
            reason: format!("the clock reads {}: not set yet (no real-time clock?)", Ts(now_secs * NANOS_PER_SEC)),
        };
    }
    if timesync_dir.is_dir() && !timesync_dir.join("synchronized").exists() {
        return ClockStatus { synchronized: false, reason: "waiting for systemd-timesyncd to synchronise".into() };
    }
    ClockStatus { synchronized: true, reason: String::new() }
}

/// The wall clock (only for judging packet time, never instead of it).
pub fn wall_now() -> Ts {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Ts::from_secs_nanos(d.as_secs() as i64, d.subsec_nanos() as i64)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's civil_from_days).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.secs();
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            y,
            mo,
            d,
            sod / 3600,
            (sod / 60) % 60,
            sod % 60,
            self.subsec_nanos() / 1000
        )
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn a_clock_in_1970_or_before_timesyncd_is_not_synchronised() {
        let dir = tempfile::tempdir().unwrap();
        let none = dir.path().join("absent");
        assert!(!clock_status(0, &none).synchronized);
        assert!(clock_status(0, &none).reason.contains("1970-01-01"));
        assert!(clock_status(CLOCK_FLOOR_SECS + 10, &none).synchronized);
        assert!(!clock_status(CLOCK_FLOOR_SECS + 10, dir.path()).synchronized);
        std::fs::write(dir.path().join("synchronized"), "").unwrap();
        assert!(clock_status(CLOCK_FLOOR_SECS + 10, dir.path()).synchronized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(Ts(0).to_string(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(Ts::from_secs_nanos(1_704_067_200, 370_000_000).to_string(), "2024-01-01T00:00:00.370000Z");
        assert_eq!(Ts::from_secs_nanos(951_782_400, 0).to_string(), "2000-02-29T00:00:00.000000Z");
        assert_eq!(Ts(-1).to_string(), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn minute_floor_handles_negative_time() {
        assert_eq!(Ts::from_secs_nanos(-1, 0).minute(), -60);
        assert_eq!(Ts::from_secs_nanos(125, 5).minute(), 120);
    }
}
