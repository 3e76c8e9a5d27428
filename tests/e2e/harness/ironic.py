"""The `ironic` scenario: a real Ironic drives the deploy. Ironic (one process, SQLite, no
authentication, loopback only) talks Redfish to sushy-tools' emulator, whose libvirt driver
owns the QEMU machine (TCG, q35, OVMF); the `ramdisk` deploy interface boots our kernel and
initrd from a virtual CD that Ironic builds, and the configdrive it builds from the deploy
request arrives on virtual removable media. Ironic and the emulator come from PyPI, pinned in
tests/e2e/ironic/requirements.txt, in a venv made on first use; libvirt is Debian's.

Every service is started here and stopped by PID, also on failure."""

import codecs
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import string
import struct
import subprocess
import threading
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET

from . import assets, checks
# scenarios.py imports this module after defining these.
from .scenarios import SERVICE_STARTED, ScenarioFailed
from .vm import DISK1_SERIAL, DISK2_SERIAL, GUEST_MAC, SECOND_MAC, Guest, strip_escapes

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_DIR = os.path.join(os.path.dirname(HERE), "ironic")

DOMAIN = "ocimetal-e2e-ironic"
NODE = "ocimetal-e2e"
POOL = "ocimetal-e2e"
LIBVIRT_URI = "qemu:///system"

# Time limits, in seconds, under TCG on a busy 2-core machine.
VENV_TIMEOUT = 30 * 60
SERVICE_TIMEOUT = 120
STATE_TIMEOUT = 15 * 60
BOOT_TIMEOUT = 600
INSTALL_TIMEOUT = 45 * 60
CHECK_TIMEOUT = 20 * 60

INSTALLED = r"installed \S+ \(sha256:[0-9a-f]+\) on "
# The re-entry line names the ESP the marker was read from.
ALREADY_INSTALLED = r"is already installed on /dev/\S+: booting it instead of reinstalling"
REINSTALL = r"step wipe: start"


def _template(template, **values):
    with open(os.path.join(CONFIG_DIR, template)) as f:
        return string.Template(f.read()).substitute(values)


def _wait_until(what, check, timeout, interval=0.5):
    """Polls `check()` until it returns a true value (returned) or `timeout` passes. For
    services that offer no readiness notification."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise ScenarioFailed(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


# --- the venv -------------------------------------------------------------------------------

def ensure_venv(repo):
    """The venv with Ironic, its client and the emulator, made (again) when requirements.txt
    changed; returns its bin directory."""
    requirements = os.path.join(CONFIG_DIR, "requirements.txt")
    with open(requirements, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    venv = os.path.join(repo, "build", "e2e", "ironic", "venv")
    stamp = os.path.join(venv, "requirements.sha256")
    bindir = os.path.join(venv, "bin")
    if os.path.exists(stamp) and open(stamp).read().strip() == digest:
        return bindir
    # libvirt-python builds against the host's libvirt; Debian's interpreter matches the
    # Python the pins were made with.
    if subprocess.run(["pkg-config", "--exists", "libvirt"]).returncode != 0:
        raise ScenarioFailed("ironic: libvirt-dev is missing; run .ci/install-deps")
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"
    shutil.rmtree(venv, ignore_errors=True)
    print(f"    ironic: creating {venv} (first run: a few minutes)", flush=True)
    assets.run([python, "-m", "venv", venv], timeout=300)
    assets.run([os.path.join(bindir, "pip"), "install", "-q", "--disable-pip-version-check",
                "-r", requirements], timeout=VENV_TIMEOUT)
    with open(stamp, "w") as f:
        f.write(digest + "\n")
    return bindir


# --- services -------------------------------------------------------------------------------

class Process:
    """A service in its own process group, logging to a file; stopped by its PID."""

    def __init__(self, name, args, log_path, env=None):
        self.name = name
        self.args = args
        self.log_path = log_path
        self.env = env
        self.proc = None

    def start(self):
        with open(self.log_path + ".cmd", "w") as f:
            f.write(" ".join(self.args) + "\n")
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     start_new_session=True)
        log.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if not self.alive():
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _stop_pid(pid, timeout=20):
    """Terminates a daemon by PID and waits until it is gone."""
    if not _pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


class Libvirt:
    """virtlogd and libvirtd started by hand (no systemd as PID 1 needed), a transient storage
    pool for the media the emulator inserts, and the domain; all removed again on exit."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.pids = {}
        self.domain_defined = False
        self.pool_started = False

    def __enter__(self):
        for daemon in ("libvirtd", "virtlogd"):
            pid = _read_pid(f"/run/{daemon}.pid")
            if pid and _pid_alive(pid):
                raise ScenarioFailed(f"ironic: a {daemon} is already running (PID {pid}); "
                                     "this scenario starts and stops its own")
        # The domain is TCG. Where /dev/kvm is accessible but KVM does not work, libvirt
        # finds QEMU's cached capabilities stale ("KVM should be usable now") and probes QEMU
        # again on every define and start (about 100 s each under load); libvirtd gets a
        # private mount namespace with a root-only file over /dev/kvm instead, and our
        # qemu.conf.
        nokvm = os.path.join(self.workdir, "no-kvm")
        open(nokvm, "w").close()
        os.chmod(nokvm, 0o600)
        mask = (f"mount --bind {os.path.join(CONFIG_DIR, 'qemu.conf')} /etc/libvirt/qemu.conf && "
                f"{{ [ ! -e /dev/kvm ] || mount --bind {nokvm} /dev/kvm; }} && exec \"$0\" \"$@\"")
        try:
            for daemon in ("virtlogd", "libvirtd"):
                pidfile = os.path.join(self.workdir, f"{daemon}.pid")
                args = [daemon, "-d", "-p", pidfile]
                if daemon == "libvirtd":
                    args = ["unshare", "--mount", "sh", "-c", mask] + args
                assets.run(args, timeout=60)
                self.pids[daemon] = _wait_until(f"{daemon}'s PID file",
                                                lambda p=pidfile: _read_pid(p), SERVICE_TIMEOUT)
            _wait_until("libvirtd", lambda: self.virsh("version", check=False).returncode == 0,
                        SERVICE_TIMEOUT)
            pool = os.path.join(self.workdir, "pool")
            os.makedirs(pool, exist_ok=True)
            self.virsh("pool-create-as", POOL, "dir", "--target", pool)
            self.pool_started = True
        except BaseException:
            self.__exit__()
            raise
        return self

    def virsh(self, *args, check=True):
        result = subprocess.run(["virsh", "-q", "-c", LIBVIRT_URI, *args], capture_output=True,
                                text=True, timeout=120)
        if check and result.returncode != 0:
            raise ScenarioFailed(f"virsh {' '.join(args)}: {result.stderr.strip()}")
        return result

    def define(self, xml_path):
        self.virsh("define", xml_path)
        self.domain_defined = True

    def state(self):
        result = self.virsh("domstate", DOMAIN, check=False)
        return result.stdout.strip() if result.returncode == 0 else "unknown"

    def xml(self):
        return ET.fromstring(self.virsh("dumpxml", "--inactive", DOMAIN).stdout)

    def media(self):
        """The domain's removable media: [(device, bus, image file)]."""
        found = []
        for disk in self.xml().iter("disk"):
            if disk.get("device") in ("cdrom", "floppy"):
                source = disk.find("source")
                found.append((disk.get("device"), disk.find("target").get("bus"),
                              source.get("file") if source is not None else None))
        return found

    def boot_order(self):
        """Devices with a boot order, first first: [(order, device, target)]."""
        order = []
        for disk in self.xml().iter("disk"):
            boot = disk.find("boot")
            if boot is not None:
                order.append((int(boot.get("order")), disk.get("device"),
                              disk.find("target").get("dev")))
        return sorted(order)

    def __exit__(self, *exc):
        try:
            if self.domain_defined:
                if self.state() not in ("shut off", "unknown"):
                    self.virsh("destroy", DOMAIN, check=False)
                self.virsh("undefine", "--nvram", DOMAIN, check=False)
            if self.pool_started:
                self.virsh("pool-destroy", POOL, check=False)
        finally:
            for daemon in ("libvirtd", "virtlogd"):
                if daemon in self.pids:
                    _stop_pid(self.pids[daemon])
            # libvirtd leaves QEMU running when it stops; a domain it could not destroy
            # still has its PID file.
            pid = _read_pid(f"/run/libvirt/qemu/{DOMAIN}.pid")
            if pid:
                _stop_pid(pid)


def _read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


class Emulator:
    """sushy-emulator with its libvirt driver, on 127.0.0.1."""

    def __init__(self, bindir, workdir, system_uuid):
        self.port = assets.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        state = os.path.join(workdir, "emulator")
        os.makedirs(os.path.join(state, "tmp"), exist_ok=True)
        self.config = os.path.join(workdir, "emulator.conf")
        with open(self.config, "w") as f:
            f.write(_template("emulator.conf", port=self.port, uuid=system_uuid, state=state,
                              pool=POOL))
        # Downloaded media land in TMPDIR before they are uploaded into the pool.
        env = dict(os.environ, TMPDIR=os.path.join(state, "tmp"))
        self.process = Process("sushy-emulator", [os.path.join(bindir, "sushy-emulator"),
                                                  "--config", self.config],
                               os.path.join(workdir, "emulator.log"), env=env)
        self.system_uuid = system_uuid

    def __enter__(self):
        self.process.start()
        try:
            _wait_until("sushy-emulator",
                        lambda: self._check_alive() and
                        _http_ok(f"{self.url}/redfish/v1/Systems/{self.system_uuid}"),
                        SERVICE_TIMEOUT)
        except BaseException:
            self.process.stop()
            raise
        return self

    def _check_alive(self):
        if not self.process.alive():
            raise ScenarioFailed(f"ironic: sushy-emulator exited, see {self.process.log_path}")
        return True

    def __exit__(self, *exc):
        self.process.stop()


class Ironic:
    """Ironic as one process (API and conductor, no RPC), SQLite, no authentication, on
    127.0.0.1; `baremetal` runs the client against it."""

    def __init__(self, bindir, workdir, http_port, http_root):
        self.bindir = bindir
        self.port = assets.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        state = os.path.join(workdir, "ironic")
        for sub in ("tmp", "locks"):
            os.makedirs(os.path.join(state, sub), exist_ok=True)
        self.log_path = os.path.join(workdir, "ironic.log")
        self.config = os.path.join(workdir, "ironic.conf")
        with open(self.config, "w") as f:
            f.write(_template("ironic.conf", state=state, log=self.log_path, api_port=self.port,
                              http_port=http_port, http_root=http_root))
        self.process = Process("ironic", [os.path.join(bindir, "ironic"), "--config-file",
                                          self.config], os.path.join(workdir, "ironic.out"))
        self.commands = open(os.path.join(workdir, "baremetal-commands.sh"), "w")

    def __enter__(self):
        assets.run([os.path.join(self.bindir, "ironic-dbsync"), "--config-file", self.config,
                    "create_schema"], timeout=300, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
        self.process.start()
        try:
            _wait_until("the Ironic API", lambda: self._check_alive() and
                        _http_ok(f"{self.url}/v1"), SERVICE_TIMEOUT)
            # The API answers before the conductor has registered its hardware types.
            _wait_until("Ironic's conductor", lambda: "redfish" in self.baremetal(
                "driver", "list", "-f", "value", "-c", "name", record=False), SERVICE_TIMEOUT,
                interval=2)
        except BaseException:
            self.process.stop()
            raise
        return self

    def _check_alive(self):
        if not self.process.alive():
            raise ScenarioFailed(f"ironic: the ironic service exited, see {self.log_path}")
        return True

    def baremetal(self, *args, timeout=STATE_TIMEOUT + 60, record=True):
        """Runs `baremetal ARGS` and returns its stdout; `record`: the command goes to
        baremetal-commands.sh in the scenario's directory."""
        if record:
            self.commands.write("baremetal " + " ".join(_shell_quote(a) for a in args) + "\n")
            self.commands.flush()
        env = dict(os.environ, OS_AUTH_TYPE="none", OS_ENDPOINT=self.url)
        result = subprocess.run([os.path.join(self.bindir, "baremetal"), *args], env=env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise ScenarioFailed(f"ironic: baremetal {' '.join(args[:3])}…: "
                                 f"{result.stderr.strip()[-1500:]}")
        return result.stdout

    def log_size(self):
        return os.path.getsize(self.log_path)

    def boot_requests(self, offset):
        """The `Boot` bodies of the Redfish PATCH requests Ironic logged after byte `offset`."""
        with open(self.log_path, errors="replace") as f:
            f.seek(offset)
            return re.findall(r"HTTP request: PATCH \S+/Systems/\S+; .*body: (\{'Boot': .*?\}\})", f.read())

    def node(self):
        return json.loads(self.baremetal("node", "show", NODE, "-f", "json", record=False))

    def __exit__(self, *exc):
        self.process.stop()
        self.commands.close()


def _shell_quote(arg):
    if re.fullmatch(r"[\w@%+=:,./-]+", arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


# --- the console ----------------------------------------------------------------------------

class DomainConsole(Guest):
    """The domain's serial console, read from the file libvirt writes it to, and its power
    state: the domain outlives reboots, so `exit_code` is 0 while it is shut off and None
    while it runs (`wait_for` and `wait_exit` work as for a QEMU of our own)."""

    def __init__(self, name, raw_path, log_path, libvirt):
        # Guest.__init__ builds a QEMU command line; only its console state is wanted here.
        self.name = name
        self.raw_path = raw_path
        self.log_path = log_path
        self.libvirt = libvirt
        self.proc = None
        self.lines = []
        self._partial = ""
        self._cond = threading.Condition()
        self._reader = None
        self._done = threading.Event()
        self.exit_code = None

    def start(self):
        self._reader = threading.Thread(target=self._follow, daemon=True)
        self._reader.start()

    def _follow(self):
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        offset = 0
        with open(self.log_path, "a", encoding="utf-8") as log:
            while not self._done.is_set():
                # The state first: a domain seen shut off has written its last line already.
                running = self.libvirt.state() == "running"
                chunk = b""
                try:
                    with open(self.raw_path, "rb") as f:
                        f.seek(offset)
                        chunk = f.read()
                except FileNotFoundError:
                    pass
                offset += len(chunk)
                with self._cond:
                    parts = (self._partial + decoder.decode(chunk)).split("\n")
                    self._partial = parts.pop()
                    lines = [strip_escapes(part) for part in parts]
                    self.lines.extend(lines)
                    self.exit_code = None if running else 0
                    self._cond.notify_all()
                for line in lines:
                    log.write(line + "\n")
                log.flush()
                self._done.wait(1)

    def mark(self):
        """The index of the next console line."""
        with self._cond:
            return len(self.lines)

    def wait_running(self, timeout=120):
        with self._cond:
            if not self._cond.wait_for(lambda: self.exit_code is None, timeout=timeout):
                raise self._fail(f"the domain did not start within {timeout} s")

    def lines_between(self, pattern, start, end):
        """Console lines from index `start` up to `end` that match `pattern`."""
        regex = re.compile(pattern)
        with self._cond:
            return [line for line in self.lines[start:end] if regex.search(line)]

    def facts_since(self, index):
        """The E2E-FACT lines printed from console line `index` on, as checks.collect_facts."""
        facts = {}
        with self._cond:
            lines = self.lines[index:]
        for line in lines:
            match = re.search(r"E2E-FACT (\S+) ?(.*)$", line)
            if match:
                facts.setdefault(match.group(1), []).append(match.group(2).strip())
        return facts

    def stop(self):
        self._done.set()
        if self._reader:
            self._reader.join(timeout=10)


# --- orders ---------------------------------------------------------------------------------

def _config_drive(ctx, hostname, force=False):
    """The configdrive of a deploy; `force` for a deploy of other orders onto a node that
    holds a deployment already (without it ocimetal refuses to wipe a deployed node)."""
    meta = {"local-hostname": hostname, "metal3-name": hostname,
            "oci_image": ctx.debian("-bootable"),
            "root_device_hints": f"serial={DISK1_SERIAL} {DISK2_SERIAL}"}
    if force:
        meta["ocimetal_force"] = True
    return {
        "meta_data": meta,
        "network_data": checks.network_data(GUEST_MAC),
        "user_data": checks.user_data(hostname),
    }


# --- the boot loader Ironic builds its ISO with ---------------------------------------------

def _esp_from_iso(iso, out):
    """Copies the EFI system partition out of our hybrid ISO (GPT partition 2: shim and
    Debian's signed GRUB) and gives it a grub.cfg that loads the one Ironic writes into the
    ISO it builds (`[DEFAULT]grub_config_path`, EFI/BOOT/grub.cfg)."""
    with open(iso, "rb") as f:
        f.seek(512)
        header = f.read(92)
        if header[:8] != b"EFI PART":
            raise ScenarioFailed(f"ironic: {iso} has no GPT")
        entries_lba, count, size = struct.unpack_from("<QII", header, 72)
        f.seek(entries_lba * 512 + size)  # the second entry
        entry = f.read(size)
        first, last = struct.unpack_from("<QQ", entry, 32)
        if not first:
            raise ScenarioFailed(f"ironic: {iso} has no second partition")
        f.seek(first * 512)
        with open(out, "wb") as o:
            o.write(f.read((last - first + 1) * 512))
    cfg = out + ".grub.cfg"
    with open(cfg, "w") as f:
        # Only the ISO Ironic builds holds its own ESP image at this path.
        f.write("search --no-floppy --file --set=root /boot/grub/efiboot.img\n"
                "configfile ($root)/EFI/BOOT/grub.cfg\n")
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    for path in ("::/EFI/BOOT/grub.cfg", "::/EFI/debian/grub.cfg", "::/boot/grub/grub.cfg"):
        assets.run(["mcopy", "-o", "-i", out, cfg, path], env=env, timeout=60)
    os.unlink(cfg)
    return out


# --- the scenario ---------------------------------------------------------------------------

def _expect_state(api, provision, power=None):
    node = api.node()
    got = (node["provision_state"], node["power_state"])
    if got[0] != provision or (power and got[1] != power):
        raise ScenarioFailed(f"ironic: node is {got[0]} / {got[1]}, expected {provision}"
                             f"{' / ' + power if power else ''}; last_error: {node.get('last_error')}")
    return node


def _check_facts(label, facts, hostname, console):
    for key in ("hostname", "root-source", "mdstat", "esp", "ipv4", "route", "dns", "cloud-init",
                "failed-unit", "journal-err"):
        for value in facts.get(key, []):
            print(f"    {label} {key}: {value}", flush=True)
    problems = checks.check_installed(facts, hostname=hostname, esp_count=2, raid="[UU]")
    problems += checks.check_first_boot(facts, console)
    problems += checks.check_network(facts)
    if problems:
        raise ScenarioFailed(f"{label}: " + "; ".join(problems))


def _check_media(libvirt, label, expect):
    media = libvirt.media()
    print(f"    {label} media: {media}; boot order: {libvirt.boot_order()}", flush=True)
    kinds = sorted(device for device, _, source in media if source)
    if kinds != sorted(expect):
        raise ScenarioFailed(f"{label}: inserted media {kinds}, expected {sorted(expect)}")


def _boot_installed(ctx, console, label, start, hostname):
    """Waits for the installed system's facts from console line `start` on and for it to
    power itself off; checks them and returns them."""
    with ctx.phase(f"ironic:{label}"):
        console.wait_for(r"E2E-FACT done", CHECK_TIMEOUT, start=start, fail_on_failure_tag=False)
        console.wait_exit(120, fail_on_failure_tag=False)
    facts = console.facts_since(start)
    _check_facts(label, facts, hostname, console.lines_between("", start, console.mark()))
    return facts


def _deploy(ctx, api, libvirt, console, files, hostname, label, force=False):
    """instance_info, then `deploy` with a configdrive; waits for `active`. Returns the console
    index the deploy started at and the boot device requests Ironic sent."""
    base = f"http://127.0.0.1:{files.port}/ocimetal"
    offset = api.log_size()
    with ctx.phase(f"ironic:{label}"):
        api.baremetal("node", "set", NODE,
                      "--instance-info", f"kernel={base}/ocimetal-ramdisk.vmlinuz",
                      "--instance-info", f"ramdisk={base}/ocimetal-ramdisk.cpio.zst",
                      # The ramdisk deploy reads the ESP only from instance_info: driver_info's
                      # `bootloader` is for the agent's deploy ISO (Ironic 39.0.0).
                      "--instance-info", f"bootloader={base}/esp.img",
                      "--instance-info", f"ramdisk_kernel_arguments={ctx.cmdline()}")
        start = console.mark()
        api.baremetal("node", "deploy", NODE, "--config-drive",
                      json.dumps(_config_drive(ctx, hostname, force)), "--wait", str(STATE_TIMEOUT))
        _expect_state(api, "active", "power on")
        # A ramdisk deploy is done when the ramdisk boots: the CD and the configdrive stay.
        _check_media(libvirt, label, ["cdrom", "floppy"])
    requests = api.boot_requests(offset)
    print(f"    {label}: boot device requests: {requests}", flush=True)
    return start, requests


def _install(ctx, console, start, label):
    with ctx.phase(f"ironic:{label}"):
        console.wait_running()
        _, index = console.wait_for(SERVICE_STARTED, BOOT_TIMEOUT, start=start)
        orders = console.wait_for(r"orders: configdrive=(\S+)", BOOT_TIMEOUT, start=index)[0]
        print(f"    {label}: configdrive read from {orders.group(1)}", flush=True)
        _, index = console.wait_for(INSTALLED, INSTALL_TIMEOUT, start=index)
    return index


def ironic(ctx):
    """A real Ironic deploys the ramdisk over Redfish virtual media; ocimetal installs RAID1
    from the configdrive Ironic builds; the machine boots the disk, the ramdisk booting again
    from the persistent CD boots the disk without reinstalling, undeploy ejects the media,
    and a second deploy with other orders and `ocimetal_force` reinstalls."""
    workdir = ctx.workdir("ironic")
    iso = os.path.join(ctx.repo, "build", "ramdisk", "ocimetal-ramdisk.iso")
    system_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, "ocimetal-e2e-ironic"))
    with contextlib.ExitStack() as stack:
        with ctx.phase("ironic:up"):
            bindir = ensure_venv(ctx.repo)
            http_root = os.path.join(workdir, "http")
            published = os.path.join(http_root, "ocimetal")
            os.makedirs(published)
            shutil.copy(ctx.kernel, os.path.join(published, "ocimetal-ramdisk.vmlinuz"))
            shutil.copy(ctx.initrd, os.path.join(published, "ocimetal-ramdisk.cpio.zst"))
            _esp_from_iso(iso, os.path.join(published, "esp.img"))
            files = stack.enter_context(assets.FileServer(http_root))
            libvirt = stack.enter_context(Libvirt(workdir))
            disks = [assets.blank_disk(os.path.join(workdir, "disk1.qcow2")),
                     assets.blank_disk(os.path.join(workdir, "disk2.qcow2"))]
            raw_console = os.path.join(workdir, "console.raw.log")
            domain_xml = os.path.join(workdir, "domain.xml")
            with open(domain_xml, "w") as f:
                f.write(_template("domain.xml", name=DOMAIN, uuid=system_uuid,
                                  nvram=os.path.join(workdir, "vars.nosecboot.fd"),
                                  disk1=disks[0], disk2=disks[1], mac1=GUEST_MAC,
                                  mac2=SECOND_MAC, console=raw_console))
            libvirt.define(domain_xml)
            emulator = stack.enter_context(Emulator(bindir, workdir, system_uuid))
            api = stack.enter_context(Ironic(bindir, workdir, files.port, http_root))
        console = stack.enter_context(DomainConsole("ironic", raw_console,
                                                    os.path.join(workdir, "console.log"), libvirt))

        with ctx.phase("ironic:enroll"):
            api.baremetal("node", "create", "--driver", "redfish", "--name", NODE,
                          "--driver-info", f"redfish_address={emulator.url}",
                          "--driver-info", f"redfish_system_id=/redfish/v1/Systems/{system_uuid}",
                          "--boot-interface", "redfish-virtual-media",
                          "--deploy-interface", "ramdisk")
            _expect_state(api, "enroll")
            api.baremetal("node", "manage", NODE, "--wait", str(STATE_TIMEOUT))
            _expect_state(api, "manageable")
            api.baremetal("node", "provide", NODE, "--wait", str(STATE_TIMEOUT))
            _expect_state(api, "available")

        hostname = "e2e-ironic"
        start, _ = _deploy(ctx, api, libvirt, console, files, hostname, "deploy")
        index = _install(ctx, console, start, "install")
        _boot_installed(ctx, console, "first-boot", index, hostname)

        # The BMC keeps the CD as the boot device: the next power-on boots the ramdisk again.
        with ctx.phase("ironic:reentry"):
            start = console.mark()
            api.baremetal("node", "power", "on", NODE)
            console.wait_running()
            _, index = console.wait_for(SERVICE_STARTED, BOOT_TIMEOUT, start=start)
            _, index = console.wait_for(ALREADY_INSTALLED, BOOT_TIMEOUT, start=index)
        _boot_installed(ctx, console, "reentry-boot", index, hostname)
        # (The test image carries a machine-id of its own, so that tells nothing here.)
        if console.lines_between(r"step wipe: start|" + INSTALLED, start, console.mark()):
            raise ScenarioFailed("ironic: the ramdisk booted again reinstalled the machine")

        with ctx.phase("ironic:undeploy"):
            api.baremetal("node", "undeploy", NODE, "--wait", str(STATE_TIMEOUT))
            node = _expect_state(api, "available", "power off")
            _check_media(libvirt, "undeploy", [])
            print(f"    undeploy: instance_info left: {node['instance_info']}", flush=True)

        # Other orders, and a one-time boot device: Ironic asks the BMC for `Once` (the
        # emulator's libvirt driver keeps every boot device persistent all the same).
        hostname = "e2e-ironic-2"
        api.baremetal("node", "set", NODE, "--driver-info", "force_persistent_boot_device=Never")
        start, requests = _deploy(ctx, api, libvirt, console, files, hostname, "redeploy",
                                  force=True)
        if not any("'Cd'" in r and "'Once'" in r for r in requests):
            raise ScenarioFailed(f"ironic: with force_persistent_boot_device=Never Ironic sent {requests}")
        index = _install(ctx, console, start, "reinstall")
        if not console.lines_between(REINSTALL, start, index):
            raise ScenarioFailed("ironic: the second deploy did not reinstall")
        _boot_installed(ctx, console, "second-boot", index, hostname)
        with ctx.phase("ironic:undeploy-2"):
            api.baremetal("node", "undeploy", NODE, "--wait", str(STATE_TIMEOUT))
            _expect_state(api, "available", "power off")
