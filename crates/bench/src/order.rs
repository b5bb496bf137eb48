//! The order environments run in within one interleaved round, shuffled from a recorded seed.
//!
//! Interleaving (A B C, A B C, …) spreads slow drift over every row, but a fixed order still
//! biases by *position*: on a cgroup v1 host the first row to move a process into a cgroup
//! after a quiet spell pays an RCU grace period that the rows right after it skip. Shuffling
//! every round spreads that cost too. The shuffle comes from a small deterministic PRNG
//! (SplitMix64) seeded once per run; the seed is written into the result file, so the same
//! seed replays the same orders.

/// SplitMix64: a tiny, well-mixed 64-bit generator (fine for shuffling, not for secrets).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator that always produces the same sequence for the same seed.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0), without modulo bias.
    pub fn below(&mut self, bound: usize) -> usize {
        let bound = bound as u64;
        let zone = u64::MAX - u64::MAX % bound;
        loop {
            let x = self.next_u64();
            if x < zone {
                return (x % bound) as usize;
            }
        }
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// `0..n` in a shuffled order.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        self.shuffle(&mut order);
        order
    }
}

/// A seed for a run that did not ask for one: the clock's nanoseconds mixed with the pid.
pub fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    Rng::new(nanos ^ (u64::from(std::process::id()) << 32)).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_orders() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..50 {
            assert_eq!(a.permutation(12), b.permutation(12));
        }
        let mut c = Rng::new(8);
        let differ = (0..50).any(|_| Rng::new(7).permutation(12) != c.permutation(12));
        assert!(differ, "seeds 7 and 8 gave identical orders");
    }

    #[test]
    fn a_permutation_holds_every_index_once() {
        let mut rng = Rng::new(1);
        for n in [0, 1, 2, 5, 17] {
            let mut p = rng.permutation(n);
            p.sort_unstable();
            assert_eq!(p, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn every_position_is_reached() {
        // Over many rounds each of 4 items must lead at least once: no fixed first row.
        let mut rng = Rng::new(42);
        let mut led = [0usize; 4];
        for _ in 0..400 {
            led[rng.permutation(4)[0]] += 1;
        }
        assert!(led.iter().all(|&n| n > 50), "{led:?}");
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::new(3);
        assert!((0..1000).all(|_| rng.below(3) < 3));
        assert_eq!(rng.below(1), 0);
    }
}
