//! The OpenFlow classifier and the datapath caches of xvs, both over [`FlowKey`].
//!
//! This crate knows flow keys, masks, priorities and conjunctions; it does not know OpenFlow
//! actions. Rules carry a payload `R` (the OpenFlow layer puts its flow there), megaflows carry
//! datapath actions `A`.
//!
//! # Layers
//! - [`Classifier`] / [`Snapshot`]: one OpenFlow table. Tuple-space search: one subtable per
//!   distinct mask, each a hash table from the masked value to the rules with exactly that match
//!   (highest priority first). Subtables are visited by their maximum priority, and the search
//!   stops once no remaining subtable can beat the best ordinary match. A lookup returns the
//!   winning [`Rule`] and ORs into a wildcard mask every key bit it examined (megaflow
//!   generation, as OVS's `flow_wildcards`).
//! - [`MegaflowCache`]: per worker, the megaflows translation produced (masked key, mask,
//!   datapath actions), tuple-space search with subtables ranked by hits, fixed capacity.
//! - [`ExactCache`]: per worker, a fixed array of 4-way buckets from a hash of the key's
//!   flow-distinguishing words to a megaflow, verified against it on every hit (so the hash
//!   never decides correctness).
//! - [`DatapathCache`]: the two tiers together, bound to one classifier version, with batch
//!   lookup and per-tier counters.
//!
//! # Lookup semantics
//! - The answer is the matching ordinary rule with the highest priority. **Ties** (two
//!   ordinary rules of equal priority that both match, "undefined" in OpenFlow) go to the rule
//!   added first. A replacement (add with an existing match and priority, or a strict modify)
//!   keeps the place of the rule it replaces; delete-then-add makes a rule the newest.
//! - **Conjunctions** follow ovs-fields(7). A rule with [`Conjunction`]s is a clause flow and is
//!   never an answer itself. A conjunction (id, n) at priority p is complete for a packet when,
//!   for each clause 1..=n, some matching clause flow at priority p declares
//!   `conjunction(id, clause/n)`; flows of the same id at different priorities are different
//!   conjunctions, as in OVS. Going down from the highest priority: at a priority with a matching
//!   ordinary rule, that rule wins (an ordinary flow wins a tie with a conjunction); at a
//!   priority above it with complete conjunctions, they are tried by ascending id: the key's
//!   `conj_id` is set to the id and the table searched again, ignoring clause flows; the first
//!   such search that finds a rule gives the answer, whatever that rule's priority. A complete
//!   conjunction whose search finds nothing is as if it had not matched. Like OVS's, the
//!   `conj_id` search is general-purpose: an ordinary flow that does not match on `conj_id` and
//!   has a higher priority than the `conj_id=N` flow answers it.
//!   (OVS leaves overlapping conjunctions at one priority "unpredictable"; xvs picks the lowest
//!   id. OVS also skips the lower-priority flows that share a clause flow's exact match in the
//!   `conj_id` search; xvs considers them, which only matters for tables that put an ordinary
//!   flow under a clause flow with the same match.)
//! - **Wildcards**: a probe of a subtable examines that subtable's mask, in stages: metadata
//!   (in_port, recirc_id, marks, conj_id, registers, conntrack, tunnel: words 0..26), L2, L3,
//!   L4. Each stage but the last has an index of the hashes of the rules' masked values up to
//!   that stage; a key absent from a stage index cannot match, and only the stages examined so
//!   far are un-wildcarded (OVS's staged lookup). The lookup is a decision tree over key bits,
//!   and the mask is the union of the bits tested along the key's path, so every key that
//!   agrees with it on the mask takes the same path and gets the same answer; the `conj_id`
//!   searches add their own bits. Not done yet: prefix tries (OVS un-wildcards only the prefix
//!   bits needed on nw_src/nw_dst; here a probe un-wildcards a subtable's whole address mask).
//!
//! # Versions and thread safety
//! Chosen design: **immutable snapshots, copy-on-write, published by pointer swap**. The
//! control thread owns the [`Classifier`] (single writer). A [`Bundle`] forks the current
//! [`Snapshot`], whose subtables and their 256 shards are `Arc`s shared with the published
//! version; the first change to a shard copies that shard only. [`Bundle::commit`] numbers the
//! fork (version + 1) and publishes it with an `ArcSwap` store followed by a `Release` store of
//! the version. Each worker holds a [`ClassifierReader`]; at the start of every batch,
//! [`ClassifierReader::refresh`] loads the version with `Acquire` and, only if it moved, the new
//! `Arc<Snapshot>`. Workers never take a lock and never wait for the writer; a batch sees one
//! version from start to end, a bundle's changes become visible all at once, and a reader that
//! still holds an old snapshot sees the old rules, whole. Retired snapshots are kept by the
//! writer until every live reader reports a newer version, so table memory is freed on the
//! control thread, and [`Classifier::readers_reached`] tells when no worker can still run the
//! old rules (an OpenFlow barrier reply).
//!
//! Why not OVS's per-rule `[added, removed)` versions over concurrent hash maps: that needs a
//! concurrent (RCU) hash map whose readers tolerate concurrent writers, i.e. `unsafe` code or a
//! heavy dependency, and it makes every lookup test visibility. With snapshots the lookup path is
//! plain immutable data. Costs: a bundle of k changes costs O(k) plus one copy of each shard it
//! touches (about 1/256 of a touched subtable), and O(subtables) to re-sort the subtable order;
//! 10k changes in one bundle are cheap (see the insertion benchmark). The weak spot is many
//! tiny commits into one huge subtable (each copies about n/256 entries): the OpenFlow layer
//! should commit once per received message batch or barrier, as OVS defers publication.
//!
//! # Caches and table changes
//! A [`DatapathCache`] is bound to the version of the snapshot its worker adopted;
//! [`DatapathCache::begin_batch`] with a different version flushes both tiers in O(1): the
//! megaflow generation moves on (entries of older generations are dead; subtables are emptied
//! lazily when next used; slots are reused from index 0), and exact-match hits are only valid
//! when the megaflow they point to is live and matches the key. Inserts built from another
//! version are refused. Hence: once [`Bundle::commit`] has returned, every batch that starts
//! afterwards loads the new version (Release/Acquire), flushes, and uses only entries
//! translated from the new tables. No packet processed in such a batch uses an entry derived
//! from the old tables; OVS instead revalidates eventually (up to ~0.5 s of stale policy). The
//! price is a cold cache after each commit; targeted revalidation (re-translate the hottest
//! megaflows under the new version) can be added on top of [`MegaflowCache::iter`] without
//! changing this argument.
//!
//! # Counters
//! [`RuleStats`] are atomics updated by workers (`Relaxed`; see its docs); megaflow entries
//! count their own hits for batching statistics back to rules; [`CacheStats`] and
//! [`MegaflowStats`] count per tier: exact hits, megaflow hits, misses, subtable probes per hit,
//! refused inserts by reason, flushes.
//!
//! # Example
//! ```
//! use xvs_classifier::{CacheConfig, Classifier, Conjunction, DatapathCache, LookupScratch, Match};
//! use xvs_packet::key::layout::{CONJ_ID, NW_DST, NW_SRC};
//! use xvs_packet::FlowKey;
//!
//! fn exact(f: xvs_packet::KeyField, v: u64) -> Match {
//!     let (mut val, mut mask) = (FlowKey::ZERO, FlowKey::ZERO);
//!     val.set(f, v);
//!     mask.set(f, u64::MAX);
//!     Match::new(val, mask)
//! }
//!
//! // Control thread: one bundle, published atomically.
//! let mut table: Classifier<&'static str> = Classifier::new();
//! let mut reader = table.reader(); // moved to a worker thread in real use
//! let mut b = table.bundle();
//! let c = |clause| [Conjunction { id: 7, clause, n_clauses: 2 }];
//! b.insert(&exact(NW_SRC, 0x0a00_0001), 200, "clause", &c(1)).unwrap();
//! b.insert(&exact(NW_DST, 0x0a00_0002), 200, "clause", &c(2)).unwrap();
//! b.insert(&exact(CONJ_ID, 7), 190, "allow", &[]).unwrap();
//! b.insert(&Match::catchall(), 0, "drop", &[]).unwrap();
//! b.commit();
//!
//! // Worker: per batch, adopt the newest tables, then caches, then translate misses.
//! let mut cache: DatapathCache<&'static str> = DatapathCache::new(CacheConfig::default());
//! let mut scratch = LookupScratch::new();
//! let snap = reader.refresh().clone();
//! cache.begin_batch(snap.version());
//! let mut key = FlowKey::ZERO;
//! key.set(NW_SRC, 0x0a00_0001);
//! key.set(NW_DST, 0x0a00_0002);
//! let mut out = [None];
//! cache.lookup_batch(&[key], &mut out);
//! assert!(out[0].is_none());
//! let mut wc = FlowKey::ZERO;
//! let rule = snap.lookup_with(&key, &mut wc, &mut scratch).unwrap();
//! assert_eq!(*rule.payload(), "allow");
//! cache.insert(&key, &wc, *rule.payload(), snap.version()).unwrap();
//! cache.lookup_batch(&[key], &mut out);
//! assert_eq!(out[0].and_then(|id| cache.actions(id)), Some(&"allow"));
//! ```
#![forbid(unsafe_code)]

mod cache;
mod classifier;
mod error;
mod exact;
mod hash;
mod megaflow;
pub mod publish;
mod rule;
mod subtable;

pub use cache::{CacheConfig, CacheStats, DatapathCache, EXACT_MAX_BACKOFF, EXACT_WINDOW};
pub use classifier::{Bundle, Classifier, ClassifierReader, LookupScratch, Snapshot};
pub use error::{ClassifierError, InsertError};
pub use exact::{ExactCache, Insertion, HASHED_WORDS};
pub use megaflow::{MegaflowCache, MegaflowConfig, MegaflowId, MegaflowRef, MegaflowStats};
pub use rule::{Conjunction, Match, Rule, RuleStats};
pub use xvs_packet::FlowKey;
