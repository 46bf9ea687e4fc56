#!/usr/bin/env python3
"""Generates the flow corpus: flows in the style of Antrea's OVS pipeline (every table and every
match/action form listed in /work/shared/reference/antrea-pipeline.md), plus the groups, meters,
table names and port names they refer to.

Outputs (next to this script): tables.txt ("<id> <name>"), ports.txt ("<ofport> <name> <type>"),
groups.txt, meters.txt, flows.txt (one add-flows line each, using table and port names).
Deterministic: no randomness, so the expected files stay stable.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

TABLES = """PipelineRootClassifier ARPSpoofGuard ARPResponder Classifier SpoofGuard IPv6
PipelineIPClassifier UnSNAT ConntrackZone ConntrackState PreRoutingClassifier NodePortMark
SessionAffinity ServiceLB DSRServiceMark EndpointDNAT AntreaPolicyEgressRule EgressRule
EgressDefaultRule EgressMetric L3Forwarding EgressMark EgressQoS L3DecTTL SNATMark SNAT
L2ForwardingCalc TrafficControl IngressSecurityClassifier AntreaPolicyIngressRule IngressRule
IngressDefaultRule IngressMetric ConntrackCommit VLAN Output MulticastEgressRule
MulticastEgressMetric MulticastEgressPodMetric MulticastRouting MulticastIngressRule
MulticastIngressMetric MulticastIngressPodMetric MulticastOutput NonIP""".split()
T = {name: i for i, name in enumerate(TABLES)}

TUN, GW, UPLINK, HOST = 32768, 32769, 32770, 32771
PODS = [(5 + i, "pod%d-%s" % (i, "abcdefgh"[i % 8] * 3)) for i in range(12)]
PORTS = [(TUN, "antrea-tun0", "geneve"), (GW, "antrea-gw0", "internal"),
         (UPLINK, "eth0", "system"), (HOST, "eth0~", "internal"),
         (40, "antrea-l7-tap0", "internal"), (41, "antrea-l7-tap1", "internal"),
         (42, "tc-mirror", "internal")] + [(p, n, "system") for p, n in PODS]

GW_IP, GW_MAC = "10.10.0.1", "aa:bb:cc:00:00:01"
GVMAC = "aa:bb:cc:dd:ee:ff"
VIRT_SVC_IP, VIRT_NP_IP = "169.254.0.253", "169.254.0.252"
PEERS = [("10.10.%d.0/24" % (i + 1), "10.10.%d.1" % (i + 1), "192.168.77.%d" % (101 + i)) for i in range(8)]
POD_IPS = ["10.10.0.%d" % (10 + i) for i in range(len(PODS))]
POD_MACS = ["0a:58:0a:0a:00:%02x" % (10 + i) for i in range(len(PODS))]
POD_IP6 = ["fd74:ca9b:172:16::%x" % (10 + i) for i in range(4)]


def ck(cat, obj=0, rnd=1):
    return "0x%x" % ((rnd << 48) | (cat << 40) | obj)


flows = []


def add(table, prio, match, actions, cookie=None, extra=""):
    parts = []
    if cookie:
        parts.append("cookie=" + cookie)
    parts.append("table=" + table)
    parts.append("priority=%d" % prio)
    if extra:
        parts.append(extra)
    if match:
        parts.append(match)
    flows.append(",".join(parts) + " actions=" + actions)


def nxt(name):
    return "goto_table:" + TABLES[T[name] + 1]


# --- misses: goto next (or drop) for every table ---
DROP_MISS = {"PipelineRootClassifier", "ARPSpoofGuard", "Classifier", "SpoofGuard", "NonIP", "Output",
             "MulticastOutput", "ARPResponder"}
for name in TABLES:
    if name in DROP_MISS or name == TABLES[-1]:
        add(name, 0, "", "drop", ck(0))
    else:
        add(name, 0, "", "goto_table:" + TABLES[T[name] + 1], ck(0))

# --- PipelineRootClassifier ---
add("PipelineRootClassifier", 200, "arp", "goto_table:ARPSpoofGuard", ck(1))
add("PipelineRootClassifier", 200, "ip", "goto_table:Classifier", ck(1))
add("PipelineRootClassifier", 200, "ipv6", "goto_table:Classifier", ck(1))
add("PipelineRootClassifier", 190, "in_port=eth0", "goto_table:NonIP", ck(8))

# --- ARPSpoofGuard / ARPResponder ---
add("ARPSpoofGuard", 200, "arp,in_port=antrea-gw0,arp_spa=%s,arp_sha=%s" % (GW_IP, GW_MAC), "goto_table:ARPResponder", ck(1))
for (p, n), ip, mac in zip(PODS, POD_IPS, POD_MACS):
    add("ARPSpoofGuard", 200, "arp,in_port=%s,arp_spa=%s,arp_sha=%s" % (n, ip, mac), "goto_table:ARPResponder", ck(1, p))
for cidr, gw, node in PEERS:
    add("ARPResponder", 200, "arp,arp_op=1,arp_tpa=" + gw,
        "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:%s->eth_src,set_field:2->arp_op,"
        "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:%s->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],"
        "set_field:%s->arp_spa,IN_PORT" % (GVMAC, GVMAC, gw), ck(1))
add("ARPResponder", 190, "arp", "NORMAL", ck(1))
add("ARPResponder", 200, "arp,arp_op=1,arp_tpa=10.10.0.254",
    "move:NXM_OF_ARP_SPA[]->NXM_NX_REG2[],move:NXM_OF_ARP_TPA[]->NXM_OF_ARP_SPA[],move:NXM_NX_REG2[]->NXM_OF_ARP_TPA[],"
    "load:0x2->NXM_OF_ARP_OP[],move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],mod_dl_src:aa:bb:cc:dd:ee:fe,IN_PORT", ck(1))
add("ARPResponder", 195, "arp,arp_op=2,arp_spa=10.10.0.0/16,arp_tha=00:00:00:00:00:00", "NORMAL", ck(1))

# --- Classifier ---
add("Classifier", 210, "ip,in_port=antrea-gw0,nw_src=" + GW_IP,
    "set_field:0x2/0xf->reg0,set_field:0x10000000/0x10000000->reg4,goto_table:SpoofGuard", ck(1))
add("Classifier", 200, "in_port=antrea-gw0",
    "set_field:0x2/0xf->reg0,set_field:0x8000000/0x8000000->reg4,goto_table:SpoofGuard", ck(1))
add("Classifier", 200, "in_port=antrea-tun0",
    "set_field:0x1/0xf->reg0,set_field:0x200/0x200->reg0,goto_table:UnSNAT", ck(1))
for i, (p, n) in enumerate(PODS):
    if i % 4 == 3:
        add("Classifier", 190, "in_port=" + n,
            "load:0x3->NXM_NX_REG0[0..3],load:0x1->NXM_NX_REG4[28],load:0x1->NXM_NX_REG4[20],load:0x1->NXM_NX_REG0[9],goto_table:SpoofGuard", ck(1, p))
    elif i % 4 == 2:
        add("Classifier", 190, "in_port=" + n,
            "set_field:0x3/0xf->reg0,set_field:0x10000000/0x10000000->reg4,set_field:0x%x->tun_id,goto_table:SpoofGuard" % (0x100 + i), ck(6, p))
    else:
        add("Classifier", 190, "in_port=" + n,
            "set_field:0x3/0xf->reg0,set_field:0x10000000/0x10000000->reg4,goto_table:SpoofGuard", ck(1, p))
add("Classifier", 200, "in_port=tc-mirror", "set_field:0x6/0xf->reg0,goto_table:L3Forwarding", ck(1))
add("Classifier", 200, "in_port=antrea-l7-tap1,vlan_tci=0x1000/0x1000", "pop_vlan,set_field:0x7/0xf->reg0,goto_table:UnSNAT", ck(1))
add("Classifier", 210, "ip,in_port=eth0,dl_vlan=10,dl_dst=0a:58:0a:0a:00:0a",
    "set_field:0x1000/0xf000->reg8,set_field:0xa/0xfff->reg8,set_field:0x4/0xf->reg0,goto_table:UnSNAT", ck(1))
add("Classifier", 210, "ip,in_port=LOCAL,vlan_tci=0/0x1fff,dl_dst=0a:58:0a:0a:00:0b",
    "set_field:0x1000/0xf000->reg8,set_field:0x5/0xf->reg0,goto_table:UnSNAT", ck(1))
add("Classifier", 200, "in_port=eth0", "output:LOCAL", ck(8))
add("Classifier", 200, "in_port=LOCAL", "output:eth0", ck(8))
add("Classifier", 210, "ip,in_port=antrea-tun0,nw_dst=224.0.0.0/4", "set_field:0x1/0xf->reg0,goto_table:MulticastEgressRule", ck(5))
add("Classifier", 210, "ip,in_port=LOCAL,nw_dst=224.0.0.0/4", "goto_table:MulticastEgressRule", ck(5))
add("Classifier", 200, "in_port=CONTROLLER", "goto_table:PipelineIPClassifier", ck(5))

# --- SpoofGuard / IPv6 ---
add("SpoofGuard", 200, "ip,in_port=antrea-gw0", "goto_table:IPv6", ck(1))
for (p, n), ip, mac in zip(PODS, POD_IPS, POD_MACS):
    add("SpoofGuard", 200, "ip,in_port=%s,dl_src=%s,nw_src=%s" % (n, mac, ip), "goto_table:PipelineIPClassifier", ck(1, p))
for (p, n), ip6, mac in zip(PODS, POD_IP6, POD_MACS):
    add("SpoofGuard", 200, "ipv6,in_port=%s,dl_src=%s,ipv6_src=%s" % (n, mac, ip6), "goto_table:IPv6", ck(1, p))
    add("SpoofGuard", 200, "ipv6,in_port=%s,dl_src=%s,ipv6_src=fe80::/10" % (n, mac), "goto_table:IPv6", ck(1, p))
add("IPv6", 200, "icmp6,icmp_type=135,icmp_code=0", "NORMAL", ck(1))
add("IPv6", 200, "icmp6,icmp_type=136,icmp_code=0", "NORMAL", ck(1))
add("IPv6", 200, "ipv6,ipv6_dst=ff00::/8", "NORMAL", ck(1))
add("IPv6", 201, "icmp6,icmp_type=135,nd_target=fe80::1,nd_sll=aa:bb:cc:00:00:01", "NORMAL", ck(1))
add("IPv6", 201, "icmp6,icmp_type=136,nd_target=fe80::2,nd_tll=aa:bb:cc:00:00:02", "NORMAL", ck(1))
add("IPv6", 199, "ipv6,ipv6_label=0x12345,ipv6_dst=fd74:ca9b:172:16::/64", "goto_table:PipelineIPClassifier", ck(1))

# --- PipelineIPClassifier ---
add("PipelineIPClassifier", 210, "ip,nw_dst=224.0.0.0/4", "resubmit(,MulticastEgressRule)", ck(5))
add("PipelineIPClassifier", 200, "udp,nw_dst=224.0.0.0/4,tp_dst=5353", "resubmit(,MulticastEgressRule),resubmit(,MulticastRouting)", ck(5))

# --- UnSNAT / ConntrackZone / ConntrackState ---
add("UnSNAT", 200, "ip,nw_dst=" + VIRT_SVC_IP, "ct(table=ConntrackZone,zone=65521,nat)", ck(3))
add("UnSNAT", 200, "ip,nw_dst=" + GW_IP, "ct(table=ConntrackZone,zone=65521,nat)", ck(3))
add("UnSNAT", 200, "ipv6,ipv6_dst=fc01::aabb:ccdd:eeff", "ct(table=ConntrackZone,zone=65511,nat)", ck(3))
add("UnSNAT", 200, "ip,nw_dst=10.10.0.253", "ct(table=ConntrackZone,zone=65521,nat)", ck(6))
add("ConntrackZone", 200, "ip", "ct(table=ConntrackState,zone=65520,nat)", ck(1))
add("ConntrackZone", 200, "ipv6", "ct(table=ConntrackState,zone=65510,nat)", ck(1))
add("ConntrackZone", 212, "ip,reg0=0x800000/0x800000", "ct(table=ConntrackZone,zone=65520)", ck(1))
add("ConntrackZone", 211, "ct_state=+rpl+trk,ip,reg0=0x7/0xf", "ct(table=L3Forwarding,zone=65520,nat)", ck(1))
add("ConntrackZone", 210, "ct_state=-rpl+trk,ip,reg0=0x7/0xf", "ct(table=ConntrackState,zone=65520,nat)", ck(1))
add("ConntrackZone", 205, "ip,vlan_tci=0x1000/0x1000", "ct(table=ConntrackState,zone=NXM_NX_REG8[0..15],nat)", ck(1))
add("ConntrackState", 200, "ct_state=+inv+trk,ip", "drop", ck(1))
add("ConntrackState", 200, "ct_state=+inv+trk,ipv6", "drop", ck(1))
add("ConntrackState", 190, "ct_state=-new+trk,ct_mark=0/0x10,ip", "goto_table:AntreaPolicyEgressRule", ck(1))
add("ConntrackState", 190, "ct_state=-new+trk,ct_mark=0x10/0x10,ip", "set_field:0x200/0x200->reg0,goto_table:AntreaPolicyEgressRule", ck(3))
add("ConntrackState", 190, "ct_state=-new+trk,ct_mark=0/0x10,ipv6", "goto_table:AntreaPolicyEgressRule", ck(1))
add("ConntrackState", 210, "ct_state=+inv+trk,ip,reg4=0x8000000/0x8000000", "goto_table:PreRoutingClassifier", ck(3))
for d in (1, 2, 5, 63):
    add("ConntrackState", 191, "ct_state=+new+trk,ip,nw_src=10.10.0.10,ip_dscp=%d" % d,
        "controller(id=12345,reason=no_match,userdata=00,max_len=65535),goto_table:AntreaPolicyEgressRule", ck(7, d), "hard_timeout=300")
add("ConntrackState", 192, "ct_state=-new+trk,ip,in_port=pod0-aaa,ip_dscp=7", "goto_table:AntreaPolicyEgressRule", ck(7, 7), "hard_timeout=300")
add("ConntrackState", 190, "ct_state=0x22/0x22,ip", "goto_table:AntreaPolicyEgressRule", ck(7))
add("ConntrackState", 189, "ct_state=est|trk,ip", "goto_table:AntreaPolicyEgressRule", ck(7))
add("ConntrackState", 188, "ct_state=+dnat+trk-snat,ip", "goto_table:AntreaPolicyEgressRule", ck(7))

# --- PreRoutingClassifier / NodePortMark / SessionAffinity ---
add("PreRoutingClassifier", 200, "ip", "resubmit(,NodePortMark),resubmit(,SessionAffinity),resubmit(,ServiceLB)", ck(3))
add("PreRoutingClassifier", 200, "ipv6", "resubmit(,SessionAffinity),resubmit(,ServiceLB)", ck(3))
for ip in ("192.168.77.100", "10.10.0.1", VIRT_NP_IP, "172.18.0.2"):
    add("NodePortMark", 200, "ip,nw_dst=" + ip, "set_field:0x80000/0x80000->reg4", ck(3))
add("NodePortMark", 200, "ipv6,ipv6_dst=fc00::1", "set_field:0x80000/0x80000->reg4", ck(3))
add("SessionAffinity", 0, "", "set_field:0x10000/0x70000->reg4", ck(3))
add("SessionAffinity", 200, "tcp,nw_src=10.10.0.10,nw_dst=10.96.0.10,tp_dst=53",
    "set_field:0xa0a0010->reg3,set_field:0x35/0xffff->reg4,set_field:0x20000/0x70000->reg4,set_field:0x200/0x200->reg0", ck(3, 7), "hard_timeout=10800")
add("SessionAffinity", 210, "tcp,nw_src=172.18.0.5,nw_dst=10.96.0.100,tp_src=40000,tp_dst=80",
    "set_field:0xa0a010a->reg3,set_field:0x50/0xffff->reg4,set_field:0x4000000/0x4000000->reg4,set_field:0x20000/0x70000->reg4,set_field:0x200/0x200->reg0,set_field:0x2000000/0x2000000->reg4",
    ck(3, 8), "idle_timeout=160")
add("SessionAffinity", 200, "tcp6,ipv6_src=fd74:ca9b:172:16::a,ipv6_dst=fd00:10:96::a,tp_dst=53",
    "set_field:0xfd74ca9b017200160000000000000010->xxreg3,set_field:0x35/0xffff->reg4,set_field:0x20000/0x70000->reg4", ck(3, 9), "hard_timeout=10800")

# --- ServiceLB ---
svcs = [("tcp", "10.96.0.1", 443, 1), ("udp", "10.96.0.10", 53, 2), ("tcp", "10.96.0.10", 53, 3),
        ("tcp", "10.96.100.20", 80, 4), ("sctp", "10.96.100.21", 132, 5), ("tcp", "10.96.100.22", 8080, 6),
        ("udp", "10.96.100.23", 161, 7), ("tcp", "10.96.100.24", 9090, 8)]
for proto, vip, port, gid in svcs:
    add("ServiceLB", 200, "%s,reg4=0x10000/0x70000,nw_dst=%s,tp_dst=%d" % (proto, vip, port),
        "set_field:0x200/0x200->reg0,set_field:0x20000/0x70000->reg4,set_field:0x%x->reg7,group:%d" % (gid, gid), ck(3, gid))
for proto, port, gid in (("tcp", 30080, 4), ("udp", 30053, 2)):
    add("ServiceLB", 200, "%s,reg4=0x90000/0xf0000,tp_dst=%d" % (proto, port),
        "set_field:0x200/0x200->reg0,set_field:0x20000/0x70000->reg4,set_field:0x%x->reg7,group:%d" % (gid, gid), ck(3, gid))
add("ServiceLB", 200, "tcp,reg4=0x10000/0x70000,nw_dst=172.18.0.100,tp_dst=80",
    "set_field:0x200/0x200->reg0,set_field:0x20000/0x70000->reg4,set_field:0x200000/0x200000->reg4,set_field:0x9->reg7,group:9", ck(3, 9))
add("ServiceLB", 210, "tcp,reg4=0x10010000/0x10070000,nw_dst=172.18.0.100,tp_dst=80",
    "set_field:0x200/0x200->reg0,set_field:0x20000/0x70000->reg4,set_field:0x200000/0x200000->reg4,set_field:0xa->reg7,group:10", ck(3, 10))
add("ServiceLB", 190, "tcp,reg4=0x30000/0x70000,nw_dst=10.96.0.10,tp_dst=53",
    "learn(table=SessionAffinity,hard_timeout=10800,priority=200,delete_learned,cookie=0x1030000000003,eth_type=0x800,nw_proto=6,NXM_OF_TCP_DST[],NXM_OF_IP_DST[],NXM_OF_IP_SRC[],load:NXM_NX_REG3[]->NXM_NX_REG3[],load:NXM_NX_REG4[0..15]->NXM_NX_REG4[0..15],load:0x2->NXM_NX_REG4[16..18],load:0x1->NXM_NX_REG0[9]),set_field:0x20000/0x70000->reg4,goto_table:EndpointDNAT", ck(3, 3))
add("ServiceLB", 190, "udp,reg4=0x30000/0x70000,nw_dst=10.96.0.10,tp_dst=53",
    "learn(table=SessionAffinity,hard_timeout=300,priority=200,delete_learned,cookie=0x1030000000002,eth_type=0x800,nw_proto=17,NXM_OF_UDP_DST[],NXM_OF_IP_DST[],NXM_OF_IP_SRC[],load:NXM_NX_REG3[]->NXM_NX_REG3[],load:NXM_NX_REG4[0..15]->NXM_NX_REG4[0..15],load:0x2->NXM_NX_REG4[16..18],load:0x1->NXM_NX_REG0[9],load:0x1->NXM_NX_REG4[21]),set_field:0x20000/0x70000->reg4,goto_table:EndpointDNAT", ck(3, 2))
add("ServiceLB", 190, "tcp6,reg4=0x30000/0x70000,ipv6_dst=fd00:10:96::a,tp_dst=53",
    "learn(table=SessionAffinity,hard_timeout=10800,priority=200,delete_learned,cookie=0x1030000000011,eth_type=0x86dd,nw_proto=6,NXM_OF_TCP_DST[],NXM_NX_IPV6_DST[],NXM_NX_IPV6_SRC[],load:NXM_NX_XXREG3[]->NXM_NX_XXREG3[],load:NXM_NX_REG4[0..15]->NXM_NX_REG4[0..15],load:0x2->NXM_NX_REG4[16..18],load:0x1->NXM_NX_REG0[9]),set_field:0x20000/0x70000->reg4,goto_table:EndpointDNAT", ck(3, 0x11))
add("ServiceLB", 200, "tcp6,reg4=0x10000/0x70000,ipv6_dst=fd00:10:96::1,tp_dst=443",
    "set_field:0x200/0x200->reg0,set_field:0x20000/0x70000->reg4,set_field:0x12->reg7,group:18", ck(3, 18))

# --- DSRServiceMark ---
add("DSRServiceMark", 200, "tcp,reg4=0xc000000/0xe000000,nw_dst=172.18.0.200,tp_dst=80",
    "learn(table=SessionAffinity,idle_timeout=160,fin_idle_timeout=5,priority=210,delete_learned,cookie=0x1030000000020,eth_type=0x800,nw_proto=6,NXM_OF_TCP_SRC[],NXM_OF_TCP_DST[],NXM_OF_IP_SRC[],NXM_OF_IP_DST[],load:NXM_NX_REG3[]->NXM_NX_REG3[],load:NXM_NX_REG4[0..15]->NXM_NX_REG4[0..15],load:0x2->NXM_NX_REG4[16..18],load:0x1->NXM_NX_REG4[25],load:0x1->NXM_NX_REG0[9]),set_field:0x2000000/0x2000000->reg4", ck(3, 0x20))
add("DSRServiceMark", 190, "ct_state=+inv+trk,ip,reg4=0/0x2000000", "drop", ck(3))

# --- EndpointDNAT ---
add("EndpointDNAT", 200, "reg0=0x4000/0x4000", "controller(reason=no_match,id=62373,userdata=04)", ck(3))
eps = [("tcp", "10.10.0.10", 443), ("udp", "10.10.0.11", 53), ("tcp", "10.10.0.11", 53), ("tcp", "10.10.1.10", 80),
       ("sctp", "10.10.0.12", 132), ("tcp", "10.10.2.20", 8080), ("udp", "10.10.3.30", 161), ("tcp", "10.10.0.13", 9090)]
for proto, ip, port in eps:
    a, b, c, d = (int(x) for x in ip.split("."))
    ipn = (a << 24) | (b << 16) | (c << 8) | d
    add("EndpointDNAT", 200, "%s,reg3=0x%x,reg4=0x%x/0x7ffff" % (proto, ipn, 0x20000 | port),
        "ct(commit,table=AntreaPolicyEgressRule,zone=65520,nat(dst=%s:%d),exec(set_field:0x10/0x10->ct_mark,move:NXM_NX_REG0[0..3]->NXM_NX_CT_MARK[0..3]))" % (ip, port), ck(3))
add("EndpointDNAT", 200, "tcp6,reg4=0x201bb/0x7ffff,xxreg3=0xfd74ca9b017200160000000000000010",
    "ct(commit,table=AntreaPolicyEgressRule,zone=65510,nat(dst=[fd74:ca9b:172:16::10]:443),exec(set_field:0x10/0x10->ct_mark))", ck(3))
add("EndpointDNAT", 200, "udp6,reg4=0x20035/0x7ffff,xxreg3=0xfd74ca9b017200160000000000000011",
    "ct(commit,table=AntreaPolicyEgressRule,zone=65510,nat(dst=[fd74:ca9b:172:16::11]:53),exec(set_field:0x10/0x10->ct_mark))", ck(3))
add("EndpointDNAT", 210, "tcp,reg3=0xa60640a,reg4=0x1020050/0x107ffff", "group:11", ck(3))
add("EndpointDNAT", 210, "ip,reg4=0x2000000/0x2000000", "ct(commit,table=AntreaPolicyEgressRule,zone=65520)", ck(3))
add("EndpointDNAT", 190, "reg4=0x20000/0x70000", "set_field:0x10000/0x70000->reg4,resubmit(,ServiceLB)", ck(3))
add("EndpointDNAT", 200, "tcp,reg3=0xa0a0014,reg4=0x21f90/0x7ffff",
    "ct(commit,table=AntreaPolicyEgressRule,zone=65520,nat(dst=10.10.0.20-10.10.0.29:8080-8090,random),exec(set_field:0x10/0x10->ct_mark))", ck(3))

# --- Egress policy tables (conjunctions, metrics) ---
add("AntreaPolicyEgressRule", 64990, "ct_state=-new+est,ip", "goto_table:EgressMetric", ck(2))
add("AntreaPolicyEgressRule", 64990, "ct_state=-new+rel,ip", "goto_table:EgressMetric", ck(2))
add("AntreaPolicyEgressRule", 64990, "ct_state=-new+est,ipv6", "goto_table:EgressMetric", ck(2))
conj = 1
for rule in range(10):
    prio = 44900 - rule * 20
    cid = 100 + rule
    src = POD_IPS[rule % len(POD_IPS)]
    add("AntreaPolicyEgressRule", prio, "ip,nw_src=" + src, "conjunction(%d,1/3)" % cid, ck(2, cid))
    add("AntreaPolicyEgressRule", prio, "ip,nw_dst=10.20.%d.0/24" % rule, "conjunction(%d,2/3)" % cid, ck(2, cid))
    proto = ("tcp", "udp", "sctp")[rule % 3]
    if rule % 2:
        add("AntreaPolicyEgressRule", prio, "%s,tp_dst=%d" % (proto, 8000 + rule), "conjunction(%d,3/3)" % cid, ck(2, cid))
    else:
        add("AntreaPolicyEgressRule", prio, "%s,tp_dst=0x%x/0xfff0" % (proto, 0x8000 + rule * 16), "conjunction(%d,3/3)" % cid, ck(2, cid))
    if rule % 3 == 0:
        add("AntreaPolicyEgressRule", prio, "conj_id=%d,ip" % cid,
            "set_field:0x%x->reg5,ct(commit,table=EgressMetric,zone=65520,exec(set_field:0x%x00000000/0xffffffff00000000->ct_label))" % (cid, cid), ck(2, cid))
    elif rule % 3 == 1:
        add("AntreaPolicyEgressRule", prio, "conj_id=%d,ip" % cid,
            "set_field:0x%x->reg3,set_field:0x400/0x400->reg0,goto_table:EgressMetric" % cid, ck(2, cid))
    else:
        add("AntreaPolicyEgressRule", prio, "conj_id=%d,ip" % cid,
            "set_field:0x%x->reg5,set_field:0x800/0x1800->reg0,set_field:0x2000000/0xfe000000->reg0,set_field:0x10/0xff->reg2,group:%d" % (cid, 100 + rule), ck(2, cid))
add("AntreaPolicyEgressRule", 44000, "ip,nw_src=10.10.0.10", "conjunction(200,1/2),conjunction(201,1/3),conjunction(202,1/2)", ck(2, 200))
add("AntreaPolicyEgressRule", 44000, "ip,reg7=0x4", "conjunction(200,2/2)", ck(2, 200))
add("AntreaPolicyEgressRule", 44000, "ct_state=+new+trk,ip,ct_nw_src=172.18.0.5", "conjunction(202,2/2)", ck(2, 202))
add("AntreaPolicyEgressRule", 44000, "icmp,icmp_type=8,icmp_code=0", "conjunction(201,2/3)", ck(2, 201))
add("AntreaPolicyEgressRule", 44000, "tun_id=0x10a", "conjunction(201,3/3)", ck(2, 201))
add("AntreaPolicyEgressRule", 44000, "conj_id=200,ip", "set_field:0xc8->reg5,ct(commit,table=EgressMetric,zone=65520,exec(set_field:0xc800000000/0xffffffff00000000->ct_label))", ck(2, 200))
add("AntreaPolicyEgressRule", 44000, "conj_id=201,ip",
    "set_field:0xc9->reg5,ct(commit,table=EgressMetric,zone=65520,exec(set_field:0xc900000000/0xffffffff00000000->ct_label)),set_field:0x2000000/0xfe000000->reg0,set_field:0x400000/0x600000->reg0,set_field:0x10/0xff->reg2,goto_table:Output", ck(2, 201))
add("AntreaPolicyEgressRule", 43000, "ipv6,ipv6_src=fd74:ca9b:172:16::a", "conjunction(300,1/2)", ck(2, 300))
add("AntreaPolicyEgressRule", 43000, "ipv6,ipv6_dst=fd00:20::/48", "conjunction(300,2/2)", ck(2, 300))
add("AntreaPolicyEgressRule", 43000, "conj_id=300,ipv6", "set_field:0x12c->reg5,ct(commit,table=EgressMetric,zone=65510,exec(set_field:0x12c00000000/0xffffffff00000000->ct_label))", ck(2, 300))
add("AntreaPolicyEgressRule", 43001, "ct_state=+new+trk,ipv6,ct_ipv6_src=fd00:30::1", "conjunction(301,1/2)", ck(2, 301))
for rule in range(6):
    cid = 400 + rule
    add("EgressRule", 200, "ip,nw_src=" + POD_IPS[rule], "conjunction(%d,1/2)" % cid, ck(2, cid))
    add("EgressRule", 200, "tcp,tp_dst=%d" % (80 + rule), "conjunction(%d,2/2)" % cid, ck(2, cid))
    add("EgressRule", 190, "conj_id=%d,ip" % cid,
        "set_field:0x%x->reg5,ct(commit,table=EgressMetric,zone=65520,exec(set_field:0x%x00000000/0xffffffff00000000->ct_label))" % (cid, cid), ck(2, cid))
for ip in POD_IPS[:6]:
    add("EgressDefaultRule", 200, "ip,nw_src=" + ip, "drop", ck(2))
add("EgressDefaultRule", 200, "ipv6,ipv6_src=fd74:ca9b:172:16::a", "drop", ck(2))
for i in range(3):
    add("EgressDefaultRule", 20 + i * 10, "conj_id=%d,ip" % (500 + i), "set_field:0x%x->reg3,set_field:0x400/0x400->reg0,goto_table:EgressMetric" % (500 + i), ck(2, 500 + i))
for cid in list(range(100, 110)) + [200, 201, 202, 300] + list(range(400, 406)):
    add("EgressMetric", 200, "ct_state=+new,ct_label=0x%x00000000/0xffffffff00000000,ip" % cid, "goto_table:L3Forwarding", ck(2, cid))
    add("EgressMetric", 200, "ct_state=-new,ct_label=0x%x00000000/0xffffffff00000000,ip" % cid, "goto_table:L3Forwarding", ck(2, cid))
for cid in (101, 104, 107, 500, 501):
    add("EgressMetric", 200, "reg0=0x400/0x400,reg3=0x%x" % cid, "drop", ck(2, cid))

# --- L3Forwarding ---
add("L3Forwarding", 210, "ip,nw_dst=" + GW_IP, "set_field:%s->eth_dst,set_field:0x20/0xf0->reg0,goto_table:L3DecTTL" % GW_MAC, ck(1))
add("L3Forwarding", 210, "ct_state=+rpl+trk,ct_mark=0x2/0xf,ip", "set_field:%s->eth_dst,set_field:0x20/0xf0->reg0,goto_table:L3DecTTL" % GW_MAC, ck(1))
add("L3Forwarding", 200, "ip,reg0=0/0x200,nw_dst=10.10.0.0/24", "goto_table:L2ForwardingCalc", ck(1))
for cidr, gw, node in PEERS:
    add("L3Forwarding", 200, "ip,nw_dst=" + cidr,
        "set_field:%s->eth_src,set_field:%s->eth_dst,set_field:%s->tun_dst,set_field:0x10/0xf0->reg0,goto_table:L3DecTTL" % (GW_MAC, GVMAC, node), ck(1))
add("L3Forwarding", 200, "ipv6,ipv6_dst=fd74:ca9b:172:17::/64",
    "set_field:%s->eth_src,set_field:%s->eth_dst,set_field:fc00::77:101->tun_ipv6_dst,set_field:0x10/0xf0->reg0,goto_table:L3DecTTL" % (GW_MAC, GVMAC), ck(1))
for ip, mac in zip(POD_IPS, POD_MACS):
    add("L3Forwarding", 200, "ip,reg0=0x200/0x200,nw_dst=" + ip, "set_field:%s->eth_src,set_field:%s->eth_dst,goto_table:L3DecTTL" % (GW_MAC, mac), ck(1))
add("L3Forwarding", 190, "ct_state=-rpl+trk,ip,reg0=0x3/0xf,reg4=0/0x100000", "goto_table:EgressMark", ck(4))
add("L3Forwarding", 190, "ct_state=-rpl+trk,ip,reg0=0x1/0xf", "set_field:%s->eth_dst,goto_table:EgressMark" % GW_MAC, ck(4))
add("L3Forwarding", 190, "ct_mark=0x10/0x10,reg0=0x202/0x20f", "set_field:%s->eth_dst,set_field:0x20/0xf0->reg0,goto_table:L3DecTTL" % GW_MAC, ck(3))
add("L3Forwarding", 201, "ct_mark=0x1/0xf,reg0=0x2/0xf,ip", "set_field:%s->eth_dst,set_field:0x10/0xf0->reg0,goto_table:L3DecTTL" % GVMAC, ck(4))
add("L3Forwarding", 200, "ip,reg3=0xa0a0100/0xffffff00", "set_field:%s->eth_src,set_field:%s->eth_dst,set_field:192.168.77.101->tun_dst,set_field:0x10/0xf0->reg0,goto_table:L3DecTTL" % (GW_MAC, GVMAC), ck(3))
add("L3Forwarding", 200, "ip,nw_dst=10.244.0.0/16", "set_field:%s->eth_src,set_field:aa:bb:cc:dd:ee:f0->eth_dst,set_field:192.168.77.200->tun_dst,set_field:0x10/0xf0->reg0,goto_table:L3DecTTL" % GW_MAC, ck(6))

# --- EgressMark / EgressQoS / L3DecTTL ---
for cidr, gw, node in PEERS[:3]:
    add("EgressMark", 210, "ip,nw_dst=" + node, "set_field:0x20/0xf0->reg0,goto_table:L2ForwardingCalc", ck(4))
add("EgressMark", 210, "ip,nw_dst=10.96.0.0/12", "set_field:0x20/0xf0->reg0,goto_table:L2ForwardingCalc", ck(4))
for i, (p, n) in enumerate(PODS[:4]):
    add("EgressMark", 200, "ct_state=+trk,ip,in_port=" + n, "set_field:0x%x/0xff->pkt_mark,set_field:0x20/0xf0->reg0,goto_table:L2ForwardingCalc" % (i + 1), ck(4, p))
add("EgressMark", 200, "ct_state=+trk,ip,tun_dst=192.168.77.50", "set_field:0x7/0xff->pkt_mark,set_field:0x20/0xf0->reg0,goto_table:L2ForwardingCalc", ck(4))
add("EgressMark", 200, "ip,in_port=pod5-fff", "set_field:%s->eth_src,set_field:%s->eth_dst,set_field:192.168.77.102->tun_dst,set_field:0x10/0xf0->reg0,set_field:0x80000/0x80000->reg0,goto_table:L2ForwardingCalc" % (GW_MAC, GVMAC), ck(4))
add("EgressMark", 190, "ct_state=+new+trk,ip,reg0=0x1/0xf", "drop", ck(4))
add("EgressMark", 200, "ct_state=+trk,ipv6,tun_ipv6_dst=fc00::77:50", "set_field:0x8/0xff->pkt_mark,goto_table:L2ForwardingCalc", ck(4))
for i in range(1, 5):
    add("EgressQoS", 200, "pkt_mark=0x%x/0xff" % i, "meter:%d,goto_table:L2ForwardingCalc" % i, ck(4))
add("EgressQoS", 190, "", "goto_table:L2ForwardingCalc", ck(4))
add("L3DecTTL", 210, "ip,reg0=0x2/0xf", "goto_table:SNATMark", ck(1))
add("L3DecTTL", 200, "ip", "dec_ttl,goto_table:SNATMark", ck(1))
add("L3DecTTL", 200, "ipv6", "dec_ttl,goto_table:SNATMark", ck(1))
add("L3DecTTL", 211, "ip,nw_ttl=1", "drop", ck(1))

# --- SNATMark / SNAT ---
add("SNATMark", 200, "ct_state=+new+trk,ip,reg0=0x22/0xff",
    "ct(commit,table=SNAT,zone=65520,exec(set_field:0x20/0x20->ct_mark,set_field:0x40/0x40->ct_mark,move:NXM_NX_REG0[0..3]->NXM_NX_CT_MARK[0..3]))", ck(3))
add("SNATMark", 200, "ct_state=+new+trk,ip,reg0=0x12/0xff,reg4=0x200000/0x2200000",
    "ct(commit,table=SNAT,zone=65520,exec(set_field:0x20/0x20->ct_mark,move:NXM_NX_REG0[0..3]->NXM_NX_CT_MARK[0..3]))", ck(3))
for ip in POD_IPS[:6]:
    add("SNATMark", 190, "ct_state=+new+trk,ip,nw_src=%s,nw_dst=%s" % (ip, ip),
        "ct(commit,table=SNAT,zone=65520,exec(set_field:0x20/0x20->ct_mark,set_field:0x40/0x40->ct_mark,move:NXM_NX_REG0[0..3]->NXM_NX_CT_MARK[0..3]))", ck(3))
add("SNAT", 200, "ct_state=+new+trk,ct_mark=0x40/0x40,ip,reg0=0x2/0xf",
    "ct(commit,table=L2ForwardingCalc,zone=65521,nat(src=%s),exec(set_field:0x10/0x10->ct_mark,set_field:0x20/0x20->ct_mark,set_field:0x40/0x40->ct_mark))" % VIRT_SVC_IP, ck(3))
add("SNAT", 200, "ct_state=+new+trk,ct_mark=0x40/0x40,ip,reg0=0x3/0xf",
    "ct(commit,table=L2ForwardingCalc,zone=65521,nat(src=%s),exec(set_field:0x10/0x10->ct_mark,set_field:0x40/0x40->ct_mark))" % GW_IP, ck(3))
add("SNAT", 190, "ct_state=+new+trk,ct_mark=0x20/0x20,ip,reg0=0x2/0xf",
    "ct(commit,table=L2ForwardingCalc,zone=65521,nat(src=%s),exec(set_field:0x10/0x10->ct_mark,set_field:0x20/0x20->ct_mark))" % GW_IP, ck(3))
add("SNAT", 200, "ct_state=-new-rpl+trk,ct_mark=0x20/0x20,ip", "ct(table=L2ForwardingCalc,zone=65521,nat)", ck(3))
add("SNAT", 200, "ct_state=+new+trk,ct_mark=0x40/0x40,ipv6,reg0=0x2/0xf",
    "ct(commit,table=L2ForwardingCalc,zone=65511,nat(src=fc01::aabb:ccdd:eeff),exec(set_field:0x10/0x10->ct_mark,set_field:0x40/0x40->ct_mark))", ck(3))
add("SNAT", 180, "ct_state=+new+trk,tcp,reg0=0x2/0xf",
    "ct(commit,force,table=L2ForwardingCalc,zone=65521,nat(src=192.168.77.100:30000-40000,persistent,hash))", ck(3))

# --- L2ForwardingCalc / TrafficControl ---
add("L2ForwardingCalc", 200, "dl_dst=" + GW_MAC, "set_field:0x%x->reg1,set_field:0x200000/0x600000->reg0,goto_table:IngressSecurityClassifier" % GW, ck(1))
add("L2ForwardingCalc", 200, "dl_dst=" + GVMAC, "set_field:0x%x->reg1,set_field:0x200000/0x600000->reg0,goto_table:IngressSecurityClassifier" % TUN, ck(1))
for (p, n), mac in zip(PODS, POD_MACS):
    add("L2ForwardingCalc", 200, "dl_dst=" + mac, "set_field:0x%x->reg1,set_field:0x200000/0x600000->reg0,goto_table:TrafficControl" % p, ck(1, p))
add("L2ForwardingCalc", 210, "ip,dl_dst=0a:58:0a:0a:00:0a,nw_src=10.10.0.11,ip_dscp=9",
    "set_field:0x5->reg1,set_field:0x200000/0x600000->reg0,goto_table:IngressSecurityClassifier", ck(7), "hard_timeout=300")
add("L2ForwardingCalc", 190, "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00", "goto_table:IngressSecurityClassifier", ck(1))
add("TrafficControl", 210, "reg0=0x200006/0x60000f", "goto_table:Output", ck(1))
add("TrafficControl", 210, "reg0=0x7/0xf", "goto_table:Output", ck(1))
for p, n in PODS[:3]:
    add("TrafficControl", 200, "reg1=0x%x" % p, "set_field:0x2a->reg9,set_field:0x400000/0xc00000->reg4,goto_table:IngressSecurityClassifier", ck(1))
    add("TrafficControl", 200, "in_port=" + n, "set_field:0x2a->reg9,set_field:0x800000/0xc00000->reg4,goto_table:IngressSecurityClassifier", ck(1))

# --- Ingress ---
add("IngressSecurityClassifier", 210, "pkt_mark=0x80000000/0x80000000,ct_state=-rpl+trk,ip", "goto_table:ConntrackCommit", ck(1))
add("IngressSecurityClassifier", 201, "reg4=0x80000/0x80000", "goto_table:AntreaPolicyIngressRule", ck(2))
for v in ("0x20", "0x10", "0x40"):
    add("IngressSecurityClassifier", 200, "reg0=%s/0xf0" % v, "goto_table:IngressMetric", ck(2))
add("IngressSecurityClassifier", 200, "ct_mark=0x40/0x40", "goto_table:ConntrackCommit", ck(3))
add("AntreaPolicyIngressRule", 64990, "ct_state=-new+est,ip", "goto_table:IngressMetric", ck(2))
add("AntreaPolicyIngressRule", 64990, "ct_state=-new+rel,ip", "goto_table:IngressMetric", ck(2))
add("AntreaPolicyIngressRule", 64991, "ct_state=+rpl+trk,udp,tp_src=53", "conjunction(1,1/2)", ck(2, 1))
add("AntreaPolicyIngressRule", 64991, "ct_state=+rpl+trk,tcp,tp_src=53", "conjunction(1,1/2)", ck(2, 1))
add("AntreaPolicyIngressRule", 64991, "reg1=0x5", "conjunction(1,2/2)", ck(2, 1))
add("AntreaPolicyIngressRule", 64991, "conj_id=1", "meter:258,controller(id=62373,reason=no_match,userdata=02,max_len=65535,pause),goto_table:IngressMetric", ck(2, 1))
for rule in range(8):
    cid = 600 + rule
    prio = 44900 - rule * 10
    add("AntreaPolicyIngressRule", prio, "reg1=0x%x" % PODS[rule][0], "conjunction(%d,2/3)" % cid, ck(2, cid))
    add("AntreaPolicyIngressRule", prio, "ip,nw_src=10.30.%d.0/23" % (rule * 2), "conjunction(%d,1/3)" % cid, ck(2, cid))
    if rule % 4 == 0:
        add("AntreaPolicyIngressRule", prio, "icmp,icmp_type=%d" % (rule + 3), "conjunction(%d,3/3)" % cid, ck(2, cid))
    elif rule % 4 == 1:
        add("AntreaPolicyIngressRule", prio, "tcp,tp_src=%d,tp_dst=443" % (1024 + rule), "conjunction(%d,3/3)" % cid, ck(2, cid))
    elif rule % 4 == 2:
        add("AntreaPolicyIngressRule", prio, "tcp,tcp_flags=+syn-ack", "conjunction(%d,3/3)" % cid, ck(2, cid))
    else:
        add("AntreaPolicyIngressRule", prio, "icmp6,icmp_type=128,icmp_code=0", "conjunction(%d,3/3)" % cid, ck(2, cid))
    if rule % 2 == 0:
        add("AntreaPolicyIngressRule", prio, "conj_id=%d,ip" % cid,
            "set_field:0x%x->reg6,ct(commit,table=IngressMetric,zone=65520,exec(set_field:0x%x/0xffffffff->ct_label))" % (cid, cid), ck(2, cid))
    else:
        add("AntreaPolicyIngressRule", prio, "conj_id=%d" % cid,
            "set_field:0x%x->reg3,set_field:0x400/0x400->reg0,set_field:0x1000/0x1800->reg0,set_field:0x4000000/0xfe000000->reg0,set_field:0x1d/0xff->reg2,group:%d" % (cid, 200 + rule), ck(2, cid))
add("AntreaPolicyIngressRule", 45000, "ip,reg1=0x6",
    "conjunction(700,1/2)", ck(2, 700))
add("AntreaPolicyIngressRule", 45000, "tcp,tp_dst=80", "conjunction(700,2/2)", ck(2, 700))
add("AntreaPolicyIngressRule", 45000, "conj_id=700,ip",
    "set_field:0x2bc->reg6,ct(commit,table=IngressMetric,zone=65520,exec(set_field:0x2bc/0xffffffff->ct_label,set_field:0x80/0x80->ct_mark,set_field:0x20000000000000000/0xfff0000000000000000->ct_label))", ck(2, 700))
for rule in range(4):
    cid = 800 + rule
    add("IngressRule", 200, "reg1=0x%x" % PODS[rule][0], "conjunction(%d,2/2)" % cid, ck(2, cid))
    add("IngressRule", 200, "ip,nw_src=10.40.%d.%d" % (rule, rule + 1), "conjunction(%d,1/2)" % cid, ck(2, cid))
    add("IngressRule", 190, "conj_id=%d,ip" % cid,
        "set_field:0x%x->reg6,ct(commit,table=IngressMetric,zone=65520,exec(set_field:0x%x/0xffffffff->ct_label))" % (cid, cid), ck(2, cid))
for p, n in PODS[:8]:
    add("IngressDefaultRule", 200, "reg1=0x%x" % p, "drop", ck(2))
add("IngressDefaultRule", 200, "reg1=0x5,tun_id=0xffffff", "drop", ck(6))
for cid in list(range(600, 608, 2)) + [700] + list(range(800, 804)):
    add("IngressMetric", 200, "ct_state=+new,ct_label=0x%x/0xffffffff,ip" % cid, "goto_table:ConntrackCommit", ck(2, cid))
    add("IngressMetric", 200, "ct_state=-new,ct_label=0x%x/0xffffffff,ip" % cid, "goto_table:ConntrackCommit", ck(2, cid))
for cid in range(601, 608, 2):
    add("IngressMetric", 200, "reg0=0x400/0x400,reg3=0x%x" % cid, "drop", ck(2, cid))

# --- ConntrackCommit / VLAN / Output ---
add("ConntrackCommit", 200, "ct_state=+new+trk,ct_mark=0/0x20,ip",
    "ct(commit,table=VLAN,zone=65520,exec(move:NXM_NX_REG0[0..3]->NXM_NX_CT_MARK[0..3]))", ck(1))
add("ConntrackCommit", 200, "ct_state=+new+trk,ct_mark=0/0x20,ipv6",
    "ct(commit,table=VLAN,zone=65510,exec(move:NXM_NX_REG0[0..3]->NXM_NX_CT_MARK[0..3]))", ck(1))
add("ConntrackCommit", 201, "ct_state=+new+trk,ip,vlan_tci=0x1000/0x1000",
    "ct(commit,table=VLAN,zone=NXM_NX_REG8[0..15],exec(move:NXM_NX_REG0[0..3]->NXM_NX_CT_MARK[0..3]))", ck(1))
add("VLAN", 190, "in_port=eth0,vlan_tci=0x1000/0x1000", "pop_vlan,goto_table:Output", ck(1))
for i, (p, n) in enumerate(PODS[:4]):
    add("VLAN", 190, "in_port=%s,reg1=0x%x" % (n, UPLINK), "push_vlan:0x8100,set_field:%d->vlan_vid,goto_table:Output" % (4096 + 10 + i), ck(1, p))
add("VLAN", 189, "in_port=pod4-eee,reg1=0x%x" % UPLINK, "mod_vlan_vid:20,goto_table:Output", ck(1))
add("VLAN", 188, "reg1=0x%x,vlan_tci=0x1000/0x1000" % UPLINK, "mod_vlan_vid:21,goto_table:Output", ck(1))
add("Output", 213, "reg0=0x7/0xf", "output:NXM_NX_REG1[]", ck(1))
add("Output", 212, "ct_mark=0x80/0x80", "push_vlan:0x8100,move:NXM_NX_CT_LABEL[64..75]->OXM_OF_VLAN_VID[0..11],output:antrea-l7-tap0", ck(1))
add("Output", 211, "reg0=0x200000/0x600000,reg4=0x400000/0xc00000", "output:NXM_NX_REG1[],output:NXM_NX_REG9[]", ck(1))
add("Output", 211, "reg4=0x800000/0xc00000", "output:NXM_NX_REG9[]", ck(1))
add("Output", 210, "ct_mark=0x40/0x40,reg0=0x200000/0x600000", "IN_PORT", ck(1))
add("Output", 210, "in_port=antrea-tun0,reg1=0x%x" % TUN, "IN_PORT", ck(6))
add("Output", 200, "reg0=0x200000/0x600000", "output:NXM_NX_REG1[]", ck(1))
for op in range(1, 8):
    meter = "meter:256," if op % 2 else ""
    add("Output", 200, "reg0=0x%x/0xfe600000" % ((op << 25) | 0x400000),
        "%scontroller(id=62373,reason=no_match,userdata=01.%02x,max_len=65535)" % (meter, op), ck(1))
add("Output", 202, "ip,reg0=0x400000/0x600000,ip_dscp=9", "controller(id=62373,reason=no_match,userdata=00,max_len=128)", ck(7), "hard_timeout=300")
add("Output", 203, "ip,reg0=0x200000/0x600000,ip_dscp=9", "meter:257,controller(id=62373,reason=no_match,userdata=00)", ck(7), "hard_timeout=300")
add("Output", 199, "reg0=0x100000/0x100000", "output:eth0", ck(1))
add("Output", 198, "reg0=0x80000/0x80000", "LOCAL", ck(1))
add("Output", 197, "reg0=0x40000/0x40000", "CONTROLLER", ck(1))
add("Output", 196, "reg0=0x20000/0x20000", "controller:1024", ck(1))
add("Output", 195, "reg0=0x10000/0x10000", "ALL", ck(1))
add("Output", 194, "reg0=0x8000/0x8000", "FLOOD", ck(1))
add("Output", 193, "reg0=0x4000/0x4000", "NORMAL", ck(1))
add("Output", 192, "reg0=0x2000/0x2000", "output:5,output:antrea-gw0,output:32768", ck(1))
add("Output", 191, "reg0=0x1000/0x1000", "resubmit(antrea-gw0,L3Forwarding),resubmit:antrea-tun0,resubmit(eth0,)", ck(1))
add("Output", 190, "ct_state=+est+trk,ip,reg0=0x800/0x800", "resubmit(,Output,ct)", ck(1))
add("Output", 189, "reg0=0x400/0x400", "note:61.6e.74.72.65.61", ck(1))
add("Output", 188, "reg0=0x200/0x200", "note:01.02.03.04.05.06.07.08,output:NXM_NX_REG1[0..15]", ck(1))
add("Output", 187, "ip,reg0=0x100/0x100", "mod_dl_src:aa:bb:cc:00:00:09,mod_dl_dst:aa:bb:cc:00:00:0a,mod_nw_src:10.0.0.1,mod_nw_dst:10.0.0.2,mod_nw_ttl:9,IN_PORT", ck(1))
add("Output", 186, "tcp,reg0=0x80/0x80", "mod_tp_src:1000,mod_tp_dst:2000,IN_PORT", ck(1))
add("Output", 185, "ip,reg0=0x40/0x40", "set_field:5->ip_dscp,set_field:32->nw_tos,set_field:1->nw_ecn,set_field:64->nw_ttl,IN_PORT", ck(1))
add("Output", 184, "ct_state=+trk,ip,reg0=0x20/0x20", "ct_clear,resubmit(,L3Forwarding)", ck(1))
add("Output", 183, "ip,reg0=0x10/0x10", "ct(commit,zone=5),ct(commit,table=Output,zone=6,exec(set_field:0x1/0x1->ct_mark))", ck(1))
add("Output", 182, "udp,reg0=0x8/0x8", "set_field:0x1234->reg15,set_field:0x1->xreg7,set_field:0x8/0x8->pkt_mark,set_field:10.0.0.9->ip_dst,set_field:53->udp_dst,output:NXM_NX_REG1[]", ck(1))
add("Output", 181, "ipv6,reg0=0x4/0x4", "set_field:fd00::1->ipv6_dst,set_field:0x12345->ipv6_label,load:0x1->NXM_NX_XXREG0[0],load:0xffff->NXM_NX_XXREG1[64..79],IN_PORT", ck(1))
add("Output", 180, "reg0=0x2/0x2", "learn(table=L3Forwarding,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),learn(table=Output,idle_timeout=10,fin_hard_timeout=20,send_flow_rem,NXM_NX_REG0[0..3]=0x5,NXM_NX_REG1[0..15]=NXM_NX_REG2[16..31],load:0x12->NXM_NX_REG3[8..15],output:NXM_NX_REG1[])", ck(1))
add("Output", 179, "reg2=0x1", "learn(table=ConntrackCommit,priority=1,limit=10,result_dst=NXM_NX_REG0[31],in_port=99,dl_dst=aa:bb:cc:dd:ee:01,vlan_tci=0x1005,eth_type=0x800,ip_dst=10.1.1.1)", ck(1))
add("Output", 178, "reg2=0x2", "group:100", ck(1))
add("Output", 177, "reg2=0x3", "controller(userdata=ab.cd.ef,max_len=100)", ck(1))
add("Output", 176, "reg2=0x4", "controller(pause)", ck(1))

# --- Multicast tables ---
add("MulticastEgressRule", 64990, "igmp,reg0=0x3/0xf".replace("igmp", "ip,nw_proto=2"), "goto_table:MulticastRouting", ck(5))
for i in range(4):
    add("MulticastEgressRule", 64000 - i, "ip,nw_src=%s,nw_dst=224.0.%d.0/24" % (POD_IPS[i], i), "set_field:0x%x->reg3,goto_table:MulticastEgressMetric" % (900 + i), ck(5))
    add("MulticastEgressMetric", 200, "reg0=0x400/0x400,reg3=0x%x" % (900 + i), "drop", ck(5))
    add("MulticastEgressMetric", 200, "reg3=0x%x" % (900 + i), "goto_table:MulticastEgressPodMetric", ck(5))
for ip in POD_IPS[:4]:
    add("MulticastEgressPodMetric", 200, "ip,nw_src=" + ip, "goto_table:MulticastRouting", ck(5))
add("MulticastRouting", 210, "ip,nw_proto=2,in_port=antrea-tun0", "controller(id=62373,reason=no_match,userdata=03,max_len=65535)", ck(5))
add("MulticastRouting", 210, "ip,nw_proto=2,in_port=CONTROLLER", "group:1000", ck(5))
for i in range(4):
    add("MulticastRouting", 200, "ip,nw_dst=224.1.%d.%d" % (i, i + 1), "group:%d" % (1001 + i), ck(5))
add("MulticastRouting", 190, "ip", "output:antrea-gw0", ck(5))
for p, n in PODS[:4]:
    add("MulticastIngressPodMetric", 200, "ip,reg1=0x%x" % p, "goto_table:MulticastOutput", ck(5))
add("MulticastIngressRule", 64990, "ip,nw_proto=2,reg0=0x3/0xf", "goto_table:MulticastIngressMetric", ck(5))
add("MulticastIngressMetric", 200, "reg3=0x384", "goto_table:MulticastIngressPodMetric", ck(5))
add("MulticastOutput", 210, "ip,reg0=0x1/0xf,reg1=0x%x" % TUN, "drop", ck(5))
add("MulticastOutput", 200, "reg0=0x200000/0x600000", "output:NXM_NX_REG1[]", ck(5))
add("NonIP", 200, "in_port=eth0~", "output:eth0", ck(8))
add("NonIP", 200, "in_port=eth0", "output:eth0~", ck(8))

# --- misc forms: masks, vlans, tunnels, ct tuples, fragments, port forms ---
add("NonIP", 190, "dl_type=0x88cc", "drop", ck(8))
add("NonIP", 189, "dl_vlan=100,dl_vlan_pcp=3", "pop_vlan,NORMAL", ck(8))
add("NonIP", 188, "vlan_tci=0x2000/0xe000", "NORMAL", ck(8))
add("NonIP", 187, "vlan_tci=0", "NORMAL", ck(8))
add("NonIP", 186, "dl_src=0a:58:00:00:00:00/ff:ff:00:00:00:00,dl_dst=ff:ff:ff:ff:ff:ff", "FLOOD", ck(8))
add("NonIP", 185, "rarp", "NORMAL", ck(8))
add("PipelineIPClassifier", 190, "ip,nw_frag=yes", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 189, "ip,nw_frag=later", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 188, "ip,nw_tos=32,nw_ecn=1,nw_ttl=64", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 187, "ip,nw_src=10.0.0.0/255.0.255.0,nw_dst=10.1.0.0/16", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 186, "tun_src=192.168.77.1,tun_dst=192.168.77.100,tun_id=0x5/0xff", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 185, "ct_state=+trk,ct_zone=65520,ct_mark=0x5,ct_label=0x1", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 184, "ct_state=+trk-inv,tcp,ct_nw_src=10.10.0.0/24,ct_nw_dst=10.96.0.1,ct_nw_proto=6,ct_tp_src=1000,ct_tp_dst=443", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 183, "reg0=0x1,reg1=0x2,reg2=0x3,reg3=0x4,reg4=0x5,reg5=0x6,reg6=0x7,reg7=0x8,reg8=0x9,reg9=0xa,reg10=0xb,reg11=0xc,reg12=0xd,reg13=0xe,reg14=0xf,reg15=0x10", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 182, "xreg1=0x1234567890/0xffffffffff", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 181, "reg4[16..18]=2,reg0[9]=1", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 180, "tcp6,ipv6_src=fd00::/8,tp_src=0x400/0xfc00,tcp_flags=+syn", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 179, "sctp6,tp_dst=132", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 178, "udp6,tp_dst=547", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 177, "arp,arp_op=2,arp_spa=10.10.0.0/24,arp_tpa=10.10.0.1,arp_sha=0a:58:00:00:00:00/ff:ff:00:00:00:00", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 176, "in_port=LOCAL,dl_type=0x0800", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 175, "ipv6,ct_state=+est+trk,ct_ipv6_dst=fd00::/16", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 174, "tun_ipv6_src=fc00::1,tun_ipv6_dst=fc00::2", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 173, "ct_state=0", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 172, "ct_label=0x10000000000000000/0x10000000000000000,ct_mark=0/0xff", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 171, "ip,nw_proto=50", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 170, "ipv6,nw_proto=50", "goto_table:UnSNAT", ck(1))
add("PipelineIPClassifier", 169, "pkt_mark=0x5", "goto_table:UnSNAT", ck(1), "idle_timeout=60,hard_timeout=120")
add("PipelineIPClassifier", 168, "tcp,tcp_flags=syn|ack", "goto_table:UnSNAT", ck(1), "send_flow_rem,importance=5")
add("PipelineIPClassifier", 167, "vlan_tci=0x1000/0x1000,dl_vlan_pcp=5", "goto_table:UnSNAT", ck(1))

# --- more action and flag forms ---
add("Output", 175, "tcp,reg2=0x5", "ct(commit,zone=7,alg=ftp)", ck(1))
add("Output", 174, "udp,reg2=0x6", "ct(commit,table=Output,zone=8,alg=tftp,exec(load:0x1->NXM_NX_CT_MARK[0],load:0xff->NXM_NX_CT_LABEL[0..7]))", ck(1))
add("Output", 173, "ip,reg2=0x7", "mod_nw_tos:16,mod_nw_ecn:1,IN_PORT", ck(1))
add("Output", 172, "udp,reg2=0x8", "mod_tp_src:53,mod_tp_dst:5353,IN_PORT", ck(1))
add("Output", 171, "vlan_tci=0x1000/0x1000,reg2=0x9", "set_vlan_vid:5,mod_vlan_pcp:3,IN_PORT", ck(1))
add("Output", 170, "reg2=0xa", "mod_vlan_pcp:6,IN_PORT", ck(1))
add("Output", 169, "reg2=0xb", "drop", ck(1), "check_overlap")
add("Output", 168, "reg2=0xc", "drop", ck(1), "reset_counts")
add("Output", 167, "reg2=0xd", "drop", ck(1), "no_packet_counts,no_byte_counts")
add("Output", 166, "reg2=0xe", "drop", ck(1), "importance=100,hard_timeout=65535,idle_timeout=1")
add("Output", 165, "ipv6,reg2=0xf", "set_field:fd00::/64->ipv6_src,IN_PORT", ck(1))
add("Output", 164, "ip,reg2=0x10", "set_field:10.0.0.0/8->ip_src,set_field:0a:00:00:00:00:00/ff:00:00:00:00:00->eth_src,IN_PORT", ck(1))
add("Output", 163, "reg2=0x11", "resubmit(,IngressRule),resubmit(pod0-aaa,IngressRule),resubmit:LOCAL,resubmit(CONTROLLER,Output)", ck(1))

# Deduplicate by (table, priority, match) keeping the first: OVS would replace the earlier flow.
seen = set()
out = []
for f in flows:
    m, a = f.split(" actions=", 1)
    parts = [p for p in m.split(",") if not p.startswith("cookie=")]
    key = ",".join(sorted(parts))
    if key in seen:
        continue
    seen.add(key)
    out.append(f)

GROUPS = []
for proto, vip, port, gid in svcs + [("tcp", "x", 80, 9), ("tcp", "x", 80, 10), ("tcp", "x", 80, 11), ("tcp", "x", 443, 18)]:
    ep = eps[(gid - 1) % len(eps)]
    a, b, c, d = (int(x) for x in ep[1].split("."))
    ipn = (a << 24) | (b << 16) | (c << 8) | d
    buckets = []
    for k in range(1 + gid % 3):
        buckets.append("bucket=bucket_id:%d,weight:100,actions=set_field:0x%x->reg3,set_field:0x%x/0xffff->reg4,resubmit(,EndpointDNAT)" % (k, ipn + k, ep[2]))
    GROUPS.append("group_id=%d,type=select,%s" % (gid, ",".join(buckets)))
GROUPS.append("group_id=12,type=select,bucket=bucket_id:0,weight:100,actions=set_field:0x4000/0x4000->reg0,resubmit(,EndpointDNAT)")
GROUPS.append("group_id=13,type=select,selection_method=dp_hash,bucket=bucket_id:0,weight:100,actions=set_field:0xa0a000a->reg3,set_field:0x50/0xffff->reg4,resubmit(,EndpointDNAT),bucket=bucket_id:1,weight:50,actions=set_field:0xa0a000b->reg3,set_field:0x50/0xffff->reg4,resubmit(,EndpointDNAT)")
for i in range(10):
    GROUPS.append("group_id=%d,type=all,bucket=bucket_id:0,actions=resubmit(,EgressMetric),bucket=bucket_id:1,actions=set_field:0x400000/0x600000->reg0,resubmit(,Output)" % (100 + i))
for i in range(8):
    GROUPS.append("group_id=%d,type=all,bucket=bucket_id:0,actions=resubmit(,IngressMetric),bucket=bucket_id:1,actions=set_field:0x400000/0x600000->reg0,resubmit(,Output)" % (200 + i))
GROUPS.append("group_id=1000,type=all,bucket=bucket_id:0,actions=set_field:0x200000/0x600000->reg0,set_field:0x5->reg1,resubmit(,MulticastIngressRule)")
for i in range(4):
    GROUPS.append("group_id=%d,type=all,bucket=bucket_id:0,actions=set_field:0x200000/0x600000->reg0,set_field:0x%x->reg1,resubmit(,MulticastIngressRule),bucket=bucket_id:1,actions=set_field:0x200000/0x600000->reg0,set_field:0x%x->reg1,set_field:192.168.77.%d->tun_dst,resubmit(,MulticastOutput)" % (1001 + i, 5 + i, TUN, 101 + i))
GROUPS.append("group_id=2000,type=indirect,bucket=bucket_id:0,actions=output:antrea-gw0")
GROUPS.append("group_id=2001,type=ff,bucket=bucket_id:0,watch_port:antrea-tun0,actions=output:antrea-tun0,bucket=bucket_id:1,watch_port:eth0,actions=output:eth0")

GROUPS.append("group_id=3000,type=select,bucket=weight:50,actions=output:eth0,bucket=weight:50,actions=output:antrea-gw0")
GROUPS.append("group_id=3001,type=select,bucket=bucket_id:5,actions=output:1,bucket=actions=output:2,bucket=bucket_id:2,actions=output:3,bucket=actions=output:4")
GROUPS.append("group_id=3002,type=all,bucket=output:1,bucket=output:2,mod_vlan_vid:5")
GROUPS.append("group_id=3003,type=select,selection_method=hash,selection_method_param=7,bucket=output:1")
GROUPS.append("group_id=3005,type=select,bucket=actions=output:2,bucket=bucket_id:0,actions=output:3")
GROUPS.append("group_id=3006,type=ff,bucket=watch_group:3000,actions=group:3000,bucket=watch_port:5,actions=output:5")

METERS = ["meter=256,pktps,burst,stats,bands=type=drop,rate=5000,burst_size=10000",
          "meter=257,pktps,burst,stats,bands=type=drop,rate=100,burst_size=200",
          "meter=258,pktps,burst,stats,bands=type=drop,rate=5000,burst_size=10000"] + \
         ["meter=%d,kbps,burst,stats,bands=type=drop,rate=%d,burst_size=%d" % (i, 10000 * i, 20000 * i) for i in range(1, 5)]

with open(os.path.join(HERE, "flows.txt"), "w") as f:
    f.write("\n".join(out) + "\n")
with open(os.path.join(HERE, "groups.txt"), "w") as f:
    f.write("\n".join(GROUPS) + "\n")
with open(os.path.join(HERE, "meters.txt"), "w") as f:
    f.write("\n".join(METERS) + "\n")
with open(os.path.join(HERE, "tables.txt"), "w") as f:
    f.write("".join("%d %s\n" % (i, n) for i, n in enumerate(TABLES)))
with open(os.path.join(HERE, "ports.txt"), "w") as f:
    f.write("".join("%d %s %s\n" % (p, n, t) for p, n, t in PORTS))
print("%d flows, %d groups, %d meters" % (len(out), len(GROUPS), len(METERS)))
