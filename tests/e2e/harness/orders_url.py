"""The `orders-url` scenario: one shared ISO for every machine, customized with nothing but
an orders URL that names the machine by its MAC (`{mac}`); a local HTTP server holds one
machine's node document under that machine's MAC. That machine plans from it (dry run);
a machine whose MAC has nothing there installs nothing, keeps its disk byte for byte and
reports why to the webhook the ISO names.
A second shared ISO names a configdrive (Ironic's JSON form) and a user_data by MAC instead
of a node document; that machine plans from them and never shows the user_data."""

import json
import os
import shutil
import subprocess

from . import assets
# scenarios.py imports this module after defining these.
from .scenarios import (PLAN_TIMEOUT, SERVICE_STARTED, ScenarioFailed, check_disk_unchanged,
                        dry_run_plan, final_failure)
from .liveiso import BOOT_TIMEOUT, _binary
from .vm import GUEST_MAC, Guest, fresh_vars

NODE_UUID = "5a2c7e4e-0000-4000-8000-00000000e2eb"
HOSTNAME = "e2e-orders-url"
# A machine nobody has written orders for.
STRANGER_MAC = "52:54:00:12:34:99"
# Where the dry runs of the shared ISOs report their plans.
DRY_RUN_REPORTS = "orders-url-dry-run"


def _shared_iso(ctx, workdir, order, name="shared.iso"):
    """The built ISO customized with kernel arguments only: the same file for every machine."""
    source = ctx.kernel[:-len(".vmlinuz")] + ".iso"
    out = os.path.join(workdir, name)
    kargs = (f"systemd.show_status=1 ocimetal.dry_run ocimetal.insecure_registry={ctx.registry_host} "
             f"ocimetal.report_url={ctx.report_url(DRY_RUN_REPORTS)} {order}")
    subprocess.run([_binary(ctx), "iso", "customize", "--kargs", kargs, "--force", "-o", out,
                    source], check=True)
    return out


def _boot(ctx, label, workdir, iso, mac, wanted=None):
    """Boots the shared ISO on a machine with `mac` as its first NIC until a console line
    matches `wanted` and the webhook has a final FAIL event whose error says the same, or by
    default until the dry run's plan is reported; returns that event or the plan, and the
    disk images."""
    disks = [assets.blank_disk(os.path.join(workdir, f"{label}-disk1.qcow2")),
             assets.blank_disk(os.path.join(workdir, f"{label}-disk2.qcow2"))]
    before = os.path.join(workdir, f"{label}-disk1-before.qcow2")
    shutil.copyfile(disks[0], before)
    vars_path = fresh_vars(os.path.join(workdir, f"{label}.vars.fd"))
    guest = Guest(label, os.path.join(workdir, f"{label}.console.log"), vars_path, disks,
                  cdroms=(iso,))
    guest.args = [arg.replace(f"mac={GUEST_MAC}", f"mac={mac}") for arg in guest.args]
    seen = len(ctx.events(DRY_RUN_REPORTS))
    with guest:
        with ctx.phase(f"{label}:boot"):
            _, index = guest.wait_booted(SERVICE_STARTED, BOOT_TIMEOUT)
        if wanted is None:
            found = dry_run_plan(ctx, label, guest, index, DRY_RUN_REPORTS, seen)
        else:
            with ctx.phase(f"{label}:orders"):
                guest.wait_for(wanted, PLAN_TIMEOUT, start=index, fail_on_failure_tag=False)
                found = final_failure(ctx, label, DRY_RUN_REPORTS, wanted, seen)
        fetched = [m.string.strip() for m in guest.lines_matching(r"node document|ocimetal\.node")]
    for line in fetched[:4]:
        print(f"    {label}: {line[:240]}", flush=True)
    return found, disks, before


def orders_url(ctx):
    workdir = ctx.workdir("orders-url")
    served = os.path.join(ctx.files.directory, "orders-url")
    shutil.rmtree(served, ignore_errors=True)
    os.makedirs(served)
    node = {
        "uuid": NODE_UUID,
        "name": HOSTNAME,
        "instance_info": {
            "image_source": "oci://" + ctx.debian(),
            "root_device": {"serial": "s== DISK1SERIAL"},
            "configdrive": {"meta_data": {"uuid": NODE_UUID, "local-hostname": HOSTNAME}},
        },
    }
    with open(os.path.join(served, GUEST_MAC.replace(":", "-") + ".json"), "w") as f:
        json.dump(node, f)
    url = f"http://10.0.2.2:{ctx.files.port}/orders-url/{{mac}}.json"
    iso = _shared_iso(ctx, workdir, f"ocimetal.node={url}")

    plan, _, _ = _boot(ctx, "orders-url-known", workdir, iso, GUEST_MAC)
    print(f"    orders-url-known plan: disks={plan.get('disks')} image={plan.get('image')} "
          f"({plan.get('image_source')}) hostname={plan.get('hostname')} "
          f"instance_id={plan.get('instance_id')} ({plan.get('instance_id_source')})", flush=True)
    problems = []
    if plan.get("disks") != ["/dev/vda"] or plan.get("raid") is not False:
        problems.append(f"disks {plan.get('disks')} raid {plan.get('raid')}, expected /dev/vda "
                        "from the served node's root_device")
    if plan.get("image") != ctx.debian() or plan.get("image_source") != "instance_info.image_source":
        problems.append(f"image {plan.get('image')} from {plan.get('image_source')}")
    if plan.get("hostname") != HOSTNAME:
        problems.append(f"hostname {plan.get('hostname')}")
    if problems:
        raise ScenarioFailed("orders-url-known: " + "; ".join(problems))

    event, disks, before = _boot(ctx, "orders-url-stranger", workdir, iso, STRANGER_MAC,
                                 r"no orders: ")
    print(f"    orders-url-stranger: {event.get('error', '')[:160]!r}", flush=True)
    check_disk_unchanged("orders-url-stranger", before, disks[0])

    _configdrive_url(ctx, workdir, served)


def _configdrive_url(ctx, workdir, served):
    """`ocimetal.configdrive_url=` and `ocimetal.user_data_url=` with `{mac}`: the configdrive
    is Ironic's JSON dict with the seed's meta_data keys."""
    mac = GUEST_MAC.replace(":", "-")
    hostname = HOSTNAME + "-cd"
    secret = "#cloud-config\n# e2e-user-data-secret\n"
    drive = {"meta_data": {"uuid": NODE_UUID, "local-hostname": hostname,
                           "oci_image": ctx.debian(), "root_device_hints": "serial=DISK2SERIAL"},
             "user_data": "#cloud-config\n{}\n"}
    os.makedirs(os.path.join(served, "cd"))
    os.makedirs(os.path.join(served, "ud"))
    with open(os.path.join(served, "cd", mac + ".json"), "w") as f:
        json.dump(drive, f)
    with open(os.path.join(served, "ud", mac), "w") as f:
        f.write(secret)
    base = f"http://10.0.2.2:{ctx.files.port}/orders-url"
    iso = _shared_iso(ctx, workdir, f"ocimetal.configdrive_url={base}/cd/{{mac}}.json "
                                    f"ocimetal.user_data_url={base}/ud/{{mac}}", "shared-cd.iso")
    plan, _, _ = _boot(ctx, "orders-url-configdrive", workdir, iso, GUEST_MAC)
    print(f"    orders-url-configdrive plan: disks={plan.get('disks')} image={plan.get('image')} "
          f"({plan.get('image_source')}) hostname={plan.get('hostname')} configdrive="
          f"{plan.get('configdrive')} ({plan.get('configdrive_source')}) user_data "
          f"from {plan.get('user_data_source')}", flush=True)
    problems = []
    if plan.get("disks") != ["/dev/sda"]:
        problems.append(f"disks {plan.get('disks')}, expected /dev/sda from root_device_hints")
    if plan.get("image") != ctx.debian() or plan.get("image_source") != "meta_data.oci_image":
        problems.append(f"image {plan.get('image')} from {plan.get('image_source')}")
    if plan.get("hostname") != hostname:
        problems.append(f"hostname {plan.get('hostname')}")
    if plan.get("configdrive_source") != "ocimetal.configdrive_url":
        problems.append(f"configdrive from {plan.get('configdrive_source')}")
    if plan.get("user_data_source") != "ocimetal.user_data_url":
        problems.append(f"user_data from {plan.get('user_data_source')}")
    console = open(os.path.join(workdir, "orders-url-configdrive.console.log"),
                   errors="replace").read()
    if "e2e-user-data-secret" in console:
        problems.append("the user_data reached the console")
    if "e2e-user-data-secret" in json.dumps(ctx.events(DRY_RUN_REPORTS)):
        problems.append("the user_data reached the webhook")
    if problems:
        raise ScenarioFailed("orders-url-configdrive: " + "; ".join(problems))
