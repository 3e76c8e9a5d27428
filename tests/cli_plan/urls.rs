//! `ocimetal.configdrive_url=` and `ocimetal.user_data_url=`: documents served over HTTP by
//! the test itself, per machine through `{mac}`, in every form Ironic gives a configdrive.

use super::support::{
    build_iso, fixture, flood_server, have_xorriso, ironic_string, ocimetal, write_tree, Run,
};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Serves `(path, status, body)` routes on 127.0.0.1 (404 elsewhere) and counts the requests
/// for each route.
struct Server {
    base: String,
    hits: Arc<Vec<AtomicUsize>>,
}

impl Server {
    fn start(routes: Vec<(String, u16, Vec<u8>)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits: Arc<Vec<AtomicUsize>> =
            Arc::new(routes.iter().map(|_| AtomicUsize::new(0)).collect());
        let counted = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or(path);
                let (status, body) = match routes.iter().position(|(p, _, _)| p == path) {
                    Some(index) => {
                        counted[index].fetch_add(1, Ordering::SeqCst);
                        (routes[index].1, routes[index].2.as_slice())
                    }
                    None => (404, b"not found".as_slice()),
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body);
            }
        });
        Self { base, hits }
    }

    /// How many requests route `index` answered.
    fn hits(&self, index: usize) -> usize {
        self.hits[index].load(Ordering::SeqCst)
    }
}

/// This machine's Ethernet MACs as `{mac}` gives them (`aa-bb-…`), in interface-name order,
/// read where the binary reads them.
fn macs() -> Vec<String> {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut nics: Vec<(String, String)> = std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| read(&entry.path().join("type")).as_deref() == Some("1"))
        .filter_map(|entry| {
            let mac = read(&entry.path().join("address"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            Some((name, mac.to_ascii_lowercase().replace(':', "-")))
        })
        .filter(|(_, mac)| !mac.is_empty() && mac != "00-00-00-00-00-00")
        .collect();
    nics.sort();
    nics.into_iter().map(|(_, mac)| mac).collect()
}

/// The last MAC of this machine: every other one is answered 404 first. `None` (and a note)
/// on a machine without an Ethernet NIC.
fn last_mac() -> Option<String> {
    let last = macs().pop();
    if last.is_none() {
        eprintln!("skipping: this machine has no Ethernet NIC for {{mac}}");
    }
    last
}

/// `ocimetal plan --json` on `cmdline` (and `extra` options) with the test inventory.
fn plan(cmdline: &str, extra: &[&str]) -> Run {
    let inventory = fixture("inventory.json").display().to_string();
    let mut args = vec![
        "plan",
        "--arch",
        "x86_64",
        "--inventory",
        &inventory,
        "--cmdline",
        cmdline,
    ];
    args.extend(extra);
    ocimetal(&args)
}

fn meta(host: &str) -> Value {
    json!({"uuid": format!("u-{host}"), "local-hostname": host, "root_device_hints": "serial=S-ALPHA"})
}

/// A `config-2` ISO image; `None` (and a note) without xorriso.
fn config2_iso(dir: &Path, host: &str, user_data: &str) -> Option<Vec<u8>> {
    if !have_xorriso() {
        eprintln!("skipping: xorriso is not installed");
        return None;
    }
    let tree = dir.join(host);
    write_tree(
        &tree,
        meta(host).to_string().into_bytes(),
        Some(user_data),
        None,
    );
    let iso = dir.join(format!("{host}.iso"));
    build_iso(&tree, &iso)?;
    Some(std::fs::read(iso).unwrap())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn a_configdrive_url_names_each_machine_by_mac_in_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let (Some(mac), Some(iso)) = (last_mac(), config2_iso(dir.path(), "by-url", "#cc\n")) else {
        return;
    };
    let dict = json!({"meta_data": meta("by-url"), "user_data": "#cc\n"});
    let forms = [
        ("iso", iso.clone()),
        ("iso.gz", gzip(&iso)),
        ("json", dict.to_string().into_bytes()),
        ("b64", ironic_string(&iso).into_bytes()),
    ];
    let server = Server::start(
        forms
            .iter()
            .map(|(ext, body)| (format!("/cd/{mac}.{ext}"), 200, body.clone()))
            .collect(),
    );
    for (index, (ext, _)) in forms.iter().enumerate() {
        let base = &server.base;
        let run = plan(
            &format!("ocimetal.configdrive_url={base}/cd/{{mac}}.{ext}"),
            &["--json"],
        );
        let plan = run.json();
        assert_eq!(plan["hostname"], "by-url", "{ext}");
        assert_eq!(plan["configdrive_source"], "ocimetal.configdrive_url");
        assert_eq!(
            plan["configdrive"],
            format!("ocimetal.configdrive_url {base}/cd/{mac}.{ext}")
        );
        assert_eq!(plan["user_data_source"], "configdrive");
        assert_eq!(plan["hints_source"], "meta_data.root_device_hints");
        assert_eq!(server.hits(index), 1, "{ext}");
    }
    // The summary says it too.
    let run = plan(
        &format!("ocimetal.configdrive_url={}/cd/{{mac}}.iso", server.base),
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("configdrive "))
        .unwrap_or_else(|| panic!("no configdrive line: {}", run.stdout));
    assert_eq!(
        line,
        format!(
            "configdrive  ocimetal.configdrive_url {}/cd/{mac}.iso",
            server.base
        )
    );
}

#[test]
fn a_configdrive_url_answered_404_everywhere_is_no_orders() {
    let Some(_) = last_mac() else {
        return;
    };
    let server = Server::start(vec![]);
    let run = plan(
        &format!("ocimetal.configdrive_url={}/cd/{{mac}}.iso", server.base),
        &[],
    );
    assert_eq!(run.code, Some(4), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(run.stderr.starts_with("ocimetal: no orders: "), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
}

#[test]
fn a_configdrive_url_that_serves_no_configdrive_is_refused_naming_the_key_and_url() {
    let server = Server::start(vec![
        ("/cd".into(), 200, b"<html>SECRET-PAGE</html>".to_vec()),
        ("/bad.json".into(), 200, br#"{"meta_data": [1]}"#.to_vec()),
    ]);
    let base = &server.base;
    let run = plan(
        &format!(
            "ocimetal.configdrive_url=http://op:PASSWD-1@{}/cd?sig=SIG-2",
            &base[7..]
        ),
        &[],
    );
    run.assert_refused(
        &format!(
            "ocimetal.configdrive_url http://op:redacted@{}/cd?redacted",
            &base[7..]
        ),
        &["is not a configdrive"],
    );
    for secret in ["SECRET-PAGE", "PASSWD-1", "SIG-2"] {
        assert!(!run.all_output().contains(secret), "{run:?}");
    }
    let run = plan(&format!("ocimetal.configdrive_url={base}/bad.json"), &[]);
    run.assert_refused(
        &format!("ocimetal.configdrive_url {base}/bad.json: meta_data"),
        &["a list", "must be an object"],
    );
}

#[test]
fn documents_over_their_limit_are_refused() {
    // A body that never ends is read up to 64 MiB, then refused.
    let base = flood_server("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    let run = plan(&format!("ocimetal.configdrive_url={base}/cd"), &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "ocimetal: fetching the configdrive (ocimetal.configdrive_url) from {base}/cd: \
             document larger than 64 MiB"
        )
    );
    // The user_data is refused past 16 MiB, announced or not.
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), meta("h").to_string().into_bytes(), None, None);
    let tree = dir.path().display().to_string();
    for head in [
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 4294967296\r\n\r\n",
    ] {
        let base = flood_server(head);
        let run = plan(
            &format!("ocimetal.user_data_url={base}/ud"),
            &["--configdrive", &tree],
        );
        assert_eq!(run.code, Some(1), "{run:?}");
        assert_eq!(
            run.stderr.trim_end(),
            format!(
                "ocimetal: fetching the user_data (ocimetal.user_data_url) from {base}/ud: \
                 document larger than 16 MiB"
            )
        );
    }
}

#[test]
fn the_configdrive_url_ranks_below_the_node_and_the_named_drives() {
    let dir = tempfile::tempdir().unwrap();
    let Some(iso) = config2_iso(dir.path(), "from-url", "#cc\n") else {
        return;
    };
    let server = Server::start(vec![("/cd".into(), 200, iso)]);
    let url = format!("ocimetal.configdrive_url={}/cd", server.base);

    let node = dir.path().join("node.json");
    let doc =
        json!({"uuid": "n-1", "instance_info": {"configdrive": {"meta_data": meta("from-node")}}});
    std::fs::write(&node, doc.to_string()).unwrap();
    let node = node.display().to_string();
    let plan_json = plan(&url, &["--json", "--node", &node]).json();
    assert_eq!(plan_json["hostname"], "from-node");
    assert_eq!(plan_json["configdrive_source"], "instance_info.configdrive");

    let tree = dir.path().join("named");
    write_tree(&tree, meta("named").to_string().into_bytes(), None, None);
    let tree = tree.display().to_string();
    let plan_json = plan(&url, &["--json", "--node", &node, "--configdrive", &tree]).json();
    assert_eq!(plan_json["hostname"], "named");
    assert_eq!(plan_json["configdrive_source"], "--configdrive");
    assert_eq!(plan_json["configdrive"], tree);
    assert!(plan_json["user_data_source"].is_null());
    let plan_json = plan(&format!("{url} ocimetal.configdrive={tree}"), &["--json"]).json();
    assert_eq!(plan_json["configdrive_source"], "ocimetal.configdrive");

    assert_eq!(
        server.hits(0),
        0,
        "a drive that ranks higher spares the fetch"
    );
    let plan_json = plan(&url, &["--json"]).json();
    assert_eq!(plan_json["hostname"], "from-url");
    assert_eq!(server.hits(0), 1);
}

const URL_USER_DATA: &str = "#cloud-config\n# UDURL-SECRET-5150\n";

#[test]
fn user_data_from_its_url_replaces_the_configdrives_and_is_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("cd");
    write_tree(
        &tree,
        meta("h").to_string().into_bytes(),
        Some("#cloud-config\n# FROM-DRIVE\n"),
        None,
    );
    let tree = tree.display().to_string();
    let server = Server::start(vec![
        ("/ud".into(), 200, URL_USER_DATA.as_bytes().to_vec()),
        ("/broken".into(), 500, b"never fetched".to_vec()),
    ]);
    let url = format!("ocimetal.user_data_url={}/ud?sig=UDSIG-77", server.base);
    let run = plan(&url, &["--json", "--configdrive", &tree]);
    let plan_json = run.json();
    assert_eq!(plan_json["user_data_source"], "ocimetal.user_data_url");
    assert_eq!(plan_json["configdrive_source"], "--configdrive");
    let run_text = plan(&url, &["--configdrive", &tree]);
    assert_eq!(run_text.code, Some(0), "{run_text:?}");
    assert!(
        run_text
            .stdout
            .contains("user_data    from ocimetal.user_data_url (content not shown)"),
        "{}",
        run_text.stdout
    );
    for output in [run.all_output(), run_text.all_output()] {
        for secret in ["UDURL-SECRET-5150", "UDSIG-77", "FROM-DRIVE"] {
            assert!(!output.contains(secret), "{output}");
        }
    }
    // What the installed system gets is the URL's user_data.
    let rendered = dir.path().join("render");
    let rendered_arg = rendered.display().to_string();
    let run = plan(
        &url,
        &[
            "--configdrive",
            &tree,
            "--render",
            &rendered_arg,
            "--show-secrets",
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let written =
        std::fs::read_to_string(rendered.join("var/lib/cloud/seed/nocloud-net/user-data")).unwrap();
    assert_eq!(written, URL_USER_DATA);

    // Without a configdrive, it gives the user_data of orders from the command line.
    let run = plan(
        &format!("{url} ocimetal.root_device_hints=serial=S-ALPHA"),
        &["--json"],
    );
    assert_eq!(run.json()["user_data_source"], "ocimetal.user_data_url");

    // On its own it is no orders, and it is not fetched.
    let run = plan(
        &format!("ocimetal.user_data_url={}/broken", server.base),
        &[],
    );
    assert_eq!(run.code, Some(4), "{run:?}");
    assert!(run.stderr.starts_with("ocimetal: no orders: "), "{run:?}");
    assert_eq!(server.hits(1), 0);
}

#[test]
fn user_data_answered_404_everywhere_leaves_the_configdrives() {
    let Some(_) = last_mac() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        meta("h").to_string().into_bytes(),
        Some("#cc\n"),
        None,
    );
    let server = Server::start(vec![]);
    let run = plan(
        &format!("ocimetal.user_data_url={}/ud/{{mac}}", server.base),
        &["--json", "--configdrive", &dir.path().display().to_string()],
    );
    assert_eq!(run.json()["user_data_source"], "configdrive");
}
