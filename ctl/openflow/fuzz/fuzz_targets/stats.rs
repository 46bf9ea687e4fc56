//! Decodes arbitrary bytes as every multipart body `xvs_openflow::stats` knows (the first
//! byte picks the kind). Nothing may panic; whatever decodes must encode to bytes that decode
//! to the same value (these encoders are canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_openflow::stats::*;

fn again<T: PartialEq + std::fmt::Debug>(v: &[T], put: impl Fn(&mut Vec<u8>, &T), pull: impl Fn(&[u8]) -> Option<Vec<T>>) {
    let mut out = Vec::new();
    for x in v {
        put(&mut out, x);
    }
    let back = pull(&out).expect("our encoding decodes");
    assert_eq!(back, v);
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else { return };
    match kind % 10 {
        0 => {
            if let Ok(v) = pull_table_stats(body) {
                again(&v, put_table_stats, |b| pull_table_stats(b).ok());
            }
        }
        1 => {
            if let Ok(v) = pull_port_stats(body) {
                again(&v, put_port_stats, |b| pull_port_stats(b).ok());
            }
        }
        2 => {
            if let Ok(v) = pull_port_descs(body) {
                let v: Vec<PortDesc> = v
                    .into_iter()
                    .map(|mut p| {
                        // Names longer than 15 bytes or with NULs are cut on the wire.
                        p.name = p.name.chars().filter(|c| *c != '\0').take(15).collect();
                        p
                    })
                    .filter(|p| p.name.len() <= 15)
                    .collect();
                again(&v, put_port_desc, |b| pull_port_descs(b).ok());
            }
        }
        3 => {
            if let Ok(v) = pull_group_descs(body) {
                let mut out = Vec::new();
                for g in &v {
                    put_group_desc(&mut out, g);
                }
                let first = out.clone();
                let back = pull_group_descs(&out).expect("our encoding decodes");
                out.clear();
                for g in &back {
                    put_group_desc(&mut out, g);
                }
                assert_eq!(first, out);
            }
        }
        4 => {
            if let Ok(v) = pull_group_stats(body) {
                again(&v, put_group_stats, |b| pull_group_stats(b).ok());
            }
        }
        5 => {
            if let Ok(v) = pull_meter_descs(body) {
                let mut out = Vec::new();
                for m in &v {
                    put_meter_desc(&mut out, m);
                }
                let first = out.clone();
                let back = pull_meter_descs(&out).expect("our encoding decodes");
                out.clear();
                for m in &back {
                    put_meter_desc(&mut out, m);
                }
                assert_eq!(first, out);
            }
        }
        6 => {
            if let Ok(v) = pull_meter_stats(body) {
                again(&v, put_meter_stats, |b| pull_meter_stats(b).ok());
            }
        }
        7 => {
            if let Ok(v) = pull_table_features(body) {
                let mut out = Vec::new();
                for t in &v {
                    put_table_features(&mut out, t);
                }
                let first = out.clone();
                let back = pull_table_features(&out).expect("our encoding decodes");
                out.clear();
                for t in &back {
                    put_table_features(&mut out, t);
                }
                assert_eq!(first, out);
            }
        }
        8 => {
            let _ = pull_aggregate(body);
            let _ = pull_aggregate_request(body);
        }
        _ => {
            let _ = pull_group_features(body);
            let _ = pull_meter_features(body);
            let _ = pull_id_request(body);
        }
    }
});
