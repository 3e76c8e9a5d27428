use super::*;
use serde_json::json;

fn fixture(name: &str) -> Value {
    let text = match name {
        "bond_with_vlans" => {
            include_str!("../../../../tests/fixtures/network_data/bond_with_vlans.json")
        }
        "ipv6_modes" => include_str!("../../../../tests/fixtures/network_data/ipv6_modes.json"),
        "link_types" => include_str!("../../../../tests/fixtures/network_data/link_types.json"),
        "metal3" => {
            include_str!("../../../../tests/fixtures/network_data/metal3_bond_mtu_dns.json")
        }
        "nova" => include_str!("../../../../tests/fixtures/network_data/nova_ovs_dhcp.json"),
        "dual_stack" => {
            include_str!("../../../../tests/fixtures/network_data/tap_null_type_dual_stack.json")
        }
        "two_bonds" => {
            include_str!("../../../../tests/fixtures/network_data/two_bonds_forward_refs.json")
        }
        "vif_static" => {
            include_str!("../../../../tests/fixtures/network_data/vif_static_routes.json")
        }
        "vlan_on_nic" => include_str!("../../../../tests/fixtures/network_data/vlan_on_nic.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixture is JSON")
}

fn convert(value: &Value) -> NetworkConfig {
    convert_network_data(value).expect("converts").config
}

fn err(value: Value) -> OrderError {
    convert_network_data(&value).expect_err("must be rejected")
}

fn physical<'a>(cfg: &'a NetworkConfig, name: &str) -> &'a PhysicalEntry {
    cfg.config
        .iter()
        .find_map(|e| match e {
            NetworkEntry::Physical(p) if p.name == name => Some(p),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no physical {name} in {cfg:?}"))
}

fn bonds(cfg: &NetworkConfig) -> Vec<&BondEntry> {
    cfg.config
        .iter()
        .filter_map(|e| match e {
            NetworkEntry::Bond(b) => Some(b),
            _ => None,
        })
        .collect()
}

fn vlans(cfg: &NetworkConfig) -> Vec<&VlanEntry> {
    cfg.config
        .iter()
        .filter_map(|e| match e {
            NetworkEntry::Vlan(v) => Some(v),
            _ => None,
        })
        .collect()
}

fn nameservers(cfg: &NetworkConfig) -> Vec<&str> {
    cfg.config
        .iter()
        .filter_map(|e| match e {
            NetworkEntry::Nameserver(n) => Some(n.address.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn physical_links_are_named_by_name_else_id_and_matched_by_lowercase_mac() {
    let cfg = convert(&fixture("nova"));
    assert_eq!(cfg.version, 1);
    let first = physical(&cfg, "tap2ecc7709-b3");
    assert_eq!(first.mac_address.as_deref(), Some("fa:16:3e:69:b0:58"));
    assert_eq!(first.mtu, None);
    assert_eq!(first.subnets.len(), 1);
    assert_eq!(first.subnets[0].kind, SubnetType::Dhcp4);
    physical(&cfg, "nic0");

    let cfg = convert(&fixture("vif_static"));
    assert_eq!(
        physical(&cfg, "eth0").mac_address.as_deref(),
        Some("fa:16:3e:dd:50:9a")
    );
    assert_eq!(physical(&cfg, "eth0").mtu, Some(1500));
}

#[test]
fn bond_gets_generated_name_translated_params_and_member_names() {
    let cfg = convert(&fixture("bond_with_vlans"));
    let bonds = bonds(&cfg);
    assert_eq!(bonds.len(), 1);
    let bond = bonds[0];
    assert_eq!(bond.name, "bond0");
    assert_eq!(bond.bond_interfaces, ["eth0", "eth1"]);
    assert_eq!(bond.mac_address.as_deref(), Some("fa:16:3e:b3:72:36"));
    assert_eq!(bond.params.get("bond-mode"), Some(&json!("4")));
    assert_eq!(bond.params.get("bond-miimon"), Some(&json!(100)));
    assert_eq!(
        bond.params.get("bond-xmit_hash_policy"),
        Some(&json!("layer3+4"))
    );
    assert!(!bond.params.contains_key("bond-links"));
    assert_eq!(bond.params.len(), 3);
}

#[test]
fn vlans_on_a_bond_are_named_after_the_bond() {
    let cfg = convert(&fixture("bond_with_vlans"));
    let vlans = vlans(&cfg);
    let names: Vec<_> = vlans.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["bond0.602", "bond0.612"]);
    assert!(vlans.iter().all(|v| v.vlan_link == "bond0"));
    assert_eq!(vlans[0].vlan_id, 602);
    assert_eq!(vlans[0].mac_address, "fa:16:3e:b3:72:30");
    let subnet = &vlans[1].subnets[0];
    assert_eq!(subnet.kind, SubnetType::Static);
    assert_eq!(subnet.address.as_deref(), Some("10.0.1.5"));
    assert_eq!(subnet.netmask.as_deref(), Some("255.255.255.248"));
    assert_eq!(subnet.ipv4, Some(true));
    assert_eq!(subnet.routes[0].network.as_deref(), Some("192.168.1.0"));
}

#[test]
fn vlan_on_a_nic_is_named_after_the_nic() {
    let cfg = convert(&fixture("vlan_on_nic"));
    let vlans = vlans(&cfg);
    assert_eq!(vlans[0].name, "eth0.602");
    assert_eq!(vlans[0].vlan_link, "eth0");
}

#[test]
fn links_may_refer_to_links_defined_later_and_bonds_are_numbered_in_order() {
    let cfg = convert(&fixture("two_bonds"));
    let names: Vec<_> = bonds(&cfg).iter().map(|b| b.name.clone()).collect();
    assert_eq!(names, ["bond0", "bond1"]);
    assert_eq!(bonds(&cfg)[1].bond_interfaces, ["ens3f0", "ens3f1"]);
    let vlan = vlans(&cfg)[0];
    assert_eq!(vlan.name, "bond1.300");
    assert_eq!(vlan.vlan_link, "bond1");
    // Interfaces keep link order, even when a VLAN comes before its bond.
    assert!(matches!(&cfg.config[0], NetworkEntry::Vlan(_)));
}

#[test]
fn ipv6_modes_map_to_cloud_init_subnet_types_and_accept_ra() {
    let cfg = convert(&fixture("ipv6_modes"));
    let kinds = |name| {
        physical(&cfg, name)
            .subnets
            .iter()
            .map(|s| s.kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds("enp1s0"), [SubnetType::Dhcp4, SubnetType::Ipv6Slaac]);
    assert_eq!(kinds("enp2s0"), [SubnetType::Ipv6Dhcpv6Stateless]);
    assert_eq!(kinds("enp3s0"), [SubnetType::Ipv6Dhcpv6Stateful]);
    assert_eq!(kinds("enp4s0"), [SubnetType::Dhcp6]);
    assert_eq!(kinds("enp5s0"), [SubnetType::Static6, SubnetType::Static]);
    assert_eq!(physical(&cfg, "enp1s0").accept_ra, None);
    assert_eq!(physical(&cfg, "enp2s0").accept_ra, None);
    assert_eq!(physical(&cfg, "enp3s0").accept_ra, Some(true));
    assert_eq!(physical(&cfg, "enp4s0").accept_ra, Some(true));
    assert_eq!(physical(&cfg, "enp5s0").accept_ra, Some(false));
    let static6 = &physical(&cfg, "enp5s0").subnets[0];
    assert_eq!(static6.address.as_deref(), Some("2001:db8:5::10/64"));
    assert_eq!(static6.ipv6, Some(true));
    assert_eq!(static6.routes[0].metric, Some(100));
    let v4 = &physical(&cfg, "enp5s0").subnets[1];
    assert_eq!(v4.gateway.as_deref(), Some("192.0.2.1"));
}

#[test]
fn dual_stack_static_keeps_both_families_and_all_routes() {
    let cfg = convert(&fixture("dual_stack"));
    let tap = physical(&cfg, "tap77a0dc5b-72");
    assert_eq!(tap.subnets.len(), 2);
    assert_eq!(tap.subnets[1].kind, SubnetType::Static6);
    assert_eq!(
        tap.subnets[1].netmask.as_deref(),
        Some("ffff:ffff:ffff:ffff::")
    );
    assert_eq!(tap.accept_ra, Some(false));
    let other = physical(&cfg, "tap7d6b7bec-93");
    let routes: Vec<_> = other.subnets[0]
        .routes
        .iter()
        .map(|r| r.network.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(routes, ["0.0.0.0", "172.16.0.0"]);
    assert_eq!(nameservers(&cfg), ["172.16.36.11", "172.16.36.12"]);
}

#[test]
fn dns_comes_from_global_services_network_services_and_route_services() {
    let cfg = convert(&fixture("metal3"));
    assert_eq!(nameservers(&cfg), ["8.8.8.8", "2001:4860:4860::8888"]);
    let bond = bonds(&cfg)[0];
    assert_eq!(bond.mtu, Some(9000));
    // Route services first, then the network's own, without the repeat.
    assert_eq!(
        bond.subnets[0].dns_nameservers.as_deref(),
        Some(&["203.0.113.53".to_string(), "9.9.9.9".to_string()][..])
    );
    let storage = vlans(&cfg)[0];
    assert_eq!(storage.name, "bond0.100");
    assert_eq!(storage.mtu, Some(9000));
    assert_eq!(
        storage.subnets[0].dns_search,
        Some(json!(["storage.example.com"]))
    );
    assert_eq!(storage.subnets[0].routes.len(), 2);
    assert_eq!(storage.subnets[0].routes[0].metric, Some(50));
    assert_eq!(physical(&cfg, "eno1").subnets[0].kind, SubnetType::Dhcp4);
    assert_eq!(
        physical(&cfg, "enp1s0").mac_address.as_deref(),
        Some("52:54:00:aa:00:01")
    );
}

#[test]
fn per_network_dns_nameservers_are_kept_unless_services_replace_them() {
    let cfg = convert(&fixture("two_bonds"));
    let bond0 = bonds(&cfg)[0];
    assert_eq!(
        bond0.subnets[0].dns_nameservers,
        Some(vec!["198.51.100.53".to_string()])
    );
    let mut nd = fixture("two_bonds");
    nd["networks"][0]["services"] = json!([{"type": "dns", "address": "198.51.100.54"}]);
    let cfg = convert(&nd);
    assert_eq!(
        bonds(&cfg)[0].subnets[0].dns_nameservers,
        Some(vec!["198.51.100.54".to_string()])
    );
}

#[test]
fn every_non_bond_non_vlan_type_is_physical_and_unknown_ones_warn() {
    let converted = convert_network_data(&fixture("link_types")).expect("converts");
    assert_eq!(converted.config.config.len(), 16);
    assert!(converted
        .config
        .config
        .iter()
        .all(|e| matches!(e, NetworkEntry::Physical(_))));
    let warned: Vec<_> = converted
        .warnings
        .iter()
        .filter_map(|w| w.split(": ").next())
        .collect();
    assert_eq!(
        warned,
        [
            "network_data.links[9].type",
            "network_data.links[10].type",
            "network_data.links[15].type"
        ]
    );
    assert_eq!(physical(&converted.config, "l-macvtap").mtu, Some(1450));
}

#[test]
fn yaml_has_the_cloud_init_v1_shape() {
    let yaml = convert(&fixture("vlan_on_nic")).to_yaml().expect("yaml");
    let expected = r#"version: 1
config:
- type: "physical"
  name: "eth0"
  mac_address: "fa:16:3e:69:b0:58"
  mtu: 1500
  subnets: []
- type: "vlan"
  name: "eth0.602"
  vlan_id: 602
  vlan_link: "eth0"
  mac_address: "fa:16:3e:b3:72:30"
  subnets:
  - type: "static"
    address: "10.0.1.5"
    netmask: "255.255.255.248"
    routes:
    - network: "192.168.1.0"
      netmask: "255.255.255.255"
      gateway: "10.0.1.1"
    ipv4: true
- type: "nameserver"
  address: "1.1.1.191"
"#;
    assert_eq!(yaml, expected);
}

#[test]
fn empty_network_data_gives_an_empty_config() {
    let cfg = convert(&json!({}));
    assert_eq!(cfg.config, vec![]);
}

#[test]
fn non_dns_services_are_skipped_with_a_warning() {
    let converted = convert_network_data(&json!({
        "services": [{"type": "ntp", "address": "192.0.2.1"}, {"type": "dns", "address": "192.0.2.2"}]
    }))
    .expect("converts");
    assert_eq!(nameservers(&converted.config), ["192.0.2.2"]);
    assert_eq!(converted.warnings.len(), 1);
}

#[test]
fn errors_name_the_offending_field() {
    let phy = |extra: Value| {
        let mut link =
            json!({"id": "eth0", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01"});
        if let (Some(l), Some(e)) = (link.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                l.insert(k.clone(), v.clone());
            }
        }
        link
    };
    let cases = [
        (json!([]), "network_data"),
        (json!({"links": {}}), "network_data.links"),
        (
            json!({"links": [phy(json!({})), {"id": "x"}]}),
            "network_data.links[1].type",
        ),
        (
            json!({"links": [{"type": "phy"}]}),
            "network_data.links[0].id",
        ),
        (
            json!({"links": [{"id": "e", "type": "phy"}]}),
            "network_data.links[0].ethernet_mac_address",
        ),
        (
            json!({"links": [phy(json!({"ethernet_mac_address": "52:54:00:zz:00:01"}))]}),
            "network_data.links[0].ethernet_mac_address",
        ),
        (
            json!({"links": [phy(json!({"mtu": "9000"}))]}),
            "network_data.links[0].mtu",
        ),
        (
            json!({"links": [phy(json!({"mtu": 20}))]}),
            "network_data.links[0].mtu",
        ),
        (
            json!({"links": [phy(json!({})), phy(json!({}))]}),
            "network_data.links[1].id",
        ),
        (
            json!({"links": [{"id": "b", "type": "bond"}]}),
            "network_data.links[0].bond_links",
        ),
        (
            json!({"links": [{"id": "b", "type": "bond", "bond_links": ["nope"]}]}),
            "network_data.links[0].bond_links[0]",
        ),
        (
            json!({"links": [phy(json!({})), {"id": "b", "type": "bond", "bond_links": ["eth0"], "bond_mode": ["x"]}]}),
            "network_data.links[1].bond_mode",
        ),
        (
            json!({"links": [phy(json!({})), {"id": "v", "type": "vlan", "vlan_link": "eth0", "vlan_id": 5000, "vlan_mac_address": "52:54:00:00:00:01"}]}),
            "network_data.links[1].vlan_id",
        ),
        (
            json!({"links": [phy(json!({})), {"id": "v", "type": "vlan", "vlan_link": "eth0", "vlan_id": 5}]}),
            "network_data.links[1].vlan_mac_address",
        ),
        (
            json!({"links": [phy(json!({})), {"id": "v", "type": "vlan", "vlan_link": "eth1", "vlan_id": 5, "vlan_mac_address": "52:54:00:00:00:01"}]}),
            "network_data.links[1].vlan_link",
        ),
        (
            json!({"links": [phy(json!({})),
                {"id": "v", "type": "vlan", "vlan_link": "eth0", "vlan_id": 5, "vlan_mac_address": "52:54:00:00:00:01"},
                {"id": "w", "type": "vlan", "vlan_link": "v", "vlan_id": 6, "vlan_mac_address": "52:54:00:00:00:01"}]}),
            "network_data.links[2].vlan_link",
        ),
        (
            json!({"links": [phy(json!({}))], "networks": [{"link": "eth9", "type": "ipv4_dhcp"}]}),
            "network_data.networks[0].link",
        ),
        (
            json!({"links": [phy(json!({}))], "networks": [{"link": "eth0", "type": "ipv5"}]}),
            "network_data.networks[0].type",
        ),
        (
            json!({"links": [phy(json!({}))], "networks": [{"link": "eth0", "type": "ipv4"}]}),
            "network_data.networks[0].ip_address",
        ),
        (
            json!({"links": [phy(json!({}))], "networks": [{"link": "eth0", "type": "ipv4", "ip_address": "10.0.0.300"}]}),
            "network_data.networks[0].ip_address",
        ),
        (
            json!({"links": [phy(json!({}))], "networks": [{"link": "eth0", "type": "ipv4", "ip_address": "10.0.0.3/33"}]}),
            "network_data.networks[0].ip_address",
        ),
        (
            json!({"links": [phy(json!({}))], "networks": [{"link": "eth0", "type": "ipv4", "ip_address": "10.0.0.3", "netmask": "255.255.255.x"}]}),
            "network_data.networks[0].netmask",
        ),
        (
            json!({"links": [phy(json!({}))], "networks": [{"link": "eth0", "type": "ipv4_dhcp", "routes": [{"network": "0.0.0.0", "gateway": "gw"}]}]}),
            "network_data.networks[0].routes[0].gateway",
        ),
        (
            json!({"links": [phy(json!({}))], "networks": [{"link": "eth0", "type": "ipv4_dhcp", "services": [{"type": "dns", "address": "dns.example"}]}]}),
            "network_data.networks[0].services[0].address",
        ),
        (
            json!({"links": [phy(json!({}))], "networks": [{"link": "eth0", "type": "ipv4_dhcp", "dns_search": 5}]}),
            "network_data.networks[0].dns_search",
        ),
        (
            json!({"services": [{"type": "dns"}]}),
            "network_data.services[0].address",
        ),
        (
            json!({"links": [phy(json!({"name": "eth 0"}))]}),
            "network_data.links[0].name",
        ),
        (
            json!({"links": [phy(json!({"id": "a/b"}))]}),
            "network_data.links[0].id",
        ),
    ];
    for (input, field) in cases {
        let e = err(input.clone());
        assert_eq!(e.field, field, "for {input}: {e}");
        assert!(!e.problem.is_empty());
        assert!(!e.to_string().contains('\n'));
    }
}

#[test]
fn names_longer_than_the_kernel_allows_are_kept_with_a_warning() {
    let converted = convert_network_data(&json!({
        "links": [{"id": "tap2ecc7709-b3", "type": "ovs", "ethernet_mac_address": "fa:16:3e:69:b0:58"},
                  {"id": "v", "type": "vlan", "vlan_link": "tap2ecc7709-b3", "vlan_id": 602,
                   "vlan_mac_address": "fa:16:3e:69:b0:58"}]
    }))
    .expect("converts");
    assert_eq!(vlans(&converted.config)[0].name, "tap2ecc7709-b3.602");
    assert_eq!(converted.warnings.len(), 1, "{:?}", converted.warnings);
    assert!(converted.warnings[0].starts_with("network_data.links[1]: "));
}

#[test]
fn unknown_link_id_error_lists_the_valid_ids() {
    let e = err(json!({
        "links": [{"id": "eth0", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01"}],
        "networks": [{"link": "eth1", "type": "ipv4_dhcp"}]
    }));
    assert!(e.problem.contains("\"eth1\""), "{e}");
    assert!(e.problem.contains("eth0"), "{e}");
}
