//! Per-day counts, as evidence keeps them: `(UTC day number, count)`, oldest first.

use super::SECS_PER_DAY;

/// Counts one activity on `day`, keeping only the last `keep` days.
pub(super) fn bump_day(days: &mut Vec<(u64, u64)>, day: u64, keep: u32) {
    match days.last_mut() {
        Some((d, n)) if *d == day => *n = n.saturating_add(1),
        // A clock that stepped back: count it on the newest day rather than reorder.
        Some((d, n)) if *d > day => *n = n.saturating_add(1),
        _ => days.push((day, 1)),
    }
    let newest = days.last().map_or(day, |d| d.0);
    days.retain(|(d, _)| d + u64::from(keep) > newest);
}

/// Activities counted on the `window_days` UTC days up to and including `now`'s.
pub(super) fn in_window(days: &[(u64, u64)], now: u64, window_days: u32) -> u64 {
    let from_day = (now / SECS_PER_DAY + 1).saturating_sub(u64::from(window_days));
    days.iter()
        .filter(|(d, _)| *d >= from_day)
        .fold(0u64, |sum, (_, n)| sum.saturating_add(*n))
}
