#!/usr/bin/env python3
"""Prints what cloud-init's ConfigDrive datasource makes of a network_data.json file.

Usage: convert.py NETWORK_DATA_JSON
       convert.py --read-yaml FILE   (prints FILE as cloud-init's YAML reader sees it)
       convert.py --read-seed ROOT   (prints what cloud-init's NoCloud datasource reads from
                                     the seed ocimetal wrote under ROOT)
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


def read_seed(root):
    import os

    from cloudinit import helpers
    from cloudinit.sources import DataSourceNoCloud

    cfg_path = os.path.join(root, "etc/cloud/cloud.cfg.d/99-ocimetal-nocloud.cfg")
    with open(cfg_path, encoding="utf-8") as f:
        sys_cfg = util.load_yaml(f.read())
    # The seed is read where the installed system would find it, under ROOT here.
    nocloud = sys_cfg["datasource"]["NoCloud"]
    nocloud["seedfrom"] = "file://" + root + nocloud["seedfrom"][len("file://"):]
    paths = helpers.Paths(
        {
            "cloud_dir": os.path.join(root, "var/lib/cloud"),
            "run_dir": os.path.join(root, "run/cloud-init"),
        }
    )
    source = DataSourceNoCloud.DataSourceNoCloud(sys_cfg, None, paths)
    if not source._get_data():  # pylint: disable=protected-access
        sys.exit("NoCloud did not accept the seed")
    json.dump(
        {
            "datasource_list": sys_cfg["datasource_list"],
            "metadata": source.metadata,
            "userdata": source.userdata_raw.decode("utf-8")
            if isinstance(source.userdata_raw, bytes)
            else source.userdata_raw,
            "network_config": drop_nulls(source.network_config),
            "public_keys": source.get_public_ssh_keys(),
            "hostname": source.get_hostname().hostname,
        },
        sys.stdout,
        sort_keys=True,
    )


def render_netplan(path):
    with open(path, encoding="utf-8") as f:
        config = util.load_yaml(f.read())
    state = network_state.parse_net_config_data(config, skip_broken=False)
    # pylint: disable=protected-access
    sys.stdout.write(netplan.Renderer({})._render_content(state))


if __name__ == "__main__":
    if sys.argv[1] == "--read-yaml":
        read_yaml(sys.argv[2])
    elif sys.argv[1] == "--read-seed":
        read_seed(sys.argv[2])
    elif sys.argv[1] == "--render-netplan":
        render_netplan(sys.argv[2])
    else:
        main(sys.argv[1])
