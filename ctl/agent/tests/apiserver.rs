//! The API server source against recorded watch streams (`tests/data/apiserver`, replayed by
//! `support/replay.rs`): kube-rs lists and watches them and the model it builds equals the one
//! of the equivalent manifest directory; a 410 Gone re-lists without losing objects; deletes
//! remove objects and their flows; a Pod of another node becomes a policy peer; tokens,
//! bookmarks and resync are used, and Pods are watched on every node (no field selector).

#[path = "support/replay.rs"]
mod replay;

use replay::Replay;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xvs_agent::apiserver::{ApiKind, ApiObjects, WatchUpdate};
use xvs_agent::apiwatch::{spawn, ApiAccess, ApiFeed, ApiOptions};
use xvs_agent::model::{load_dir, Model};
use xvs_agent::pipeline::{desired, Ids, Owner};
use xvs_agent::sync::SyncState;

const TOKEN: &str = "replay-token-7f3a";

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/apiserver")
}

fn dir_model(dir: &str) -> Model {
    let (m, errors) = load_dir(&data().join(dir)).expect("reading the test manifests");
    assert!(errors.is_empty(), "{errors:?}");
    m
}

/// A replay server for `scenario` and a feed watching it through a kubeconfig.
fn start(scenario: &str, resync: Option<Duration>) -> (Replay, ApiFeed, tempfile::TempDir) {
    let server = Replay::start(&data().join(scenario), Some(TOKEN)).expect("replay server");
    let tmp = tempfile::tempdir().expect("tempdir");
    let kc = tmp.path().join("kubeconfig");
    server.write_kubeconfig(&kc).expect("kubeconfig");
    let feed = spawn(ApiOptions {
        access: ApiAccess::Kubeconfig(kc),
        resync,
    })
    .expect("starting the source");
    (server, feed, tmp)
}

/// Folds updates one at a time until `done` holds (checking `each` after every update), or
/// fails after 20 s.
fn fold_until(
    feed: &ApiFeed,
    objects: &mut ApiObjects,
    mut each: impl FnMut(&ApiObjects, &WatchUpdate),
    mut done: impl FnMut(&ApiObjects) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(objects) {
        assert!(
            Instant::now() < deadline,
            "not reached in 20 s: {objects:#?}"
        );
        if let Some(u) = feed.recv(Duration::from_millis(100)) {
            let shown = u.clone();
            objects.handle(u);
            each(objects, &shown);
        }
    }
}

fn merged(agent_dir: &str, objects: &ApiObjects) -> Model {
    let mut m = dir_model(agent_dir);
    objects.merge_into(&mut m);
    m
}

fn has_pod(objects: &ApiObjects, name: &str) -> bool {
    objects
        .objects()
        .any(|(k, _)| k.kind == ApiKind::Pod && k.name == name)
}

#[test]
fn replayed_streams_build_the_manifest_model_through_a_410() {
    let (server, feed, _tmp) = start("cluster", None);
    let expected = dir_model("cluster.expected");
    let mut objects = ApiObjects::default();
    let mut pods_listed = false;
    let mut failures = Vec::new();
    fold_until(
        &feed,
        &mut objects,
        |o, u| {
            // Once the first list is in, pod-a and pod-b never vanish: not during the watch,
            // not while the 410's re-list is in flight.
            if pods_listed {
                assert!(has_pod(o, "pod-a") && has_pod(o, "pod-b"), "after {u:?}");
            }
            pods_listed |= matches!(u, WatchUpdate::ListDone(ApiKind::Pod));
            if let WatchUpdate::Failed(k, m) = u {
                failures.push((*k, m.clone()));
            }
        },
        |o| o.all_listed() && merged("cluster.agent", o) == expected,
    );
    let model = merged("cluster.agent", &objects);
    assert_eq!(model, expected);
    // The same flows and groups as from the manifests.
    assert_eq!(
        desired(&model, &mut Ids::default()),
        desired(&expected, &mut Ids::default())
    );
    assert!(!desired(&model, &mut Ids::default()).flows.is_empty());

    // The 410 Gone ended the first pods watch and caused exactly one re-list.
    assert_eq!(objects.relists(ApiKind::Pod), 1);
    assert_eq!(server.lists_served("pods"), 2);
    assert!(
        failures
            .iter()
            .any(|(k, m)| *k == ApiKind::Pod && m.contains("too old resource version")),
        "{failures:?}"
    );
    // Only the broken policy is reported, by name and field; everything else is in the model.
    let errors = objects.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, "NetworkPolicy default/broken");
    assert_eq!(errors[0].field, "spec.ingress[0].from[0].ipBlock.cidr");

    // node-2's pod-r came through the same watch: no interface here, so no flows of its
    // own, but a peer of allow-client (from app=client), its address in the ingress rule.
    let remote = ("default".to_string(), "pod-r".to_string());
    assert!(model.unattached_pods.contains_key(&remote), "{model:#?}");
    assert!(!model.pods.contains_key(&remote));
    let flows = desired(&model, &mut Ids::default());
    assert_eq!(
        flows
            .flows_of(&Owner::Pod(remote.0.clone(), remote.1.clone()))
            .count(),
        0
    );
    let allow = flows
        .flows_of(&Owner::Policy("default".into(), "allow-client".into()))
        .map(|(k, _)| k.matches.clone())
        .collect::<Vec<_>>();
    for peer in ["nw_src=10.10.0.2", "nw_src=10.10.1.2"] {
        assert!(
            allow.iter().any(|m| m.contains(peer)),
            "{peer} among {allow:?}"
        );
    }
    // Without pod-r the policy has one peer address fewer: it is pod-r's.
    let mut local_only = model.clone();
    local_only.unattached_pods.remove(&remote);
    assert!(!desired(&local_only, &mut Ids::default())
        .flows
        .keys()
        .any(|k| k.matches.contains("10.10.1.2")));

    // What the client asked for: the Pods of every node (remote ones are policy peers),
    // bookmarks, the list's version.
    let req = server.requests();
    let pods: Vec<&String> = req
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods?"))
        .collect();
    assert!(!pods.is_empty());
    assert!(
        pods.iter().all(|r| !r.contains("fieldSelector")),
        "{pods:?}"
    );
    let watches: Vec<&&String> = pods.iter().filter(|r| r.contains("watch=true")).collect();
    assert!(watches.len() >= 2, "{pods:?}");
    assert!(watches
        .iter()
        .all(|r| r.contains("allowWatchBookmarks=true")));
    assert!(watches[0].contains("resourceVersion=1000"), "{watches:?}");
    assert!(watches[1].contains("resourceVersion=1020"), "{watches:?}");
    assert!(req
        .iter()
        .any(|r| r.starts_with("GET /apis/networking.k8s.io/v1/networkpolicies?")));
    assert!(req
        .iter()
        .any(|r| r.starts_with("GET /apis/discovery.k8s.io/v1/endpointslices?")));
}

#[test]
fn replayed_deletes_remove_objects_and_their_flows() {
    let (server, feed, _tmp) = start("cluster", None);
    let mut expected = dir_model("cluster.expected");
    let mut objects = ApiObjects::default();
    fold_until(
        &feed,
        &mut objects,
        |_, _| {},
        |o| o.all_listed() && merged("cluster.agent", o) == expected,
    );
    let mut state = SyncState::new(1);
    let plan = state
        .plan(&merged("cluster.agent", &objects))
        .expect("plan");
    state.committed(plan);

    let events = data().join("cluster/events");
    type Step = (&'static str, &'static str, fn(&mut Model));
    let steps: [Step; 3] = [
        ("pods", "pods-delete-pod-c.jsonl", |m| {
            m.pods.remove(&("default".into(), "pod-c".into()));
        }),
        (
            "networkpolicies",
            "networkpolicies-delete-allow-client.jsonl",
            |m| {
                m.policies
                    .remove(&("default".into(), "allow-client".into()));
            },
        ),
        ("services", "services-delete-web.jsonl", |m| {
            m.services.remove(&("default".into(), "web".into()));
        }),
    ];
    for (resource, file, edit) in steps {
        server
            .publish_file(resource, &events.join(file))
            .expect("publishing");
        edit(&mut expected);
        fold_until(
            &feed,
            &mut objects,
            |_, _| {},
            |o| merged("cluster.agent", o) == expected,
        );
        let plan = state
            .plan(&merged("cluster.agent", &objects))
            .expect("plan");
        assert!(!plan.changes.flow_del.is_empty(), "{file}: flows deleted");
        state.committed(plan);
        assert_eq!(
            state.installed,
            desired(&expected, &mut Ids::default()),
            "{file}: the flows of the model without the object"
        );
    }
    // pod-c's own flows are gone (its port and MAC appear nowhere).
    let flows = &state.installed.flows;
    assert!(flows
        .iter()
        .all(|(k, b)| !k.matches.contains("02:0a:0a:00:00:04")
            && !b.actions.contains("02:0a:0a:00:00:04")));
    // The slice of the deleted Service goes too; nothing of web remains.
    server
        .publish_file(
            "endpointslices",
            &events.join("endpointslices-delete-web.jsonl"),
        )
        .expect("publishing");
    expected
        .slices
        .remove(&("default".into(), "web-7xk2p".into()));
    fold_until(
        &feed,
        &mut objects,
        |_, _| {},
        |o| merged("cluster.agent", o) == expected,
    );
    assert!(state
        .installed
        .flows
        .keys()
        .all(|k| !k.matches.contains("10.96.0.10")));
    assert!(server.published_all());
}

#[test]
fn explicit_url_with_token_file_and_a_refused_token() {
    let server = Replay::start(&data().join("node"), Some(TOKEN)).expect("replay server");
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = tmp.path().join("token");
    std::fs::write(&good, TOKEN).expect("token");
    let feed = spawn(ApiOptions {
        access: ApiAccess::Url {
            url: server.url(),
            token_file: Some(good),
            ca_file: None,
        },
        resync: None,
    })
    .expect("starting the source");
    let mut objects = ApiObjects::default();
    fold_until(&feed, &mut objects, |_, _| {}, ApiObjects::all_listed);
    assert_eq!(objects.objects().count(), 7, "{objects:#?}");

    // A wrong token: every kind fails with 401 and nothing is listed.
    let bad = tmp.path().join("bad");
    std::fs::write(&bad, "wrong").expect("token");
    let feed = spawn(ApiOptions {
        access: ApiAccess::Url {
            url: server.url(),
            token_file: Some(bad),
            ca_file: None,
        },
        resync: None,
    })
    .expect("starting the source");
    let mut refused = ApiObjects::default();
    let failed = std::cell::Cell::new(0);
    fold_until(
        &feed,
        &mut refused,
        |_, u| {
            if matches!(u, WatchUpdate::Failed(_, m) if m.contains("401") || m.contains("Unauthorized"))
            {
                failed.set(failed.get() + 1);
            }
        },
        |_| failed.get() >= 6,
    );
    assert_eq!(refused.objects().count(), 0);
    assert!(!refused.all_listed());
}

#[test]
fn a_bad_kubeconfig_is_an_error_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let kc = tmp.path().join("kubeconfig");
    std::fs::write(&kc, "apiVersion: v1\nkind: Config\nclusters: 7\n").expect("write");
    let r = spawn(ApiOptions {
        access: ApiAccess::Kubeconfig(kc),
        resync: None,
    });
    assert!(r.is_err());
    let r = spawn(ApiOptions {
        access: ApiAccess::Url {
            url: "not a url".into(),
            token_file: None,
            ca_file: None,
        },
        resync: None,
    });
    assert!(r.is_err());
}

#[test]
fn periodic_resync_lists_again_and_changes_nothing() {
    let (server, feed, _tmp) = start("node", Some(Duration::from_secs(1)));
    let mut objects = ApiObjects::default();
    fold_until(&feed, &mut objects, |_, _| {}, ApiObjects::all_listed);
    let first = objects.clone();
    let mut changed = false;
    fold_until(
        &feed,
        &mut objects,
        |o, _| changed |= o.objects().ne(first.objects()),
        |o| ApiKind::ALL.iter().all(|k| o.relists(*k) >= 1),
    );
    assert!(!changed, "a resync of the same state changes nothing");
    for (r, _) in replay::RESOURCES {
        assert!(server.lists_served(r) >= 2, "{r} listed again");
    }
}

#[test]
fn retries_with_backoff_until_the_server_comes_up() {
    // A free port with nothing listening yet: every kind fails to list, and keeps retrying.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let tmp = tempfile::tempdir().expect("tempdir");
    let token = tmp.path().join("token");
    std::fs::write(&token, TOKEN).expect("token");
    let feed = spawn(ApiOptions {
        access: ApiAccess::Url {
            url: format!("http://{addr}"),
            token_file: Some(token),
            ca_file: None,
        },
        resync: None,
    })
    .expect("starting the source");
    let mut objects = ApiObjects::default();
    let failed = std::cell::Cell::new(0);
    fold_until(
        &feed,
        &mut objects,
        |_, u| {
            if matches!(u, WatchUpdate::Failed(..)) {
                failed.set(failed.get() + 1);
            }
        },
        |_| failed.get() >= 12,
    );
    assert!(!objects.all_listed());
    let listener = std::net::TcpListener::bind(addr).expect("the same port");
    let _server = Replay::start_on(listener, &data().join("node"), Some(TOKEN)).expect("replay");
    fold_until(&feed, &mut objects, |_, _| {}, ApiObjects::all_listed);
    assert_eq!(objects.objects().count(), 7);
}

#[test]
fn tls_with_the_cluster_ca_from_kubeconfig_or_ca_file() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let server =
        Replay::start_tls(listener, &data().join("node"), Some(TOKEN)).expect("replay server");
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let tmp = tempfile::tempdir().expect("tempdir");
    // Through a kubeconfig naming the CA.
    let kc = tmp.path().join("kubeconfig");
    server.write_kubeconfig(&kc).expect("kubeconfig");
    let feed = spawn(ApiOptions {
        access: ApiAccess::Kubeconfig(kc),
        resync: None,
    })
    .expect("starting the source");
    let mut objects = ApiObjects::default();
    fold_until(&feed, &mut objects, |_, _| {}, ApiObjects::all_listed);
    assert_eq!(objects.objects().count(), 7);

    // Through --apiserver with --ca-file and --token-file.
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem().expect("a CA")).expect("ca");
    let token = tmp.path().join("token");
    std::fs::write(&token, TOKEN).expect("token");
    let url_access = |ca_file: Option<PathBuf>| ApiAccess::Url {
        url: server.url(),
        token_file: Some(token.clone()),
        ca_file,
    };
    let feed = spawn(ApiOptions {
        access: url_access(Some(ca)),
        resync: None,
    })
    .expect("starting the source");
    let mut objects = ApiObjects::default();
    fold_until(&feed, &mut objects, |_, _| {}, ApiObjects::all_listed);
    assert_eq!(objects.objects().count(), 7);

    // Without the CA the server's certificate is refused: failures, nothing listed.
    let lists_before = server.lists_served("nodes");
    let feed = spawn(ApiOptions {
        access: url_access(None),
        resync: None,
    })
    .expect("starting the source");
    let mut refused = ApiObjects::default();
    let failed = std::cell::Cell::new(0);
    fold_until(
        &feed,
        &mut refused,
        |_, u| {
            if matches!(u, WatchUpdate::Failed(..)) {
                failed.set(failed.get() + 1);
            }
        },
        |_| failed.get() >= 6,
    );
    assert_eq!(refused.objects().count(), 0);
    assert_eq!(server.lists_served("nodes"), lists_before);
}

/// Writes a scenario of `services` Services (with a two-endpoint slice each), `pods` Pods of
/// node-1, 100 Nodes, 20 Namespaces and `policies` NetworkPolicies, in the API's list format.
fn write_large_scenario(dir: &Path, services: usize, pods: usize, policies: usize) {
    use serde_json::json;
    let write = |name: &str, kind: &str, api: &str, items: Vec<serde_json::Value>| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        let list = json!({"kind": kind, "apiVersion": api,
            "metadata": {"resourceVersion": "1000"}, "items": items});
        std::fs::write(d.join("list-1.json"), list.to_string()).expect("write");
    };
    let meta = |name: String, ns: Option<&str>| {
        let mut m = json!({"name": name, "uid": format!("uid-{name}"), "resourceVersion": "10"});
        if let Some(ns) = ns {
            m["namespace"] = json!(ns);
        }
        m
    };
    let nodes = (0..100)
        .map(|i| {
            json!({"metadata": meta(format!("node-{}", i + 1), None),
                "spec": {"podCIDR": format!("10.{}.{}.0/24", 10 + i / 250, i % 250)},
                "status": {"addresses": [{"type": "InternalIP",
                    "address": format!("192.168.{}.{}", i / 250, 1 + i % 250)}]}})
        })
        .collect();
    write("nodes", "NodeList", "v1", nodes);
    let namespaces = (0..20)
        .map(|i| {
            let mut m = meta(format!("ns-{i}"), None);
            m["labels"] = json!({"team": format!("t{}", i % 4)});
            json!({"metadata": m})
        })
        .collect();
    write("namespaces", "NamespaceList", "v1", namespaces);
    let pod_items = (0..pods)
        .map(|i| {
            let mut m = meta(format!("pod-{i}"), Some("ns-0"));
            m["labels"] = json!({"app": format!("app-{}", i % 10)});
            m["annotations"] = json!({"xvs.io/mac": format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256),
                "xvs.io/interface": format!("p{i}"), "xvs.io/ofport": (i + 1).to_string()});
            json!({"metadata": m, "spec": {"nodeName": "node-1"},
                "status": {"podIP": format!("10.10.0.{}", 2 + i)}})
        })
        .collect();
    write("pods", "PodList", "v1", pod_items);
    let svc_items = (0..services)
        .map(|i| {
            json!({"metadata": meta(format!("svc-{i}"), Some("ns-1")),
                "spec": {"clusterIP": format!("10.96.{}.{}", i / 250, 1 + i % 250),
                    "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}})
        })
        .collect();
    write("services", "ServiceList", "v1", svc_items);
    let slice_items = (0..services)
        .map(|i| {
            let mut m = meta(format!("svc-{i}-abcde"), Some("ns-1"));
            m["labels"] = json!({"kubernetes.io/service-name": format!("svc-{i}")});
            json!({"metadata": m, "addressType": "IPv4",
                "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
                "endpoints": [{"addresses": [format!("10.11.{}.{}", i / 250, 1 + i % 250)]},
                              {"addresses": [format!("10.10.0.{}", 2 + i % pods.max(1))]}]})
        })
        .collect();
    write(
        "endpointslices",
        "EndpointSliceList",
        "discovery.k8s.io/v1",
        slice_items,
    );
    let np_items = (0..policies)
        .map(|i| {
            json!({"metadata": meta(format!("np-{i}"), Some("ns-0")),
                "spec": {"podSelector": {"matchLabels": {"app": format!("app-{}", i % 10)}},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "t1"}}},
                                          {"ipBlock": {"cidr": format!("172.16.{}.0/24", i % 250)}}],
                                 "ports": [{"protocol": "TCP", "port": 8000 + i}]}]}})
        })
        .collect();
    write(
        "networkpolicies",
        "NetworkPolicyList",
        "networking.k8s.io/v1",
        np_items,
    );
}

/// Figures for BENCHMARKS.md: time from start to a whole model for a large cluster, and the
/// flows it gives. `cargo test -p xvs-agent --test apiserver -- --ignored --nocapture`.
#[test]
#[ignore = "timing; run by hand"]
fn large_cluster_initial_list_timing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (services, pods, policies) = (5000, 110, 200);
    write_large_scenario(tmp.path(), services, pods, policies);
    let server = Replay::start(tmp.path(), Some(TOKEN)).expect("replay server");
    let kc = tmp.path().join("kubeconfig");
    server.write_kubeconfig(&kc).expect("kubeconfig");
    let t0 = Instant::now();
    let feed = spawn(ApiOptions {
        access: ApiAccess::Kubeconfig(kc),
        resync: None,
    })
    .expect("starting the source");
    let mut objects = ApiObjects::default();
    fold_until(&feed, &mut objects, |_, _| {}, ApiObjects::all_listed);
    let listed = t0.elapsed();
    assert!(objects.errors().is_empty(), "{:?}", objects.errors());
    let n = objects.objects().count();
    assert_eq!(n, 100 + 20 + pods + 2 * services + policies);
    let t1 = Instant::now();
    let model = merged("cluster.agent", &objects);
    let d = desired(&model, &mut Ids::default());
    let flows = t1.elapsed();
    eprintln!(
        "objects {n}: listed and parsed in {:.0} ms ({:.1} us/object); model + desired() in {:.0} ms: {} flows, {} groups",
        listed.as_secs_f64() * 1e3,
        listed.as_secs_f64() * 1e6 / n as f64,
        flows.as_secs_f64() * 1e3,
        d.flows.len(),
        d.groups.len()
    );
}
