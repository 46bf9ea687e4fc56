//! Errors of the control-side classifier API and of cache insertion.

use thiserror::Error;

/// Why a rule could not be added to or changed in the classifier.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClassifierError {
    /// A conjunction declared fewer than 2 or more than 64 clauses (ovs-fields(7) requires n ≥ 2;
    /// xvs tracks clauses in a 64-bit set).
    #[error("conjunction({id}, {clause}/{n_clauses}): the number of clauses must be 2..=64")]
    BadClauseCount {
        /// The conjunction id.
        id: u32,
        /// The 1-based clause number given.
        clause: u8,
        /// The clause count given.
        n_clauses: u8,
    },
    /// A conjunction's clause number is outside 1..=n_clauses.
    #[error("conjunction({id}, {clause}/{n_clauses}): the clause must be 1..={n_clauses}")]
    BadClause {
        /// The conjunction id.
        id: u32,
        /// The 1-based clause number given.
        clause: u8,
        /// The clause count given.
        n_clauses: u8,
    },
    /// A rule that declares conjunctions also matches on `conj_id`; such a rule could never be
    /// part of a conjunction (clause flows are ignored by the `conj_id` search).
    #[error("a flow with conjunction actions must not match conj_id")]
    ConjunctionMatchesConjId,
    /// No rule with exactly this match and priority exists (strict modify).
    #[error("no rule with this match and priority")]
    NoSuchRule,
}

/// Why the megaflow cache refused an entry. Every refusal is also counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum InsertError {
    /// Every entry slot is in use; the cache does not grow.
    #[error("megaflow cache full")]
    Full,
    /// The entry's mask would need a new subtable and the subtable limit is reached.
    #[error("megaflow cache has no room for another mask")]
    TooManyMasks,
    /// The entry was translated from a table version other than the one the cache currently
    /// serves; installing it could resurrect old policy.
    #[error("entry built from table version {built}, cache serves {current}")]
    StaleVersion {
        /// The version the caller translated against.
        built: u64,
        /// The version the cache is bound to.
        current: u64,
    },
}
