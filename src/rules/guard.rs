//! The shrink guard: a source's new version that would remove too much of what it lists is
//! held back, its last good copy kept, until an operator accepts it. A broken export, an empty
//! answer or a header-only CSV otherwise lifts every rule of that source without a sound.

use crate::policy::sources::{LoadError, LoadErrorKind};

/// Whether going from `before` entries to `after` removes more than `max_shrink` of them, or
/// all of them. `max_shrink` 1.0 turns the guard off; a source that listed nothing may list
/// anything.
pub(crate) fn too_much(before: usize, after: usize, max_shrink: f64) -> bool {
    if before == 0 || after >= before || max_shrink >= 1.0 {
        return false;
    }
    if after == 0 {
        return true;
    }
    let removed = (before - after) as f64;
    removed / before as f64 > max_shrink
}

/// The refusal of `label`'s new version, for the reload error and the logs.
pub(crate) fn refusal(label: &str, before: usize, after: usize, max_shrink: f64) -> LoadError {
    LoadError::new(
        label,
        (
            0,
            LoadErrorKind::Shrink {
                before,
                after,
                max_shrink,
            },
        ),
    )
}

pub(crate) fn is_refusal(e: &LoadError) -> bool {
    matches!(e.kind, LoadErrorKind::Shrink { .. })
}

#[cfg(test)]
mod tests {
    use super::too_much;

    #[test]
    fn more_than_the_share_or_everything_is_too_much() {
        assert!(!too_much(10, 5, 0.5), "exactly half is allowed");
        assert!(too_much(10, 4, 0.5));
        assert!(too_much(1, 0, 0.99), "to zero from non-zero always");
        assert!(!too_much(1, 0, 1.0), "1.0 turns the guard off");
        assert!(!too_much(0, 0, 0.0), "nothing listed before");
        assert!(!too_much(3, 9, 0.0), "growing is never refused");
        assert!(too_much(10, 9, 0.0));
    }
}
