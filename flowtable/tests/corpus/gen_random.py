#!/usr/bin/env python3
"""Generates random.txt: seeded random flows for the differential test against OVS.

Each flow has its own priority, so no two can replace each other in the switch. Combinations are
random, so some flows are invalid: regen.sh records, per line, whether OVS accepted the flow, and
the test checks that our parser agrees and prints the accepted ones exactly as OVS dumps them.
"""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
R = random.Random(20261126)


def ip():
    return "%d.%d.%d.%d/%d" % (R.randrange(256), R.randrange(256), R.randrange(256), R.randrange(256), R.randrange(33))


def ip6():
    words = [R.randrange(0x10000) if R.random() < 0.5 else 0 for _ in range(8)]
    return "%s/%d" % (":".join("%x" % w for w in words), R.randrange(129))


def mac():
    return ":".join("%02x" % R.randrange(256) for _ in range(6))


def hexv(bits):
    return "0x%x" % R.randrange(1 << bits)


PROTOS = ["ip", "ipv6", "tcp", "udp", "sctp", "icmp", "icmp6", "tcp6", "udp6", "arp", "", ""]
PIECES = [
    lambda: "reg%d=%s/%s" % (R.randrange(16), hexv(32), hexv(32)),
    lambda: "reg%d=%s" % (R.randrange(16), hexv(32)),
    lambda: "xxreg%d=%s" % (R.randrange(4), hexv(128)),
    lambda: "xreg%d=%s/%s" % (R.randrange(8), hexv(64), hexv(64)),
    lambda: "nw_src=" + ip(),
    lambda: "nw_dst=" + ip(),
    lambda: "ipv6_src=" + ip6(),
    lambda: "ipv6_dst=" + ip6(),
    lambda: "dl_src=" + mac(),
    lambda: "dl_dst=%s/%s" % (mac(), mac()),
    lambda: "tp_src=%d" % R.randrange(65536),
    lambda: "tp_dst=%s/%s" % (hexv(16), hexv(16)),
    lambda: "ct_state=%s/%s" % (hexv(8), hexv(8)),
    lambda: "ct_state=" + "".join(R.choice("+-") + f for f in R.sample(["new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"], R.randrange(1, 4))),
    lambda: "ct_mark=%s/%s" % (hexv(32), hexv(32)),
    lambda: "ct_label=%s/%s" % (hexv(128), hexv(128)),
    lambda: "ct_zone=%d" % R.randrange(65536),
    lambda: "in_port=%s" % R.choice(["antrea-gw0", "antrea-tun0", "LOCAL", "5", "eth0", "CONTROLLER"]),
    lambda: "tun_id=%s/%s" % (hexv(64), hexv(64)),
    lambda: "tun_dst=" + ip(),
    lambda: "tun_src=" + ip(),
    lambda: "pkt_mark=%s/%s" % (hexv(32), hexv(32)),
    lambda: "vlan_tci=%s/%s" % (hexv(16), hexv(16)),
    lambda: "dl_vlan=%d" % R.randrange(4096),
    lambda: "dl_vlan_pcp=%d" % R.randrange(8),
    lambda: "ip_dscp=%d" % R.randrange(64),
    lambda: "nw_ecn=%d" % R.randrange(4),
    lambda: "nw_ttl=%d" % R.randrange(256),
    lambda: "nw_proto=%d" % R.randrange(256),
    lambda: "conj_id=%d" % R.randrange(1 << 32),
    lambda: "icmp_type=%d" % R.randrange(256),
    lambda: "icmp_code=%d" % R.randrange(256),
    lambda: "arp_op=%d" % R.randrange(3),
    lambda: "arp_spa=" + ip(),
    lambda: "arp_tha=" + mac(),
    lambda: "tcp_flags=" + R.choice(["+syn-ack", "+fin", "-rst+psh", "syn|ack", "0x12/0x12"]),
    lambda: "nw_frag=" + R.choice(["no", "yes", "first", "later", "not_later"]),
    lambda: "ipv6_label=%s" % hexv(20),
    lambda: "ct_nw_src=" + ip(),
    lambda: "ct_tp_dst=%d" % R.randrange(65536),
    lambda: "nd_target=" + ip6().split("/")[0],
    lambda: "reg%d[%d]=%d" % (R.randrange(16), R.randrange(32), R.randrange(2)),
    lambda: "reg%d[%d..%d]=%d" % (R.randrange(16), 4, 7, R.randrange(16)),
    lambda: "nd_sll=" + mac(),
    lambda: "nd_tll=" + mac(),
    lambda: "tun_ipv6_dst=" + ip6(),
    lambda: "ct_ipv6_src=" + ip6(),
    lambda: "ct_nw_proto=%d" % R.choice([0, 6, 17, 1]),
    lambda: "ct_tp_src=%s/%s" % (hexv(16), hexv(16)),
    lambda: "vlan_vid=%s/%s" % (hexv(13), hexv(13)),
    lambda: "dl_type=0x%04x" % R.choice([0x800, 0x86dd, 0x806, 0x8035, 0x88cc, 0x8847]),
    lambda: "ip_proto=%d" % R.choice([1, 6, 17, 58, 132, 2]),
    lambda: "tcp_src=%d" % R.randrange(65536),
    lambda: "udp_dst=%d" % R.randrange(65536),
    lambda: "sctp_src=%d" % R.randrange(65536),
    lambda: "icmpv6_type=%d" % R.choice([135, 136, 128, 1]),
    lambda: "icmpv6_code=%d" % R.choice([0, 0, 1]),
    lambda: "arp_sha=%s/%s" % (mac(), mac()),
    lambda: "arp_tpa=" + ip(),
    lambda: "eth_type=0x0800",
    lambda: "in_port_oxm=%d" % R.randrange(1, 100),
    lambda: "tunnel_id=%s" % hexv(24),
]
ACTIONS = [
    lambda: "output:%d" % R.randrange(1, 100),
    lambda: R.choice(["IN_PORT", "NORMAL", "LOCAL", "FLOOD", "ALL", "CONTROLLER", "TABLE"]),
    lambda: "output:NXM_NX_REG%d[]" % R.randrange(16),
    lambda: "set_field:%s/%s->reg%d" % ((lambda m: ("0x%x" % (R.randrange(1 << 32) & m), "0x%x" % m))(R.randrange(1 << 32)) + (R.randrange(16),)),
    lambda: "set_field:%s->reg%d" % (hexv(32), R.randrange(16)),
    lambda: "load:%d->NXM_NX_REG%d[%d..%d]" % (R.randrange(16), R.randrange(16), 8, 11),
    lambda: "move:NXM_NX_REG%d[0..7]->NXM_NX_REG%d[8..15]" % (R.randrange(16), R.randrange(16)),
    lambda: "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]",
    lambda: "move:NXM_OF_IP_SRC[]->NXM_NX_REG%d[]" % R.randrange(16),
    lambda: "set_field:%s->eth_dst" % mac(),
    lambda: "set_field:%s->tun_dst" % ip().split("/")[0],
    lambda: "set_field:%s->tun_id" % hexv(32),
    lambda: "set_field:%s->ip_dst" % ip().split("/")[0],
    lambda: "set_field:%d->tcp_dst" % R.randrange(65536),
    lambda: "set_field:%d->ip_dscp" % R.randrange(64),
    lambda: "set_field:%s/0xff->pkt_mark" % hexv(8),
    lambda: "group:%d" % R.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 18, 100, 1000]),
    lambda: "resubmit(,%d)" % R.randrange(45),
    lambda: "resubmit(%d,%d)" % (R.randrange(1, 50), R.randrange(45)),
    lambda: "ct(commit,table=%d,zone=%d,exec(set_field:%s/%s->ct_mark))" % (R.randrange(45), R.randrange(65536), "0x10", "0x10"),
    lambda: "ct(table=%d,zone=%d,nat)" % (R.randrange(45), R.randrange(65536)),
    lambda: "ct(commit,zone=1,nat(%s=%s:%d))" % (R.choice(["src", "dst"]), ip().split("/")[0], R.randrange(1, 65536)),
    lambda: "ct(commit,zone=NXM_NX_REG%d[0..15],exec(move:NXM_NX_REG0[0..3]->NXM_NX_CT_MARK[0..3]))" % R.randrange(16),
    lambda: "controller(id=%d,reason=no_match,userdata=%02x.%02x,max_len=%d)" % (R.randrange(65536), R.randrange(256), R.randrange(256), R.randrange(65536)),
    lambda: "controller(userdata=01,pause)",
    lambda: "controller:%d" % R.randrange(65536),
    lambda: "dec_ttl",
    lambda: "push_vlan:0x8100",
    lambda: "pop_vlan",
    lambda: "mod_vlan_vid:%d" % R.randrange(4096),
    lambda: "mod_nw_ttl:%d" % R.randrange(256),
    lambda: "note:%s" % ".".join("%02x" % R.randrange(256) for _ in range(R.randrange(12))),
    lambda: "set_field:%d->vlan_vid" % (4096 + R.randrange(4096)),
    lambda: "set_field:%s->arp_sha" % mac(),
    lambda: "set_field:%s->arp_tpa" % ip().split("/")[0],
    lambda: "set_field:%d->arp_op" % R.randrange(3),
    lambda: "set_field:%s->ipv6_src" % ip6().split("/")[0],
    lambda: "set_field:%d->nw_ttl" % R.randrange(256),
    lambda: "set_field:%d->nw_tos" % (R.randrange(64) * 4),
    lambda: "set_field:%d->icmp_type" % R.randrange(256),
    lambda: "set_field:%d->udp_src" % R.randrange(65536),
    lambda: "set_field:%s->tun_ipv6_dst" % ip6().split("/")[0],
    lambda: "set_field:%s->xxreg%d" % (hexv(128), R.randrange(4)),
    lambda: "set_field:%s/%s->xreg%d" % ((lambda m: ("0x%x" % (R.randrange(1 << 64) & m), "0x%x" % m))(R.randrange(1 << 64)) + (R.randrange(8),)),
    lambda: "set_field:%d->in_port" % R.randrange(1, 100),
    lambda: "load:0x%x->NXM_NX_PKT_MARK[0..7]" % R.randrange(256),
    lambda: "load:0x%x->NXM_OF_VLAN_TCI[]" % R.randrange(65536),
    lambda: "move:NXM_NX_CT_LABEL[64..75]->OXM_OF_VLAN_VID[0..11]",
    lambda: "move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG%d[]" % R.randrange(16),
    lambda: "move:NXM_OF_IN_PORT[]->NXM_NX_REG%d[0..15]" % R.randrange(16),
    lambda: "resubmit(,%d,ct)" % R.randrange(45),
    lambda: "resubmit:%s" % R.choice(["antrea-gw0", "3", "LOCAL", "IN_PORT"]),
    lambda: "ct_clear",
    lambda: "ct(commit,force,zone=%d)" % R.randrange(65536),
    lambda: "ct(commit,alg=%s)" % R.choice(["ftp", "tftp"]),
    lambda: "ct(commit,nat(src=%s-%s:%d-%d,%s))" % ("10.0.0.1", "10.0.0.9", 1000, 2000, R.choice(["random", "hash", "persistent"])),
    lambda: "ct(commit,nat(dst=[fd00::1]-[fd00::9]:%d))" % R.randrange(1, 65536),
    lambda: "mod_dl_src:%s" % mac(),
    lambda: "mod_nw_dst:%s" % ip().split("/")[0],
    lambda: "mod_tp_src:%d" % R.randrange(65536),
    lambda: "mod_nw_tos:%d" % (R.randrange(64) * 4),
    lambda: "set_vlan_vid:%d" % R.randrange(4096),
    lambda: "mod_vlan_pcp:%d" % R.randrange(8),
    lambda: "strip_vlan",
    lambda: "output:%s" % R.choice(["antrea-tun0", "\"eth0~\"", "eth0", "in_port", "local"]),
    lambda: "controller(reason=%s,max_len=%d)" % (R.choice(["action", "no_match", "invalid_ttl", "group"]), R.randrange(65536)),
    lambda: "learn(table=%d,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],output:NXM_OF_IN_PORT[])" % R.randrange(1, 45),
    lambda: "learn(table=%d,fin_hard_timeout=%d,send_flow_rem,limit=%d,result_dst=NXM_NX_REG0[%d],dl_type=0x86dd,ipv6_src=fd00::1,NXM_NX_IPV6_DST[])" % (R.randrange(1, 45), R.randrange(100), R.randrange(100), R.randrange(32)),
    lambda: "learn(table=%d,priority=%d,in_port=%d,eth_type=0x806,arp_op=1,NXM_OF_ARP_SPA[],load:0x%x->NXM_NX_XXREG2[0..99])" % (R.randrange(1, 45), R.randrange(65536), R.randrange(1, 99), R.randrange(1 << 64)),
    lambda: "learn(table=%d,idle_timeout=%d,priority=%d,cookie=%s,eth_type=0x800,nw_proto=17,NXM_OF_UDP_DST[],NXM_OF_IP_SRC[]=NXM_OF_IP_DST[],load:NXM_NX_REG%d[]->NXM_NX_REG3[],load:0x%x->NXM_NX_REG4[16..18],output:NXM_OF_IN_PORT[])" % (R.randrange(1, 45), R.randrange(1000), R.randrange(65536), hexv(48), R.randrange(16), R.randrange(8)),
]

lines = []
for i in range(1500):
    parts = ["table=%d" % R.randrange(45), "priority=%d" % (1000 + i)]
    if R.random() < 0.5:
        parts.append("cookie=%s" % hexv(64))
    if R.random() < 0.2:
        parts.append("idle_timeout=%d" % R.randrange(1, 65536))
    if R.random() < 0.2:
        parts.append("hard_timeout=%d" % R.randrange(1, 65536))
    proto = R.choice(PROTOS)
    if proto:
        parts.append(proto)
    for _ in range(R.randrange(5)):
        parts.append(R.choice(PIECES)())
    if R.random() < 0.1:
        acts = ["conjunction(%d,%d/%d)" % (R.randrange(1 << 32), 1, R.randrange(2, 5))]
    else:
        acts = []
        if R.random() < 0.1:
            acts.append("meter:%d" % R.randrange(1, 5))
        for _ in range(R.randrange(4)):
            acts.append(R.choice(ACTIONS)())
        if R.random() < 0.4:
            acts.append("goto_table:%d" % R.randrange(45))
    lines.append(",".join(parts) + " actions=" + (",".join(acts) if acts else "drop"))

with open(os.path.join(HERE, "random.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("%d random flows" % len(lines))
