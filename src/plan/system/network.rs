//! OpenStack `network_data.json` to cloud-init network config version 1.
//!
//! The conversion follows cloud-init's own ConfigDrive datasource
//! (`cloudinit/sources/helpers/openstack.py::convert_net_json`, as released in cloud-init
//! 25.1), so a node gets the same network from our NoCloud seed as it would from the
//! configdrive. Where that function has to look at the running system, the installer cannot
//! (the target's interface names are not known yet), so:
//!
//! * a physical link is named by its `name`, else by its `id` (cloud-init asks the system
//!   which interface has the link's MAC; giving the link's own id keeps the MAC match and lets
//!   cloud-init rename the NIC to the id, which is how Metal3 templates name their links);
//! * Infiniband hardware addresses are not looked up (cloud-init only does that for NICs it
//!   finds as Infiniband on the running host).
//!
//! Input that cloud-init would crash on, or turn into a config that cannot work (a network
//! pointing at no link, an unknown network type, a VLAN without `vlan_mac_address`), is an
//! [`OrderError`] naming the field instead. Null values are left out of the output, which is
//! what cloud-init does with them when it reads the config. Only `dns` services become
//! nameservers (cloud-init turns every service into one; OpenStack defines no other type).

use crate::error::OrderError;
use crate::json_field::{kind_of, FieldPath};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// Link types cloud-init treats as physical NICs without a warning.
pub const KNOWN_PHYSICAL_TYPES: &[&str] = &[
    "bgpovs",
    "bridge",
    "cascading",
    "dvs",
    "ethernet",
    "hw_veb",
    "hyperv",
    "ovs",
    "phy",
    "tap",
    "vhostuser",
    "vif",
];

/// The network types of OpenStack's schema (plus cloud-init's legacy `static`/`static6`).
pub const NETWORK_TYPES: &[&str] = &[
    "ipv4",
    "ipv6",
    "ipv4_dhcp",
    "ipv6_dhcp",
    "ipv6_slaac",
    "ipv6_dhcpv6-stateless",
    "ipv6_dhcpv6-stateful",
    "static",
    "static6",
];

/// A cloud-init network config, version 1 (`version: 1`, `config: [...]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkConfig {
    /// Always 1.
    pub version: u8,
    /// Interfaces first, in link order, then nameservers.
    pub config: Vec<NetworkEntry>,
}

impl NetworkConfig {
    /// The YAML text written as the NoCloud `network-config` file (quoted so that cloud-init's
    /// YAML 1.1 reader keeps MAC addresses as strings).
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        super::yaml::to_yaml(self)
    }
}

/// One entry of a version 1 config.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NetworkEntry {
    /// A NIC, matched by MAC address and named `name`.
    Physical(PhysicalEntry),
    /// A Linux bond named `bondN`.
    Bond(BondEntry),
    /// An 802.1Q VLAN on another entry.
    Vlan(VlanEntry),
    /// A global DNS server.
    Nameserver(NameserverEntry),
}

/// A physical interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhysicalEntry {
    /// Interface name cloud-init gives the NIC.
    pub name: String,
    /// Lower-case MAC address the NIC is matched by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// MTU in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u64>,
    /// Whether router advertisements are accepted (set by IPv6 networks).
    #[serde(rename = "accept-ra", skip_serializing_if = "Option::is_none")]
    pub accept_ra: Option<bool>,
    /// Addresses and routes on this interface.
    pub subnets: Vec<Subnet>,
}

/// A bond over other entries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BondEntry {
    /// `bond0`, `bond1`... in link order (OpenStack gives bonds no usable name).
    pub name: String,
    /// Lower-case MAC address of the bond, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// MTU in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u64>,
    /// Whether router advertisements are accepted (set by IPv6 networks).
    #[serde(rename = "accept-ra", skip_serializing_if = "Option::is_none")]
    pub accept_ra: Option<bool>,
    /// Every `bond_*` key of the link but `bond_links`, renamed `bond-*`
    /// (`bond_mode` → `bond-mode`, `bond_xmit_hash_policy` → `bond-xmit_hash_policy`).
    pub params: BTreeMap<String, Value>,
    /// Names of the bonded entries, in `bond_links` order.
    pub bond_interfaces: Vec<String>,
    /// Addresses and routes on this interface.
    pub subnets: Vec<Subnet>,
}

/// A VLAN interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VlanEntry {
    /// `<parent name>.<vlan id>`.
    pub name: String,
    /// 802.1Q id.
    pub vlan_id: u64,
    /// Name of the parent entry.
    pub vlan_link: String,
    /// The VLAN's MAC address, as given.
    pub mac_address: String,
    /// MTU in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u64>,
    /// Whether router advertisements are accepted (set by IPv6 networks).
    #[serde(rename = "accept-ra", skip_serializing_if = "Option::is_none")]
    pub accept_ra: Option<bool>,
    /// Addresses and routes on this interface.
    pub subnets: Vec<Subnet>,
}

/// A global nameserver, from a `dns` entry of `services`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NameserverEntry {
    /// The server's address.
    pub address: String,
}

/// How a subnet gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SubnetType {
    /// `ipv4_dhcp`.
    #[serde(rename = "dhcp4")]
    Dhcp4,
    /// `ipv6_dhcp`.
    #[serde(rename = "dhcp6")]
    Dhcp6,
    /// `ipv6_slaac`.
    #[serde(rename = "ipv6_slaac")]
    Ipv6Slaac,
    /// `ipv6_dhcpv6-stateless`.
    #[serde(rename = "ipv6_dhcpv6-stateless")]
    Ipv6Dhcpv6Stateless,
    /// `ipv6_dhcpv6-stateful`.
    #[serde(rename = "ipv6_dhcpv6-stateful")]
    Ipv6Dhcpv6Stateful,
    /// `ipv4` / `static`.
    #[serde(rename = "static")]
    Static,
    /// `ipv6` / `static6`.
    #[serde(rename = "static6")]
    Static6,
}

/// One subnet of an interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subnet {
    /// How the address is obtained.
    #[serde(rename = "type")]
    pub kind: SubnetType,
    /// Static address (`ip_address`), possibly with a `/prefix`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Netmask (dotted IPv4, IPv6 mask or prefix length), as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netmask: Option<String>,
    /// Broadcast address, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<String>,
    /// Route metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u64>,
    /// Default gateway, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Point-to-point peer, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointopoint: Option<String>,
    /// Address scope, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// DNS servers for this subnet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_nameservers: Option<Vec<String>>,
    /// DNS search domains for this subnet, in the shape given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_search: Option<Value>,
    /// Static routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Set for OpenStack type `ipv4` (cloud-init's marker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<bool>,
    /// Set for OpenStack type `ipv6` (cloud-init's marker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<bool>,
}

/// One static route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// Destination network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Destination in CIDR form, as some generators write it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Destination netmask.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netmask: Option<String>,
    /// Next hop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Route metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u64>,
}

/// A conversion result: the config, and what the operator should know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The version 1 config.
    pub config: NetworkConfig,
    /// Things cloud-init would warn about too (unknown link types), for the log.
    pub warnings: Vec<String>,
}

/// Converts `network_data` (OpenStack `network_data.json`) to cloud-init network config v1.
///
/// Field names in errors start with `network_data.`, e.g. `network_data.links[2].type`.
pub fn convert_network_data(network_data: &Value) -> Result<Converted, OrderError> {
    let root = FieldPath::new("network_data");
    let top = as_object(network_data, &root)?;
    let links = list_field(top, "links", &root)?;
    let networks = list_field(top, "networks", &root)?;
    let services = list_field(top, "services", &root)?;

    let parsed_links = links
        .iter()
        .enumerate()
        .map(|(i, link)| parse_link(link, &root.key("links").index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let parsed_networks = networks
        .iter()
        .enumerate()
        .map(|(i, net)| parse_network(net, &root.key("networks").index(i)))
        .collect::<Result<Vec<_>, _>>()?;

    let names = entry_names(&parsed_links)?;
    for net in &parsed_networks {
        if !names.contains_key(net.link.as_str()) {
            return Err(OrderError::new(
                net.path.key("link").to_string(),
                format!(
                    "{:?} is not the id of any link; link ids are: {}",
                    net.link,
                    list_ids(&parsed_links)
                ),
            ));
        }
    }

    let mut warnings = Vec::new();
    let mut config = Vec::with_capacity(parsed_links.len() + services.len());
    for link in &parsed_links {
        let mut accept_ra = None;
        let subnets: Vec<Subnet> = parsed_networks
            .iter()
            .filter(|net| net.link == link.id)
            .map(|net| {
                if let Some(ra) = net.accept_ra() {
                    accept_ra = Some(ra);
                }
                net.subnet.clone()
            })
            .collect();
        let name = resolve(&names, &link.id, &link.path.key("id"), &parsed_links)?;
        if name.len() > MAX_INTERFACE_NAME {
            warnings.push(format!(
                "{}: interface name {name:?} is longer than the kernel's {MAX_INTERFACE_NAME} \
                 characters; the NIC cannot be renamed to it",
                link.path
            ));
        }
        let entry = match &link.kind {
            LinkKind::Physical { declared_type } => {
                if let Some(t) = declared_type {
                    if !KNOWN_PHYSICAL_TYPES.contains(&t.as_str()) {
                        warnings.push(format!(
                            "{}: unknown link type {t:?}, treated as a physical NIC",
                            link.path.key("type")
                        ));
                    }
                }
                NetworkEntry::Physical(PhysicalEntry {
                    name,
                    mac_address: link.mac.clone(),
                    mtu: link.mtu,
                    accept_ra,
                    subnets,
                })
            }
            LinkKind::Bond { links, params } => NetworkEntry::Bond(BondEntry {
                name,
                mac_address: link.mac.clone(),
                mtu: link.mtu,
                accept_ra,
                params: params.clone(),
                bond_interfaces: links
                    .iter()
                    .map(|(id, path)| resolve(&names, id, path, &parsed_links))
                    .collect::<Result<_, _>>()?,
                subnets,
            }),
            LinkKind::Vlan {
                parent,
                parent_path,
                vlan_id,
                vlan_mac,
            } => NetworkEntry::Vlan(VlanEntry {
                name,
                vlan_id: *vlan_id,
                vlan_link: resolve(&names, parent, parent_path, &parsed_links)?,
                mac_address: vlan_mac.clone(),
                mtu: link.mtu,
                accept_ra,
                subnets,
            }),
        };
        config.push(entry);
    }

    for (i, service) in services.iter().enumerate() {
        let path = root.key("services").index(i);
        let obj = as_object(service, &path)?;
        let kind = required_str(obj, "type", &path)?;
        if kind != "dns" {
            warnings.push(format!(
                "{}: service type {kind:?} ignored; only \"dns\" is used",
                path.key("type")
            ));
            continue;
        }
        let address = required_str(obj, "address", &path)?;
        check_ip(address, &path.key("address"))?;
        config.push(NetworkEntry::Nameserver(NameserverEntry {
            address: address.to_string(),
        }));
    }

    Ok(Converted {
        config: NetworkConfig { version: 1, config },
        warnings,
    })
}

#[derive(Debug)]
struct ParsedLink {
    path: FieldPath,
    id: String,
    /// The link's own `name`, for physical links.
    name: Option<String>,
    mac: Option<String>,
    mtu: Option<u64>,
    kind: LinkKind,
}

#[derive(Debug)]
enum LinkKind {
    Physical {
        declared_type: Option<String>,
    },
    Bond {
        links: Vec<(String, FieldPath)>,
        params: BTreeMap<String, Value>,
    },
    Vlan {
        parent: String,
        parent_path: FieldPath,
        vlan_id: u64,
        vlan_mac: String,
    },
}

#[derive(Debug)]
struct ParsedNetwork {
    path: FieldPath,
    link: String,
    network_type: String,
    subnet: Subnet,
}

impl ParsedNetwork {
    /// What this network does to the interface's `accept-ra` (the last network wins).
    fn accept_ra(&self) -> Option<bool> {
        match self.network_type.as_str() {
            "ipv6" | "static6" => Some(false),
            "ipv6_dhcp" | "ipv6_dhcpv6-stateful" => Some(true),
            _ => None,
        }
    }
}

fn parse_link(value: &Value, path: &FieldPath) -> Result<ParsedLink, OrderError> {
    let obj = as_object(value, path)?;
    let id = required_str(obj, "id", path)?.to_string();
    if !obj.contains_key("type") {
        return Err(OrderError::new(
            path.key("type").to_string(),
            "missing; give the link type (phy, bond, vlan, ...)",
        ));
    }
    let link_type = optional_str(obj, "type", path)?;
    let mac = optional_str(obj, "ethernet_mac_address", path)?
        .filter(|m| !m.is_empty())
        .map(|m| {
            check_mac(m, &path.key("ethernet_mac_address"))?;
            Ok::<_, OrderError>(m.to_ascii_lowercase())
        })
        .transpose()?;
    let mtu = optional_u64(obj, "mtu", path)?;
    if let Some(mtu) = mtu {
        if !(68..=65535).contains(&mtu) {
            return Err(OrderError::new(
                path.key("mtu").to_string(),
                format!("{mtu} is out of range; an MTU is 68 to 65535"),
            ));
        }
    }
    let name = optional_str(obj, "name", path)?.map(str::to_string);
    let is_named_by_id = name.is_none();
    let interface_name = name.as_deref().unwrap_or(&id);
    if !matches!(link_type, Some("bond") | Some("vlan")) {
        check_interface_name(
            interface_name,
            &path.key(if is_named_by_id { "id" } else { "name" }),
        )?;
    }
    let kind = match link_type {
        Some("bond") => parse_bond(obj, path)?,
        Some("vlan") => parse_vlan(obj, path)?,
        other => {
            if name.is_none() && mac.is_none() {
                return Err(OrderError::new(
                    path.key("ethernet_mac_address").to_string(),
                    "missing; a physical link needs a MAC address (or a name)",
                ));
            }
            LinkKind::Physical {
                declared_type: other.map(str::to_string),
            }
        }
    };
    Ok(ParsedLink {
        path: path.clone(),
        id,
        name,
        mac,
        mtu,
        kind,
    })
}

fn parse_bond(obj: &Map<String, Value>, path: &FieldPath) -> Result<LinkKind, OrderError> {
    let links_path = path.key("bond_links");
    let links = match obj.get("bond_links") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok((s.clone(), links_path.index(i))),
                other => Err(OrderError::new(
                    links_path.index(i).to_string(),
                    format!("{other} is not a link id (a string)"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(OrderError::new(
                links_path.to_string(),
                "missing or empty; a bond needs a list of the ids of the links it bonds",
            ))
        }
    };
    let mut params = BTreeMap::new();
    for (key, value) in obj {
        if key == "bond_links" || !key.starts_with("bond") {
            continue;
        }
        match value {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {}
            other => {
                return Err(OrderError::new(
                    path.key(key).to_string(),
                    format!("{other} is not a bond parameter value (a string or number)"),
                ))
            }
        }
        // cloud-init's v1 bond parameters are spelled `bond-*`.
        let suffix = key.split_once("bond_").map_or(key.as_str(), |(_, s)| s);
        params.insert(format!("bond-{suffix}"), value.clone());
    }
    Ok(LinkKind::Bond { links, params })
}

fn parse_vlan(obj: &Map<String, Value>, path: &FieldPath) -> Result<LinkKind, OrderError> {
    let parent = required_str(obj, "vlan_link", path)?.to_string();
    let vlan_id = match obj.get("vlan_id").and_then(Value::as_u64) {
        Some(id) if (1..=4094).contains(&id) => id,
        other => {
            return Err(OrderError::new(
                path.key("vlan_id").to_string(),
                format!(
                    "{} is not a VLAN id; give an integer from 1 to 4094",
                    other.map_or_else(
                        || obj
                            .get("vlan_id")
                            .map_or("nothing".into(), Value::to_string),
                        |n| n.to_string()
                    )
                ),
            ))
        }
    };
    let vlan_mac = required_str(obj, "vlan_mac_address", path)?;
    check_mac(vlan_mac, &path.key("vlan_mac_address"))?;
    Ok(LinkKind::Vlan {
        parent,
        parent_path: path.key("vlan_link"),
        vlan_id,
        vlan_mac: vlan_mac.to_string(),
    })
}

fn parse_network(value: &Value, path: &FieldPath) -> Result<ParsedNetwork, OrderError> {
    let obj = as_object(value, path)?;
    let link = required_str(obj, "link", path)?.to_string();
    let network_type = required_str(obj, "type", path)?.to_string();
    let kind = match network_type.as_str() {
        "ipv4_dhcp" => SubnetType::Dhcp4,
        "ipv6_dhcp" => SubnetType::Dhcp6,
        "ipv6_slaac" => SubnetType::Ipv6Slaac,
        "ipv6_dhcpv6-stateless" => SubnetType::Ipv6Dhcpv6Stateless,
        "ipv6_dhcpv6-stateful" => SubnetType::Ipv6Dhcpv6Stateful,
        "ipv4" | "static" => SubnetType::Static,
        "ipv6" | "static6" => SubnetType::Static6,
        other => {
            return Err(OrderError::new(
                path.key("type").to_string(),
                format!(
                    "unknown network type {other:?}; valid: {}",
                    NETWORK_TYPES.join(", ")
                ),
            ))
        }
    };
    let is_static = matches!(kind, SubnetType::Static | SubnetType::Static6);
    let address = optional_str(obj, "ip_address", path)?.map(str::to_string);
    match &address {
        Some(a) => check_ip_maybe_prefix(a, &path.key("ip_address"))?,
        None if is_static => {
            return Err(OrderError::new(
                path.key("ip_address").to_string(),
                format!("missing; a {network_type} network needs an address"),
            ))
        }
        None => {}
    }
    let text = |key: &str| -> Result<Option<String>, OrderError> {
        Ok(optional_str(obj, key, path)?.map(str::to_string))
    };
    let netmask = text("netmask")?;
    if let Some(mask) = &netmask {
        check_netmask(mask, &path.key("netmask"))?;
    }
    let gateway = text("gateway")?;
    if let Some(gw) = &gateway {
        check_ip(gw, &path.key("gateway"))?;
    }

    let routes_value = list_field(obj, "routes", path)?;
    let mut routes = Vec::with_capacity(routes_value.len());
    // DNS servers: those attached to routes first, then the network's own, without repeats.
    let mut dns: Vec<String> = Vec::new();
    for (i, route) in routes_value.iter().enumerate() {
        let rpath = path.key("routes").index(i);
        let robj = as_object(route, &rpath)?;
        routes.push(parse_route(robj, &rpath)?);
        for service in dns_services(robj, &rpath)? {
            dns.push(service);
        }
    }
    for service in dns_services(obj, path)? {
        if !dns.contains(&service) {
            dns.push(service);
        }
    }
    let dns_nameservers = if dns.is_empty() {
        optional_str_list(obj, "dns_nameservers", path)?
    } else {
        Some(dns)
    };
    let dns_search = match obj.get("dns_search") {
        None | Some(Value::Null) => None,
        Some(v @ Value::String(_)) => Some(v.clone()),
        Some(v @ Value::Array(items)) if items.iter().all(Value::is_string) => Some(v.clone()),
        Some(other) => {
            return Err(OrderError::new(
                path.key("dns_search").to_string(),
                format!("{other} is not a domain or a list of domains"),
            ))
        }
    };

    let subnet = Subnet {
        kind,
        address,
        netmask,
        broadcast: text("broadcast")?,
        metric: optional_u64(obj, "metric", path)?,
        gateway,
        pointopoint: text("pointopoint")?,
        scope: text("scope")?,
        dns_nameservers,
        dns_search,
        routes,
        ipv4: (network_type == "ipv4").then_some(true),
        ipv6: (network_type == "ipv6").then_some(true),
    };
    Ok(ParsedNetwork {
        path: path.clone(),
        link,
        network_type,
        subnet,
    })
}

fn parse_route(obj: &Map<String, Value>, path: &FieldPath) -> Result<Route, OrderError> {
    let ip_field = |key: &str, allow_prefix: bool| -> Result<Option<String>, OrderError> {
        let value = optional_str(obj, key, path)?;
        if let Some(v) = value {
            if allow_prefix {
                check_ip_maybe_prefix(v, &path.key(key))?;
            } else {
                check_ip(v, &path.key(key))?;
            }
        }
        Ok(value.map(str::to_string))
    };
    let netmask = optional_str(obj, "netmask", path)?.map(str::to_string);
    if let Some(mask) = &netmask {
        check_netmask(mask, &path.key("netmask"))?;
    }
    Ok(Route {
        network: ip_field("network", true)?,
        destination: ip_field("destination", true)?,
        netmask,
        gateway: ip_field("gateway", false)?,
        metric: optional_u64(obj, "metric", path)?,
    })
}

/// The addresses of the `dns` entries of an object's `services`.
fn dns_services(obj: &Map<String, Value>, path: &FieldPath) -> Result<Vec<String>, OrderError> {
    let mut out = Vec::new();
    for (i, service) in list_field(obj, "services", path)?.iter().enumerate() {
        let spath = path.key("services").index(i);
        let sobj = as_object(service, &spath)?;
        if sobj.get("type").and_then(Value::as_str) != Some("dns") {
            continue;
        }
        let address = required_str(sobj, "address", &spath)?;
        check_ip(address, &spath.key("address"))?;
        out.push(address.to_string());
    }
    Ok(out)
}

/// The name every link gets in the config, by link id.
fn entry_names(links: &[ParsedLink]) -> Result<HashMap<&str, String>, OrderError> {
    let mut names: HashMap<&str, String> = HashMap::new();
    let mut bonds = 0;
    for link in links {
        let name = match &link.kind {
            LinkKind::Physical { .. } => link.name.clone().unwrap_or_else(|| link.id.clone()),
            LinkKind::Bond { .. } => {
                bonds += 1;
                format!("bond{}", bonds - 1)
            }
            // Filled in below, once the parent's name is known.
            LinkKind::Vlan { .. } => String::new(),
        };
        if names.insert(&link.id, name).is_some() {
            return Err(OrderError::new(
                link.path.key("id").to_string(),
                format!(
                    "{:?} is used by more than one link; ids must be unique",
                    link.id
                ),
            ));
        }
    }
    for link in links {
        if let LinkKind::Vlan {
            parent,
            parent_path,
            vlan_id,
            ..
        } = &link.kind
        {
            let parent_name = resolve(&names, parent, parent_path, links)?;
            let parent_is_vlan = links
                .iter()
                .any(|l| l.id == *parent && matches!(l.kind, LinkKind::Vlan { .. }));
            if parent_is_vlan {
                return Err(OrderError::new(
                    parent_path.to_string(),
                    format!("{parent:?} is a VLAN; a VLAN sits on a NIC or a bond"),
                ));
            }
            names.insert(&link.id, format!("{parent_name}.{vlan_id}"));
        }
    }
    Ok(names)
}

fn resolve(
    names: &HashMap<&str, String>,
    id: &str,
    path: &FieldPath,
    links: &[ParsedLink],
) -> Result<String, OrderError> {
    names.get(id).cloned().ok_or_else(|| {
        OrderError::new(
            path.to_string(),
            format!(
                "{id:?} is not the id of any link; link ids are: {}",
                list_ids(links)
            ),
        )
    })
}

fn list_ids(links: &[ParsedLink]) -> String {
    if links.is_empty() {
        return "(none)".into();
    }
    links
        .iter()
        .map(|l| l.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn as_object<'a>(value: &'a Value, path: &FieldPath) -> Result<&'a Map<String, Value>, OrderError> {
    value.as_object().ok_or_else(|| {
        OrderError::new(
            path.to_string(),
            format!("expected an object, found {}", kind_of(value)),
        )
    })
}

fn list_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &FieldPath,
) -> Result<&'a [Value], OrderError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(OrderError::new(
            path.key(key).to_string(),
            format!("expected a list, found {}", kind_of(other)),
        )),
    }
}

fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &FieldPath,
) -> Result<Option<&'a str>, OrderError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(OrderError::new(
            path.key(key).to_string(),
            format!("expected a string, found {}", kind_of(other)),
        )),
    }
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &FieldPath,
) -> Result<&'a str, OrderError> {
    optional_str(obj, key, path)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| OrderError::new(path.key(key).to_string(), "missing; a string is required"))
}

fn optional_str_list(
    obj: &Map<String, Value>,
    key: &str,
    path: &FieldPath,
) -> Result<Option<Vec<String>>, OrderError> {
    let items = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(OrderError::new(
                path.key(key).to_string(),
                format!("expected a list of addresses, found {}", kind_of(other)),
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ipath = path.key(key).index(i);
        let s = item.as_str().ok_or_else(|| {
            OrderError::new(
                ipath.to_string(),
                format!("expected an address, found {}", kind_of(item)),
            )
        })?;
        check_ip(s, &ipath)?;
        out.push(s.to_string());
    }
    Ok(Some(out))
}

fn optional_u64(
    obj: &Map<String, Value>,
    key: &str,
    path: &FieldPath,
) -> Result<Option<u64>, OrderError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            OrderError::new(
                path.key(key).to_string(),
                format!("{v} is not a non-negative integer"),
            )
        }),
    }
}

fn check_ip(value: &str, path: &FieldPath) -> Result<(), OrderError> {
    value.parse::<IpAddr>().map(|_| ()).map_err(|_| {
        OrderError::new(
            path.to_string(),
            format!("{value:?} is not an IPv4 or IPv6 address"),
        )
    })
}

fn check_ip_maybe_prefix(value: &str, path: &FieldPath) -> Result<(), OrderError> {
    let (addr, prefix) = match value.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (value, None),
    };
    let ip = addr.parse::<IpAddr>().ok();
    let max = match ip {
        Some(IpAddr::V4(_)) => 32,
        Some(IpAddr::V6(_)) => 128,
        None => 0,
    };
    let prefix_ok = prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|n| n <= max));
    if ip.is_some() && prefix_ok {
        Ok(())
    } else {
        Err(OrderError::new(
            path.to_string(),
            format!("{value:?} is not an IP address (optionally with /prefix)"),
        ))
    }
}

fn check_netmask(value: &str, path: &FieldPath) -> Result<(), OrderError> {
    if value.parse::<IpAddr>().is_ok() || value.parse::<u8>().is_ok_and(|n| n <= 128) {
        Ok(())
    } else {
        Err(OrderError::new(
            path.to_string(),
            format!("{value:?} is not a netmask (e.g. 255.255.255.0, ffff:ffff:ffff:ffff:: or 24)"),
        ))
    }
}

/// The kernel's limit on interface name length (IFNAMSIZ less the terminating NUL).
pub const MAX_INTERFACE_NAME: usize = 15;

/// Rejects what the kernel never accepts as an interface name (`dev_valid_name`).
fn check_interface_name(value: &str, path: &FieldPath) -> Result<(), OrderError> {
    let invalid = value.is_empty()
        || value == "."
        || value == ".."
        || value
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if invalid {
        Err(OrderError::new(
            path.to_string(),
            format!(
                "{value:?} cannot name a network interface (it names the physical link): use \
                 up to {MAX_INTERFACE_NAME} characters without '/', ':' or spaces"
            ),
        ))
    } else {
        Ok(())
    }
}

fn check_mac(value: &str, path: &FieldPath) -> Result<(), OrderError> {
    // Ethernet MACs have 6 octets; Infiniband hardware addresses have 20.
    let octets: Vec<&str> = value.split(':').collect();
    let valid = (octets.len() == 6 || octets.len() == 20)
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit()));
    if valid {
        Ok(())
    } else {
        Err(OrderError::new(
            path.to_string(),
            format!("{value:?} is not a MAC address (six hex octets separated by colons)"),
        ))
    }
}

#[cfg(test)]
mod tests;
