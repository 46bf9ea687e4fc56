//! Round-trip property: for random flow texts (built from the forms the corpus uses, with random
//! values), whenever our parser accepts a text, printing the parsed flow and parsing that again
//! gives the same flow, and printing is stable: parse(print(f)) == f.

use proptest::prelude::*;
use xvs_flowtable::names::{NameMap, Port};
use xvs_flowtable::parse::{parse_dump_flow_line, parse_flow};
use xvs_flowtable::print::{dump_flow_line, FormatOptions};
use xvs_flowtable::Flow;

fn names() -> NameMap {
    let mut m = NameMap::new();
    m.add_port("antrea-gw0", Port(32769));
    m.add_port("antrea-tun0", Port(32768));
    m.add_port("pod1", Port(5));
    m.add_table("Classifier", 3);
    m.add_table("Output", 30);
    m
}

fn ip() -> impl Strategy<Value = String> {
    (any::<[u8; 4]>(), 0u8..=32)
        .prop_map(|(b, l)| format!("{}.{}.{}.{}/{}", b[0], b[1], b[2], b[3], l))
}

fn mac() -> impl Strategy<Value = String> {
    any::<[u8; 6]>().prop_map(|b| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    })
}

fn ipv6() -> impl Strategy<Value = String> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, l)| format!("{}/{l}", std::net::Ipv6Addr::from(a)))
}

fn match_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ip".to_owned()),
        Just("ipv6".to_owned()),
        Just("tcp".to_owned()),
        Just("udp6".to_owned()),
        Just("arp".to_owned()),
        Just("icmp".to_owned()),
        Just("icmp6".to_owned()),
        Just("sctp".to_owned()),
        (0usize..16, any::<u32>(), any::<u32>())
            .prop_map(|(r, v, m)| format!("reg{r}=0x{v:x}/0x{m:x}")),
        (0usize..4, any::<u128>()).prop_map(|(r, v)| format!("xxreg{r}=0x{v:x}")),
        ip().prop_map(|a| format!("nw_src={a}")),
        ip().prop_map(|a| format!("nw_dst={a}")),
        ip().prop_map(|a| format!("ct_nw_src={a}")),
        ipv6().prop_map(|a| format!("ipv6_dst={a}")),
        mac().prop_map(|a| format!("dl_src={a}")),
        (mac(), mac()).prop_map(|(a, b)| format!("dl_dst={a}/{b}")),
        (any::<u16>(), any::<u16>()).prop_map(|(v, m)| format!("tp_dst=0x{v:x}/0x{m:x}")),
        any::<u16>().prop_map(|v| format!("tp_src={v}")),
        (any::<u8>(), any::<u8>()).prop_map(|(v, m)| format!("ct_state=0x{v:x}/0x{m:x}")),
        Just("ct_state=+new+trk".to_owned()),
        Just("ct_state=-new+est+trk".to_owned()),
        (any::<u32>(), any::<u32>()).prop_map(|(v, m)| format!("ct_mark=0x{v:x}/0x{m:x}")),
        (any::<u128>(), any::<u128>()).prop_map(|(v, m)| format!("ct_label=0x{v:x}/0x{m:x}")),
        prop_oneof![
            Just("antrea-gw0".to_owned()),
            Just("pod1".to_owned()),
            Just("LOCAL".to_owned()),
            (1u16..0xff00).prop_map(|p| p.to_string())
        ]
        .prop_map(|p| format!("in_port={p}")),
        any::<u64>().prop_map(|v| format!("tun_id=0x{v:x}")),
        ip().prop_map(|a| format!("tun_dst={a}")),
        (any::<u32>(), any::<u32>()).prop_map(|(v, m)| format!("pkt_mark=0x{v:x}/0x{m:x}")),
        (any::<u16>(), any::<u16>()).prop_map(|(v, m)| format!("vlan_tci=0x{v:x}/0x{m:x}")),
        (0u16..4096).prop_map(|v| format!("dl_vlan={v}")),
        (0u8..64).prop_map(|v| format!("ip_dscp={v}")),
        any::<u8>().prop_map(|v| format!("nw_ttl={v}")),
        any::<u32>().prop_map(|v| format!("conj_id={v}")),
        any::<u8>().prop_map(|v| format!("icmp_type={v}")),
        any::<u8>().prop_map(|v| format!("arp_op={v}")),
        ip().prop_map(|a| format!("arp_tpa={a}")),
        mac().prop_map(|a| format!("arp_sha={a}")),
        Just("tcp_flags=+syn-ack".to_owned()),
        Just("nw_frag=later".to_owned()),
        (0u16..16, 0u32..2).prop_map(|(b, v)| format!("reg4[{b}]={v}")),
    ]
}

fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u16..0xff00).prop_map(|p| format!("output:{p}")),
        Just("IN_PORT".to_owned()),
        Just("NORMAL".to_owned()),
        Just("output:antrea-tun0".to_owned()),
        (0usize..16).prop_map(|r| format!("output:NXM_NX_REG{r}[]")),
        (0usize..16, any::<u32>(), any::<u32>()).prop_map(|(r, v, m)| format!("set_field:0x{:x}/0x{m:x}->reg{r}", v & m)),
        (0usize..16, 0u32..16).prop_map(|(r, v)| format!("load:0x{v:x}->NXM_NX_REG{r}[4..7]")),
        (0usize..16, 0usize..16).prop_map(|(a, b)| format!("move:NXM_NX_REG{a}[0..3]->NXM_NX_REG{b}[28..31]")),
        mac().prop_map(|m| format!("set_field:{m}->eth_dst")),
        any::<u32>().prop_map(|g| format!("group:{g}")),
        (0u8..=254).prop_map(|t| format!("resubmit(,{t})")),
        Just("resubmit(pod1,Output)".to_owned()),
        any::<u16>().prop_map(|z| format!("ct(commit,table=Output,zone={z},exec(set_field:0x10/0x10->ct_mark))")),
        Just("ct(table=Classifier,zone=NXM_NX_REG8[0..15],nat)".to_owned()),
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| format!("ct(commit,zone=1,nat(dst={}.{}.{}.{}:{p}))", a[0], a[1], a[2], a[3])),
        (any::<u16>(), any::<u16>()).prop_map(|(id, ml)| format!("controller(id={id},reason=no_match,userdata=01.02,max_len={ml})")),
        Just("controller(pause)".to_owned()),
        any::<u16>().prop_map(|m| format!("controller:{m}")),
        Just("dec_ttl".to_owned()),
        Just("push_vlan:0x8100".to_owned()),
        Just("pop_vlan".to_owned()),
        (0u16..4096).prop_map(|v| format!("mod_vlan_vid:{v}")),
        any::<u8>().prop_map(|v| format!("mod_nw_ttl:{v}")),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| {
            format!("note:{}", b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join("."))
        }),
        (1u16..200, any::<u16>(), any::<u64>()).prop_map(|(t, h, c)| format!(
            "learn(table={t},hard_timeout={h},priority=200,delete_learned,cookie=0x{c:x},eth_type=0x800,nw_proto=6,NXM_OF_TCP_DST[],NXM_OF_IP_SRC[]=NXM_OF_IP_DST[],load:NXM_NX_REG3[]->NXM_NX_REG3[],load:0x2->NXM_NX_REG4[16..18],output:NXM_OF_IN_PORT[])"
        )),
    ]
}

fn flow_text() -> impl Strategy<Value = String> {
    (
        0u8..=254,
        any::<u16>(),
        any::<u64>(),
        any::<u16>(),
        proptest::collection::vec(match_piece(), 0..6),
        proptest::option::of(any::<u32>()),
        proptest::collection::vec(action(), 0..5),
        proptest::option::of(0u8..=254),
        proptest::option::of((any::<u32>(), 1u8..4)),
    )
        .prop_map(|(table, prio, cookie, idle, m, meter, acts, goto, conj)| {
            let mut parts = vec![
                format!("table={table}"),
                format!("priority={prio}"),
                format!("cookie=0x{cookie:x}"),
            ];
            if idle % 3 == 0 {
                parts.push(format!("idle_timeout={idle}"));
            }
            parts.extend(m);
            let mut a: Vec<String> = Vec::new();
            if let Some((id, k)) = conj {
                a.push(format!("conjunction({id},{k}/4)"));
            } else {
                if let Some(mt) = meter {
                    a.push(format!("meter:{mt}"));
                }
                a.extend(acts);
                if let Some(g) = goto {
                    a.push(format!("goto_table:{g}"));
                }
            }
            let actions = if a.is_empty() {
                "drop".to_owned()
            } else {
                a.join(",")
            };
            format!("{} actions={actions}", parts.join(","))
        })
}

fn round_trip(f: &Flow, names: &NameMap) -> Result<(), TestCaseError> {
    for n in [names, &NameMap::new()] {
        let opts = FormatOptions {
            names: n,
            show_stats: false,
        };
        let s = dump_flow_line(f, &opts);
        let g = parse_flow(&s, n).map_err(|e| TestCaseError::fail(format!("{e}: {s}")))?;
        prop_assert_eq!(&g, f, "{}", s);
        prop_assert_eq!(dump_flow_line(&g, &opts), s);
        let stats = FormatOptions {
            names: n,
            show_stats: true,
        };
        let s = dump_flow_line(f, &stats);
        let h =
            parse_dump_flow_line(&s, n).map_err(|e| TestCaseError::fail(format!("{e}: {s}")))?;
        prop_assert_eq!(dump_flow_line(&h, &stats), s);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn parse_print_parse_is_identity(text in flow_text()) {
        let names = names();
        // Random combinations are often invalid (e.g. set_field without prerequisites); those
        // must be rejected with an error, never a panic, and the valid ones must round-trip.
        if let Ok(f) = parse_flow(&text, &names) {
            round_trip(&f, &names)?;
        }
    }

    #[test]
    fn arbitrary_text_never_panics(s in "[ -~]{0,120}") {
        let _ = parse_flow(&s, &names());
        let _ = xvs_flowtable::parse::parse_flow_mod_line(&s, &names());
        let _ = xvs_flowtable::group::parse_group(&s, &names());
        let _ = xvs_flowtable::meter::parse_meter(&s);
    }
}

#[test]
fn corpus_flows_round_trip() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/");
    let text = std::fs::read_to_string(format!("{dir}flows.txt")).expect("corpus");
    let mut names = NameMap::new();
    for l in std::fs::read_to_string(format!("{dir}tables.txt"))
        .expect("tables")
        .lines()
    {
        let (id, n) = l.split_once(' ').expect("line");
        names.add_table(n, id.parse().expect("id"));
    }
    for l in std::fs::read_to_string(format!("{dir}ports.txt"))
        .expect("ports")
        .lines()
    {
        let mut it = l.split(' ');
        let (p, n) = (it.next().expect("p"), it.next().expect("n"));
        names.add_port(n, Port(p.parse().expect("port")));
    }
    for l in text.lines() {
        let f = parse_flow(l, &names).expect("corpus flow parses");
        round_trip(&f, &names).expect("round trip");
    }
}

#[test]
fn the_random_flows_are_mostly_accepted() {
    // Guards the property above against becoming vacuous: a good share of the generated texts
    // must be valid flows.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let names = names();
    let strategy = flow_text();
    let mut ok = 0;
    for _ in 0..1000 {
        let text = strategy.new_tree(&mut runner).expect("tree").current();
        if parse_flow(&text, &names).is_ok() {
            ok += 1;
        }
    }
    assert!(ok >= 300, "only {ok} of 1000 random flows parsed");
    eprintln!("{ok} of 1000 random flows parsed");
}
