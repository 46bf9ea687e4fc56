//! What every OpenFlow connection shares: the pipeline (behind the control threads' mutex),
//! the ports and their counters, table names, and the packet-out path to the workers.
//!
//! # Thread safety
//! Owned by the OpenFlow server thread. The [`Pipeline`] is shared with the main control
//! thread (learning, `ofproto/trace`) through a `Mutex` that only control threads take;
//! workers read published snapshots without locks and never see this mutex.

use super::packet_out::PacketOutSender;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use xvs_engine::packet_in::{PacketInConsumer, PacketInRecord};
use xvs_engine::WorkerShared;
use xvs_flowtable::action::Action;
use xvs_flowtable::field::FieldId;
use xvs_flowtable::flow::Flow;
use xvs_flowtable::group::Group;
use xvs_flowtable::meter::Meter;
use xvs_flowtable::names::Port;
use xvs_flowtable::pipeline::{
    classifier_match, dumped_flow, BundleError, FlowRule, Pipeline, PipelineMod, METER_ALL,
    TABLE_ALL,
};
use xvs_flowtable::Match;
use xvs_openflow::multipart::FlowStatsRequest;
use xvs_openflow::packet_in::Continuation;
use xvs_openflow::stats::{
    Aggregate, GroupFeatures, GroupStats, MeterFeatures, MeterStats, PortDesc, PortStats,
    TableFeatures, TableStats,
};
use xvs_openflow::{Desc, OfpError, PacketIn, PacketOut, PortReason, PortStatus};

/// Tables visible over OpenFlow (0..=253; OVS hides table 254).
pub const N_VISIBLE_TABLES: usize = 254;
/// `OFPP_ANY` in OpenFlow 1.1+ numbering.
const OFPP_ANY: u32 = 0xffff_ffff;
/// `OFPG_ALL`.
const GROUP_ALL: u32 = 0xffff_fffc;

/// One configured port.
#[derive(Debug, Clone)]
pub struct PortInfo {
    /// Interface name.
    pub name: String,
    /// OpenFlow port number.
    pub ofport: u32,
    /// MAC address (zeros when unknown).
    pub mac: [u8; 6],
    /// Index of the owning worker.
    pub worker: usize,
    /// The counters its worker publishes.
    pub counters: Arc<xvs_engine::PortCounters>,
}

/// A port as PORT_DESC and PORT_STATUS describe it.
fn port_desc(p: &PortInfo) -> PortDesc {
    PortDesc {
        port_no: p.ofport,
        hw_addr: p.mac,
        name: p.name.clone(),
        config: 0,
        // OFPPS_LIVE: the port is open and polled.
        state: 4,
        curr: 0,
        curr_speed: 0,
        max_speed: 0,
    }
}

/// The switch as the OpenFlow connections see it.
pub struct Switch {
    pipeline: Arc<Mutex<Pipeline>>,
    epoch: Instant,
    started: Instant,
    /// Datapath id announced in FEATURES_REPLY.
    pub datapath_id: u64,
    bridge: String,
    ports: Vec<PortInfo>,
    workers: Vec<Arc<WorkerShared>>,
    table_names: Vec<String>,
    packet_out: Option<PacketOutSender>,
    /// Versions committed but not yet adopted by every worker, with their commit time.
    unconfirmed: std::collections::VecDeque<(u64, Instant)>,
    /// Counters shown by `ovs-appctl xvs/ofserver-show`.
    pub stats: Arc<OfStats>,
    /// Committed bundles, freed after the replies are written (freeing a million mods
    /// takes a while and must not delay the COMMIT reply).
    garbage: Vec<Vec<PipelineMod>>,
    /// The OpenFlow server's ends of the workers' packet-in rings.
    packet_ins: Vec<PacketInConsumer>,
    /// `OFPPC_*` config bits set by PORT_MOD, by OpenFlow port (absent: 0).
    port_config: std::collections::HashMap<u32, u32>,
}

/// Counters of the OpenFlow server (relaxed atomics: one writer, the server thread).
#[derive(Debug, Default)]
pub struct OfStats {
    /// Pipeline commits (bundles and batches of standalone mods).
    pub commits: AtomicU64,
    /// Mods applied by those commits.
    pub mods: AtomicU64,
    /// Commits whose adoption by every worker was observed.
    pub adopted: AtomicU64,
    /// Sum, maximum and last of the commit-to-adoption times, in nanoseconds.
    pub adopt_sum_ns: AtomicU64,
    /// Maximum commit-to-adoption time.
    pub adopt_max_ns: AtomicU64,
    /// Last commit-to-adoption time.
    pub adopt_last_ns: AtomicU64,
    /// Packet-ins sent (one per receiving connection).
    pub packet_in_sent: AtomicU64,
    /// Packet-ins no connection asked for (none with the controller id, or none at all).
    pub packet_in_unclaimed: AtomicU64,
    /// Packet-ins dropped by their `controller(meter_id=N)` meter.
    pub packet_in_metered: AtomicU64,
    /// Packet-ins not queued to a connection that does not read (back-pressure).
    pub packet_in_backlog: AtomicU64,
    /// NXT_RESUMEs executed.
    pub resumed: AtomicU64,
}

impl OfStats {
    /// The `xvs/ofserver-show` text.
    pub fn text(&self) -> String {
        let n = self.adopted.load(Ordering::Relaxed);
        let avg = self.adopt_sum_ns.load(Ordering::Relaxed) / n.max(1);
        format!(
            "commits: {}\nmods applied: {}\nversions adopted by all workers: {n}\n\
             commit to adoption: last {} ns, avg {avg} ns, max {} ns\n\
             packet-ins: sent {}, unclaimed {}, metered {}, backlog {}; resumed {}\n",
            self.commits.load(Ordering::Relaxed),
            self.mods.load(Ordering::Relaxed),
            self.adopt_last_ns.load(Ordering::Relaxed),
            self.adopt_max_ns.load(Ordering::Relaxed),
            self.packet_in_sent.load(Ordering::Relaxed),
            self.packet_in_unclaimed.load(Ordering::Relaxed),
            self.packet_in_metered.load(Ordering::Relaxed),
            self.packet_in_backlog.load(Ordering::Relaxed),
            self.resumed.load(Ordering::Relaxed),
        )
    }
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch")
            .field("bridge", &self.bridge)
            .field("ports", &self.ports.len())
            .finish_non_exhaustive()
    }
}

/// Pipeline fields OVS puts in a packet-in's match (when not zero).
const PACKET_IN_FIELDS: [FieldId; 32] = [
    FieldId::TUN_ID,
    FieldId::TUN_SRC,
    FieldId::TUN_DST,
    FieldId::IN_PORT_OXM,
    FieldId::PKT_MARK,
    FieldId::CT_STATE,
    FieldId::CT_ZONE,
    FieldId::CT_MARK,
    FieldId::CT_LABEL,
    FieldId::CT_NW_PROTO,
    FieldId::CT_NW_SRC,
    FieldId::CT_NW_DST,
    FieldId::CT_IPV6_SRC,
    FieldId::CT_IPV6_DST,
    FieldId::CT_TP_SRC,
    FieldId::CT_TP_DST,
    FieldId::REG0,
    FieldId::REG1,
    FieldId::REG2,
    FieldId::REG3,
    FieldId::REG4,
    FieldId::REG5,
    FieldId::REG6,
    FieldId::REG7,
    FieldId::REG8,
    FieldId::REG9,
    FieldId::REG10,
    FieldId::REG11,
    FieldId::REG12,
    FieldId::REG13,
    FieldId::REG14,
    FieldId::REG15,
];

/// The packet-in a worker's record describes; a paused one carries a continuation naming
/// `bridge`.
pub fn packet_in_of(rec: &PacketInRecord, bridge: [u8; 16]) -> PacketIn {
    let key = Match::from_keys(rec.key, xvs_packet::FlowKey::ALL_ONES);
    let mut metadata = Match::default();
    for f in PACKET_IN_FIELDS {
        let (v, _) = key.get(f);
        if v != 0 || f == FieldId::IN_PORT_OXM {
            metadata.set_exact(f, v);
        }
    }
    PacketIn {
        buffer_id: xvs_openflow::NO_BUFFER,
        total_len: rec.total_len,
        reason: rec.reason,
        table_id: rec.table,
        cookie: rec.cookie,
        metadata,
        data: rec.data().to_vec(),
        userdata: rec.userdata().to_vec(),
        continuation: if rec.paused {
            let mut c = Vec::new();
            xvs_openflow::packet_in::put_continuation(
                &mut c,
                &Continuation {
                    bridge,
                    table_id: rec.table,
                    cookie: rec.cookie,
                    actions: rec.resume().to_vec(),
                    goto_table: rec.resume_goto,
                },
            );
            c
        } else {
            Vec::new()
        },
    }
}

/// Locks the pipeline; a poisoned lock still holds a consistent pipeline (commits are
/// all-or-nothing), so it is used as is.
pub fn lock(p: &Mutex<Pipeline>) -> MutexGuard<'_, Pipeline> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

impl Switch {
    /// A switch over `pipeline`; `epoch` is the clock workers credit flow statistics with.
    pub fn new(
        bridge: &str,
        pipeline: Arc<Mutex<Pipeline>>,
        epoch: Instant,
        ports: Vec<PortInfo>,
        workers: Vec<Arc<WorkerShared>>,
        packet_out: Option<PacketOutSender>,
    ) -> Self {
        // A stable datapath id from the bridge name (OVS derives it from a MAC address).
        let datapath_id = bridge.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }) & 0x0000_ffff_ffff_ffff;
        Switch {
            pipeline,
            epoch,
            started: Instant::now(),
            datapath_id,
            bridge: bridge.to_string(),
            ports,
            workers,
            table_names: vec![String::new(); N_VISIBLE_TABLES],
            packet_out,
            unconfirmed: std::collections::VecDeque::new(),
            stats: Arc::default(),
            garbage: Vec::new(),
            packet_ins: Vec::new(),
            port_config: std::collections::HashMap::new(),
        }
    }

    /// This switch's identity in continuations: the datapath id and the process start.
    pub fn bridge_id(&self) -> [u8; 16] {
        let mut b = [0; 16];
        b[..8].copy_from_slice(&self.datapath_id.to_be_bytes());
        b[8..12].copy_from_slice(b"xvs\0");
        b[12..].copy_from_slice(&std::process::id().to_be_bytes());
        b
    }

    /// NXT_RESUME: runs the paused flow's remaining actions on the (possibly modified)
    /// packet with the packet-in's pipeline fields, through the packet-out path.
    pub fn resume(&mut self, pin: &PacketIn) -> Result<(), OfpError> {
        if pin.continuation.is_empty() {
            return Err(OfpError::NX_STALE);
        }
        let (c, actions) = xvs_openflow::packet_in::pull_continuation(&pin.continuation)?;
        if c.bridge != self.bridge_id() {
            return Err(OfpError::NX_STALE);
        }
        self.stats.resumed.fetch_add(1, Ordering::Relaxed);
        self.packet_out(&PacketOut {
            buffer_id: pin.buffer_id,
            match_: pin.metadata,
            actions,
            data: pin.data.clone(),
        })
    }

    /// Takes the workers' packet-in rings.
    pub fn set_packet_ins(&mut self, rings: Vec<PacketInConsumer>) {
        self.packet_ins = rings;
    }

    /// True when workers can send packet-ins (the server then polls their rings).
    pub fn has_packet_ins(&self) -> bool {
        !self.packet_ins.is_empty()
    }

    /// Drains the packet-in rings (at most one ring's worth each), applying
    /// `controller(meter_id=N)` meters: appends (packet-in, controller id) to `out`.
    pub fn drain_packet_ins(&mut self, out: &mut Vec<(PacketIn, u16)>) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let mut snapshot = None;
        let bridge = self.bridge_id();
        for ring in &mut self.packet_ins {
            for _ in 0..xvs_engine::packet_in::QUEUE {
                let Ok(rec) = ring.pop() else { break };
                if rec.meter_id != 0 {
                    let snap =
                        snapshot.get_or_insert_with(|| lock(&self.pipeline).snapshot().clone());
                    if let Some(m) = snap.meter_state(rec.meter_id) {
                        if !m.pass(now, rec.total_len) {
                            self.stats.packet_in_metered.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                }
                out.push((packet_in_of(&rec, bridge), rec.controller_id));
            }
        }
    }

    /// Keeps `mods` until [`Switch::collect_garbage`].
    pub fn defer_drop(&mut self, mods: Vec<PipelineMod>) {
        self.garbage.push(mods);
    }

    /// Frees what [`Switch::defer_drop`] kept.
    pub fn collect_garbage(&mut self) {
        self.garbage.clear();
    }

    /// True while a committed version has not been adopted by every worker.
    pub fn adoption_pending(&self) -> bool {
        !self.unconfirmed.is_empty()
    }

    /// Records the adoption of committed versions by every worker (each worker adopts the
    /// newest version at the start of its next batch).
    pub fn check_adoption(&mut self) {
        if self.unconfirmed.is_empty() {
            return;
        }
        let mut p = lock(&self.pipeline);
        while let Some(&(v, t)) = self.unconfirmed.front() {
            if !p.readers_reached(v) {
                break;
            }
            let ns = t.elapsed().as_nanos() as u64;
            let s = &self.stats;
            s.adopted.fetch_add(1, Ordering::Relaxed);
            s.adopt_sum_ns.fetch_add(ns, Ordering::Relaxed);
            s.adopt_max_ns.fetch_max(ns, Ordering::Relaxed);
            s.adopt_last_ns.store(ns, Ordering::Relaxed);
            self.unconfirmed.pop_front();
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Applies `mods` as one atomic bundle (one new pipeline version).
    pub fn commit(&mut self, mods: &[PipelineMod]) -> Result<(), BundleError> {
        let now = self.now();
        let mut p = lock(&self.pipeline);
        let report = p.commit(mods, now)?;
        drop(p);
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .mods
            .fetch_add(mods.len() as u64, Ordering::Relaxed);
        // Bounded: a stuck worker must not make this grow without end.
        if self.unconfirmed.len() < 1024 {
            self.unconfirmed.push_back((report.version, Instant::now()));
        }
        Ok(())
    }

    /// Applies an `NXT_TLV_TABLE_MOD` (a new pipeline version: caches built with the old
    /// option map are flushed).
    pub fn tlv_table_mod(
        &mut self,
        command: xvs_flowtable::tlv::TlvCommand,
        maps: &[xvs_flowtable::tlv::TlvMapping],
    ) -> Result<(), OfpError> {
        let now = self.now();
        let version = lock(&self.pipeline)
            .tlv_table_mod(command, maps, now)
            .map_err(OfpError::from_tlv)?;
        if self.unconfirmed.len() < 1024 {
            self.unconfirmed.push_back((version, Instant::now()));
        }
        Ok(())
    }

    /// The current Geneve option map.
    pub fn tlv_table(&self) -> xvs_flowtable::tlv::TlvMap {
        *lock(&self.pipeline).tlv()
    }

    /// `NXFMFC_INVALID_TLV_FIELD` when a flow matches, sets or moves a `tun_metadata` field
    /// the option map does not have (OVS refuses those flows the same way).
    pub fn check_tlv_fields(&self, flow: &Flow) -> Result<(), OfpError> {
        let present = flow
            .match_
            .mask()
            .get(xvs_packet::key::layout::TUN_METADATA_PRESENT);
        let mut used = present;
        for a in &flow.actions {
            let fields = match a {
                Action::SetField { field, .. } => [Some(*field), None],
                Action::Move { src, dst } => [Some(src.field), Some(dst.field)],
                _ => [None, None],
            };
            for f in fields.into_iter().flatten() {
                if let Some(i) = FieldId::TUN_METADATA.iter().position(|t| *t == f) {
                    used |= 1 << i;
                }
            }
        }
        if used == 0 {
            return Ok(());
        }
        let tlv = self.tlv_table();
        for i in 0..FieldId::TUN_METADATA.len() {
            if used & (1 << i) != 0 && tlv.get(i).is_none() {
                return Err(OfpError::INVALID_TLV_FIELD);
            }
        }
        Ok(())
    }

    /// True when group `id` exists in the current pipeline.
    pub fn group_exists(&self, id: u32) -> bool {
        lock(&self.pipeline).snapshot().group(id).is_some()
    }

    /// True when meter `id` exists in the current pipeline.
    pub fn meter_exists(&self, id: u32) -> bool {
        lock(&self.pipeline).snapshot().meter(id).is_some()
    }

    /// DESC reply.
    pub fn desc(&self) -> Desc {
        Desc {
            mfr: "xvs".to_string(),
            hw: "xvs userspace dataplane".to_string(),
            sw: env!("CARGO_PKG_VERSION").to_string(),
            serial: "None".to_string(),
            dp: self.bridge.clone(),
        }
    }

    /// The rules a FLOW_DESC / AGGREGATE request selects, sorted as `dump-flows` shows them.
    fn select(&self, q: &FlowStatsRequest) -> Vec<Flow> {
        let now = self.now();
        let p = lock(&self.pipeline);
        let snap = Arc::clone(p.snapshot());
        drop(p);
        let m = classifier_match(&q.match_);
        let catch_all = q.match_.is_catch_all();
        let tables: Vec<u8> = if q.table == TABLE_ALL {
            (0..N_VISIBLE_TABLES as u8).collect()
        } else {
            vec![q.table]
        };
        let keep = |r: &Arc<FlowRule>| {
            let e = r.payload();
            (e.cookie ^ q.cookie) & q.cookie_mask == 0
                && (q.out_port == Port::NONE || outputs_to(&e.actions, q.out_port))
                && (q.out_group == u32::MAX || uses_group(&e.actions, q.out_group))
        };
        let mut rules: Vec<&Arc<FlowRule>> = Vec::new();
        for t in tables {
            let Some(table) = snap.table(t) else { continue };
            if catch_all {
                rules.extend(table.iter().filter(|r| keep(r)));
            } else {
                rules.extend(table.iter_loose(&m).filter(|r| keep(r)));
            }
        }
        rules.sort_by_key(|r| (r.payload().table, std::cmp::Reverse(r.priority()), r.seq()));
        rules.into_iter().map(|r| dumped_flow(r, now)).collect()
    }

    /// FLOW_DESC reply entries.
    pub fn flow_stats(&self, q: &FlowStatsRequest) -> Vec<Flow> {
        self.select(q)
    }

    /// AGGREGATE reply.
    pub fn aggregate(&self, q: &FlowStatsRequest) -> Aggregate {
        let flows = self.select(q);
        let mut a = Aggregate {
            flows: u32::try_from(flows.len()).unwrap_or(u32::MAX),
            ..Aggregate::default()
        };
        for f in &flows {
            let s = f.stats.unwrap_or_default();
            a.packets += s.n_packets.unwrap_or(0);
            a.bytes += s.n_bytes.unwrap_or(0);
        }
        a
    }

    /// TABLE_STATS reply: flows per table; lookups and matches are the packets credited to
    /// the table's rules (the caches do not count per-table misses).
    pub fn table_stats(&self) -> Vec<TableStats> {
        let snap = Arc::clone(lock(&self.pipeline).snapshot());
        (0..N_VISIBLE_TABLES as u8)
            .map(|t| {
                let table = snap.table(t);
                let matched: u64 = table
                    .map(|s| s.iter().map(|r| r.stats().packets()).sum())
                    .unwrap_or(0);
                TableStats {
                    table_id: t,
                    active: table.map_or(0, |s| s.len() as u32),
                    lookup: matched,
                    matched,
                }
            })
            .collect()
    }

    /// TABLE_FEATURES reply entries: names and limits of every visible table.
    pub fn table_features(&self) -> Vec<TableFeatures> {
        self.table_names
            .iter()
            .enumerate()
            .map(|(t, name)| TableFeatures {
                table_id: t as u8,
                command: 0,
                features: 0,
                name: name.clone(),
                metadata_match: u64::MAX,
                metadata_write: u64::MAX,
                capabilities: 0,
                max_entries: 1_000_000,
                properties: Vec::new(),
            })
            .collect()
    }

    /// Applies a TABLE_FEATURES set request: only table names can change (what Antrea sets);
    /// tables not named keep theirs.
    pub fn set_table_features(&mut self, set: &[TableFeatures]) -> Result<(), OfpError> {
        for t in set {
            if usize::from(t.table_id) >= N_VISIBLE_TABLES {
                return Err(OfpError::TABLE_FEATURES_EPERM);
            }
        }
        for t in set {
            self.table_names[usize::from(t.table_id)] = t.name.clone();
        }
        Ok(())
    }

    fn port_selected(p: &PortInfo, port: u32) -> bool {
        port == OFPP_ANY || p.ofport == port
    }

    /// PORT_STATS reply entries.
    pub fn port_stats(&self, port: u32) -> Result<Vec<PortStats>, OfpError> {
        if port != OFPP_ANY && !self.ports.iter().any(|p| p.ofport == port) {
            return Err(OfpError::BAD_PORT);
        }
        let age = self.started.elapsed();
        Ok(self
            .ports
            .iter()
            .filter(|p| Self::port_selected(p, port))
            .map(|p| {
                let s = p.counters.load();
                PortStats {
                    port_no: p.ofport,
                    duration_sec: age.as_secs() as u32,
                    duration_nsec: age.subsec_nanos(),
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    rx_bytes: s.rx_bytes,
                    tx_bytes: s.tx_bytes,
                    rx_dropped: s.rx_dropped,
                    tx_dropped: s.tx_dropped,
                    rx_errors: s.errors,
                    tx_errors: 0,
                }
            })
            .collect())
    }

    /// Re-reads the workers' port lists after ports were added or removed at run time, and
    /// returns the PORT_STATUS messages that tell controllers (deletions first). A port
    /// whose number now names another interface is reported deleted, then added.
    pub fn refresh_ports(&mut self) -> Vec<PortStatus> {
        let now = super::ports_of(&self.workers);
        let same = |a: &PortInfo, b: &PortInfo| a.ofport == b.ofport && a.name == b.name;
        let mut changes = Vec::new();
        for old in &self.ports {
            if !now.iter().any(|p| same(p, old)) {
                // A port that comes back under this number starts with a clean config.
                self.port_config.remove(&old.ofport);
                changes.push(PortStatus {
                    reason: PortReason::Delete,
                    desc: port_desc(old),
                });
            }
        }
        for new in &now {
            if !self.ports.iter().any(|p| same(p, new)) {
                changes.push(PortStatus {
                    reason: PortReason::Add,
                    desc: port_desc(new),
                });
            }
        }
        if let Some(po) = self.packet_out.as_mut() {
            po.set_ports(&now);
        }
        self.ports = now;
        changes
    }

    fn port_down(&self, ofport: u32) -> bool {
        self.port_config
            .get(&ofport)
            .is_some_and(|c| c & xvs_openflow::port_mod::PC_PORT_DOWN != 0)
    }

    /// PORT_MOD: records the config bits and hands `OFPPC_PORT_DOWN`, `OFPPC_NO_RECV` and
    /// `OFPPC_NO_FWD` to the workers that poll the port (every queue of a multi-queue port),
    /// which apply them at their next iteration. Errors as OVS: an unknown port, or a
    /// hardware address that is not the port's.
    pub fn port_mod(&mut self, pm: &xvs_openflow::port_mod::PortMod) -> Result<(), OfpError> {
        let Some(p) = self.ports.iter().find(|p| p.ofport == pm.port_no) else {
            return Err(OfpError::PORT_MOD_BAD_PORT);
        };
        if p.mac != pm.hw_addr {
            return Err(OfpError::PORT_MOD_BAD_HW_ADDR);
        }
        let name = p.name.clone();
        let old = self.port_config.get(&pm.port_no).copied().unwrap_or(0);
        let new = (old & !pm.mask) | (pm.config & pm.mask);
        self.port_config.insert(pm.port_no, new);
        use xvs_openflow::port_mod::{PC_NO_FWD, PC_NO_RECV, PC_PORT_DOWN};
        let mut flags = 0;
        for (pc, f) in [
            (PC_PORT_DOWN, xvs_engine::PORT_DOWN),
            (PC_NO_RECV, xvs_engine::PORT_NO_RECV),
            (PC_NO_FWD, xvs_engine::PORT_NO_FWD),
        ] {
            if new & pc != 0 {
                flags |= f;
            }
        }
        for q in self.ports.iter().filter(|q| q.ofport == pm.port_no) {
            if let Some(w) = self.workers.get(q.worker) {
                w.set_port_flags(q.ofport, flags);
            }
        }
        crate::vlog::vlog!(
            crate::vlog::Module::Ofserver,
            crate::vlog::Level::Info,
            "port {} ({name}): config {old:#x} -> {new:#x}",
            pm.port_no
        );
        Ok(())
    }

    /// PORT_DESC reply entries.
    pub fn port_descs(&self, port: u32) -> Vec<PortDesc> {
        self.ports
            .iter()
            .filter(|p| Self::port_selected(p, port))
            .map(|p| PortDesc {
                port_no: p.ofport,
                hw_addr: p.mac,
                name: p.name.clone(),
                config: self.port_config.get(&p.ofport).copied().unwrap_or(0),
                // OFPPS_LIVE: the port is open and polled; OFPPS_LINK_DOWN while it is
                // administratively down (xvsd then neither receives nor sends on it).
                state: if self.port_down(p.ofport) { 1 } else { 4 },
                curr: 0,
                curr_speed: 0,
                max_speed: 0,
            })
            .collect()
    }

    /// GROUP_DESC reply entries, by id.
    pub fn groups(&self, id: u32) -> Vec<Group> {
        let snap = Arc::clone(lock(&self.pipeline).snapshot());
        let mut v: Vec<Group> = snap
            .groups()
            .filter(|g| id == GROUP_ALL || id == u32::MAX || g.group_id == id)
            .cloned()
            .collect();
        v.sort_by_key(|g| g.group_id);
        v
    }

    /// GROUP_STATS reply entries: reference counts from the flows and groups that use each
    /// group, and the packet/byte counters the workers credit (groups keep no creation time:
    /// duration stays zero).
    pub fn group_stats(&self, id: u32) -> Vec<GroupStats> {
        let snap = Arc::clone(lock(&self.pipeline).snapshot());
        let mut v: Vec<GroupStats> = snap
            .groups()
            .filter(|g| id == GROUP_ALL || id == u32::MAX || g.group_id == id)
            .map(|g| {
                let from_flows = snap
                    .flows()
                    .filter(|r| uses_group(&r.payload().actions, g.group_id))
                    .count();
                let from_groups = snap
                    .groups()
                    .filter(|o| o.buckets.iter().any(|b| uses_group(&b.actions, g.group_id)))
                    .count();
                // Counters credited by the workers for cached and uncached packets alike.
                let (packets, bytes, buckets) = match snap.group_stats(g.group_id) {
                    Some(st) => {
                        let (p, b) = st.counts();
                        let mut buckets = st.bucket_counts();
                        buckets.resize(g.buckets.len(), (0, 0));
                        (p, b, buckets)
                    }
                    None => (0, 0, vec![(0, 0); g.buckets.len()]),
                };
                GroupStats {
                    group_id: g.group_id,
                    ref_count: (from_flows + from_groups) as u32,
                    packets,
                    bytes,
                    buckets,
                    ..GroupStats::default()
                }
            })
            .collect();
        v.sort_by_key(|g| g.group_id);
        v
    }

    /// GROUP_FEATURES reply: the four group types, OVS's limits and capabilities.
    pub fn group_features(&self) -> GroupFeatures {
        GroupFeatures {
            types: xvs_openflow::stats::all_group_types(),
            // SELECT_WEIGHT | SELECT_LIVENESS | CHAINING.
            capabilities: 0x7,
            max_groups: [0xffff_ff00; 4],
            // OFPAT output, copy/dec TTLs, push/pop VLAN/MPLS, set_queue, group, set_field...
            actions: [0x03ff_ffff; 4],
        }
    }

    /// METER_DESC reply entries, by id.
    pub fn meters(&self, id: u32) -> Vec<Meter> {
        let snap = Arc::clone(lock(&self.pipeline).snapshot());
        let mut v: Vec<Meter> = snap
            .meters()
            .filter(|m| id == METER_ALL || m.meter_id == id)
            .cloned()
            .collect();
        v.sort_by_key(|m| m.meter_id);
        v
    }

    /// METER_STATS reply entries: flow counts from the tables, and the input and per-band
    /// counters of the datapath's limiters.
    pub fn meter_stats(&self, id: u32) -> Vec<MeterStats> {
        let snap = Arc::clone(lock(&self.pipeline).snapshot());
        let mut v: Vec<MeterStats> = snap
            .meters()
            .filter(|m| id == METER_ALL || m.meter_id == id)
            .map(|m| MeterStats {
                meter_id: m.meter_id,
                flow_count: snap
                    .flows()
                    .filter(|r| {
                        r.payload()
                            .actions
                            .iter()
                            .any(|a| matches!(a, Action::Meter(x) if *x == m.meter_id))
                    })
                    .count() as u32,
                packets_in: snap.meter_state(m.meter_id).map_or(0, |st| st.packets()),
                bytes_in: snap.meter_state(m.meter_id).map_or(0, |st| st.bytes()),
                bands: match snap.meter_state(m.meter_id) {
                    Some(st) => {
                        let mut b: Vec<(u64, u64)> = st
                            .bands()
                            .iter()
                            .map(|b| (b.packets(), b.bytes()))
                            .collect();
                        b.resize(m.bands.len(), (0, 0));
                        b
                    }
                    None => vec![(0, 0); m.bands.len()],
                },
                ..MeterStats::default()
            })
            .collect();
        v.sort_by_key(|m| m.meter_id);
        v
    }

    /// METER_FEATURES reply (the limits the pipeline accepts).
    pub fn meter_features(&self) -> MeterFeatures {
        MeterFeatures {
            max_meter: xvs_flowtable::pipeline::METER_MAX,
            // DROP and DSCP_REMARK.
            band_types: (1 << 1) | (1 << 2),
            // KBPS | PKTPS | BURST | STATS.
            capabilities: 0xf,
            max_bands: 16,
            max_color: 0,
        }
    }

    /// PACKET_OUT: translates the actions against the current tables (`output:TABLE` runs
    /// the pipeline) and hands the packet with its datapath actions to the workers that own
    /// the output ports.
    pub fn packet_out(&mut self, po: &PacketOut) -> Result<(), OfpError> {
        if po.buffer_id != xvs_openflow::NO_BUFFER {
            return Err(OfpError::BUFFER_UNKNOWN);
        }
        if po.data.is_empty() {
            return Err(OfpError::BAD_PACKET);
        }
        let now = self.now();
        let snap = Arc::clone(lock(&self.pipeline).snapshot());
        let Some(sender) = self.packet_out.as_mut() else {
            return Err(OfpError::BAD_TYPE);
        };
        sender.send(&snap, po, now)
    }
}

/// True when `actions` output to `port` (OVS `ofpacts_output_to_port`; `output:reg` counts
/// for any port).
fn outputs_to(actions: &[Action], port: Port) -> bool {
    actions.iter().any(|a| match a {
        Action::Output { port: p, .. } => *p == port,
        Action::OutputReg { .. } => true,
        Action::Controller(_) => port == Port::CONTROLLER,
        _ => false,
    })
}

fn uses_group(actions: &[Action], group: u32) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Group(g) if *g == group || group == GROUP_ALL))
}
