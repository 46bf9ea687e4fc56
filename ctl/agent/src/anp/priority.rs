//! Antrea's OpenFlow priority assignment for policy rules, one persistent assigner per rule
//! table: an initial guess from (tier priority, policy priority, rule index), placement
//! between the registered neighbours, and re-packing of a window of registered keys when the
//! gap is too small. Kept across recomputations so that priorities are stable.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// The precedence key of a rule: smaller = evaluated first = higher OpenFlow priority.
#[derive(Debug, Clone, Copy)]
pub struct PriorityKey {
    /// Tier priority.
    pub tier: i32,
    /// Policy priority.
    pub policy: f64,
    /// Rule index in its direction.
    pub rule: u32,
}

impl PartialEq for PriorityKey {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for PriorityKey {}
impl PartialOrd for PriorityKey {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for PriorityKey {
    fn cmp(&self, o: &Self) -> Ordering {
        self.tier
            .cmp(&o.tier)
            .then(self.policy.total_cmp(&o.policy))
            .then(self.rule.cmp(&o.rule))
    }
}

/// The table would need more priorities than its range has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("number of priorities to be registered ({wanted}) is greater than available openflow priorities ({available})")]
pub struct PriorityError {
    /// Keys after registration.
    pub wanted: usize,
    /// Priorities in the range.
    pub available: usize,
}

/// One table's assigner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityAssigner {
    top: u16,
    bottom: u16,
    baseline: bool,
    by_key: BTreeMap<PriorityKey, u16>,
}

/// Buffer kept free next to a placed run for later inserts.
const BUFFER: i64 = 5;

impl PriorityAssigner {
    /// The assigner of AntreaPolicy{Ingress,Egress}Rule: priorities 100..=65000.
    pub fn policy_tables() -> Self {
        Self::with_range(65000, 100, false)
    }
    /// The assigner of the baseline tier ({Ingress,Egress}DefaultRule): 10..=180.
    pub fn baseline_tables() -> Self {
        Self::with_range(180, 10, true)
    }
    /// An assigner over `bottom..=top` (small ranges make re-packing testable).
    pub fn with_range(top: u16, bottom: u16, baseline: bool) -> Self {
        PriorityAssigner {
            top,
            bottom,
            baseline,
            by_key: BTreeMap::new(),
        }
    }
    /// The assigned priority of `k`.
    pub fn get(&self, k: &PriorityKey) -> Option<u16> {
        self.by_key.get(k).copied()
    }
    /// Registered keys and their priorities, highest precedence first.
    pub fn iter(&self) -> impl Iterator<Item = (&PriorityKey, &u16)> {
        self.by_key.iter()
    }
    /// Antrea's initial guess for `k`.
    pub fn initial(&self, k: &PriorityKey) -> u16 {
        let (a, b) = if self.baseline {
            (0.0, 10.0)
        } else if k.tier == 250 {
            (200.0, 100.0)
        } else {
            (200.0, 20.0)
        };
        let offset = a * f64::from(k.tier) + (b * k.policy).trunc() + f64::from(k.rule);
        let span = f64::from(self.top - self.bottom);
        if !(0.0..=span).contains(&offset) {
            self.bottom
        } else {
            self.top - offset as u16
        }
    }
    /// Forgets keys for which `live` is false (their priorities become free).
    pub fn retain(&mut self, live: impl Fn(&PriorityKey) -> bool) {
        self.by_key.retain(|k, _| live(k));
    }
    /// Registers `keys` (already registered ones are skipped). Returns the priorities of
    /// registered keys that moved (old → new): their flows must be re-emitted in the same
    /// bundle as the new ones.
    pub fn register(&mut self, keys: &[PriorityKey]) -> Result<BTreeMap<u16, u16>, PriorityError> {
        let mut new: Vec<PriorityKey> = keys
            .iter()
            .filter(|k| !self.by_key.contains_key(k))
            .copied()
            .collect();
        new.sort();
        new.dedup();
        let available = usize::from(self.top - self.bottom) + 1;
        let wanted = self.by_key.len() + new.len();
        if wanted > available {
            return Err(PriorityError { wanted, available });
        }
        let before = self.by_key.clone();
        let mut i = 0;
        while i < new.len() {
            let mut j = i + 1;
            while j < new.len()
                && new[j].tier == new[i].tier
                && new[j].policy.to_bits() == new[i].policy.to_bits()
                && new[j - 1].rule.checked_add(1) == Some(new[j].rule)
            {
                j += 1;
            }
            self.place(&new[i..j]);
            i = j;
        }
        Ok(before
            .into_iter()
            .filter_map(|(k, old)| {
                let new = self.by_key.get(&k).copied()?;
                (new != old).then_some((old, new))
            })
            .collect())
    }

    fn place(&mut self, run: &[PriorityKey]) {
        let n = run.len() as i64;
        let (first, last) = (run[0], run[run.len() - 1]);
        let upper = self
            .by_key
            .range(..first)
            .next_back()
            .map_or(i64::from(self.top) + 1, |(_, p)| i64::from(*p));
        let lower = self
            .by_key
            .range(last..)
            .next()
            .map_or(i64::from(self.bottom) - 1, |(_, p)| i64::from(*p));
        let avail = upper - lower - 1;
        let guesses: Vec<i64> = run.iter().map(|k| i64::from(self.initial(k))).collect();
        let consecutive = guesses.windows(2).all(|w| w[1] == w[0] - 1);
        let g0 = guesses[0];
        let start = if avail >= n && consecutive && g0 < upper && g0 - (n - 1) > lower {
            Some(g0)
        } else if avail >= n + 2 * BUFFER {
            if g0 <= lower {
                Some(lower + BUFFER + n)
            } else {
                Some(upper - BUFFER - 1)
            }
        } else if avail >= n {
            Some(upper - 1 - (avail - n) / 2)
        } else {
            None
        };
        match start {
            Some(s) => {
                for (i, k) in run.iter().enumerate() {
                    self.by_key.insert(*k, (s - i as i64) as u16);
                }
            }
            None => self.repack(run),
        }
    }

    /// Moves the fewest registered neighbours so that `run` fits between them, renumbering
    /// the window contiguously from its low end.
    fn repack(&mut self, run: &[PriorityKey]) {
        let regs: Vec<(PriorityKey, u16)> = self.by_key.iter().map(|(k, p)| (*k, *p)).collect();
        let m = regs.len();
        let n = run.len();
        let pos = regs.partition_point(|(k, _)| *k < run[0]);
        let top = i64::from(self.top) + 1;
        let bottom = i64::from(self.bottom) - 1;
        for t in 1..=m {
            for above in 0..=t {
                let below = t - above;
                if above > pos || below > m - pos {
                    continue;
                }
                let upper = if pos - above > 0 {
                    i64::from(regs[pos - above - 1].1)
                } else {
                    top
                };
                let lower = if pos + below < m {
                    i64::from(regs[pos + below].1)
                } else {
                    bottom
                };
                if upper - lower - 1 < (t + n) as i64 {
                    continue;
                }
                // Precedence order: moved-above, the run, moved-below; the last gets lower+1.
                let seq: Vec<PriorityKey> = regs[pos - above..pos]
                    .iter()
                    .map(|(k, _)| *k)
                    .chain(run.iter().copied())
                    .chain(regs[pos..pos + below].iter().map(|(k, _)| *k))
                    .collect();
                let len = seq.len() as i64;
                for (i, k) in seq.into_iter().enumerate() {
                    self.by_key.insert(k, (lower + len - i as i64) as u16);
                }
                return;
            }
        }
    }
}
