//! `xvs-agent`: turns a directory of Kubernetes manifests into Antrea-pipeline flows.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use xvs_agent::model::load_dir;
use xvs_agent::pipeline::{desired, Desired, Ids};

#[derive(Parser, Debug)]
#[command(name = "xvs-agent", about = "Antrea-style agent for xvsd")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Prints the flows and groups the manifests produce (ovs-ofctl syntax), without a switch.
    Flows {
        /// Directory of YAML manifests (the agent config included).
        #[arg(long)]
        manifests: PathBuf,
        /// Round number for the cookies.
        #[arg(long, default_value_t = 1)]
        round: u16,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Flows { manifests, round } => {
            let (model, errors) =
                load_dir(&manifests).with_context(|| format!("reading {}", manifests.display()))?;
            for e in &errors {
                eprintln!("xvs-agent: bad manifest: {e}");
            }
            let d = desired(&model, &mut Ids::default());
            for (id, g) in &d.groups {
                println!("group_id={id},{g}");
            }
            for (k, b) in &d.flows {
                println!("{}", Desired::flow_line(k, b, round));
            }
        }
    }
    Ok(())
}
