//! System files: host names, mounts, RAID, and the apt settings used while installing.

use super::file::TargetFile;
use crate::error::OrderError;
use std::fmt::Write;

pub use crate::plan::{ESP2_LABEL, ESP2_MOUNT, ESP_LABEL, ESP_MOUNT, ROOT_LABEL};

/// A validated host name: RFC 1123 labels of letters, digits and inner hyphens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostname(String);

impl Hostname {
    /// Checks `value`; `field` names the order key it came from, for the error.
    pub fn parse(value: &str, field: &str) -> Result<Self, OrderError> {
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let trimmed = value.strip_suffix('.').unwrap_or(value);
        if trimmed.len() <= 253 && trimmed.split('.').all(valid_label) {
            Ok(Self(trimmed.to_ascii_lowercase()))
        } else {
            Err(OrderError::new(
                field,
                format!(
                    "{value:?} is not a host name: use labels of letters, digits and inner \
                     hyphens, at most 63 characters each, separated by dots"
                ),
            ))
        }
    }

    /// The full name, e.g. `node-1.example.com`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first label, e.g. `node-1`.
    pub fn short(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }
}

/// `/etc/hostname`: the short name, as Debian's installer and systemd's hostnamectl write it.
pub fn hostname_file(hostname: &Hostname) -> TargetFile {
    TargetFile::plain("etc/hostname", format!("{}\n", hostname.short()), 0o644)
}

/// `/etc/hosts` as Debian's installer writes it: the host on `127.0.1.1`, FQDN first.
pub fn hosts_file(hostname: &Hostname) -> TargetFile {
    let names = if hostname.as_str() == hostname.short() {
        hostname.short().to_string()
    } else {
        format!("{}\t{}", hostname.as_str(), hostname.short())
    };
    let text = format!(
        "127.0.0.1\tlocalhost\n\
         127.0.1.1\t{names}\n\
         \n\
         # The following lines are desirable for IPv6 capable hosts\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n\
         ff02::3\tip6-allhosts\n"
    );
    TargetFile::plain("etc/hosts", text, 0o644)
}

/// `/etc/fstab`: root by label, the ESP, and for RAID1 the second ESP (`noauto`: it is only
/// mounted to be synced, so a missing second disk never delays the boot). With RAID1 the
/// first ESP is mounted on first use (`x-systemd.automount`): the system boots from the
/// second disk alone without waiting for the first ESP's device (90 s, then an error).
pub fn fstab_file(raid: bool) -> TargetFile {
    let mut text = String::from(
        "# Written by ocimetal. Filesystems are found by label: the root LV and the ESPs.\n",
    );
    let _ = writeln!(text, "LABEL={ROOT_LABEL}\t/\text4\terrors=remount-ro\t0\t1");
    let esp_options = match raid {
        true => "umask=0077,nofail,x-systemd.automount,x-systemd.device-timeout=10s",
        false => "umask=0077,nofail",
    };
    let _ = writeln!(
        text,
        "LABEL={ESP_LABEL}\t{ESP_MOUNT}\tvfat\t{esp_options}\t0\t1"
    );
    if raid {
        let _ = writeln!(
            text,
            "LABEL={ESP2_LABEL}\t{ESP2_MOUNT}\tvfat\tumask=0077,noauto,nofail\t0\t2"
        );
    }
    TargetFile::plain("etc/fstab", text, 0o644)
}

/// `/etc/mdadm/mdadm.conf` from the output of `mdadm --detail --scan`: only its `ARRAY` lines
/// are kept (the `devices=` continuation lines of `--verbose` name kernel devices, which
/// change between boots). `HOMEHOST <system>` makes arrays created for this host assemble
/// under their own names.
pub fn mdadm_conf_file(detail_scan: &str) -> TargetFile {
    let mut text = String::from(
        "# Written by ocimetal from `mdadm --detail --scan`.\nHOMEHOST <system>\nMAILADDR root\n",
    );
    for line in detail_scan.lines().filter(|l| l.starts_with("ARRAY")) {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    TargetFile::plain(MDADM_CONF_PATH, text, 0o644)
}

/// Path of the target's mdadm.conf.
pub const MDADM_CONF_PATH: &str = "etc/mdadm/mdadm.conf";

/// `/usr/sbin/policy-rc.d` refusing every service start, so package scripts run in the
/// chroot do not start daemons inside the installer. The installer removes it afterwards.
pub fn policy_rc_d_file() -> TargetFile {
    TargetFile::plain(
        "usr/sbin/policy-rc.d",
        "#!/bin/sh\n# Written by ocimetal for the installation only: services start on the first boot.\nexit 101\n",
        0o755,
    )
}

/// Path of the apt proxy setting.
pub const APT_PROXY_PATH: &str = "etc/apt/apt.conf.d/90ocimetal-proxy";

/// The apt proxy setting for `url` (`http://host:port`), for HTTP and HTTPS repositories.
pub fn apt_proxy_file(url: &str) -> Result<TargetFile, OrderError> {
    // The proxy URL may carry a password: errors show it redacted.
    let shown = crate::config::display_url(url);
    let parsed = url::Url::parse(url).map_err(|e| {
        OrderError::new(
            "ocimetal.apt_proxy",
            format!("{shown:?} is not a URL ({e}); give e.g. http://proxy.example:3128"),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(OrderError::new(
            "ocimetal.apt_proxy",
            format!("{shown:?} is not an http:// or https:// proxy URL"),
        ));
    }
    // `Url` percent-encodes anything that could close apt's quoted string.
    let text = format!(
        "// Written by ocimetal from ocimetal.apt_proxy.\n\
         Acquire::http::Proxy \"{parsed}\";\n\
         Acquire::https::Proxy \"{parsed}\";\n"
    );
    // A password in the URL makes the file root's alone.
    let mode = if parsed.password().is_some() {
        0o600
    } else {
        0o644
    };
    Ok(TargetFile::plain(APT_PROXY_PATH, text, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(file: &TargetFile) -> &str {
        file.text().expect("plain text")
    }

    #[test]
    fn hosts_puts_the_host_on_127_0_1_1() {
        let h = Hostname::parse("node-1", "hostname").expect("valid");
        let file = hosts_file(&h);
        assert_eq!(file.path.to_str(), Some("etc/hosts"));
        assert_eq!(
            text(&file),
            "127.0.0.1\tlocalhost\n127.0.1.1\tnode-1\n\n\
             # The following lines are desirable for IPv6 capable hosts\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\n\
             ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\nff02::3\tip6-allhosts\n"
        );
        let fqdn = Hostname::parse("Node-1.Example.com.", "hostname").expect("valid");
        assert!(text(&hosts_file(&fqdn)).contains("127.0.1.1\tnode-1.example.com\tnode-1\n"));
        assert_eq!(text(&hostname_file(&fqdn)), "node-1\n");
    }

    #[test]
    fn invalid_hostnames_name_the_field() {
        for bad in ["", "-a", "a-", "a_b", "a..b", "a b", &"x".repeat(64)] {
            let e = Hostname::parse(bad, "meta_data.hostname").expect_err(bad);
            assert_eq!(e.field, "meta_data.hostname");
        }
    }

    #[test]
    fn fstab_single_disk_and_raid() {
        assert_eq!(
            text(&fstab_file(false)),
            "# Written by ocimetal. Filesystems are found by label: the root LV and the ESPs.\n\
             LABEL=ROOTFS\t/\text4\terrors=remount-ro\t0\t1\n\
             LABEL=EFI\t/boot/efi\tvfat\tumask=0077,nofail\t0\t1\n"
        );
        assert!(text(&fstab_file(true)).ends_with(
            "LABEL=EFI\t/boot/efi\tvfat\t\
             umask=0077,nofail,x-systemd.automount,x-systemd.device-timeout=10s\t0\t1\n\
             LABEL=EFI2\t/boot/efi2\tvfat\tumask=0077,noauto,nofail\t0\t2\n"
        ));
    }

    #[test]
    fn mdadm_conf_keeps_only_array_lines() {
        let scan = "ARRAY /dev/md0 level=raid1 num-devices=2 metadata=1.2 name=node-0:0 UUID=3c1d:aa:bb:cc\n   devices=/dev/sda2,/dev/sdb2\n";
        assert_eq!(
            text(&mdadm_conf_file(scan)),
            "# Written by ocimetal from `mdadm --detail --scan`.\nHOMEHOST <system>\nMAILADDR root\n\
             ARRAY /dev/md0 level=raid1 num-devices=2 metadata=1.2 name=node-0:0 UUID=3c1d:aa:bb:cc\n"
        );
    }

    #[test]
    fn policy_rc_d_refuses_service_starts() {
        let f = policy_rc_d_file();
        assert_eq!(f.mode, 0o755);
        assert!(text(&f).starts_with("#!/bin/sh\n"));
        assert!(text(&f).ends_with("exit 101\n"));
    }

    #[test]
    fn apt_proxy_is_validated_and_quoted_safely() {
        let f = apt_proxy_file("http://10.0.2.2:3142").expect("valid");
        assert_eq!(
            text(&f),
            "// Written by ocimetal from ocimetal.apt_proxy.\n\
             Acquire::http::Proxy \"http://10.0.2.2:3142/\";\n\
             Acquire::https::Proxy \"http://10.0.2.2:3142/\";\n"
        );
        for bad in ["10.0.2.2:3142", "ftp://x", "http://", "not a url"] {
            assert_eq!(
                apt_proxy_file(bad).expect_err(bad).field,
                "ocimetal.apt_proxy"
            );
        }
        let tricky = apt_proxy_file("http://p:3128/a\";b").expect("valid url");
        assert!(!text(&tricky).contains("a\";"), "{}", text(&tricky));
        assert_eq!(f.mode, 0o644);
        let with_password = apt_proxy_file("http://user:pw@proxy.lab:3142").expect("valid");
        assert_eq!(
            with_password.mode, 0o600,
            "root's alone when it holds a password"
        );
    }
}
