"""One QEMU guest (TCG, q35, OVMF) whose serial console is read line by line."""

import codecs
import os
import re
import shutil
import subprocess
import threading
import time

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
DISK1_SERIAL = "DISK1SERIAL"
DISK2_SERIAL = "DISK2SERIAL"
DISK2_WWN = "0x5000c500a1b2c3d4"
GUEST_MAC = "52:54:00:12:34:56"
# The second NIC: on a network of its own with nothing else on it, for network_data's static
# address, route, DNS server and MTU. Its QEMU network is 192.0.2.0/24, so that the ramdisk's
# DHCP on every NIC never gives it a second route to 10.0.2.0/24.
SECOND_MAC = "52:54:00:12:34:57"
SECOND_NET = "user,id=n1,restrict=on,net=192.0.2.0/24"

# Terminal control sequences systemd and getty write to the console (queries, colours).
_ESCAPES = re.compile(r"\x1b\[[0-9;:?!=>]*[a-zA-Z]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78c]|\r")

# Progress lines of the installer, and any line about it.
_STEP_LINE = re.compile(r"\bstep \S+: ")
_OCIMETAL_LINE = re.compile(r"(?i)ocimetal")

# What the guest kernel prints when a vCPU or its timer got no host time for tens of seconds:
# a host overloaded under TCG, before any code of the project ran.
_KERNEL_STALL = re.compile(r"rcu: INFO: rcu_\w+ (self-)?detected stall|rcu_\w+ kthread starved|"
                           r"watchdog: BUG: soft lockup")

# The ramdisk prints this tag when the install service failed (ocimetal-failure.service).
FAILURE_TAG = "ocimetal-failed:"


class GuestError(Exception):
    """A phase did not reach its goal; the message says why and shows the console's tail."""


def strip_escapes(text):
    """Console text without terminal escape sequences and carriage returns."""
    return _ESCAPES.sub("", text)


def fresh_vars(path):
    """A new copy of the OVMF variable store (no boot entries yet)."""
    shutil.copyfile(OVMF_VARS, path)
    return path


class Guest:
    """A running QEMU; use as a context manager so QEMU never outlives the test.

    A disk file whose name ends in `disk1.qcow2` is attached as the virtio-blk disk with
    serial DISK1SERIAL, any other as the scsi-hd disk with serial DISK2SERIAL and the WWN,
    so a scenario can drop either disk and keep the other's identity. `boot_disk` gets
    bootindex 0; without `kernel` the firmware boots from it."""

    def __init__(self, name, log_path, vars_path, disks, kernel=None, initrd=None, append="",
                 cdroms=(), boot_disk=None, netdev="user,id=n0", memory="3G"):
        self.name = name
        self.log_path = log_path
        self.args = [
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-machine", "q35",
            "-m", memory, "-smp", "2",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_path}",
            "-device", "virtio-scsi-pci,id=scsi0",
            "-netdev", netdev, "-device", f"virtio-net-pci,netdev=n0,mac={GUEST_MAC}",
            "-netdev", SECOND_NET,
            "-device", f"virtio-net-pci,netdev=n1,mac={SECOND_MAC},romfile=",
            "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
        ]
        if kernel:
            self.args += ["-kernel", kernel, "-initrd", initrd, "-append", append]
        for disk in disks:
            boot = ",bootindex=0" if disk == boot_disk else ""
            if disk.endswith("disk1.qcow2"):
                self.args += ["-drive", f"if=none,id=d1,file={disk},format=qcow2",
                              "-device", f"virtio-blk-pci,drive=d1,serial={DISK1_SERIAL}{boot}"]
            else:
                self.args += ["-drive", f"if=none,id=d2,file={disk},format=qcow2",
                              "-device", f"scsi-hd,drive=d2,bus=scsi0.0,serial={DISK2_SERIAL},"
                                         f"wwn={DISK2_WWN}{boot}"]
        for i, iso in enumerate(cdroms):
            self.args += ["-drive", f"if=none,id=cd{i},file={iso},format=raw,media=cdrom,readonly=on",
                          "-device", f"ide-cd,drive=cd{i},bus=ide.{2 + i}"]
        self.proc = None
        self.lines = []
        self._partial = ""
        self._cond = threading.Condition()
        self._reader = None
        self.exit_code = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.lines = []
        self._partial = ""
        self.exit_code = None
        with open(self.log_path + ".cmd", "w") as f:
            f.write(" ".join(self.args) + "\n")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        # Bytes arrive in arbitrary pieces: decode incrementally and strip escape sequences
        # only from whole lines, so neither a UTF-8 character nor a sequence is cut.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with open(self.log_path, "w", encoding="utf-8") as log:
            while True:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                with self._cond:
                    parts = (self._partial + decoder.decode(chunk)).split("\n")
                    self._partial = parts.pop()
                    lines = [strip_escapes(part) for part in parts]
                    self.lines.extend(lines)
                    self._cond.notify_all()
                for line in lines:
                    log.write(line + "\n")
                log.flush()
            code = self.proc.wait()
            with self._cond:
                rest = strip_escapes(self._partial + decoder.decode(b"", final=True))
                if rest:
                    self.lines.append(rest)
                    log.write(rest + "\n")
                self._partial = ""
                self.exit_code = code
                self._cond.notify_all()

    def stop(self):
        """Ends QEMU (its whole process group) and waits for it."""
        self._end(graceful=True)

    def pull_the_plug(self):
        """Ends QEMU at once with SIGKILL, as a power cut would: nothing the guest has not
        written to its disks yet gets there."""
        self._end(graceful=False)

    def _end(self, graceful):
        if self.proc and self.proc.poll() is None:
            if graceful:
                self._signal(15)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc.poll() is None:
                self._signal(9)
            self.proc.wait()
        if self._reader:
            self._reader.join(timeout=10)

    def _signal(self, number):
        try:
            os.killpg(self.proc.pid, number)
        except ProcessLookupError:
            pass

    def tail(self, count=25):
        """The last console lines, for error messages."""
        with self._cond:
            lines = [line for line in self.lines if line.strip()]
        return "\n".join("    | " + line for line in lines[-count:])

    def last_service_line(self):
        """The installer's last step line (` INFO step NAME: start|done …`), or else the last
        console line that names ocimetal."""
        with self._cond:
            for pattern in (_STEP_LINE, _OCIMETAL_LINE):
                for line in reversed(self.lines):
                    if pattern.search(line) and FAILURE_TAG not in line:
                        return line.strip()
        return None

    def _fail(self, why):
        last = self.last_service_line()
        hint = f"\n  last ocimetal line: {last}" if last else ""
        return GuestError(f"{self.name}: {why}{hint}\n  console tail ({self.log_path}):\n{self.tail()}")

    def wait_for(self, pattern, timeout, start=0, fail_on_failure_tag=True):
        """Waits until a console line from index `start` matches `pattern`; returns
        (match, index). Fails on timeout, on QEMU exiting, or on the installer's failure tag."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self.lines):
                    line = self.lines[index]
                    index += 1
                    if fail_on_failure_tag and FAILURE_TAG in line:
                        self._cond.wait_for(lambda: any("end of log" in l for l in self.lines[index:]),
                                            timeout=20)
                        raise self._fail("the installer failed")
                    match = regex.search(line)
                    if match:
                        return match, index
                if self.exit_code is not None:
                    raise self._fail(f"QEMU exited (status {self.exit_code}) before /{pattern}/")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._fail(f"timed out after {timeout} s waiting for /{pattern}/")
                self._cond.wait(timeout=left)

    def wait_booted(self, pattern, timeout):
        """`wait_for(pattern, timeout)` for the first line the project's own code prints. If it
        does not come and the guest kernel reported a stall (the host starved QEMU), the guest
        is started once more from the same disks, which nothing has written yet; the stalled
        console is kept beside the log as `.stalled`."""
        try:
            return self.wait_for(pattern, timeout)
        except GuestError:
            with self._cond:
                stall = next((line for line in self.lines if _KERNEL_STALL.search(line)), None)
            if stall is None:
                raise
        self.stop()
        os.replace(self.log_path, self.log_path + ".stalled")
        print(f"    {self.name}: the guest kernel stalled before /{pattern}/ "
              f"({stall.strip()}); starting it once more", flush=True)
        self.start()
        return self.wait_for(pattern, timeout)

    def wait_exit(self, timeout, fail_on_failure_tag=True):
        """Waits for the guest to power off or reboot (QEMU ends with -no-reboot)."""
        deadline = time.monotonic() + timeout
        index = 0
        with self._cond:
            while self.exit_code is None:
                if fail_on_failure_tag:
                    for line in self.lines[index:]:
                        if FAILURE_TAG in line:
                            self._cond.wait_for(lambda: any("end of log" in l for l in self.lines[index:]),
                                                timeout=20)
                            raise self._fail("the installer failed")
                    index = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._fail(f"timed out after {timeout} s waiting for the guest to end")
                self._cond.wait(timeout=left)
        if self.exit_code != 0:
            raise self._fail(f"QEMU ended with status {self.exit_code}")

    def lines_matching(self, pattern):
        """Every console line matching `pattern`, as regex matches."""
        regex = re.compile(pattern)
        with self._cond:
            return [m for m in (regex.search(line) for line in self.lines) if m]
