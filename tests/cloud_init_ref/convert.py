#!/usr/bin/env python3
"""Prints what cloud-init's ConfigDrive datasource makes of a network_data.json file.

Usage: convert.py NETWORK_DATA_JSON
       convert.py --read-yaml FILE   (prints FILE as cloud-init's YAML reader sees it)
       convert.py --render-netplan FILE   (prints the netplan YAML cloud-init makes of the
                                           network config v1 in FILE)

cloud-init's converter asks the running system which NIC has which MAC address; here every
physical link's MAC is given the link's own name (or id), which is the naming ocimetal uses
since it cannot know the installed system's interface names. Infiniband lookups on the host
are disabled for the same reason. Null values are dropped from the result: cloud-init treats
a null key as an absent one.
"""

import json
import sys

from cloudinit import net, util
from cloudinit.net import netplan, network_state
from cloudinit.sources.helpers import openstack


def drop_nulls(value):
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def main(path):
    with open(path, encoding="utf-8") as f:
        network_data = json.load(f)
    known_macs = {}
    for link in network_data.get("links", []):
        mac = link.get("ethernet_mac_address")
        if link.get("type") in ("bond", "vlan") or not mac:
            continue
        known_macs.setdefault(mac.lower(), link.get("name") or link["id"])
    net.get_ib_hwaddrs_by_interface = lambda: {}
    net.get_interfaces_by_mac = lambda: dict(known_macs)
    util.udevadm_settle = lambda *a, **k: None
    config = openstack.convert_net_json(network_data, known_macs=known_macs)
    json.dump(drop_nulls(config), sys.stdout, sort_keys=True)


def read_yaml(path):
    with open(path, encoding="utf-8") as f:
        loaded = util.load_yaml(f.read())
    json.dump(drop_nulls(loaded), sys.stdout, sort_keys=True)


def render_netplan(path):
    with open(path, encoding="utf-8") as f:
        config = util.load_yaml(f.read())
    state = network_state.parse_net_config_data(config, skip_broken=False)
    # pylint: disable=protected-access
    sys.stdout.write(netplan.Renderer({})._render_content(state))


if __name__ == "__main__":
    if sys.argv[1] == "--read-yaml":
        read_yaml(sys.argv[2])
    elif sys.argv[1] == "--render-netplan":
        render_netplan(sys.argv[2])
    else:
        main(sys.argv[1])
