//! `Window`: a count per time slot over the last `N` slots, in a fixed array. Slots that
//! time passed over are zeroed when the window is next touched, so an idle window costs
//! nothing and the memory never grows.

/// Counts in the last `N` slots (a slot is a minute, five minutes or an hour, as the owner
/// chooses); `last` is the newest slot written.
#[derive(Debug, Clone)]
pub(super) struct Window<const N: usize> {
    counts: [u32; N],
    last: u64,
}

impl<const N: usize> Default for Window<N> {
    fn default() -> Self {
        Window {
            counts: [0; N],
            last: 0,
        }
    }
}

impl<const N: usize> Window<N> {
    const LEN: u64 = N as u64;

    /// Counts one in `slot`. A slot older than the newest (the clock stepped back) counts
    /// in the newest: the total stays right, only its place in time is a little off.
    pub(super) fn add(&mut self, slot: u64) {
        self.advance(slot);
        let i = self.index(self.last);
        self.counts[i] = self.counts[i].saturating_add(1);
    }

    /// The sum over the `N` slots ending at `now`.
    pub(super) fn total(&self, now: u64) -> u64 {
        self.series(now).iter().map(|&c| u64::from(c)).sum()
    }

    /// The `N` slots ending at `now`, oldest first.
    pub(super) fn series(&self, now: u64) -> [u32; N] {
        let mut out = [0; N];
        let first = now.saturating_sub(Self::LEN - 1);
        for (i, slot) in (first..=now).enumerate() {
            if slot <= self.last && self.last - slot < Self::LEN && i < N {
                out[i] = self.counts[self.index(slot)];
            }
        }
        out
    }

    fn advance(&mut self, slot: u64) {
        if slot <= self.last {
            return;
        }
        if slot - self.last >= Self::LEN {
            self.counts = [0; N];
        } else {
            for s in self.last + 1..=slot {
                let i = self.index(s);
                self.counts[i] = 0;
            }
        }
        self.last = slot;
    }

    fn index(&self, slot: u64) -> usize {
        // `slot % N` is below N, which is a usize.
        usize::try_from(slot % Self::LEN).unwrap_or(0)
    }
}
