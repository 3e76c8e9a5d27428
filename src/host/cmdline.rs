//! The kernel command line: its words, split as the kernel splits them, and the `ocimetal.*`
//! keys we own. What each key means is decided by its reader (orders in `config::cmdline`,
//! boot media in `inventory`); this module only knows their names.
//!
//! Words are split exactly as the kernel's `next_arg()` does (lib/cmdline.c): whitespace
//! separates words except inside double quotes; a value may be quoted (`key="a b"`) and so may
//! the whole word (`"key=a b"`). As in the kernel, `-` and `_` are the same in key names.

use std::path::Path;

/// Where the running kernel shows the command line it booted with.
pub const PROC_CMDLINE: &str = "/proc/cmdline";

/// The prefix that marks our parameters; other words belong to someone else.
pub const PREFIX: &str = "ocimetal.";

/// One word of the command line: `param` or `param=value`.
pub type Word = (String, Option<String>);

/// Reads the running kernel's command line.
pub fn read() -> std::io::Result<String> {
    std::fs::read_to_string(Path::new(PROC_CMDLINE))
}

/// Every `ocimetal.*` key, each named once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `ocimetal.node=`: path or http(s) URL of a node JSON document.
    Node,
    /// `ocimetal.image=`.
    Image,
    /// `ocimetal.root_device_hints=`.
    RootDeviceHints,
    /// `ocimetal.disk_wipe_mode=`.
    DiskWipeMode,
    /// `ocimetal.insecure_registry=` (repeatable).
    InsecureRegistry,
    /// `ocimetal.registry_mirror=REGISTRY=URL` (repeatable).
    RegistryMirror,
    /// `ocimetal.reboot=`.
    Reboot,
    /// `ocimetal.force`.
    Force,
    /// `ocimetal.debug`.
    Debug,
    /// `ocimetal.dry_run`.
    DryRun,
    /// `ocimetal.auth_file=`.
    AuthFile,
    /// `ocimetal.ca_file=`.
    CaFile,
    /// `ocimetal.apt_proxy=`.
    AptProxy,
    /// `ocimetal.configdrive=`.
    Configdrive,
    /// `ocimetal.configdrive_url=`: an http(s) URL (template) of a configdrive.
    ConfigdriveUrl,
    /// `ocimetal.user_data_url=`: an http(s) URL (template) of the user_data (secret).
    UserDataUrl,
    /// `ocimetal.boot_media=`: the installer's own boot device (repeatable).
    BootMedia,
    /// `ocimetal.report_url=`: the webhook that hears the install's events.
    ReportUrl,
    /// `ocimetal.report_auth=`: the webhook's `Authorization` header value (secret).
    ReportAuth,
    /// `ocimetal.on_failure=`: what a failed install does (stay, poweroff, reboot).
    OnFailure,
    /// `ocimetal.ssh_server=`: whether the installed system gets an SSH server (default yes).
    SshServer,
    /// `ocimetal.ssh_key=`: an authorized SSH key for the installed system (repeatable).
    SshKey,
    /// `ocimetal.console=`: the installed system's serial console (`ttyS1,115200`, `none`).
    Console,
    /// `ocimetal.karg=`: one more argument for the installed kernel (repeatable).
    Karg,
}

impl Key {
    /// Every key, in the order error messages list them.
    pub const ALL: &'static [Key] = &[
        Key::Node,
        Key::Image,
        Key::RootDeviceHints,
        Key::DiskWipeMode,
        Key::InsecureRegistry,
        Key::RegistryMirror,
        Key::Reboot,
        Key::Force,
        Key::Debug,
        Key::DryRun,
        Key::AuthFile,
        Key::CaFile,
        Key::AptProxy,
        Key::Configdrive,
        Key::ConfigdriveUrl,
        Key::UserDataUrl,
        Key::BootMedia,
        Key::ReportUrl,
        Key::ReportAuth,
        Key::OnFailure,
        Key::SshServer,
        Key::SshKey,
        Key::Console,
        Key::Karg,
    ];

    /// The whole parameter name, with underscores: `ocimetal.root_device_hints`.
    pub const fn param(self) -> &'static str {
        match self {
            Key::Node => "ocimetal.node",
            Key::Image => "ocimetal.image",
            Key::RootDeviceHints => "ocimetal.root_device_hints",
            Key::DiskWipeMode => "ocimetal.disk_wipe_mode",
            Key::InsecureRegistry => "ocimetal.insecure_registry",
            Key::RegistryMirror => "ocimetal.registry_mirror",
            Key::Reboot => "ocimetal.reboot",
            Key::Force => "ocimetal.force",
            Key::Debug => "ocimetal.debug",
            Key::DryRun => "ocimetal.dry_run",
            Key::AuthFile => "ocimetal.auth_file",
            Key::CaFile => "ocimetal.ca_file",
            Key::AptProxy => "ocimetal.apt_proxy",
            Key::Configdrive => "ocimetal.configdrive",
            Key::ConfigdriveUrl => "ocimetal.configdrive_url",
            Key::UserDataUrl => "ocimetal.user_data_url",
            Key::BootMedia => "ocimetal.boot_media",
            Key::ReportUrl => "ocimetal.report_url",
            Key::ReportAuth => "ocimetal.report_auth",
            Key::OnFailure => "ocimetal.on_failure",
            Key::SshServer => "ocimetal.ssh_server",
            Key::SshKey => "ocimetal.ssh_key",
            Key::Console => "ocimetal.console",
            Key::Karg => "ocimetal.karg",
        }
    }

    /// The name after the prefix: `root_device_hints`.
    pub fn name(self) -> &'static str {
        &self.param()[PREFIX.len()..]
    }

    /// The key named `name` (after the prefix, `-` and `_` alike).
    pub fn from_name(name: &str) -> Option<Key> {
        let name = name.replace('-', "_");
        Key::ALL.iter().copied().find(|key| key.name() == name)
    }
}

/// One `ocimetal.*` word of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnWord {
    /// The name after the prefix, `-` turned into `_`; may be a key we do not know.
    pub name: String,
    /// The value after `=`; `None` for a bare word.
    pub value: Option<String>,
}

impl OwnWord {
    /// The key this word sets, if it is one we know.
    pub fn key(&self) -> Option<Key> {
        Key::from_name(&self.name)
    }

    /// The parameter as an error message names it: `ocimetal.imgae`.
    pub fn param(&self) -> String {
        format!("{PREFIX}{}", self.name)
    }
}

/// The `ocimetal.*` words of a command line, in order.
pub fn own_words(cmdline: &str) -> Vec<OwnWord> {
    split_words(cmdline)
        .into_iter()
        .filter_map(|(param, value)| {
            let name = param.strip_prefix(PREFIX)?.replace('-', "_");
            Some(OwnWord { name, value })
        })
        .collect()
}

/// The values given to `key`, in order (a bare word gives `None`).
pub fn values_of(cmdline: &str, key: Key) -> Vec<Option<String>> {
    own_words(cmdline)
        .into_iter()
        .filter(|word| word.key() == Some(key))
        .map(|word| word.value)
        .collect()
}

/// What a flag's value says: on when bare or 1/true/yes/on, off for 0/false/no/off (any
/// case, trimmed); `None` for anything else. Every boolean key reads its value here, and
/// the ramdisk's debug generator accepts the same words.
pub fn flag_value(value: Option<&str>) -> Option<bool> {
    let Some(value) = value else {
        return Some(true);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Whether flag `key` is on: its last readable value wins, as for kernel parameters.
pub fn flag(cmdline: &str, key: Key) -> bool {
    values_of(cmdline, key)
        .iter()
        .filter_map(|value| flag_value(value.as_deref()))
        .next_back()
        .unwrap_or(false)
}

/// The `console=` words, as they would be passed on to the next kernel.
pub fn consoles(cmdline: &str) -> Vec<String> {
    split_words(cmdline)
        .into_iter()
        .filter(|(param, _)| param == "console")
        .filter_map(|(param, value)| Some(quote_word(&param, &value?)))
        .collect()
}

/// `param=value`, the value quoted when the kernel would otherwise split it.
fn quote_word(param: &str, value: &str) -> String {
    if value.chars().any(is_kernel_space) {
        format!("{param}=\"{value}\"")
    } else {
        format!("{param}={value}")
    }
}

/// Splits a command line into `(param, value)` words the way the kernel's `next_arg()` does.
/// A word without `=` has no value.
pub fn split_words(cmdline: &str) -> Vec<Word> {
    let chars: Vec<char> = cmdline.chars().collect();
    let mut words = Vec::new();
    let mut pos = skip_spaces(&chars, 0);
    while pos < chars.len() {
        let (word, next) = next_arg(&chars, pos);
        words.push(word);
        pos = skip_spaces(&chars, next);
    }
    words
}

fn is_kernel_space(c: char) -> bool {
    // The kernel's isspace(): space, \t, \n, \v, \f, \r.
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

fn skip_spaces(chars: &[char], mut pos: usize) -> usize {
    while pos < chars.len() && is_kernel_space(chars[pos]) {
        pos += 1;
    }
    pos
}

/// One word starting at `start`; returns it and the index after it.
fn next_arg(chars: &[char], start: usize) -> (Word, usize) {
    let mut args = start;
    let mut in_quote = false;
    let mut quoted = false;
    if chars.get(args) == Some(&'"') {
        args += 1;
        in_quote = true;
        quoted = true;
    }
    let mut i = args;
    let mut equals = None;
    while i < chars.len() {
        if is_kernel_space(chars[i]) && !in_quote {
            break;
        }
        if equals.is_none() && chars[i] == '=' {
            equals = Some(i);
        }
        if chars[i] == '"' {
            in_quote = !in_quote;
        }
        i += 1;
    }
    // The kernel NUL-terminates in place; we cut the same characters off instead.
    let mut end = i;
    let ends_in_quote = i > args && chars[i - 1] == '"';
    let word = match equals {
        None => {
            if quoted && ends_in_quote {
                end -= 1;
            }
            (chars[args..end].iter().collect(), None)
        }
        Some(eq) => {
            let mut val_start = eq + 1;
            if chars.get(val_start) == Some(&'"') {
                val_start += 1;
                if ends_in_quote {
                    end -= 1;
                }
            } else if quoted && ends_in_quote {
                end -= 1;
            }
            let end = end.max(val_start);
            let param: String = chars[args..eq].iter().collect();
            let value: String = chars[val_start..end].iter().collect();
            (param, Some(value))
        }
    };
    (word, i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<Word> {
        split_words(s)
    }

    fn kv(k: &str, v: Option<&str>) -> Word {
        (k.to_string(), v.map(str::to_string))
    }

    #[test]
    fn splits_plain_words_and_flags() {
        assert_eq!(
            words("  console=ttyS0,115200 quiet\tro\n"),
            vec![
                kv("console", Some("ttyS0,115200")),
                kv("quiet", None),
                kv("ro", None)
            ]
        );
        assert!(words("").is_empty());
        assert!(words(" \n").is_empty());
    }

    #[test]
    fn quoted_value_keeps_spaces() {
        assert_eq!(
            words(r#"a=1 ocimetal.root_device_hints="serial=A B" b"#),
            vec![
                kv("a", Some("1")),
                kv("ocimetal.root_device_hints", Some("serial=A B")),
                kv("b", None)
            ]
        );
    }

    #[test]
    fn quotes_may_wrap_the_whole_word() {
        assert_eq!(
            words(r#""ocimetal.root_device_hints=serial=A B" x"#),
            vec![
                kv("ocimetal.root_device_hints", Some("serial=A B")),
                kv("x", None)
            ]
        );
        assert_eq!(
            words(r#""flag with space""#),
            vec![kv("flag with space", None)]
        );
    }

    #[test]
    fn quotes_inside_a_value_are_kept_like_the_kernel_does() {
        // next_arg() only strips a quote that opens the value and the word's last quote.
        assert_eq!(words(r#"k=a"b c"d"#), vec![kv("k", Some(r#"a"b c"d"#))]);
        assert_eq!(words(r#"k="""#), vec![kv("k", Some(""))]);
        assert_eq!(
            words(r#"k=" unterminated"#),
            vec![kv("k", Some(" unterminated"))]
        );
        assert_eq!(words("k="), vec![kv("k", Some(""))]);
    }

    #[test]
    fn every_key_is_found_by_its_name_dashes_or_not() {
        for key in Key::ALL {
            assert!(key.param().starts_with(PREFIX));
            assert_eq!(Key::from_name(key.name()), Some(*key));
            assert_eq!(Key::from_name(&key.name().replace('_', "-")), Some(*key));
        }
        assert_eq!(Key::from_name("imgae"), None);
        assert_eq!(Key::BootMedia.param(), "ocimetal.boot_media");
    }

    #[test]
    fn own_words_keep_unknown_names_and_skip_foreign_words() {
        let own = own_words("root=/dev/sda1 ocimetalx=1 ocimetal.dry-run ocimetal.imgae=x");
        assert_eq!(
            own,
            vec![
                OwnWord {
                    name: "dry_run".into(),
                    value: None
                },
                OwnWord {
                    name: "imgae".into(),
                    value: Some("x".into())
                },
            ]
        );
        assert_eq!(own[0].key(), Some(Key::DryRun));
        assert_eq!(own[1].key(), None);
        assert_eq!(own[1].param(), "ocimetal.imgae");
    }

    #[test]
    fn flags_follow_the_last_readable_value() {
        assert!(flag("quiet ocimetal.debug", Key::Debug));
        assert!(flag("ocimetal.debug=1", Key::Debug));
        assert!(flag("ocimetal.debug=YES", Key::Debug));
        assert!(!flag("ocimetal.debug ocimetal.debug=0", Key::Debug));
        assert!(!flag("ocimetal.debugx ocimetal.force", Key::Debug));
        assert!(!flag("", Key::Debug));
        assert_eq!(flag_value(Some("maybe")), None);
        for on in ["1", "true", "yes", "on", "ON", " On "] {
            assert_eq!(flag_value(Some(on)), Some(true), "{on}");
        }
        for off in ["0", "false", "no", "off", "OFF", "False"] {
            assert_eq!(flag_value(Some(off)), Some(false), "{off}");
        }
        assert!(!flag("ocimetal.debug=on ocimetal.debug=off", Key::Debug));
        assert!(flag(
            "ocimetal.debug=off ocimetal.debug=maybe ocimetal.debug=On",
            Key::Debug
        ));
    }

    #[test]
    fn values_of_a_key_in_order() {
        assert_eq!(
            values_of(
                r#"ocimetal.boot_media=/dev/sdb ocimetal.boot-media="/dev/sdc" ocimetal.boot_media"#,
                Key::BootMedia
            ),
            vec![Some("/dev/sdb".into()), Some("/dev/sdc".into()), None]
        );
    }

    #[test]
    fn consoles_are_passed_on_whole() {
        assert_eq!(
            consoles(
                r#"root=/dev/sda console=tty0 console="ttyS0,115200n8" consoleblank=0 console"#
            ),
            vec!["console=tty0", "console=ttyS0,115200n8"]
        );
        assert_eq!(consoles(r#"console="a b""#), vec![r#"console="a b""#]);
        assert!(consoles("").is_empty());
    }
}
