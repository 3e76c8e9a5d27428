"""What the guests need from the host: the registry, test images, an HTTP server for node
JSON documents, config-2 media and blank disks."""

import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

DEBIAN_MIRROR = "http://deb.debian.org/debian"


# No host-side step may hang the run: image recipes download and install packages.
STEP_TIMEOUT = 40 * 60


def run(cmd, timeout=STEP_TIMEOUT, **kwargs):
    """Runs a command, failing loudly (also when it outlives `timeout` seconds); output goes
    to the harness's own stdout."""
    subprocess.run(cmd, check=True, timeout=timeout, **kwargs)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """Debian's docker-registry on 127.0.0.1:PORT with storage that persists between runs."""

    def __init__(self, storage, workdir):
        self.storage = storage
        self.workdir = workdir
        self.port = free_port()
        self.proc = None

    def __enter__(self):
        os.makedirs(self.storage, exist_ok=True)
        config = os.path.join(self.workdir, "registry.yml")
        with open(config, "w") as f:
            f.write("version: 0.1\nlog:\n  level: warn\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
                    f"http:\n  addr: 127.0.0.1:{self.port}\n")
        log = open(os.path.join(self.workdir, "registry.log"), "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", config], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"docker-registry did not come up, see {log.name}")
            # The registry offers no readiness notification; poll its API briefly.
            time.sleep(0.2)

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def push(self, layout, tag, name):
        """Copies the OCI layout's `tag` to NAME (e.g. `debian:13`) in this registry."""
        run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{tag}",
             f"docker://127.0.0.1:{self.port}/{name}"], timeout=600)


class _Served:
    """An HTTP server on 127.0.0.1 (any free port) that serves while the `with` lasts."""

    def __init__(self, handler):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class FileServer(_Served):
    """A small HTTP server for files the guest fetches (node JSON), on 127.0.0.1."""

    def __init__(self, directory):
        self.directory = directory
        super().__init__(functools.partial(_QuietHandler, directory=directory))


class Webhook(_Served):
    """Receives the installer's events (one JSON object per POST) on 127.0.0.1, kept by
    request path: each install reports to a path of its own."""

    MAX_BODY = 1 << 20

    def __init__(self):
        self.events = {}
        self.lock = threading.Condition()
        webhook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = min(int(self.headers.get("Content-Length") or 0), Webhook.MAX_BODY)
                body = self.rfile.read(length)
                try:
                    event = json.loads(body)
                except ValueError:
                    event = {"unparsable": body[:200].decode(errors="replace")}
                with webhook.lock:
                    webhook.events.setdefault(self.path, []).append(event)
                    webhook.lock.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, fmt, *args):
                pass

        super().__init__(Handler)

    def received(self, path):
        """The events posted to `path` so far, in order."""
        with self.lock:
            return list(self.events.get(path, []))

    def wait_for(self, path, predicate, timeout):
        """Waits until `predicate` holds for the events posted to `path`; returns them, or
        None after `timeout` seconds."""
        with self.lock:
            if self.lock.wait_for(lambda: predicate(self.events.get(path, [])), timeout):
                return list(self.events.get(path, []))
            return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        print(f"    http: {fmt % args}", flush=True)


# Test images: each recipe is a shell script run with ROOTFS (and BASE for derived images).
_MINBASE = """
debootstrap --variant=minbase {suite} "$ROOTFS" {mirror}
"""

_BOOTABLE = """
cp -a "$BASE/." "$ROOTFS/"
printf '#!/bin/sh\\nexit 101\\n' > "$ROOTFS/usr/sbin/policy-rc.d"; chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
for d in proc sys dev; do mount --rbind /$d "$ROOTFS/$d"; mount --make-rslave "$ROOTFS/$d"; done
trap 'for d in dev sys proc; do umount -R "$ROOTFS/$d" || true; done' EXIT
chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
    linux-image-amd64 grub-efi-amd64 shim-signed cloud-init mdadm lvm2 initramfs-tools \\
    efibootmgr e2fsprogs dosfstools ca-certificates systemd-sysv busybox iproute2 netplan.io \\
    systemd-resolved openssh-server rsync sudo curl
chroot "$ROOTFS" apt-get clean
rm -f "$ROOTFS/usr/sbin/policy-rc.d"
"""

# Bootable, but without what a server needs that an image may well lack: the installer must
# add e2fsprogs (fsck.ext4 of the root it makes), busybox (mdadm's initramfs hooks) and the
# SSH server.
_BOOTABLE_BARE = _BOOTABLE.replace(" e2fsprogs", "").replace(" busybox", "").replace(
    " openssh-server", "") + """
# bookworm's minbase has e2fsprogs (required and protected); trixie's has none of the three.
for p in e2fsprogs busybox openssh-server; do
    if chroot "$ROOTFS" dpkg -s "$p" >/dev/null 2>&1; then
        chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq --allow-remove-essential "$p"
    fi
done
chroot "$ROOTFS" dpkg -s linux-image-amd64 grub-efi-amd64 cloud-init mdadm lvm2 >/dev/null
for p in e2fsprogs busybox openssh-server; do
    if chroot "$ROOTFS" dpkg -s "$p" >/dev/null 2>&1; then echo "$p got in" >&2; exit 1; fi
done
"""

IMAGES = {
    # name in the registry: (recipe, suite, base image or None)
    "debian:13": (_MINBASE, "trixie", None),
    "debian:12": (_MINBASE, "bookworm", None),
    "debian:13-bootable": (_BOOTABLE, "trixie", "debian:13"),
    "debian:12-bootable": (_BOOTABLE, "bookworm", "debian:12"),
    "debian:13-bootable-bare": (_BOOTABLE_BARE, "trixie", "debian:13"),
    "debian:12-bootable-bare": (_BOOTABLE_BARE, "bookworm", "debian:12"),
}


def _recipe_hash(name):
    recipe, suite, base = IMAGES[name]
    text = recipe.format(suite=suite, mirror=DEBIAN_MIRROR) + (_recipe_hash(base) if base else "")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_image(cache, name):
    """Builds the OCI layout for `name` under `cache` unless a build of the same recipe is
    there; returns (layout dir, tag)."""
    recipe, suite, base = IMAGES[name]
    slug = name.replace(":", "-")
    out = os.path.join(cache, f"{slug}-{_recipe_hash(name)}")
    layout, tag = os.path.join(out, "oci"), "latest"
    if os.path.exists(os.path.join(out, "done")):
        return layout, tag
    base_rootfs = None
    if base:
        base_layout, _ = build_image(cache, base)
        base_rootfs = os.path.join(os.path.dirname(base_layout), "rootfs")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    rootfs = os.path.join(out, "rootfs")
    os.makedirs(rootfs)
    env = dict(os.environ, ROOTFS=rootfs, BASE=base_rootfs or "")
    run(["bash", "-euxc", recipe.format(suite=suite, mirror=DEBIAN_MIRROR)], env=env)
    # Like a container image: no device nodes, no apt lists, numeric owners and xattrs kept.
    layer = os.path.join(out, "layer.tar")
    run(["tar", "-C", rootfs, "--numeric-owner", "--xattrs", "--xattrs-include=*",
         "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
         "--exclude=./var/lib/apt/lists/*", "--exclude=./var/cache/apt/*", "-cf", layer, "."])
    run(["umoci", "init", "--layout", layout])
    run(["umoci", "new", "--image", f"{layout}:{tag}"])
    run(["umoci", "raw", "add-layer", "--image", f"{layout}:{tag}", layer])
    run(["umoci", "config", "--image", f"{layout}:{tag}", "--os", "linux",
         "--architecture", "amd64", "--config.cmd", "/bin/bash"])
    os.unlink(layer)
    open(os.path.join(out, "done"), "w").close()
    return layout, tag


def config_drive(path, meta_data, user_data=None, network_data=None):
    """A `config-2` ISO with openstack/latest/{meta_data.json,user_data,network_data.json}."""
    root = path + ".d"
    shutil.rmtree(root, ignore_errors=True)
    latest = os.path.join(root, "openstack", "latest")
    os.makedirs(latest)
    with open(os.path.join(latest, "meta_data.json"), "w") as f:
        json.dump(meta_data, f, indent=1)
    if user_data is not None:
        with open(os.path.join(latest, "user_data"), "w") as f:
            f.write(user_data)
    if network_data is not None:
        with open(os.path.join(latest, "network_data.json"), "w") as f:
            json.dump(network_data, f, indent=1)
    run(["xorriso", "-as", "mkisofs", "-quiet", "-o", path, "-V", "config-2", "-J", "-r", root],
        stderr=subprocess.DEVNULL)
    return path


def blank_disk(path, size="16G"):
    """A new, empty qcow2 disk."""
    if os.path.exists(path):
        os.unlink(path)
    run(["qemu-img", "create", "-q", "-f", "qcow2", path, size])
    return path
