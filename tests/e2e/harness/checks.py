"""What the installed system reports about itself, and the checks on it.

cloud-init's user_data installs a per-boot script that starts the facts unit once cloud-init's
last stage is over; the unit prints `E2E-FACT KEY VALUE` lines on the serial console (the
first-boot health: failed units, error-priority journal lines, cloud-init's status; the
network as configured) and powers the machine off."""

import os
import re

FACTS_SCRIPT = r"""#!/bin/sh
# Facts for the end-to-end test, printed on the serial console at every boot.
fact() { printf 'E2E-FACT %s %s\n' "$1" "$2" >/dev/ttyS0; }
root=$(findmnt -no SOURCE /)
fact hostname "$(hostname)"
fact root-source "$root"
fact root-fstype "$(findmnt -no FSTYPE /)"
fact root-label "$(blkid -o value -s LABEL "$root")"
fact machine-id "$(cat /etc/machine-id)"
if [ -e /proc/mdstat ]; then
    grep -E '^md|blocks' /proc/mdstat | while read -r line; do fact mdstat "$line"; done
fi
for dev in $(blkid -t TYPE=vfat -o device); do
    label=$(blkid -o value -s LABEL "$dev")
    dir=$(findmnt -no TARGET "$dev" | head -n1)
    if [ -z "$dir" ]; then dir=$(mktemp -d); mount -o ro "$dev" "$dir"; fi
    fact esp "$dev label=$label files=$(cd "$dir" && find EFI -iname '*.efi' | sort | tr '\n' ' ')"
done
efibootmgr | while read -r line; do fact efi "$line"; done
fact kept-logs "$(ls /var/log/ocimetal 2>/dev/null | sort | tr '\n' ' ')"
ip -4 -o addr show scope global | while read -r _ dev _ addr _; do fact ipv4 "$dev $addr"; done
ip -4 route show | while read -r line; do fact route "$line"; done
ip -o link show | while read -r _ dev rest; do
    fact mtu "${dev%:} $(echo "$rest" | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')"
done
if command -v resolvectl >/dev/null; then
    resolvectl dns --no-pager | while read -r line; do fact dns "$line"; done
fi
grep '^nameserver' /etc/resolv.conf | while read -r line; do fact dns "$line"; done
fact ssh-server "$(systemctl is-active ssh.service)"
# Under `quiet` the initramfs says nothing when it skips the root's check: look inside it.
if command -v lsinitramfs >/dev/null; then
    fact initramfs-fsck "$(lsinitramfs "/boot/initrd.img-$(uname -r)" | grep -c 'sbin/fsck\.ext4$')"
fi
fact journal-steps "$(grep -o '"OCIMETAL_STEP":"[a-z-]*"' /var/log/ocimetal/journal.json 2>/dev/null | sort -u | wc -l)"
cloud-init status --long --wait | while read -r line; do fact cloud-init "$line"; done
systemctl list-units --failed --plain --no-legend --no-pager | while read -r unit _; do
    fact failed-unit "$unit"
done
journalctl -b -p err --no-pager -o short-monotonic | grep -v '^-- ' | while read -r line; do
    fact journal-err "$line"
done
fact done 1
systemctl poweroff
"""

# Started by cloud-init's per-boot scripts; runs once cloud-final is over (a unit ordered
# after it: the script itself runs inside cloud-final, which `--wait` would wait for forever).
LAUNCHER = """#!/bin/sh
exec systemd-run --no-block --unit=ocimetal-e2e-facts --property=After=cloud-final.service \\
    /usr/local/sbin/ocimetal-e2e-facts
"""

from .vm import SECOND_MAC

STATIC_IP = "192.0.2.10"
STATIC_ROUTE = "198.51.100.0/24 via 192.0.2.1"
STATIC_DNS = "192.0.2.53"
STATIC_MTU = "1400"


def _indented(text):
    return "\n".join("      " + line for line in text.splitlines())


def user_data(hostname):
    """Cloud-config that sets the hostname and installs the facts script."""
    return f"""#cloud-config
hostname: {hostname}
write_files:
  - path: /usr/local/sbin/ocimetal-e2e-facts
    permissions: "0755"
    content: |
{_indented(FACTS_SCRIPT)}
  - path: /var/lib/cloud/scripts/per-boot/zz-ocimetal-e2e-facts
    permissions: "0755"
    content: |
{_indented(LAUNCHER)}
"""


def network_data(mac, second_mac=SECOND_MAC):
    """OpenStack network_data.json: DHCP on the first NIC (the registry); on the second a
    static address with a route, a DNS server and an MTU of its own."""
    return {
        "links": [{"id": "nic0", "type": "phy", "ethernet_mac_address": mac, "mtu": 1500},
                  {"id": "nic1", "type": "phy", "ethernet_mac_address": second_mac,
                   "mtu": int(STATIC_MTU)}],
        "networks": [{"id": "net0", "link": "nic0", "type": "ipv4_dhcp", "network_id": "n0"},
                     {"id": "net1", "link": "nic1", "type": "ipv4", "network_id": "n1",
                      "ip_address": STATIC_IP, "netmask": "255.255.255.0",
                      "routes": [{"network": "198.51.100.0", "netmask": "255.255.255.0",
                                  "gateway": "192.0.2.1"}]}],
        "services": [{"type": "dns", "address": STATIC_DNS}],
    }


def check_network(facts):
    """Problems with the network_data of `network_data()` as the installed system applied it:
    the static address, its route, its MTU and the DNS server."""
    problems = []
    dev = next((v.split()[0] for v in facts.get("ipv4", []) if v.endswith(f" {STATIC_IP}/24")),
               None)
    if not dev:
        return [f"no {STATIC_IP}/24 from network_data: {facts.get('ipv4')}"]
    if not any(r.startswith(STATIC_ROUTE) and f" dev {dev}" in r for r in facts.get("route", [])):
        problems.append(f"no route {STATIC_ROUTE} on {dev}: {facts.get('route')}")
    if f"{dev} {STATIC_MTU}" not in facts.get("mtu", []):
        problems.append(f"{dev} has not the MTU {STATIC_MTU}: {facts.get('mtu')}")
    if not any(STATIC_DNS in line for line in facts.get("dns", [])):
        problems.append(f"the DNS server {STATIC_DNS} is not in use: {facts.get('dns')}")
    return problems


ALLOWED_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "first-boot-allowed.txt")
# Console lines of the initramfs (before systemd) that say something went wrong.
_INITRAMFS_TROUBLE = re.compile(r"(?i)not found|error|fail|invalid|unknown|can't|cannot|warning")
_KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\]")


def allowed_patterns(path=ALLOWED_FILE):
    """The allow-list: one regular expression per line, each after a comment giving the
    reason; messages that come from the emulated machine, not from the install."""
    patterns = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.strip() and not line.lstrip().startswith("#"):
                patterns.append(re.compile(line))
    return patterns


# The initramfs is over once systemd or a service of the installed system speaks.
_AFTER_INITRAMFS = re.compile(r"Welcome to |systemd\[1\]: |cloud-init\[|E2E-FACT |login: ")


def initramfs_lines(console_lines):
    """The lines the initramfs printed: from GRUB loading it (or the kernel starting /init,
    after a kexec) until systemd or a service of the installed system speaks; the kernel's
    own timestamped messages are left out (error-priority ones are in the journal)."""
    out, inside = [], False
    for line in console_lines:
        if "Loading initial ramdisk" in line or "Run /init as init process" in line:
            inside = True
        elif inside and _AFTER_INITRAMFS.search(line):
            break
        elif inside and line.strip() and not _KERNEL_LINE.match(line):
            out.append(line.strip())
    return out


def check_first_boot(facts, console_lines, allowed=None):
    """Problems in the installed system's first boot: failed units, error-priority journal
    messages and initramfs complaints not on the allow-list, an initramfs without the root's
    checker, a cloud-init status other than done."""
    allowed = allowed_patterns() if allowed is None else allowed

    def unexplained(lines):
        return [line for line in lines if not any(p.search(line) for p in allowed)]

    problems = []
    failed = unexplained(facts.get("failed-unit", []))
    if failed:
        problems.append(f"failed units: {failed}")
    errors = unexplained(facts.get("journal-err", []))
    if errors:
        problems.append(f"error messages: {errors[:8]}")
    early = unexplained([line for line in initramfs_lines(console_lines)
                         if _INITRAMFS_TROUBLE.search(line)])
    if early:
        problems.append(f"initramfs: {early[:8]}")
    if facts.get("initramfs-fsck", ["?"])[0] == "0":
        problems.append("the booted initramfs has no fsck.ext4: the root is mounted unchecked")
    status = next((line.split(":", 1)[1].strip() for line in facts.get("cloud-init", [])
                   if line.startswith("status:")), None)
    if status != "done":
        problems.append(f"cloud-init status is {status!r}: {facts.get('cloud-init')}")
    return problems


def collect_facts(guest):
    """The facts printed by the guest: KEY -> list of values, in order."""
    facts = {}
    for match in guest.lines_matching(r"E2E-FACT (\S+) ?(.*)$"):
        facts.setdefault(match.group(1), []).append(match.group(2).strip())
    return facts


def check_installed(facts, hostname, esp_count, raid=None, efi_entries=True, booted_entry=None):
    """Problems found in the facts of an installed system (empty when all is well).
    `raid`: None for no array, "[UU]" for a clean RAID1, "degraded" for one disk missing.
    `efi_entries`: the installer's entries are in NVRAM, one per ESP, and the firmware booted
    one of them; `booted_entry`: the label of the entry the firmware must have booted."""
    problems = []

    def expect(key, wanted):
        got = facts.get(key, ["<missing>"])[0]
        if got != wanted:
            problems.append(f"{key} is {got!r}, expected {wanted!r}")

    expect("hostname", hostname)
    expect("root-source", "/dev/mapper/vg_root-lv_root")
    expect("root-fstype", "ext4")
    expect("root-label", "ROOTFS")
    mdstat = " ".join(facts.get("mdstat", []))
    if raid == "[UU]" and "[UU]" not in mdstat:
        problems.append(f"RAID1 not clean: mdstat {mdstat!r}")
    elif raid == "degraded" and not ("[U_]" in mdstat or "[_U]" in mdstat):
        problems.append(f"RAID1 not running degraded: mdstat {mdstat!r}")
    elif raid is None and "raid1" in mdstat:
        problems.append(f"unexpected md array: {mdstat!r}")
    esps = [e for e in facts.get("esp", []) if "label=EFI" in e]
    populated = [e for e in esps if "EFI/BOOT/BOOTX64.EFI" in e.upper()]
    if len(populated) != esp_count:
        problems.append(f"{len(populated)} populated ESP(s) with a fallback loader, expected "
                        f"{esp_count}: {esps}")
    if efi_entries:
        # OVMF's own entries name devices or the shell; the installer's name the OS.
        entries = [e for e in facts.get("efi", []) if e.startswith("Boot0") and not
                   any(word in e for word in ("UEFI", "UiApp", "EFI Internal Shell"))]
        if len(entries) != esp_count:
            problems.append(f"{len(entries)} EFI boot entries of the installer, expected {esp_count}: "
                            f"{facts.get('efi', [])}")
    kept = facts.get("kept-logs", [""])[0].split()
    if kept != ["install.log", "journal.json", "plan.json"]:
        problems.append(f"/var/log/ocimetal holds {kept}, expected the plan and the journal")
    steps = int(facts.get("journal-steps", ["0"])[0] or 0)
    if steps < 8:
        problems.append(f"the kept journal names {steps} steps in OCIMETAL_STEP fields")
    if efi_entries or booted_entry:
        booted = _booted_label(facts.get("efi", []))
        if booted_entry and booted != booted_entry:
            problems.append(f"the firmware booted {booted!r}, expected {booted_entry!r}")
        elif not booted_entry and not (booted or "").startswith("ocimetal EFI"):
            problems.append(f"the firmware booted {booted!r}, not an entry of the installer")
    return problems


def _booted_label(efi_lines):
    """The label of the BootCurrent entry in `efibootmgr` output lines, or None."""
    current = next((line.split(":", 1)[1].strip() for line in efi_lines
                    if line.startswith("BootCurrent:")), None)
    for line in efi_lines:
        if current and line.startswith(f"Boot{current}"):
            return line[len("Boot") + 4:].lstrip("*").strip().split("\t")[0].strip()
    return None


def check_events(events, final="SUCCESS"):
    """Problems in the event stream an install posted to the webhook (empty when all is
    well): it starts with the install's `start`, every step's `start` is followed by its
    `finish`, and there is one `ocimetal` finish with result `final` (after which only the
    power action's own events may come). A successful install's final event carries the
    deployment record with the image digest; a failed one, the error."""
    if not events:
        return ["no events reached the webhook"]
    problems = []
    first = events[0]
    if (first.get("name"), first.get("event_type")) != ("ocimetal", "start"):
        problems.append(f"the first event is {first.get('name')} {first.get('event_type')}")
    finals = [i for i, e in enumerate(events)
              if e.get("name") == "ocimetal" and e.get("event_type") == "finish"]
    if len(finals) != 1:
        return problems + [f"{len(finals)} final events"]
    last = events[finals[0]]
    if last.get("result") != final:
        problems.append(f"the install finished {last.get('result')}: {last.get('description')}")
    late = [e["name"] for e in events[finals[0] + 1:] if e.get("name") != "ocimetal/reboot"]
    if late:
        problems.append(f"events after the final one: {late}")
    open_step = None
    for event in events[1:finals[0]]:
        name, kind = event.get("name", ""), event.get("event_type")
        if kind == "start":
            if open_step:
                problems.append(f"{name} started while {open_step} was running")
            open_step = name
        elif kind == "finish":
            if name != open_step:
                problems.append(f"{name} finished, but {open_step} was running")
            if final == "SUCCESS" and event.get("result") not in ("SUCCESS", "WARN"):
                problems.append(f"{name} finished {event.get('result')}")
            open_step = None
    if open_step:
        problems.append(f"{open_step} never finished")
    if final == "SUCCESS" and "already deployed" not in last.get("description", ""):
        digest = (last.get("record") or {}).get("digest", "")
        if not digest.startswith("sha256:"):
            problems.append(f"the final event has no image digest: {last.get('record')}")
    if final == "FAIL" and not last.get("error"):
        problems.append("the final event does not say what failed")
    return problems
