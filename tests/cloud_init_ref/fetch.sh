#!/usr/bin/env bash
# Unpacks Debian trixie's cloud-init (not installed, only extracted) into target/cloud-init-ref,
# for the differential network test (tests/cloud_init_reference.rs). Also installs the three
# Python modules cloud-init's converter imports. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
dest="$here/target/cloud-init-ref"
if [ -d "$dest/usr/lib/python3/dist-packages/cloudinit" ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends python3-yaml python3-requests python3-configobj >/dev/null

apt_dir=$(mktemp -d)
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
  >"$apt_dir/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
  -o APT::Sandbox::User=root
)
apt-get "${apt_opts[@]}" update -qq
(cd "$apt_dir" && apt-get "${apt_opts[@]}" download cloud-init)
mkdir -p "$dest"
dpkg-deb -x "$apt_dir"/cloud-init_*.deb "$dest"
echo "cloud-init $(dpkg-deb -f "$apt_dir"/cloud-init_*.deb Version) unpacked in $dest"
