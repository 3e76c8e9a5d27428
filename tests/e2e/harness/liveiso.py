"""The `liveiso` scenario: the installer ISO customized with `ocimetal iso customize` is the
only medium (no config-2, nothing on a kernel command line of the harness's own). The
firmware boots it through shim and GRUB as a CD, as a USB stick (the hybrid image written to
a disk), and as a CD with Secure Boot enforced; GRUB passes the carried kernel arguments (a dry run, RAID1 hints
with a quoted space), the ramdisk reads the carried configdrive and node from its own boot
medium, and the plan it prints says so. Then a real install from a customized ISO alone, as
Metal3's live-iso gives it (no configdrive from the operator)."""

import json
import os
import shutil
import subprocess

from . import assets, checks
# scenarios.py imports this module after defining these.
from .scenarios import (SERVICE_STARTED, ScenarioFailed, _await_install, _check_boot,
                        _check_events, _disk_pair, dry_run_plan)
from .vm import GUEST_MAC, OVMF_CODE, Guest, fresh_vars

# OVMF with Secure Boot enforced and Microsoft's keys enrolled (shim is signed by their CA).
SECBOOT_CODE = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
SECBOOT_VARS = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
# GRUB waits 3 s and OVMF tries the blank disks first: a little more than a kernel boot.
BOOT_TIMEOUT = 420
NODE_UUID = "5a2c7e4e-0000-4000-8000-00000000e2e9"
HOSTNAME = "e2e-liveiso"
# Where the dry runs of the one customized ISO report their plans.
DRY_RUN_REPORTS = "liveiso-dry-run"


def _binary(ctx):
    return os.environ.get("OCIMETAL_BIN") or os.path.join(ctx.repo, "target", "release", "ocimetal")


def _customize(ctx, workdir, name="liveiso", configdrive=None, node=None, kargs=None):
    """A copy of the built ISO carrying a configdrive, a node and kernel arguments (by
    default those of the dry runs)."""
    source = ctx.kernel[:-len(".vmlinuz")] + ".iso"
    drive = os.path.join(workdir, f"{name}-configdrive.json")
    with open(drive, "w") as f:
        json.dump(configdrive or {"meta_data": {"local-hostname": HOSTNAME,
                                                "oci_image": ctx.debian()},
                                  "user_data": "#cloud-config\n"}, f)
    node_path = os.path.join(workdir, f"{name}-node.json")
    with open(node_path, "w") as f:
        json.dump(node or {"uuid": NODE_UUID, "instance_info": {}}, f)
    kargs = kargs or ("systemd.show_status=1 ocimetal.dry_run "
                      f"ocimetal.insecure_registry={ctx.registry_host} "
                      f"ocimetal.report_url={ctx.report_url(DRY_RUN_REPORTS)} "
                      'ocimetal.root_device_hints="serial=DISK1SERIAL DISK2SERIAL"')
    out = os.path.join(workdir, f"{name}.iso")
    subprocess.run([_binary(ctx), "iso", "customize", "--configdrive", drive, "--node", node_path,
                    "--kargs", kargs, "--force", "-o", out, source], check=True)
    shown = subprocess.run([_binary(ctx), "iso", "show", out], check=True, capture_output=True,
                           text=True).stdout
    print("    " + shown.strip().replace("\n", "\n    "), flush=True)
    return out


def _secure_boot_arg(arg):
    if arg == "q35":
        return "q35,smm=on"
    return arg.replace(f"file={OVMF_CODE}", f"file={SECBOOT_CODE}")


def _boot_and_plan(ctx, label, workdir, iso, as_stick, secure_boot=False):
    disks = [assets.blank_disk(os.path.join(workdir, f"{label}-disk1.qcow2")),
             assets.blank_disk(os.path.join(workdir, f"{label}-disk2.qcow2"))]
    vars_path = os.path.join(workdir, f"{label}.vars.fd")
    if secure_boot:
        shutil.copyfile(SECBOOT_VARS, vars_path)
    else:
        fresh_vars(vars_path)
    guest = Guest(label, os.path.join(workdir, f"{label}.console.log"), vars_path, disks,
                  cdroms=() if as_stick else (iso,))
    if secure_boot:
        # The Secure Boot firmware needs SMM and a secure flash.
        guest.args = [_secure_boot_arg(arg) for arg in guest.args]
        guest.args += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
    if as_stick:
        stick = os.path.join(workdir, f"{label}-stick.img")
        shutil.copyfile(iso, stick)
        guest.args += ["-device", "qemu-xhci,id=xhci",
                       "-drive", f"if=none,id=stick,file={stick},format=raw",
                       "-device", "usb-storage,bus=xhci.0,drive=stick"]
    seen = len(ctx.events(DRY_RUN_REPORTS))
    with guest:
        with ctx.phase(f"{label}:boot"):
            _, index = guest.wait_booted(SERVICE_STARTED, BOOT_TIMEOUT)
        plan = dry_run_plan(ctx, label, guest, index, DRY_RUN_REPORTS, seen)
        command_line = [m.string for m in guest.lines_matching(r"Command line: ")]
        carried = [m.string for m in guest.lines_matching(r"orders carried by the installer medium: ")]
        secure = guest.lines_matching(r"secureboot: Secure boot enabled")
    print(f"    {label}: {(command_line or ['no command line'])[0].strip()[:300]}", flush=True)
    print(f"    {label}: {(carried or ['no carried orders'])[0].strip()[:200]}", flush=True)
    print(f"    {label} plan: disks={plan.get('disks')} raid={plan.get('raid')} "
          f"image={plan.get('image')} hostname={plan.get('hostname')} "
          f"instance_id={plan.get('instance_id')} ({plan.get('instance_id_source')})", flush=True)
    problems = []
    if plan.get("disks") != ["/dev/vda", "/dev/sda"] or plan.get("raid") is not True:
        problems.append(f"disks {plan.get('disks')} raid {plan.get('raid')}, expected the RAID1 "
                        "pair the carried kernel arguments name")
    if sorted(plan.get("wipe") or []) != ["/dev/sda", "/dev/vda"]:
        problems.append(f"wipe list {plan.get('wipe')}: the installer's own medium must not be in it")
    if plan.get("hints_source") != "ocimetal.root_device_hints":
        problems.append(f"hints from {plan.get('hints_source')}")
    if plan.get("image") != ctx.debian() or plan.get("image_source") != "meta_data.oci_image":
        problems.append(f"image {plan.get('image')} from {plan.get('image_source')}")
    if plan.get("hostname") != HOSTNAME:
        problems.append(f"hostname {plan.get('hostname')}")
    if plan.get("instance_id") != NODE_UUID:
        problems.append(f"instance id {plan.get('instance_id')}, expected the carried node's")
    if not carried:
        problems.append("the console does not say the orders came from the boot medium")
    if secure_boot and not secure:
        problems.append("the kernel does not report Secure Boot enabled")
    if problems:
        raise ScenarioFailed(f"{label}: " + "; ".join(problems))


def _install_from_iso(ctx, workdir):
    """Metal3's live-iso: the customized ISO is the only medium and carries every order (the
    operator passes no configdrive): RAID1 by serial, user_data and network_data. The
    installed system is checked as in `raid1`."""
    label = "liveiso-install"
    hostname = "e2e-liveiso-install"
    configdrive = {
        "meta_data": {"uuid": "5a2c7e4e-0000-4000-8000-00000000e2ea", "name": hostname,
                      "local-hostname": hostname, "oci_image": ctx.debian("-bootable"),
                      "root_device_hints": "serial=DISK1SERIAL DISK2SERIAL"},
        "user_data": checks.user_data(hostname),
        "network_data": checks.network_data(GUEST_MAC),
    }
    kargs = (f"systemd.show_status=1 ocimetal.insecure_registry={ctx.registry_host} "
             f"ocimetal.report_url={ctx.report_url(label)}")
    node = {"uuid": configdrive["meta_data"]["uuid"], "instance_info": {}}
    iso = _customize(ctx, workdir, label, configdrive, node, kargs)
    disks = _disk_pair(workdir)
    vars_path = fresh_vars(os.path.join(workdir, f"{label}.vars.fd"))
    with Guest(label, os.path.join(workdir, f"{label}.console.log"), vars_path, disks,
               cdroms=(iso,)) as guest:
        _await_install(ctx, label, guest, BOOT_TIMEOUT)
    _check_events(label, ctx.events(label))
    _check_boot(ctx, f"{label}-check", workdir, disks, None, vars_path,
                hostname=hostname, esp_count=2, raid="[UU]")


def liveiso(ctx):
    """A customized ISO as the only medium, booted as a CD, as a USB stick, and as a CD with
    Secure Boot enforced (dry runs); then a full RAID1 install from a customized ISO."""
    workdir = ctx.workdir("liveiso")
    iso = _customize(ctx, workdir)
    _boot_and_plan(ctx, "liveiso-cd", workdir, iso, as_stick=False)
    _boot_and_plan(ctx, "liveiso-stick", workdir, iso, as_stick=True)
    _boot_and_plan(ctx, "liveiso-secureboot", workdir, iso, as_stick=False, secure_boot=True)
    _install_from_iso(ctx, workdir)
