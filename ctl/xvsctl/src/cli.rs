//! Command-line syntax and the unixctl command each verb runs.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use xvs_agent_query::{Kind, Query, SOCKET_NAME, SORT_BY_EFFECTIVE_PRIORITY};

/// xvsd's control commands, for hosts without the OVS tools.
#[derive(Debug, Parser)]
#[command(name = "xvsctl", version, about)]
pub struct Cli {
    /// xvsd's run directory (where `xvsd.ctl` lives).
    #[arg(long, default_value = "/run/xvs", global = true)]
    pub run_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub verb: Verb,
}

/// The verbs.
#[derive(Debug, Subcommand, PartialEq)]
pub enum Verb {
    /// Bridges and ports with their OpenFlow and datapath numbers (`dpif/show`).
    Show,
    /// The megaflows cached by every worker (`dpctl/dump-flows`).
    DumpFlows {
        /// Every field with its mask, and the flow ids.
        #[arg(short = 'm', long = "more")]
        more: bool,
        /// Port names instead of numbers.
        #[arg(long)]
        names: bool,
    },
    /// Connections in the tracker (`dpctl/dump-conntrack`).
    DumpConntrack {
        /// Only this zone.
        #[arg(long)]
        zone: Option<u16>,
    },
    /// Removes connections (`dpctl/flush-conntrack`; OVS's arguments: `zone=N`, tuples).
    FlushConntrack {
        /// Arguments as ovs-appctl takes them.
        args: Vec<String>,
    },
    /// Per-worker packet and cache counters (`dpif-netdev/pmd-stats-show`).
    PmdStats,
    /// Traces a flow through the tables (`ofproto/trace [BRIDGE] FLOW [--ct-next FLAGS]`).
    Trace {
        /// `[BRIDGE] FLOW`: the flow in ovs-ofctl syntax, optionally after the bridge name.
        #[arg(num_args = 1..=2, required = true, value_names = ["BRIDGE", "FLOW"])]
        args: Vec<String>,
        /// `ct_state` flags for the packet after each ct() (e.g. `trk,new`).
        #[arg(long = "ct-next")]
        ct_next: Vec<String>,
    },
    /// Event counters with their rates (`coverage/show`).
    Coverage,
    /// Datapath features (`dpif/show-dp-features`).
    DpFeatures {
        /// The bridge.
        bridge: String,
    },
    /// Log levels: lists them, or sets them with OVS specs (`vlog/list`, `vlog/set`).
    Vlog {
        /// Specs such as `ANY:dbg` or `ofserver:console:info`.
        specs: Vec<String>,
    },
    /// Counters by worker and port, with drops by reason (`xvs/show`).
    Counters,
    /// xvsd's version.
    Version,
    /// Any unixctl command, as `ovs-appctl -t` would run it.
    Call {
        /// The command (e.g. `list-commands`).
        method: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// Writes the frames a port receives and sends to a pcap file (tcpdump cannot see AF_XDP
    /// traffic).
    Capture {
        /// The port (name or OpenFlow number).
        port: String,
        /// The pcap file to write (`-` for stdout).
        #[arg(short = 'w')]
        file: PathBuf,
        /// Stop after this many frames.
        #[arg(short = 'c')]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// A live per-port, per-worker view (rates, drops by reason, cache tiers).
    Stats {
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Refreshes before exiting (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
    },
    /// What xvs-agent realized for Pods, Services or NetworkPolicies, each with its flows and
    /// the switch's packet counts (asks the agent's query socket, not xvsd).
    Get {
        /// `pods` (`po`), `services` (`svc`) or `netpol`.
        #[arg(value_parser = parse_kind)]
        kind: Kind,
        /// Only this object.
        name: Option<String>,
        /// Only this namespace (default: all namespaces).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// Order: by namespace and name (default), or `effectivePriority`, the order the
        /// policies are evaluated in, as antctl prints it.
        #[arg(long, value_parser = [SORT_BY_EFFECTIVE_PRIORITY, "name"])]
        sort_by: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// The agent's query socket (default: `xvs-agent.sock` in the run directory).
        #[arg(long)]
        agent_socket: Option<PathBuf>,
    },
}

/// How `get` prints the agent's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tables and flows in `ovs-ofctl dump-flows` form, as `xvs-agent get` prints them.
    Text,
    /// The agent's answer as JSON.
    Json,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).ok_or_else(|| format!("unknown kind {s:?} (pods, services, netpol)"))
}

impl Verb {
    /// The agent query and its socket of a `get` (`None`: other verbs).
    pub fn agent_query(&self, run_dir: &Path) -> Option<(PathBuf, Query, Output)> {
        let Verb::Get {
            kind,
            name,
            namespace,
            sort_by,
            output,
            agent_socket,
        } = self
        else {
            return None;
        };
        let socket = agent_socket
            .clone()
            .unwrap_or_else(|| run_dir.join(SOCKET_NAME));
        let q = Query {
            kind: *kind,
            name: name.clone(),
            namespace: namespace.clone(),
            sort_by: sort_by.clone(),
        };
        Some((socket, q, *output))
    }
}

impl Verb {
    /// The unixctl command and arguments of a verb that maps to one (`None`: capture, stats,
    /// get).
    pub fn unixctl(&self) -> Option<(String, Vec<String>)> {
        let c = |m: &str, a: Vec<String>| Some((m.to_string(), a));
        match self {
            Verb::Show => c("dpif/show", vec![]),
            Verb::DumpFlows { more, names } => {
                let mut a = Vec::new();
                if *more {
                    a.push("-m".to_string());
                }
                if *names {
                    a.push("--names".to_string());
                }
                c("dpctl/dump-flows", a)
            }
            Verb::DumpConntrack { zone } => c(
                "dpctl/dump-conntrack",
                zone.iter().map(|z| format!("zone={z}")).collect(),
            ),
            Verb::FlushConntrack { args } => c("dpctl/flush-conntrack", args.clone()),
            Verb::PmdStats => c("dpif-netdev/pmd-stats-show", vec![]),
            Verb::Trace { args, ct_next } => {
                let mut a = args.clone();
                for f in ct_next {
                    a.push("--ct-next".to_string());
                    a.push(f.clone());
                }
                c("ofproto/trace", a)
            }
            Verb::Coverage => c("coverage/show", vec![]),
            Verb::DpFeatures { bridge } => c("dpif/show-dp-features", vec![bridge.clone()]),
            Verb::Vlog { specs } if specs.is_empty() => c("vlog/list", vec![]),
            Verb::Vlog { specs } => c("vlog/set", specs.clone()),
            Verb::Counters => c("xvs/show", vec![]),
            Verb::Version => c("version", vec![]),
            Verb::Call { method, args } => c(method, args.clone()),
            Verb::Capture { .. } | Verb::Stats { .. } | Verb::Get { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).expect("parses")
    }

    fn unixctl(args: &[&str]) -> (String, Vec<String>) {
        parse(args).verb.unixctl().expect("maps to unixctl")
    }

    #[test]
    fn verbs_map_to_ovs_commands() {
        let cli = parse(&["xvsctl", "--run-dir", "/tmp/x", "show"]);
        assert_eq!(cli.run_dir, PathBuf::from("/tmp/x"));
        assert_eq!(cli.verb.unixctl(), Some(("dpif/show".into(), vec![])));
        assert_eq!(
            parse(&["xvsctl", "show"]).run_dir,
            PathBuf::from("/run/xvs")
        );
        assert_eq!(
            unixctl(&["xvsctl", "dump-flows", "-m", "--names"]),
            (
                "dpctl/dump-flows".into(),
                vec!["-m".into(), "--names".into()]
            )
        );
        assert_eq!(
            unixctl(&["xvsctl", "dump-conntrack", "--zone", "65520"]),
            ("dpctl/dump-conntrack".into(), vec!["zone=65520".into()])
        );
        assert_eq!(
            unixctl(&[
                "xvsctl",
                "trace",
                "br-int",
                "in_port=1,tcp",
                "--ct-next",
                "trk,new"
            ]),
            (
                "ofproto/trace".into(),
                vec![
                    "br-int".into(),
                    "in_port=1,tcp".into(),
                    "--ct-next".into(),
                    "trk,new".into()
                ]
            )
        );
        assert_eq!(
            unixctl(&["xvsctl", "trace", "in_port=1,udp"]),
            ("ofproto/trace".into(), vec!["in_port=1,udp".into()])
        );
        assert!(Cli::try_parse_from(["xvsctl", "trace"]).is_err());
        assert!(Cli::try_parse_from(["xvsctl", "trace", "a", "b", "c"]).is_err());
        assert_eq!(unixctl(&["xvsctl", "vlog"]).0, "vlog/list");
        assert_eq!(
            unixctl(&["xvsctl", "vlog", "ANY:dbg"]),
            ("vlog/set".into(), vec!["ANY:dbg".into()])
        );
        assert_eq!(
            unixctl(&["xvsctl", "pmd-stats"]).0,
            "dpif-netdev/pmd-stats-show"
        );
        assert_eq!(unixctl(&["xvsctl", "coverage"]).0, "coverage/show");
        assert_eq!(
            unixctl(&["xvsctl", "call", "list-commands"]),
            ("list-commands".into(), vec![])
        );
        // The run directory may also follow the verb.
        let cli = parse(&["xvsctl", "coverage", "--run-dir", "/r"]);
        assert_eq!(cli.run_dir, PathBuf::from("/r"));
    }

    #[test]
    fn capture_and_stats_arguments() {
        let cli = parse(&["xvsctl", "capture", "pa0", "-w", "/tmp/a.pcap", "-c", "10"]);
        assert_eq!(
            cli.verb,
            Verb::Capture {
                port: "pa0".into(),
                file: PathBuf::from("/tmp/a.pcap"),
                count: Some(10),
                timeout: None,
            }
        );
        assert_eq!(cli.verb.unixctl(), None);
        assert!(
            Cli::try_parse_from(["xvsctl", "capture", "pa0"]).is_err(),
            "-w is required"
        );
        assert!(Cli::try_parse_from(["xvsctl", "capture", "pa0", "-w", "f", "-c", "x"]).is_err());
        let cli = parse(&["xvsctl", "stats", "--interval", "0.5", "--count", "3"]);
        assert_eq!(
            cli.verb,
            Verb::Stats {
                interval: 0.5,
                count: Some(3)
            }
        );
        assert!(Cli::try_parse_from(["xvsctl", "nosuch"]).is_err());
    }

    #[test]
    fn get_asks_the_agent_socket() {
        let cli = parse(&[
            "xvsctl",
            "--run-dir",
            "/r",
            "get",
            "netpol",
            "--sort-by",
            "effectivePriority",
        ]);
        assert_eq!(cli.verb.unixctl(), None);
        let (socket, q, out) = cli.verb.agent_query(&cli.run_dir).expect("a query");
        assert_eq!(socket, PathBuf::from("/r/xvs-agent.sock"));
        assert_eq!(
            q,
            Query {
                kind: Kind::Netpol,
                name: None,
                namespace: None,
                sort_by: Some("effectivePriority".into()),
            }
        );
        assert_eq!(out, Output::Text);

        let cli = parse(&[
            "xvsctl",
            "get",
            "po",
            "web-1",
            "-n",
            "prod",
            "-o",
            "json",
            "--agent-socket",
            "/tmp/a.sock",
        ]);
        let (socket, q, out) = cli.verb.agent_query(&cli.run_dir).expect("a query");
        assert_eq!(socket, PathBuf::from("/tmp/a.sock"));
        assert_eq!(q.kind, Kind::Pods);
        assert_eq!(q.name.as_deref(), Some("web-1"));
        assert_eq!(q.namespace.as_deref(), Some("prod"));
        assert_eq!(q.sort_by, None);
        assert_eq!(out, Output::Json);
        // The default run directory holds the default socket.
        let cli = parse(&["xvsctl", "get", "svc"]);
        let (socket, q, _) = cli.verb.agent_query(&cli.run_dir).expect("a query");
        assert_eq!(socket, PathBuf::from("/run/xvs/xvs-agent.sock"));
        assert_eq!(q.kind, Kind::Services);
        assert_eq!(
            parse(&["xvsctl", "show"]).verb.agent_query(Path::new("/r")),
            None
        );

        for bad in [
            &["xvsctl", "get"][..],
            &["xvsctl", "get", "nodes"],
            &["xvsctl", "get", "pods", "--sort-by", "age"],
            &["xvsctl", "get", "pods", "-o", "yaml"],
            &["xvsctl", "get", "pods", "a", "b"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
        let e = Cli::try_parse_from(["xvsctl", "get", "nodes"]).expect_err("unknown kind");
        assert!(e.to_string().contains("pods, services, netpol"), "{e}");
    }
}
