//! The kernel-argument areas of the ISO's GRUB menu (`/boot/grub/grub.cfg`).
//!
//! Every `linux` line of the menu ends with an area of [`AREA_LEN`] bytes followed by
//! [`END_MARKER`]. The area holds the embedded kernel arguments, a space, and `#` up to its
//! end; GRUB reads everything from the first `#` that starts a word as a comment, so the
//! kernel sees the arguments and nothing else. As built, an area is all `#`.
//!
//! The arguments are written into the line as they are, so GRUB splits and unquotes them as
//! it does a line edited with `e`: double quotes keep spaces in a value
//! (`ocimetal.root_device_hints="serial=A B"`). Runs of white space become one space;
//! characters GRUB would read as syntax (`$ ; & | < > { } \ ' #`, backquote) and control
//! characters are refused, except braces inside double quotes, where GRUB keeps them: a word
//! with a placeholder (`ocimetal.node=http://lab/{mac}.json`) has its value quoted when
//! written, and GRUB hands it to the kernel without the quotes.

use crate::config::cmdline;
use crate::error::OrderError;

/// Length of each area, in bytes.
pub const AREA_LEN: usize = 1024;
/// What follows every area on its line (inside GRUB's comment).
pub const END_MARKER: &[u8] = b"#@ocimetal-kargs-end";
/// Characters refused in embedded kernel arguments.
const REFUSED: &[char] = &['$', ';', '&', '|', '<', '>', '{', '}', '\\', '\'', '#', '`'];
/// Refused characters GRUB reads as plain text inside double quotes.
const QUOTABLE: &[char] = &['{', '}'];

/// The offsets of every area in a GRUB menu; an error when there is none or one does not
/// fit on its line.
pub fn areas(cfg: &[u8]) -> Result<Vec<usize>, String> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = find(&cfg[from..], END_MARKER) {
        let end = from + at;
        let start = end
            .checked_sub(AREA_LEN)
            .filter(|start| !cfg[*start..end].contains(&b'\n'))
            .ok_or("a kernel-argument area of the GRUB menu is cut short")?;
        found.push(start);
        from = end + END_MARKER.len();
    }
    if found.is_empty() {
        return Err("the GRUB menu has no kernel-argument area".into());
    }
    Ok(found)
}

/// The arguments an area holds (empty when none).
fn area_text(area: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(area).map_err(|_| "a kernel-argument area is not text")?;
    let hash = text.find('#').ok_or("a kernel-argument area has no end")?;
    if !text[hash..].bytes().all(|b| b == b'#') {
        return Err("a kernel-argument area is damaged (text after its padding)".into());
    }
    Ok(text[..hash].trim().to_string())
}

/// The embedded kernel arguments of a GRUB menu (every area must hold the same).
pub fn read(cfg: &[u8]) -> Result<String, String> {
    let mut texts = areas(cfg)?
        .into_iter()
        .map(|start| area_text(&cfg[start..start + AREA_LEN]));
    let first = texts.next().unwrap_or_else(|| Ok(String::new()))?;
    for text in texts {
        if text? != first {
            return Err("the menu entries' kernel-argument areas differ".into());
        }
    }
    Ok(first)
}

/// The menu with every area holding `kargs` (already checked with [`check`]).
pub fn write(cfg: &[u8], kargs: &str) -> Result<Vec<u8>, String> {
    let area = area_bytes(kargs);
    let mut out = cfg.to_vec();
    for start in areas(cfg)? {
        out[start..start + AREA_LEN].copy_from_slice(&area);
    }
    Ok(out)
}

fn area_bytes(kargs: &str) -> Vec<u8> {
    let mut area = vec![b'#'; AREA_LEN];
    if !kargs.is_empty() {
        area[..kargs.len()].copy_from_slice(kargs.as_bytes());
        area[kargs.len()] = b' ';
    }
    area
}

/// Checks kernel arguments for an area: they fit, GRUB reads them as written, and their
/// `ocimetal.*` words are valid orders. `field` names the option in errors.
pub fn check(kargs: &str, field: &str) -> Result<String, OrderError> {
    let kargs = kargs
        .split_whitespace()
        .map(quote_placeholders)
        .collect::<Vec<_>>()
        .join(" ");
    let mut quoted = false;
    if let Some(c) = kargs.chars().find(|&c| {
        if c == '"' {
            quoted = !quoted;
        }
        let refused = REFUSED.contains(&c) && !(quoted && QUOTABLE.contains(&c));
        refused || c.is_control()
    }) {
        return Err(OrderError::new(
            field,
            format!(
                "contains {c:?}, which GRUB would not pass on as written; use only words like \
                 ocimetal.image=REF and double quotes around values with spaces"
            ),
        ));
    }
    if kargs.matches('"').count() % 2 != 0 {
        return Err(OrderError::new(
            field,
            "has an unbalanced double quote; quote a value with spaces as key=\"a b\"",
        ));
    }
    if kargs.len() > AREA_LEN - 2 {
        return Err(OrderError::new(
            field,
            format!(
                "is {} bytes long; the ISO holds at most {} bytes of kernel arguments",
                kargs.len(),
                AREA_LEN - 2
            ),
        ));
    }
    cmdline::parse(&kargs)?;
    Ok(kargs)
}

/// A word with braces and no quotes gets its value (or itself, without `=`) in double
/// quotes, inside which GRUB reads braces as text.
fn quote_placeholders(word: &str) -> String {
    if word.contains('"') || !word.contains(QUOTABLE) {
        return word.to_string();
    }
    match word.split_once('=') {
        Some((key, value)) => format!("{key}=\"{value}\""),
        None => format!("\"{word}\""),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A menu as `mkosi/build` writes it.
    pub(crate) fn menu() -> Vec<u8> {
        let area = "#".repeat(AREA_LEN);
        let marker = std::str::from_utf8(END_MARKER).unwrap();
        format!(
            "set timeout=3\nmenuentry 'a' {{\n    linux /ocimetal/vmlinuz console=ttyS0 {area}{marker}\n}}\n\
             menuentry 'b' {{\n    linux /ocimetal/vmlinuz console=ttyS0 ocimetal.debug {area}{marker}\n}}\n"
        )
        .into_bytes()
    }

    #[test]
    fn write_read_reset() {
        let cfg = menu();
        assert_eq!(read(&cfg).unwrap(), "");
        let kargs = check(
            "ocimetal.image=debian:13   ocimetal.root_device_hints=\"serial=A B\"",
            "--kargs",
        )
        .unwrap();
        let written = write(&cfg, &kargs).unwrap();
        assert_eq!(written.len(), cfg.len());
        assert_eq!(read(&written).unwrap(), kargs);
        let text = String::from_utf8(written.clone()).unwrap();
        assert!(text.contains(
            "console=ttyS0 ocimetal.image=debian:13 ocimetal.root_device_hints=\"serial=A B\" ##"
        ));
        assert_eq!(write(&written, "").unwrap(), cfg);
    }

    #[test]
    fn placeholders_are_written_in_double_quotes() {
        let kargs = check(
            "ocimetal.node=http://lab/{mac}.json lab.url=\"http://lab/{serial}\"",
            "--kargs",
        )
        .unwrap();
        assert_eq!(
            kargs,
            "ocimetal.node=\"http://lab/{mac}.json\" lab.url=\"http://lab/{serial}\""
        );
        // Quoted already, and what the kernel gets from GRUB (quotes removed) parse alike.
        assert_eq!(check(&kargs, "--kargs").unwrap(), kargs);
        let err = check("ocimetal.node=\"http://lab/\"{mac}", "--kargs").unwrap_err();
        assert!(err.problem.contains("'{'"), "{}", err.problem);
    }

    #[test]
    fn refusals() {
        for bad in ["a;b", "x=$y", "ocimetal.image=\"a", "a\u{7}b", "x#y", "'q'"] {
            let err = check(bad, "--kargs").unwrap_err();
            assert_eq!(err.field, "--kargs", "{bad}");
        }
        let err = check("ocimetal.bogus=1", "--kargs").unwrap_err();
        assert_eq!(err.field, "ocimetal.bogus");
        let err = check("ocimetal.reboot=sometimes", "--kargs").unwrap_err();
        assert_eq!(err.field, "ocimetal.reboot");
        let long = format!("x={}", "a".repeat(AREA_LEN));
        assert!(check(&long, "--kargs")
            .unwrap_err()
            .problem
            .contains("at most"));
        assert!(areas(b"linux /x\n").is_err());
        let mut cut = menu();
        let at = find(&cut, END_MARKER).unwrap();
        cut[at - 10] = b'\n';
        assert!(areas(&cut).is_err());
        let mut differ = write(&menu(), "a=1").unwrap();
        let second = areas(&differ).unwrap()[1];
        differ[second] = b'b';
        assert!(read(&differ).unwrap_err().contains("differ"));
    }
}
