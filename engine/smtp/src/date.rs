//! RFC 5322 dates (`Mon, 23 Nov 2026 08:00:00 +0000`) for Received, Date and DSN headers.

use std::time::{SystemTime, UNIX_EPOCH};

/// The date-time of `t` in UTC, RFC 5322 §3.3 form.
pub fn rfc5322(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let name = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][(month - 1) as usize];
    format!("{weekday}, {day} {name} {year} {:02}:{:02}:{:02} +0000", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_dates() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(super::rfc5322(UNIX_EPOCH), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(super::rfc5322(UNIX_EPOCH + Duration::from_secs(1_795_420_800)), "Mon, 23 Nov 2026 08:00:00 +0000");
        assert_eq!(super::rfc5322(UNIX_EPOCH + Duration::from_secs(951_825_599)), "Tue, 29 Feb 2000 11:59:59 +0000");
    }
}
