//! Criterion benchmarks for Strongroom. The benchmarks live in `benches/`; each group
//! puts a Strongroom hot path beside the raw primitive it is built on (and, where one
//! exists, a peer library) so that the ratio is read off one run.
//!
//! Run them with `cargo bench --manifest-path benches/Cargo.toml`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, Instant};

/// A paired comparison of routines that take turns, for a remote key backend's bench:
/// criterion's `iter_custom` times one routine per bench function, while every routine
/// runs, and is timed, in every round.
///
/// Criterion measures its bench functions one after the other, so a drift of a remote
/// server's round trip (a server warming up or slowing down, other work on the machine)
/// between the two measurement periods reads as a difference between the routines, and
/// it is larger than the difference looked for (an envelope open against the raw unwrap
/// call it is built on). Here the routines take turns, one call each per round, the
/// first of the round moving on by one each round, so that each meets the same server
/// and machine state; [`Paired::report`] then compares them over the same rounds, all
/// bench functions' rounds together.
///
/// Each routine runs `iters` times whichever is timed, so a group of `n` routines takes
/// `n` times as long as timing each alone.
pub struct Paired<'a> {
    names: Vec<&'a str>,
    routines: Vec<&'a dyn Fn()>,
    /// Per routine, the nanoseconds of each of its calls.
    samples: RefCell<Vec<Vec<u64>>>,
}

impl fmt::Debug for Paired<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paired")
            .field("names", &self.names)
            .field("rounds", &self.rounds())
            .finish_non_exhaustive()
    }
}

impl<'a> Paired<'a> {
    /// Routines by name, in the order they take turns.
    #[must_use]
    pub fn new(routines: &[(&'a str, &'a dyn Fn())]) -> Self {
        Paired {
            names: routines.iter().map(|(name, _)| *name).collect(),
            routines: routines.iter().map(|(_, routine)| *routine).collect(),
            samples: RefCell::new(vec![Vec::new(); routines.len()]),
        }
    }

    /// Runs `iters` rounds of every routine and returns the time spent in
    /// `routines[timed]` alone (for `iter_custom`); every routine's calls are kept for
    /// [`Paired::report`]. A `timed` past the end times nothing and returns zero.
    pub fn run(&self, iters: u64, timed: usize) -> Duration {
        let n = self.routines.len();
        let mut spent = Duration::ZERO;
        let mut samples = self.samples.borrow_mut();
        for round in 0..iters {
            for step in 0..n {
                // `round % n` is below `n`: the sum never overflows for any real `n`.
                let i = (step + (round % n as u64) as usize) % n;
                let start = Instant::now();
                (self.routines[i])();
                let took = start.elapsed();
                samples[i].push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
                if i == timed {
                    spent += took;
                }
            }
        }
        spent
    }

    /// Rounds run so far.
    #[must_use]
    pub fn rounds(&self) -> usize {
        self.samples.borrow().first().map_or(0, Vec::len)
    }

    /// `numerator / denominator` over every round run so far, as the ratio of the total
    /// times and the ratio of the median calls; `None` before any round, or for a name
    /// not given to [`Paired::new`].
    #[must_use]
    pub fn ratio(&self, numerator: &str, denominator: &str) -> Option<Ratio> {
        let index = |name: &str| self.names.iter().position(|n| *n == name);
        let (a, b) = (index(numerator)?, index(denominator)?);
        let samples = self.samples.borrow();
        let (a, b) = (&samples[a], &samples[b]);
        let (total_a, total_b) = (a.iter().sum::<u64>(), b.iter().sum::<u64>());
        if a.is_empty() || total_b == 0 {
            return None;
        }
        let (median_a, median_b) = (median(a), median(b));
        Some(Ratio {
            rounds: a.len(),
            mean_a: Duration::from_nanos(total_a / a.len() as u64),
            mean_b: Duration::from_nanos(total_b / b.len() as u64),
            of_totals: total_a as f64 / total_b as f64,
            of_medians: median_a as f64 / median_b.max(1) as f64,
        })
    }

    /// Prints `group: numerator / denominator` ([`Paired::ratio`]) on stderr.
    pub fn report(&self, group: &str, numerator: &str, denominator: &str) {
        match self.ratio(numerator, denominator) {
            Some(r) => eprintln!("{group}: {numerator} / {denominator}, paired: {r}"),
            None => eprintln!("{group}: {numerator} / {denominator}: nothing measured"),
        }
    }
}

/// The median of `values` (the upper one of an even count); 0 for none.
fn median(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

/// A paired comparison of two routines over the same rounds ([`Paired::ratio`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    /// Rounds compared.
    pub rounds: usize,
    /// Mean time of one call of the numerator.
    pub mean_a: Duration,
    /// Mean time of one call of the denominator.
    pub mean_b: Duration,
    /// Total time of the numerator's calls over the denominator's.
    pub of_totals: f64,
    /// Median call of the numerator over the denominator's.
    pub of_medians: f64,
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.3}x of totals ({:?} / {:?} per call), {:.3}x of medians, {} rounds",
            self.of_totals, self.mean_a, self.mean_b, self.of_medians, self.rounds
        )
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use super::Paired;

    #[test]
    fn routines_take_turns_and_only_the_timed_one_counts() {
        let calls = RefCell::new(Vec::new());
        let fast = || calls.borrow_mut().push('f');
        let slow = || {
            calls.borrow_mut().push('s');
            std::thread::sleep(Duration::from_millis(5));
        };
        let paired = Paired::new(&[("fast", &fast), ("slow", &slow)]);
        let spent = paired.run(4, 0);
        let order: String = calls.borrow().iter().collect();
        // The first routine of each round alternates.
        assert_eq!(order, "fssffssf");
        // Four sleeps of 5 ms ran, none of them timed.
        assert!(spent < Duration::from_millis(10), "{spent:?}");
        let spent = paired.run(3, 1);
        assert!(spent >= Duration::from_millis(15), "{spent:?}");
        assert_eq!(calls.borrow().len(), 14);
        assert_eq!(paired.rounds(), 7);
        // Both routines were timed in all seven rounds.
        let r = paired.ratio("slow", "fast").unwrap();
        assert_eq!(r.rounds, 7);
        assert!(r.of_totals > 10.0 && r.of_medians > 10.0, "{r}");
        assert!(r.mean_a >= Duration::from_millis(5));
        assert!(paired.ratio("fast", "slow").unwrap().of_totals < 0.1);
    }

    #[test]
    fn nothing_to_time_or_compare() {
        let r = || {};
        let paired = Paired::new(&[("r", &r)]);
        assert!(paired.ratio("r", "r").is_none());
        assert_eq!(paired.run(3, 5), Duration::ZERO);
        assert_eq!(paired.rounds(), 3);
        assert!(paired.ratio("r", "other").is_none());
        let empty = Paired::new(&[]);
        assert_eq!(empty.run(3, 0), Duration::ZERO);
        assert_eq!(empty.rounds(), 0);
    }
}
