"""The end-to-end scenarios. Each takes a Context and raises on the first failed check."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager

from . import assets, checks
from .vm import GUEST_MAC, Guest, GuestError, fresh_vars

# Phase time limits, in seconds, under TCG on a busy 2-core machine.
BOOT_TIMEOUT = 300
PLAN_TIMEOUT = 300
INSTALL_TIMEOUT = 45 * 60
# A dry run's final event follows its console line within the reporter's flush bound.
REPORT_TIMEOUT = 30
CHECK_TIMEOUT = 20 * 60
REENTRY_TIMEOUT = 15 * 60

SERVICE_STARTED = r"Start(ing|ed) ocimetal\.service|Starting ocimetal: install"
# Where a guest on a restricted network reaches the webhook, through a forward of its own.
WEBHOOK_FORWARD = "10.0.2.101:8080"
PLAN_LINE = r"ocimetal-plan: (\{.*\})\s*$"


def _restricted_netdev(ctx, *forwards):
    """QEMU's restricted user network with one forward per (guest address, host port): the
    guest reaches those host services and nothing else."""
    relay = os.path.join(os.path.dirname(os.path.abspath(__file__)), "relay.py")
    rules = "".join(f",guestfwd=tcp:{address}-cmd:{sys.executable} {relay} 127.0.0.1 {port}"
                    for address, port in forwards)
    return f"user,id=n0,restrict=on{rules}"


class ScenarioFailed(Exception):
    """A check failed; the message says which."""


class Context:
    """Everything scenarios share: paths, the registry, the file server, phase timings."""

    def __init__(self, repo, registry, files, kernel, initrd, webhook):
        self.repo = repo
        self.registry = registry
        self.files = files
        self.webhook = webhook
        self.kernel = kernel
        self.initrd = initrd
        self.runs = os.path.join(repo, "build", "e2e", "runs")
        self.timings = []
        self.done = {}
        self.release = "13"

    @property
    def registry_host(self):
        return f"10.0.2.2:{self.registry.port}"

    def debian(self, variant=""):
        """The Debian image of the release the current scenario runs with (`variant`:
        "" for minbase, "-bootable" for the one with kernel, GRUB and cloud-init)."""
        return f"{self.registry_host}/debian:{self.release}{variant}"

    def key(self, name):
        """Where scenario `name`'s results for the current release are kept in `done`."""
        return f"{name}@{self.release}"

    def report_url(self, label, host=None):
        """Where install `label` reports its events: the harness's webhook, reached at
        10.0.2.2 or, on a restricted network, through a forward at `host`."""
        return f"http://{host or f'10.0.2.2:{self.webhook.port}'}/{label}-{self.release}"

    def events(self, label):
        return self.webhook.received(f"/{label}-{self.release}")

    def cmdline(self, *extra, registry_host=None):
        base = ["console=ttyS0,115200", "systemd.show_status=1",
                f"ocimetal.insecure_registry={registry_host or self.registry_host}"]
        return " ".join(base + list(extra))

    def workdir(self, name):
        path = os.path.join(self.runs, f"{name}-debian{self.release}")
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    @contextmanager
    def phase(self, name):
        start = time.monotonic()
        ok = False
        try:
            yield
            ok = True
        finally:
            took = time.monotonic() - start
            self.timings.append((name, took, ok))
            print(f"phase {name}: {took:.1f} s{'' if ok else ' (failed)'}", flush=True)

    def ramdisk_guest(self, name, workdir, disks, append, cdroms=(), vars_path=None, netdev=None):
        vars_path = vars_path or fresh_vars(os.path.join(workdir, f"{name}.vars.fd"))
        kwargs = {"netdev": netdev} if netdev else {}
        return Guest(name, os.path.join(workdir, f"{name}.console.log"), vars_path, disks,
                     kernel=self.kernel, initrd=self.initrd, append=append, cdroms=cdroms, **kwargs)

    def disk_guest(self, name, workdir, disks, boot_disk, vars_path):
        return Guest(name, os.path.join(workdir, f"{name}.console.log"), vars_path, disks,
                     boot_disk=boot_disk)


def dry_run_plan(ctx, label, guest, index, report_label, seen=0):
    """The plan of a dry run in `guest` booted with `ocimetal.report_url` for `report_label`:
    the console's `ocimetal-plan:` line marks its end, and the final event at the webhook
    carries it whole (a serial console may mix other writers' text into a line of several
    KiB). The console line, where it parses, must say the same. `seen`: events of that report
    path from earlier boots."""
    with ctx.phase(f"{label}:plan"):
        match, _ = guest.wait_for(PLAN_LINE, PLAN_TIMEOUT, start=index)
        events = ctx.webhook.wait_for(
            f"/{report_label}-{ctx.release}",
            lambda evs: any("plan" in event for event in evs[seen:]), REPORT_TIMEOUT)
    if events is None:
        raise ScenarioFailed(f"{label}: no event with the plan reached the webhook within "
                             f"{REPORT_TIMEOUT} s of the console's plan line")
    reported = [event for event in events[seen:] if "plan" in event]
    if len(reported) != 1 or any(event.get("name") != "ocimetal" or
                                 event.get("result") != "SUCCESS" for event in reported):
        raise ScenarioFailed(f"{label}: expected one final SUCCESS event with the plan, got "
                             f"{[(e.get('name'), e.get('result')) for e in reported]}")
    plan = reported[0]["plan"]
    try:
        console = json.loads(match.group(1))
    except json.JSONDecodeError as err:
        print(f"    {label}: the console's plan line arrived damaged ({err}); the reported "
              "plan stands", flush=True)
    else:
        if console != plan:
            raise ScenarioFailed(f"{label}: the console's plan differs from the reported one")
    return plan


def _plan_run(ctx, label, workdir, append, cdroms, expect_disks, expect_raid):
    disks = [assets.blank_disk(os.path.join(workdir, f"{label}-disk1.qcow2")),
             assets.blank_disk(os.path.join(workdir, f"{label}-disk2.qcow2"))]
    append = f"{append} ocimetal.report_url={ctx.report_url(label)}"
    with ctx.ramdisk_guest(label, workdir, disks, append, cdroms) as guest:
        with ctx.phase(f"{label}:boot"):
            _, index = guest.wait_booted(SERVICE_STARTED, BOOT_TIMEOUT)
        plan = dry_run_plan(ctx, label, guest, index, label)
    print(f"    {label} plan: disks={plan.get('disks')} raid={plan.get('raid')} "
          f"image={plan.get('image')} wipe_mode={plan.get('wipe_mode')}", flush=True)
    missing = [k for k in ("image", "platform", "disks", "raid", "wipe_mode", "wipe", "steps") if k not in plan]
    if missing:
        raise ScenarioFailed(f"{label}: plan lacks {missing}")
    if plan["disks"] != expect_disks or plan["raid"] is not expect_raid:
        raise ScenarioFailed(f"{label}: plan has disks {plan['disks']} raid {plan['raid']}, "
                             f"expected {expect_disks} raid {expect_raid}")


def check_disk_unchanged(label, before, disk):
    """Fails unless `disk` holds exactly what its copy `before` held."""
    compare = subprocess.run(["qemu-img", "compare", before, disk], capture_output=True,
                             text=True)
    if compare.returncode != 0:
        raise ScenarioFailed(f"{label}: the disk changed: {compare.stdout.strip()}")


def final_failure(ctx, label, report_label, pattern, seen=0):
    """The one event posted for `report_label` after its first `seen` (earlier boots'): a
    final FAIL whose error matches `pattern`. Waits for it up to REPORT_TIMEOUT."""
    events = ctx.webhook.wait_for(f"/{report_label}-{ctx.release}",
                                  lambda evs: len(evs) > seen, REPORT_TIMEOUT)
    new = (events or [])[seen:]
    if len(new) != 1 or new[0].get("result") != "FAIL" or \
            not re.search(pattern, new[0].get("error", "")):
        raise ScenarioFailed(f"{label}: expected one FAIL event whose error matches "
                             f"/{pattern}/, got {new}")
    return new[0]


def _refused(ctx, workdir):
    """Orders whose hints match no disk, with `ocimetal.on_failure=poweroff`: the final
    event says why and names the field, the machine powers off, and no disk changed."""
    label = "plan-refused"
    disks = [assets.blank_disk(os.path.join(workdir, f"{label}-disk1.qcow2"))]
    before = os.path.join(workdir, f"{label}-disk1-before.qcow2")
    shutil.copyfile(disks[0], before)
    append = ctx.cmdline(f"ocimetal.image={ctx.debian()}",
                         'ocimetal.root_device_hints="serial=NO-SUCH-DISK"',
                         "ocimetal.on_failure=poweroff",
                         f"ocimetal.report_url={ctx.report_url(label)}")
    with ctx.ramdisk_guest(label, workdir, disks, append) as guest:
        with ctx.phase(f"{label}:boot"):
            guest.wait_booted(SERVICE_STARTED, BOOT_TIMEOUT)
        with ctx.phase(f"{label}:refusal"):
            guest.wait_exit(PLAN_TIMEOUT, fail_on_failure_tag=False)
    event = final_failure(ctx, label, label, r"root_device_hints")
    print(f"    {label}: {(event.get('name'), event.get('result'), event.get('error'))}",
          flush=True)
    check_disk_unchanged(label, before, disks[0])


def plan(ctx):
    """Dry runs on the live machine: hints from config-2 (RAID1), then from the cmdline; then
    orders that cannot be planned, refused with nothing touched."""
    workdir = ctx.workdir("plan")
    meta = {"uuid": "5a2c7e4e-0000-4000-8000-00000000e2e1", "name": "plan-a", "hostname": "plan-a",
            "metal3-name": "plan-a", "oci_image": ctx.debian(),
            "root_device_hints": "serial=DISK1SERIAL DISK2SERIAL"}
    cd = assets.config_drive(os.path.join(workdir, "config2.iso"), meta)
    _plan_run(ctx, "plan-configdrive", workdir, ctx.cmdline("ocimetal.dry_run"), [cd],
              ["/dev/vda", "/dev/sda"], True)
    _plan_run(ctx, "plan-cmdline", workdir,
              ctx.cmdline("ocimetal.dry_run", f"ocimetal.image={ctx.debian()}",
                          'ocimetal.root_device_hints="wwn=0x5000c500a1b2c3d4"'),
              [], ["/dev/sda"], False)
    _refused(ctx, workdir)


def _install(ctx, label, workdir, disks, append, cdroms=(), netdev=None, webhook_host=None):
    """Boots the ramdisk and waits for the installer to reboot the machine, then checks the
    events it reported; returns the OVMF variable store it wrote its boot entries into."""
    vars_path = fresh_vars(os.path.join(workdir, f"{label}.vars.fd"))
    append = f"{append} ocimetal.report_url={ctx.report_url(label, webhook_host)}"
    with ctx.ramdisk_guest(label, workdir, disks, append, cdroms, vars_path=vars_path,
                           netdev=netdev) as guest:
        _await_install(ctx, label, guest)
    _check_events(label, ctx.events(label))
    return vars_path


def _await_install(ctx, label, guest, boot_timeout=BOOT_TIMEOUT):
    """Waits for the installer in `guest` to start and to end the machine, then prints what
    its pull did."""
    with ctx.phase(f"{label}:boot"):
        guest.wait_booted(SERVICE_STARTED, boot_timeout)
    with ctx.phase(f"{label}:install"):
        guest.wait_exit(INSTALL_TIMEOUT)
    _report_pull(label, guest)


def _report_pull(label, guest):
    """Prints the installer's pull figures (layers, bytes, entries, time), comparable with
    tests/bench/pull-bench's."""
    for match in guest.lines_matching(r"pull: \d+ layers?, .* entries, .* written in [\d.]+ s.*"):
        print(f"    {label} {match.group(0)}", flush=True)


def _check_events(label, events, final="SUCCESS"):
    """The webhook heard a start and a finish for every step, in order, and one final
    `ocimetal` finish with `final`; for a success, with the deployment record's digest.
    Returns the final event."""
    problems = checks.check_events(events, final)
    if problems:
        raise ScenarioFailed(f"{label}: events: " + "; ".join(problems))
    last = next(e for e in events if e.get("name") == "ocimetal" and e.get("event_type") == "finish")
    steps = sum(1 for e in events if e.get("event_type") == "finish" and e["name"] != "ocimetal")
    print(f"    {label} events: {len(events)} ({steps} steps), final {last.get('result')}: "
          f"{last.get('description', '')[:160]}", flush=True)
    return last


def _check_boot(ctx, label, workdir, disks, boot_disk, vars_path, **expect):
    """Boots the installed disk(s) without the ramdisk and checks what the system reports.
    `boot_disk=None` leaves the choice to the firmware's variables as the installer wrote
    them: a QEMU bootindex would make OVMF delete every entry it does not match."""
    with ctx.disk_guest(label, workdir, disks, boot_disk, vars_path) as guest:
        with ctx.phase(f"{label}:boot-installed"):
            guest.wait_for(r"E2E-FACT done", CHECK_TIMEOUT, fail_on_failure_tag=False)
            guest.wait_exit(120, fail_on_failure_tag=False)
        facts = checks.collect_facts(guest)
        console = list(guest.lines)
    _report_and_check(label, facts, console, **expect)
    return facts


def _report_and_check(label, facts, console, **expect):
    """Prints the main facts of an installed system and fails the scenario on any problem
    `checks.check_installed` finds, on any trouble in its first boot (`console`: its console
    lines) and when the network of `checks.network_data` is not as ordered."""
    for key in ("hostname", "root-source", "mdstat", "esp", "kept-logs", "journal-steps",
                "ipv4", "route", "dns", "cloud-init", "failed-unit", "journal-err"):
        for value in facts.get(key, []):
            print(f"    {label} {key}: {value}", flush=True)
    problems = checks.check_installed(facts, **expect)
    problems += checks.check_first_boot(facts, console)
    problems += checks.check_network(facts)
    if problems:
        raise ScenarioFailed(f"{label}: " + "; ".join(problems))


def _disk_pair(workdir):
    return [assets.blank_disk(os.path.join(workdir, "disk1.qcow2")),
            assets.blank_disk(os.path.join(workdir, "disk2.qcow2"))]


def _one_disk_config_drive(workdir, hostname, uuid, image, metal3_name=True):
    """The config-2 medium of a one-disk install: the image, the first disk by serial, and the
    checks' user_data and network_data."""
    meta = {"uuid": uuid, "name": hostname, "local-hostname": hostname}
    if metal3_name:
        meta["metal3-name"] = hostname
    meta.update({"oci_image": image, "root_device_hints": "serial=DISK1SERIAL"})
    return assets.config_drive(os.path.join(workdir, "config2.iso"), meta,
                               checks.user_data(hostname), checks.network_data(GUEST_MAC))


def single(ctx):
    """One disk, orders from config-2 meta_data (Metal3 annotations)."""
    workdir = ctx.workdir("single")
    disks = _disk_pair(workdir)
    hostname = "e2e-single"
    cd = _one_disk_config_drive(workdir, hostname, "5a2c7e4e-0000-4000-8000-00000000e2e2",
                                ctx.debian())
    vars_path = _install(ctx, "single", workdir, disks, ctx.cmdline(), [cd])
    facts = _check_boot(ctx, "single-check", workdir, disks, None, vars_path,
                        hostname=hostname, esp_count=1, raid=None)
    ctx.done[ctx.key("single")] = {"workdir": workdir, "disks": disks, "cd": cd, "vars": vars_path,
                          "hostname": hostname, "machine_id": facts.get("machine-id", [None])[0]}


def raid1(ctx):
    """Two disks in RAID1, orders from a node JSON fetched over HTTP."""
    workdir = ctx.workdir("raid1")
    disks = _disk_pair(workdir)
    hostname = "e2e-raid1"
    node = {
        "uuid": "5a2c7e4e-0000-4000-8000-00000000e2e3",
        "name": hostname,
        "instance_info": {
            "image_source": "oci://" + ctx.debian(),
            "configdrive": {
                "meta_data": {"uuid": "5a2c7e4e-0000-4000-8000-00000000e2e3", "name": hostname,
                              "local-hostname": hostname, "metal3-name": hostname,
                              "root_device_hints": "serial=DISK1SERIAL DISK2SERIAL"},
                "user_data": checks.user_data(hostname),
                "network_data": checks.network_data(GUEST_MAC),
            },
        },
    }
    with open(os.path.join(ctx.files.directory, "raid1-node.json"), "w") as f:
        json.dump(node, f, indent=1)
    url = f"http://10.0.2.2:{ctx.files.port}/raid1-node.json"
    vars_path = _install(ctx, "raid1", workdir, disks, ctx.cmdline(f"ocimetal.node={url}"))
    _check_boot(ctx, "raid1-check", workdir, disks, None, vars_path,
                hostname=hostname, esp_count=2, raid="[UU]")
    ctx.done[ctx.key("raid1")] = {"workdir": workdir, "disks": disks, "hostname": hostname,
                         "vars": vars_path}


def degraded(ctx):
    """The RAID1 system boots with either disk missing. Without disk 1 the firmware keeps the
    variables the installer wrote and must fall through to the "ocimetal EFI2" entry; without
    disk 2 the variables are fresh and the removable-media loader on the ESP must do."""
    if ctx.key("raid1") not in ctx.done:
        raid1(ctx)
    state = ctx.done[ctx.key("raid1")]
    disk1, disk2 = state["disks"]
    kept = os.path.join(state["workdir"], "degraded-no-disk1.vars.fd")
    shutil.copyfile(state["vars"], kept)
    _check_boot(ctx, "degraded-no-disk1", state["workdir"], [disk2], None, kept,
                hostname=state["hostname"], esp_count=1, raid="degraded", efi_entries=False,
                booted_entry="ocimetal EFI2")
    fresh = fresh_vars(os.path.join(state["workdir"], "degraded-no-disk2.vars.fd"))
    _check_boot(ctx, "degraded-no-disk2", state["workdir"], [disk1], disk1, fresh,
                hostname=state["hostname"], esp_count=1, raid="degraded", efi_entries=False)


def no_autoassembly(ctx):
    """The ramdisk on disks holding a RAID1 + LVM install (from `raid1`), in dry-run mode:
    the stale array and volume group must not be assembled or activated behind the
    installer's back."""
    if ctx.key("raid1") not in ctx.done:
        raid1(ctx)
    state = ctx.done[ctx.key("raid1")]
    with ctx.ramdisk_guest("no-autoassembly", state["workdir"], state["disks"],
                           ctx.cmdline("ocimetal.dry_run", f"ocimetal.image={ctx.debian()}",
                                       'ocimetal.root_device_hints="serial=DISK1SERIAL DISK2SERIAL"'),
                           ) as guest:
        with ctx.phase("no-autoassembly:boot"):
            _, index = guest.wait_booted(SERVICE_STARTED, BOOT_TIMEOUT)
        with ctx.phase("no-autoassembly:plan"):
            guest.wait_for(PLAN_LINE, PLAN_TIMEOUT, start=index)
        # The kernel announces every array it starts; LVM's event activation runs a
        # transient lvm-activate-VG unit.
        started = guest.lines_matching(r"md/raid1:md\S*: active|md\S*: detected capacity|lvm-activate-|"
                                       r"\d+ logical volume\(s\) in volume group .* now active")
    if started:
        raise ScenarioFailed("no-autoassembly: stale storage was started: "
                             + "; ".join(m.string.strip() for m in started[:3]))


def reentry(ctx):
    """The ramdisk boots again on a deployed machine (Ironic leaves the boot device as is),
    this time with no route to the registry: nothing is wiped and the installed system boots
    with the same identity."""
    if ctx.key("single") not in ctx.done:
        single(ctx)
    state = ctx.done[ctx.key("single")]
    workdir = state["workdir"]
    # No network this time but the webhook: an installed machine must not need the registry.
    netdev = _restricted_netdev(ctx, (WEBHOOK_FORWARD, ctx.webhook.port))
    append = ctx.cmdline(f"ocimetal.report_url={ctx.report_url('reentry', WEBHOOK_FORWARD)}")
    with ctx.ramdisk_guest("reentry", workdir, state["disks"], append, [state["cd"]],
                           vars_path=state["vars"], netdev=netdev) as guest:
        with ctx.phase("reentry:boot"):
            guest.wait_booted(SERVICE_STARTED, BOOT_TIMEOUT)
        with ctx.phase("reentry:installer"):
            guest.wait_exit(REENTRY_TIMEOUT)
    final = _check_events("reentry", ctx.events("reentry"))
    if "already deployed" not in final.get("description", ""):
        raise ScenarioFailed(f"reentry: the final event is {final.get('description')!r}")
    facts = _check_boot(ctx, "reentry-check", workdir, state["disks"], None,
                        state["vars"], hostname=state["hostname"], esp_count=1, raid=None)
    # A reinstall would bring a fresh root filesystem, hence a new machine-id.
    if facts.get("machine-id", [None])[0] != state["machine_id"]:
        raise ScenarioFailed("reentry: the machine-id changed, the system was reinstalled")


def bootable_offline(ctx):
    """An image that already holds kernel, GRUB and cloud-init, with no route to any Debian
    mirror: QEMU's restricted user network plus one forward to the registry."""
    workdir = ctx.workdir("bootable-offline")
    disks = _disk_pair(workdir)
    hostname = "e2e-offline"
    registry_host = "10.0.2.100:5000"
    netdev = _restricted_netdev(ctx, (registry_host, ctx.registry.port),
                                (WEBHOOK_FORWARD, ctx.webhook.port))
    cd = _one_disk_config_drive(workdir, hostname, "5a2c7e4e-0000-4000-8000-00000000e2e4",
                                f"{registry_host}/debian:{ctx.release}-bootable")
    vars_path = _install(ctx, "bootable-offline", workdir, disks,
                         ctx.cmdline(registry_host=registry_host), [cd], netdev=netdev,
                         webhook_host=WEBHOOK_FORWARD)
    _check_boot(ctx, "bootable-offline-check", workdir, disks, None, vars_path,
                hostname=hostname, esp_count=1, raid=None)


def bare(ctx):
    """A bootable image without e2fsprogs, busybox and the SSH server: the installer adds them
    (apt), and the first boot is as clean as with a complete image."""
    workdir = ctx.workdir("bare")
    disks = _disk_pair(workdir)
    hostname = "e2e-bare"
    cd = _one_disk_config_drive(workdir, hostname, "5a2c7e4e-0000-4000-8000-00000000e2e8",
                                ctx.debian("-bootable-bare"), metal3_name=False)
    vars_path = _install(ctx, "bare", workdir, disks, ctx.cmdline(), [cd])
    facts = _check_boot(ctx, "bare-check", workdir, disks, None, vars_path,
                        hostname=hostname, esp_count=1, raid=None)
    if facts.get("ssh-server") != ["active"]:
        raise ScenarioFailed(f"bare-check: the SSH server is {facts.get('ssh-server')}")


def kexec(ctx):
    """`ocimetal.reboot=kexec`: the installer boots the installed kernel straight from the
    ramdisk, without the firmware; the system that comes up is checked like the others."""
    workdir = ctx.workdir("kexec")
    disks = _disk_pair(workdir)
    hostname = "e2e-kexec"
    cd = _one_disk_config_drive(workdir, hostname, "5a2c7e4e-0000-4000-8000-00000000e2e5",
                                ctx.debian("-bootable"))
    append = ctx.cmdline("ocimetal.reboot=kexec",
                         f"ocimetal.report_url={ctx.report_url('kexec')}")
    with ctx.ramdisk_guest("kexec", workdir, disks, append, [cd]) as guest:
        with ctx.phase("kexec:boot"):
            guest.wait_booted(SERVICE_STARTED, BOOT_TIMEOUT)
        with ctx.phase("kexec:install"):
            _, index = guest.wait_for(r"kexec into \S+", INSTALL_TIMEOUT)
        with ctx.phase("kexec:boot-installed"):
            guest.wait_for(r"E2E-FACT done", CHECK_TIMEOUT, start=index, fail_on_failure_tag=False)
            guest.wait_exit(120, fail_on_failure_tag=False)
        facts = checks.collect_facts(guest)
        console = guest.lines[index:]
    _check_events("kexec", ctx.events("kexec"))
    # The firmware did not boot this kernel, so BootCurrent names the ramdisk's entry.
    _report_and_check("kexec", facts, console, hostname=hostname, esp_count=1, raid=None,
                      efi_entries=False)


def no_orders(ctx):
    """The ramdisk booted with no orders at all (a stick in the wrong machine): no config-2
    medium, no node, nothing on the command line that says what to install but a webhook.
    Nothing is installed, the disk stays byte for byte as it was, and the console and the
    webhook say why."""
    label = "no-orders"
    workdir = ctx.workdir(label)
    disk = assets.blank_disk(os.path.join(workdir, "disk1.qcow2"))
    before = os.path.join(workdir, "disk1-before.qcow2")
    shutil.copyfile(disk, before)
    append = ctx.cmdline(f"ocimetal.report_url={ctx.report_url(label)}")
    with ctx.ramdisk_guest(label, workdir, [disk], append) as guest:
        with ctx.phase(f"{label}:boot"):
            _, index = guest.wait_booted(SERVICE_STARTED, BOOT_TIMEOUT)
        with ctx.phase(f"{label}:installer"):
            guest.wait_for(r"no orders: found no config-2 medium", PLAN_TIMEOUT, start=index,
                           fail_on_failure_tag=False)
            event = final_failure(ctx, label, label, r"^no orders: ")
    check_disk_unchanged(label, before, disk)
    print(f"    {label}: {event.get('description')!r}", flush=True)


def apt_failure(ctx):
    """An install that fails on purpose: the minimal image needs packages, and apt's proxy
    answers nothing. The reason reaches the console and the final event, the result file
    lands on the ESP, and `ocimetal.on_failure=poweroff` turns the machine off."""
    workdir = ctx.workdir("apt-failure")
    disks = _disk_pair(workdir)
    dead_proxy = f"http://10.0.2.2:{assets.free_port()}"
    meta = {"uuid": "5a2c7e4e-0000-4000-8000-00000000e2e6", "local-hostname": "e2e-apt-failure",
            "oci_image": ctx.debian(), "root_device_hints": "serial=DISK1SERIAL"}
    cd = assets.config_drive(os.path.join(workdir, "config2.iso"), meta)
    append = ctx.cmdline(f"ocimetal.apt_proxy={dead_proxy}", "ocimetal.on_failure=poweroff",
                         f"ocimetal.report_url={ctx.report_url('apt-failure')}")
    with ctx.ramdisk_guest("apt-failure", workdir, disks, append, [cd]) as guest:
        with ctx.phase("apt-failure:boot"):
            guest.wait_booted(SERVICE_STARTED, BOOT_TIMEOUT)
        with ctx.phase("apt-failure:install"):
            guest.wait_exit(INSTALL_TIMEOUT, fail_on_failure_tag=False)
        shown = guest.lines_matching(r"\| E: Unable to locate package")
    if not shown:
        raise ScenarioFailed("apt-failure: apt's reason is not on the console")
    final = _check_events("apt-failure", ctx.events("apt-failure"), final="FAIL")
    tail = " ".join(final.get("output_tail", []))
    if not final.get("error", "").startswith("step packages failed") or \
            "Unable to locate package" not in tail:
        raise ScenarioFailed(f"apt-failure: the final event does not say why: {final}")


def powercut(ctx):
    """Power cuts mid-install: QEMU is killed during the pull, during apt, and right after the
    installer wrote its marker. The first two leave half-made storage that the next ramdisk
    boot must tear down and install cleanly over; the third leaves a finished install whose
    EFI entries were never written, which the next ramdisk boot must recognise, give its
    entries back and boot without reinstalling."""
    workdir = ctx.workdir("powercut")
    disks = _disk_pair(workdir)
    hostname = "e2e-powercut"
    cd = _one_disk_config_drive(workdir, hostname, "5a2c7e4e-0000-4000-8000-00000000e2e7",
                                ctx.debian())
    vars_path = fresh_vars(os.path.join(workdir, "powercut.vars.fd"))
    # (label, console line to cut the power at, what the boot must have done before it)
    cuts = [("powercut-pull", r"step pull: start", None),
            # Once dpkg has set up a package: its database is mid-change.
            ("powercut-apt", r"packages: [1-9]\d* of \d+ set up", r"step wipe: start"),
            ("powercut-marker", r"step record: done", r"step wipe: start")]
    for label, cut_at, expected in cuts:
        append = ctx.cmdline(f"ocimetal.report_url={ctx.report_url(label)}")
        with ctx.ramdisk_guest(label, workdir, disks, append, [cd], vars_path=vars_path) as guest:
            with ctx.phase(f"{label}:boot"):
                _, start = guest.wait_booted(SERVICE_STARTED, BOOT_TIMEOUT)
            with ctx.phase(f"{label}:until-cut"):
                match, index = guest.wait_for(cut_at, INSTALL_TIMEOUT, start=start)
            guest.pull_the_plug()
            if expected and not guest.lines_matching(expected):
                raise ScenarioFailed(f"{label}: the boot after a power cut did not install "
                                     f"afresh (no /{expected}/ on the console)")
            reached = [m.group(0) for m in guest.lines_matching(r"step \S+: (start|done)")]
            print(f"    {label}: power cut at {match.group(0)!r}; last step line "
                  f"{reached[-1] if reached else None!r}", flush=True)
    label = "powercut-after"
    append = ctx.cmdline(f"ocimetal.report_url={ctx.report_url(label)}")
    with ctx.ramdisk_guest(label, workdir, disks, append, [cd], vars_path=vars_path) as guest:
        with ctx.phase(f"{label}:boot"):
            guest.wait_booted(SERVICE_STARTED, BOOT_TIMEOUT)
        with ctx.phase(f"{label}:installer"):
            guest.wait_exit(REENTRY_TIMEOUT)
        wiped = guest.lines_matching(r"step wipe: start")
    if wiped:
        raise ScenarioFailed(f"{label}: the finished install was wiped and made again")
    final = _check_events(label, ctx.events(label))
    if "already deployed" not in final.get("description", ""):
        raise ScenarioFailed(f"{label}: the final event is {final.get('description')!r}")
    _check_boot(ctx, "powercut-check", workdir, disks, None, vars_path,
                hostname=hostname, esp_count=1, raid=None)


from .ironic import ironic  # noqa: E402  (it uses ScenarioFailed and SERVICE_STARTED above)
from .liveiso import liveiso  # noqa: E402  (likewise)
from .orders_url import orders_url  # noqa: E402  (likewise)

# name: (function, default Debian release, images it needs as templates of the release)
SCENARIOS = {
    "plan": (plan, "13", ["debian:{release}"]),
    "single": (single, "13", ["debian:{release}"]),
    "raid1": (raid1, "12", ["debian:{release}"]),
    "no-autoassembly": (no_autoassembly, "12", ["debian:{release}"]),
    "degraded": (degraded, "12", ["debian:{release}"]),
    "reentry": (reentry, "13", ["debian:{release}"]),
    "bootable-offline": (bootable_offline, "13", ["debian:{release}-bootable"]),
    "kexec": (kexec, "13", ["debian:{release}-bootable"]),
    "bare": (bare, "13", ["debian:{release}-bootable-bare"]),
    "apt-failure": (apt_failure, "13", ["debian:{release}"]),
    "no-orders": (no_orders, "13", []),
    "ironic": (ironic, "13", ["debian:{release}-bootable"]),
    "liveiso": (liveiso, "13", ["debian:{release}-bootable"]),
    "powercut": (powercut, "13", ["debian:{release}"]),
    "orders-url": (orders_url, "13", ["debian:{release}"]),
}

RELEASES = ("12", "13")


def parse_scenario(arg):
    """`NAME` or `NAME@RELEASE` -> (name, release); ValueError when unknown."""
    name, _, release = arg.partition("@")
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    release = release or SCENARIOS[name][1]
    if release not in RELEASES:
        raise ValueError(f"unknown Debian release {release!r} in {arg!r}; known: {', '.join(RELEASES)}")
    return name, release


def images_for(name, release):
    """Registry names of the images scenario `name` needs for `release`."""
    return [template.format(release=release) for template in SCENARIOS[name][2]]


__all__ = ["SCENARIOS", "Context", "ScenarioFailed", "GuestError", "parse_scenario", "images_for"]
