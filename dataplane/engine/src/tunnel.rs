//! Tunnel ports in a worker: decapsulation of frames received on the uplink, outer-header
//! templates for `DpAction::TunnelPush`, and packets parked while a next hop is resolved.
//!
//! The outer addressing (routes, neighbours, the uplink's MAC and MTU) comes from the control
//! thread as an immutable [`Underlay`] published with [`xvs_classifier::publish`]; a worker
//! adopts a new one at the start of a batch. Templates are built on the miss path (one per
//! distinct outer header) and referenced by index from cached actions. A new underlay version
//! flushes the worker's caches, and every flush empties the template table, so no cached
//! action can point at a template built from stale addressing.
//!
//! A next hop without a MAC does not drop the packet: it is parked in the worker's
//! [`NeighTable`] (bounded per next hop and in entries), one resolution request goes to the
//! control thread (which asks the kernel), and the packet is run through the pipeline again
//! when an underlay with the MAC arrives, or dropped and counted when resolution fails.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use xvs_classifier::publish::{Reader, Versioned};
use xvs_flowtable::datapath::TunnelPush;
use xvs_flowtable::tlv::{GeneveOptions, OptionError, TlvMap};
use xvs_io::Desc;
use xvs_packet::key::layout;
use xvs_packet::wire::MacAddr;
use xvs_packet::FlowKey;
use xvs_tunnel::neigh::NeighDrop;
use xvs_tunnel::TunnelKind;
use xvs_tunnel::{
    decap, endpoints, DecapConfig, DecapError, EncapMeta, Endpoints, Key, NeighConfig, NeighEvent,
    NeighTable, OuterL2, Remote, Resolution, RouteTable, Template, TunnelConfig,
};

use crate::counters::DropReason;

/// One tunnel port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelPort {
    /// Its OpenFlow port number (the `in_port` of decapsulated packets).
    pub ofport: u32,
    /// Its options.
    pub config: TunnelConfig,
}

/// The outer addressing a worker needs, published by the control thread.
#[derive(Clone, Debug, Default)]
pub struct Underlay {
    /// Strictly increasing on every change.
    pub version: u64,
    /// Routes towards tunnel destinations (`oif` = kernel ifindex).
    pub routes: RouteTable,
    /// Resolved neighbours: next-hop address -> MAC.
    pub neighbours: HashMap<IpAddr, MacAddr>,
    /// Kernel ifindex of the uplink: routes must leave through it.
    pub uplink_ifindex: u32,
    /// The uplink's MAC (outer source).
    pub uplink_mac: MacAddr,
    /// The uplink's MTU (outer IP packets larger than this are not sent).
    pub uplink_mtu: u32,
    /// The uplink's addresses, a source of last resort when neither the flow, the port nor
    /// the route gives one.
    pub uplink_addrs: Vec<IpAddr>,
}

impl Versioned for Underlay {
    fn version(&self) -> u64 {
        self.version
    }
}

impl Underlay {
    /// True when `other` resolves every destination exactly as `self` does (versions aside):
    /// the control thread publishes only real changes, so kernel neighbour-state churn
    /// (REACHABLE -> STALE) does not flush the workers' caches.
    pub fn same_addressing(&self, other: &Underlay) -> bool {
        self.routes.routes().eq(other.routes.routes())
            && self.neighbours == other.neighbours
            && self.uplink_ifindex == other.uplink_ifindex
            && self.uplink_mac == other.uplink_mac
            && self.uplink_mtu == other.uplink_mtu
            && self.uplink_addrs == other.uplink_addrs
    }
}

/// A next-hop resolution a worker asks the control thread for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SolicitRequest {
    /// The next hop.
    pub ip: IpAddr,
    /// The kernel ifindex to resolve it on.
    pub oif: u32,
}

/// Queue of resolution requests from one worker to the control thread.
pub const SOLICIT_QUEUE: usize = 256;

/// Most templates a worker keeps; when full, the caches and templates are flushed at the next
/// batch (templates are referenced by cached actions).
pub const MAX_TEMPLATES: usize = 16 * 1024;

/// Everything a worker needs for tunnels.
#[derive(Debug)]
pub struct TunnelSetup {
    /// The tunnel ports.
    pub ports: Vec<TunnelPort>,
    /// OpenFlow port number of the uplink (an AF_XDP or memory port of the same worker).
    pub uplink_ofport: u32,
    /// The published underlay.
    pub underlay: Reader<Underlay>,
    /// Where resolution requests go.
    pub solicit: rtrb::Producer<SolicitRequest>,
    /// Limits of the parking queue.
    pub neigh: NeighConfig,
}

/// A packet waiting for a next hop's MAC.
#[derive(Clone, Debug)]
pub struct Parked {
    /// The frame.
    pub desc: Desc,
    /// The worker port index it came in on.
    pub in_idx: u16,
    /// Its flow key as extracted (tunnel metadata and `in_port` included).
    pub key: FlowKey,
}

/// Why a tunnel output cannot be executed now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prepare {
    /// Drop every packet of the megaflow (cacheable: the underlay version guards it).
    Drop(DropReason),
    /// The next hop has no MAC yet: park the packet and resolve it.
    Pending {
        /// Next hop.
        ip: IpAddr,
        /// Kernel ifindex.
        oif: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TemplateKey {
    port: u32,
    ep: Endpoints,
    l2: OuterL2,
    oam: bool,
    options: GeneveOptions,
}

/// A decapsulated frame: where the inner frame is and the tunnel port it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inner {
    /// Offset of the inner frame in the received frame.
    pub offset: usize,
    /// Its length.
    pub len: usize,
    /// The tunnel's OpenFlow port.
    pub ofport: u32,
}

/// What became of a frame received on the uplink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Not for a tunnel port: an ordinary packet of the uplink.
    Plain,
    /// Decapsulated; the key's tunnel fields are set.
    Decapsulated(Inner),
    /// A frame for a tunnel port that was refused.
    Dropped(DropReason, Option<DecapError>),
}

/// A worker's tunnel state.
#[derive(Debug)]
pub struct TunnelStage {
    ports: Vec<TunnelPort>,
    decap: Vec<DecapConfig>,
    /// The distinct UDP destination ports of the tunnels (a quick filter).
    udp_ports: Vec<u16>,
    uplink_ofport: u32,
    underlay: Reader<Underlay>,
    solicit: rtrb::Producer<SolicitRequest>,
    templates: Vec<Template>,
    template_index: HashMap<TemplateKey, u32>,
    templates_full: bool,
    neigh: NeighTable<Parked>,
    /// Next time the parking table has timers to run (ms since `epoch`).
    neigh_deadline: Option<u64>,
    epoch: Instant,
    /// Packets released by resolution or failure, waiting to be run or dropped.
    released: VecDeque<Parked>,
    failed: VecDeque<Parked>,
    /// Resolution requests lost because the queue to the control thread was full.
    pub solicits_lost: u64,
    underlay_version: u64,
    /// Bumped whenever the templates must go (underlay change, template table full): part of
    /// the cache version, so the caches flush with them.
    epoch_counter: u64,
    /// The Geneve option map of the adopted pipeline version (decap fills `tun_metadata`).
    tlv: TlvMap,
}

impl TunnelStage {
    /// The stage for `setup`.
    pub fn new(mut setup: TunnelSetup) -> Self {
        let decap = setup
            .ports
            .iter()
            .map(|p| DecapConfig::from_config(&p.config))
            .collect();
        let mut udp_ports: Vec<u16> = setup.ports.iter().map(|p| p.config.dst_port).collect();
        udp_ports.sort_unstable();
        udp_ports.dedup();
        let underlay_version = setup.underlay.refresh().version;
        Self {
            ports: setup.ports,
            decap,
            udp_ports,
            uplink_ofport: setup.uplink_ofport,
            underlay: setup.underlay,
            solicit: setup.solicit,
            templates: Vec::with_capacity(64),
            template_index: HashMap::with_capacity(64),
            templates_full: false,
            neigh: NeighTable::new(setup.neigh),
            neigh_deadline: None,
            epoch: Instant::now(),
            released: VecDeque::new(),
            failed: VecDeque::new(),
            solicits_lost: 0,
            underlay_version,
            epoch_counter: 0,
            tlv: TlvMap::default(),
        }
    }

    /// The uplink's OpenFlow port.
    pub fn uplink_ofport(&self) -> u32 {
        self.uplink_ofport
    }

    /// The tunnel ports' OpenFlow numbers (for translation).
    pub fn ofports(&self) -> Vec<u32> {
        self.ports.iter().map(|p| p.ofport).collect()
    }

    /// Starts a batch: adopts the newest underlay, releases parked packets whose next hop is
    /// now known, runs the parking timers. Returns a number that changes whenever cached
    /// tunnel actions must be dropped (mixed into the cache version).
    pub fn begin_batch(&mut self) -> u64 {
        let version = self.underlay.refresh().version;
        if version != self.underlay_version {
            self.underlay_version = version;
            self.epoch_counter += 1;
            if !self.neigh.is_empty() {
                self.release_resolved();
            }
        }
        if self.templates_full {
            self.templates_full = false;
            self.epoch_counter += 1;
        }
        if let Some(deadline) = self.neigh_deadline {
            let now = self.now_ms();
            if now >= deadline {
                self.neigh.handle_timeout(now);
                self.drain_neigh_events();
                self.neigh_deadline = self.neigh.poll_timeout();
            }
        }
        self.epoch_counter
    }

    /// Adopts the option map of a new pipeline version (the caches flush with the version).
    pub fn set_tlv(&mut self, tlv: TlvMap) {
        self.tlv = tlv;
    }

    /// Called when the caches were flushed: no cached action refers to a template any more.
    pub fn caches_flushed(&mut self) {
        self.templates.clear();
        self.template_index.clear();
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn release_resolved(&mut self) {
        let snap = Arc::clone(self.underlay.snapshot());
        let now = self.now_ms();
        let waiting: Vec<IpAddr> = snap
            .neighbours
            .keys()
            .copied()
            .filter(|ip| self.neigh.state(*ip).is_some())
            .collect();
        for ip in waiting {
            if let Some(mac) = snap.neighbours.get(&ip) {
                let queue = self.neigh.learn(ip, *mac, snap.uplink_ifindex, now);
                self.released.extend(queue);
                // The published underlay is the source of truth for resolved entries; the
                // worker's table only holds packets that wait.
                self.neigh.remove(ip);
            }
        }
        self.neigh_deadline = self.neigh.poll_timeout();
    }

    fn drain_neigh_events(&mut self) {
        while let Some(ev) = self.neigh.poll_event() {
            match ev {
                NeighEvent::Solicit { ip, oif } => {
                    if self.solicit.push(SolicitRequest { ip, oif }).is_err() {
                        self.solicits_lost += 1;
                    }
                }
                NeighEvent::Failed { handle, .. } => self.failed.push_back(handle),
            }
        }
    }

    /// Parks `p` until `ip` is resolved on `oif`. Returns the drop reason when it cannot wait
    /// (the frame comes back in `Err` to be freed).
    pub fn park(&mut self, ip: IpAddr, oif: u32, p: Parked) -> Result<(), (Desc, DropReason)> {
        let now = self.now_ms();
        // The MAC may have been published since the translation (same batch): run it again.
        if self.underlay.snapshot().neighbours.contains_key(&ip) {
            self.released.push_back(p);
            return Ok(());
        }
        let r = match self.neigh.resolve(ip, oif, p, now) {
            Resolution::Queued => Ok(()),
            Resolution::Ready(_, p) => {
                self.released.push_back(p);
                Ok(())
            }
            Resolution::Dropped(p, NeighDrop::Unreachable) => {
                Err((p.desc, DropReason::TunnelNeighUnreachable))
            }
            Resolution::Dropped(p, _) => Err((p.desc, DropReason::TunnelNeighQueueFull)),
        };
        self.drain_neigh_events();
        self.neigh_deadline = self.neigh.poll_timeout();
        r
    }

    /// A packet released by resolution, to run through the pipeline again.
    pub fn pop_released(&mut self) -> Option<Parked> {
        self.released.pop_front()
    }

    /// A packet whose next hop never answered, to free and count.
    pub fn pop_failed(&mut self) -> Option<Parked> {
        self.failed.pop_front()
    }

    /// Frames held by parked or released packets.
    pub fn frames_held(&self) -> usize {
        self.neigh.queued() + self.released.len() + self.failed.len()
    }

    /// Classifies a frame received on the uplink and, for a tunnel port, decapsulates it into
    /// `key`'s tunnel fields.
    #[inline]
    pub fn receive(&self, frame: &[u8], key: &mut FlowKey) -> Received {
        let Some(dport) = udp_dst_port(frame) else {
            return Received::Plain;
        };
        if !self.udp_ports.contains(&dport) {
            return Received::Plain;
        }
        let mut refused = None;
        for (port, cfg) in self.ports.iter().zip(&self.decap) {
            if cfg.dst_port != dport {
                continue;
            }
            // `decap` writes the key only on success; a later refusal leaves tunnel fields that
            // the next candidate overwrites, or a packet that is dropped.
            match decap(cfg, frame, key) {
                Ok(d) => {
                    if let Remote::Ip(r) = port.config.remote {
                        if r != d.src {
                            refused.get_or_insert((DropReason::TunnelUnknown, None));
                            continue;
                        }
                    }
                    if let Key::Fixed(vni) = port.config.key {
                        if vni != d.vni {
                            refused = Some((DropReason::TunnelWrongVni, None));
                            continue;
                        }
                    }
                    if port.config.kind == TunnelKind::Geneve {
                        if let Err(e) = self.tlv.read_options(d.options_bytes(), key) {
                            let e = match e {
                                OptionError::Malformed => DecapError::BadGeneveOptions,
                                OptionError::LengthMismatch => DecapError::OptionLength,
                                OptionError::UnknownCritical => DecapError::UnknownCriticalOption,
                            };
                            refused = Some((DropReason::TunnelDecap, Some(e)));
                            continue;
                        }
                    }
                    return Received::Decapsulated(Inner {
                        offset: d.inner_offset,
                        len: d.inner_len,
                        ofport: port.ofport,
                    });
                }
                Err(DecapError::WrongDestination) => {
                    refused.get_or_insert((DropReason::TunnelUnknown, None));
                }
                Err(e) => {
                    refused.get_or_insert((DropReason::TunnelDecap, Some(e)));
                }
            }
        }
        let (reason, e) = refused.unwrap_or((DropReason::TunnelUnknown, None));
        Received::Dropped(reason, e)
    }

    /// Resolves a tunnel output into an outer-header template (built now, on the miss path)
    /// and returns its index.
    pub fn prepare(&mut self, push: &TunnelPush) -> Result<u32, Prepare> {
        let Some(port) = self.ports.iter().find(|p| p.ofport == push.port) else {
            return Err(Prepare::Drop(DropReason::TunnelEncap));
        };
        let cfg = port.config;
        let under = Arc::clone(self.underlay.snapshot());
        let meta = EncapMeta {
            tun_id: push.tun_id,
            tun_dst: push.dst,
            tun_src: push.src,
            geneve_options: push.options.as_bytes(),
            oam: push.flags & xvs_tunnel::TUN_FLAG_OAM != 0,
        };
        let dst = match cfg.remote {
            Remote::Ip(a) => a,
            Remote::Flow => push.dst.ok_or(Prepare::Drop(DropReason::TunnelEncap))?,
        };
        let hop = under
            .routes
            .lookup(dst)
            .filter(|h| h.oif == under.uplink_ifindex)
            .ok_or(Prepare::Drop(DropReason::TunnelNoRoute))?;
        let fallback = under
            .uplink_addrs
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == dst.is_ipv4());
        let ep = endpoints(&cfg, &meta, hop.pref_src.or(fallback))
            .map_err(|_| Prepare::Drop(DropReason::TunnelEncap))?;
        let Some(mac) = under.neighbours.get(&hop.ip).copied() else {
            return Err(Prepare::Pending {
                ip: hop.ip,
                oif: hop.oif,
            });
        };
        let l2 = OuterL2 {
            src: under.uplink_mac,
            dst: mac,
        };
        let tk = TemplateKey {
            port: push.port,
            ep,
            l2,
            oam: meta.oam,
            options: push.options,
        };
        if let Some(&i) = self.template_index.get(&tk) {
            return Ok(i);
        }
        if self.templates.len() >= MAX_TEMPLATES {
            self.templates_full = true;
            return Err(Prepare::Drop(DropReason::TunnelEncap));
        }
        let t = Template::new(&cfg, &ep, &meta, l2)
            .map_err(|_| Prepare::Drop(DropReason::TunnelEncap))?;
        let i = self.templates.len() as u32;
        self.templates.push(t);
        self.template_index.insert(tk, i);
        Ok(i)
    }

    /// The template at `i`.
    #[inline]
    pub fn template(&self, i: u32) -> Option<&Template> {
        self.templates.get(i as usize)
    }

    /// The uplink MTU of the adopted underlay.
    #[inline]
    pub fn uplink_mtu(&self) -> usize {
        self.underlay.snapshot().uplink_mtu as usize
    }

    /// The source of an ICMP error about a packet too big for the tunnel: the uplink's first
    /// address of the inner packet's family, else the inner destination (as if it answered).
    pub fn icmp_source(&self, v6: bool, key: &FlowKey) -> IpAddr {
        let under = self.underlay.snapshot();
        if let Some(a) = under.uplink_addrs.iter().find(|a| a.is_ipv6() == v6) {
            return *a;
        }
        if v6 {
            IpAddr::from(key.get128(layout::IPV6_DST).to_be_bytes())
        } else {
            IpAddr::from((key.get(layout::NW_DST) as u32).to_be_bytes())
        }
    }
}

/// The UDP destination port of an IPv4 (non-fragment or first fragment) or IPv6 (no extension
/// header) frame, without VLAN; `None` for anything else.
#[inline]
fn udp_dst_port(f: &[u8]) -> Option<u16> {
    let et = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    let l4 = match et {
        0x0800 => {
            let ihl = usize::from(f.get(14)? & 0x0f) * 4;
            if *f.get(23)? != 17 || ihl < 20 {
                return None;
            }
            14 + ihl
        }
        0x86dd => {
            if *f.get(20)? != 17 {
                return None;
            }
            54
        }
        _ => return None,
    };
    Some(u16::from_be_bytes([*f.get(l4 + 2)?, *f.get(l4 + 3)?]))
}

/// A hash of the inner flow for the outer UDP source port, from the extracted key (addresses,
/// protocol, ports), so packets of one flow share a source port (ECMP/RSS entropy).
#[inline]
pub fn key_hash(key: &FlowKey) -> u32 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for w in &key.words[28..35] {
        h = (h ^ w).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 31;
    }
    h ^= key.get(layout::ETH_TYPE);
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    (h ^ (h >> 32)) as u32
}
