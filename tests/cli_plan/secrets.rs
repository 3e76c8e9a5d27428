//! Secrets never reach stdout or stderr: not in the plan (text or JSON), not in warnings,
//! not in the one-line refusal, whatever else is wrong with the orders.

use super::support::{Orders, Run};
use serde_json::{json, Value};

const UUID: &str = "0e4d5b1a-9c1f-4f4e-8a55-3f1d2b9c0a11";

/// Distinctive strings placed where secrets go; none may ever be printed.
const USER_DATA: &str = "UDMARK-4471";
const ADMIN_PASS: &str = "ADMINPASS-9923";
const NESTED_PASS: &str = "NESTEDPW-1187";
const TOKEN: &str = "APITOKEN-2209";
const PULL_SECRET: &str = "PULLSECRET-5512";
const PROXY_PASS: &str = "PROXYPW-3390";
const MIRROR_PASS: &str = "MIRRORPW-7781";
const URL_SIGNATURE: &str = "URLSIG-6620";
const REPORT_AUTH: &str = "REPORTAUTH-4107";
const REPORT_PASS: &str = "REPORTPW-8832";

const MARKERS: &[&str] = &[
    USER_DATA,
    ADMIN_PASS,
    NESTED_PASS,
    TOKEN,
    PULL_SECRET,
    PROXY_PASS,
    MIRROR_PASS,
    URL_SIGNATURE,
    REPORT_AUTH,
    REPORT_PASS,
];

fn meta_data() -> Value {
    json!({
        "uuid": UUID,
        "local-hostname": "secret-host",
        "root_device_hints": "serial=S-ALPHA S-BRAVO",
        "admin_pass": ADMIN_PASS,
        "extra": {"db_password": NESTED_PASS, "list": [{"api_token": TOKEN}]},
        "public_keys": {"default": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPublicKeyIsFine"}
    })
}

fn user_data() -> String {
    format!("#cloud-config\npassword: {USER_DATA}\nchpasswd: {{expire: false}}\n")
}

fn cmdline() -> String {
    format!(
        "ocimetal.apt_proxy=http://proxyuser:{PROXY_PASS}@proxy.lab:3142 \
         ocimetal.registry_mirror=docker.io=http://mirroruser:{MIRROR_PASS}@mirror.lab:5000 \
         ocimetal.insecure_registry=mirror.lab:5000 \
         ocimetal.report_url=https://hook:{REPORT_PASS}@hooks.lab/ocimetal?sig={URL_SIGNATURE} \
         \"ocimetal.report_auth=Bearer {REPORT_AUTH}\""
    )
}

/// Every secret at once: the configdrive inline in the node document.
fn inline_orders(meta: Value) -> Orders {
    Orders::node(json!({
        "uuid": UUID,
        "instance_info": {
            "image_source": format!("https://images.lab/os.qcow2?temp_url_sig={URL_SIGNATURE}"),
            "image_pull_secret": format!("pulluser:{PULL_SECRET}"),
            "configdrive": {"meta_data": meta, "user_data": user_data()}
        }
    }))
    .with_cmdline(&cmdline())
}

/// The same, with the configdrive as a directory tree next to the node document.
fn tree_orders(meta: Value) -> Orders {
    let mut orders = Orders::node(json!({
        "uuid": UUID,
        "instance_info": {
            "image_source": format!("https://images.lab/os.qcow2?temp_url_sig={URL_SIGNATURE}"),
            "image_pull_secret": format!("pulluser:{PULL_SECRET}"),
        }
    }))
    .with_meta(meta)
    .with_cmdline(&cmdline());
    orders.user_data = Some(user_data());
    orders
}

fn assert_no_secret(run: &Run, what: &str) {
    let output = run.all_output();
    for marker in MARKERS {
        assert!(
            !output.contains(marker),
            "{what}: {marker} printed:\n{output}"
        );
    }
}

#[test]
fn successful_plans_print_no_secret() {
    for orders in [inline_orders(meta_data()), tree_orders(meta_data())] {
        for json in [false, true] {
            let run = orders.run(json);
            assert_eq!(run.code, Some(0), "{run:?}");
            assert_no_secret(&run, "plan");
            // The plan is really about these orders (the secrets were read, not dropped).
            assert!(run.stdout.contains("secret-host"), "{}", run.stdout);
            if json {
                assert!(
                    run.stdout
                        .contains("/var/lib/cloud/seed/nocloud-net/user-data"),
                    "{}",
                    run.stdout
                );
            }
            // The ignored image URL is reported, without its signature.
            assert!(run.stderr.contains("images.lab"), "{run:?}");
        }
    }
}

#[test]
fn refusals_print_no_secret() {
    let with = |extra: Value| {
        let mut meta = meta_data();
        for (key, value) in extra.as_object().unwrap() {
            meta[key] = value.clone();
        }
        meta
    };
    let mut cases: Vec<(&str, Orders)> = Vec::new();
    for (name, meta) in [
        (
            "meta_data.root_device_hints",
            with(json!({"root_device_hints": "serial=NO-SUCH-DISK"})),
        ),
        (
            "root_device_hints",
            with(json!({"root_device_hints": null})),
        ),
        (
            "meta_data.disk_wipe_mode",
            with(json!({"disk_wipe_mode": "some"})),
        ),
        (
            "meta_data.local-hostname",
            with(json!({"local-hostname": "bad host"})),
        ),
        (
            "meta_data.oci_image",
            with(json!({"oci_image": "Bad Image"})),
        ),
        ("meta_data.oci_image", with(json!({"oci_image": 5}))),
    ] {
        cases.push((name, inline_orders(meta.clone())));
        cases.push((name, tree_orders(meta)));
    }
    let mut network = tree_orders(meta_data());
    network.network_data =
        Some(json!({"links": [{"id": "x", "type": "phy", "ethernet_mac_address": "zz"}]}));
    cases.push(("network_data", network));
    let mut small = inline_orders(with(json!({"root_device_hints": null})));
    small.inventory = "inventory-small.json".into();
    cases.push(("root_device_hints", small));
    for (name, line) in [
        (
            "ocimetal.apt_proxy",
            format!("ocimetal.apt_proxy=ftp://proxyuser:{PROXY_PASS}@proxy.lab"),
        ),
        (
            "ocimetal.apt_proxy",
            format!("ocimetal.apt_proxy=http://proxyuser:{PROXY_PASS}@"),
        ),
        (
            "ocimetal.apt_proxy",
            format!("ocimetal.apt_proxy=proxyuser:{PROXY_PASS}@proxy.lab:3142"),
        ),
        (
            "ocimetal.apt_proxy",
            format!("ocimetal.apt_proxy=http://proxyuser:{PROXY_PASS}@proxy.lab:99999"),
        ),
        (
            "ocimetal.registry_mirror",
            format!("ocimetal.registry_mirror=docker.io/x=http://u:{MIRROR_PASS}@mirror.lab"),
        ),
        (
            "ocimetal.registry_mirror",
            format!("ocimetal.registry_mirror=docker.io=http://u:{MIRROR_PASS}@"),
        ),
        (
            "ocimetal.registry_mirror",
            format!("ocimetal.registry_mirror=http://u:{MIRROR_PASS}@mirror.lab"),
        ),
        (
            "ocimetal.registry_mirror",
            format!("ocimetal.registry_mirror=docker.io=ftp://u:{MIRROR_PASS}@mirror.lab"),
        ),
        ("ocimetal.secret", format!("ocimetal.secret={ADMIN_PASS}")),
        ("ocimetal.reboot", "ocimetal.reboot=later".to_string()),
    ] {
        let orders = inline_orders(meta_data());
        let line = format!("{} {line}", orders.cmdline);
        cases.push((name, orders.with_cmdline(&line)));
    }
    // Each case is named by the field its refusal must name.
    for (index, (field, orders)) in cases.into_iter().enumerate() {
        let run = orders.run(index % 2 == 1);
        run.assert_refused(field, &[]);
        assert_no_secret(&run, field);
    }
}

#[test]
fn secrets_of_the_wrong_type_are_not_echoed() {
    let cases = [
        (
            json!({"uuid": UUID, "instance_info": {"image_pull_secret": 55128812}}),
            "instance_info.image_pull_secret",
            "55128812",
        ),
        (
            json!({"uuid": UUID, "instance_info": {"image_pull_secret": {"auths": {"r": {"auth": PULL_SECRET}}}}}),
            "instance_info.image_pull_secret",
            PULL_SECRET,
        ),
        (
            json!({"uuid": UUID, "instance_info": {"configdrive": {"user_data": 44712299}}}),
            "instance_info.configdrive.user_data",
            "44712299",
        ),
        (
            json!({"uuid": UUID, "instance_info": {"configdrive": {"user_data": true}}}),
            "instance_info.configdrive.user_data",
            "true",
        ),
    ];
    for (node, field, value) in cases {
        let run = Orders::node(node).run(false);
        run.assert_refused(field, &["not shown"]);
        assert!(!run.stderr.contains(value), "{run:?}");
    }
}
