//! The few Python built-ins IPA's hint code leans on, reproduced exactly where it matters.
//!
//! IPA compares hint and device values after Python's `str.strip()`, `str.lower()` and
//! `urllib.parse.quote()`, and converts numbers with `int()` / `float()`. Matching those
//! conversions is what makes `s< A B`, `>= 1_000` or a serial with spaces behave as under IPA.

/// Python's `str.isspace()` for one character (also what `\s` means in `re`).
///
/// Rust's `char::is_whitespace` is the Unicode White_Space property; Python additionally treats
/// the ASCII information separators U+001C..U+001F as whitespace.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` without arguments.
pub(crate) fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `str.lower()`; both use Unicode full case mapping (final sigma included).
pub(crate) fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// Python's `str.split()` without arguments: runs of whitespace separate, none are kept.
pub(crate) fn split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|part| !part.is_empty())
}

/// `urllib.parse.quote(s)` with its default `safe='/'`: UTF-8 bytes other than ASCII letters,
/// digits, `_.-~` and `/` become `%XX` with upper-case hex.
pub(crate) fn url_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"_.-~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// PEP 515: in `int()` and `float()` an underscore is only allowed between two digits.
fn underscores_between_digits(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'_'
            || (i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    })
}

/// Python's `int(s)` reduced to what IPA asks of it: `None` when `int()` would raise, else
/// whether the integer is positive. Only ASCII digits are accepted (Python also takes other
/// Unicode decimal digits, which no disk size hint uses).
pub(crate) fn int_is_positive(s: &str) -> Option<bool> {
    let s = strip(s);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let valid = !digits.is_empty()
        && underscores_between_digits(digits)
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    valid.then(|| !negative && digits.bytes().any(|b| (b'1'..=b'9').contains(&b)))
}

/// Python's `float(s)`: surrounding whitespace, underscores between digits, `inf`,
/// `infinity` and `nan` in any case. `None` when Python would raise `ValueError`.
pub(crate) fn float(s: &str) -> Option<f64> {
    let s = strip(s);
    if !underscores_between_digits(s) {
        return None;
    }
    // Rust's float syntax is Python's minus the underscores (same special names, same
    // optional sign, exponent and leading/trailing dot rules).
    s.replace('_', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_matches_python_str_isspace() {
        // The full list printed by Python 3.11: [c for c in range(0x110000) if chr(c).isspace()].
        let python: Vec<u32> = [
            0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0,
        ]
        .into_iter()
        .chain([0x1680])
        .chain(0x2000..=0x200a)
        .chain([0x2028, 0x2029, 0x202f, 0x205f, 0x3000])
        .collect();
        let ours: Vec<u32> = (0..=0x10ffff_u32)
            .filter_map(char::from_u32)
            .filter(|&c| is_space(c))
            .map(u32::from)
            .collect();
        assert_eq!(ours, python);
    }

    #[test]
    fn strip_and_split_use_python_whitespace() {
        assert_eq!(strip("\u{1f} a b\u{3000}\n"), "a b");
        let parts: Vec<&str> = split_whitespace(" a\u{1c}b  c ").collect();
        assert_eq!(parts, ["a", "b", "c"]);
    }

    #[test]
    fn lower_handles_final_sigma_like_python() {
        assert_eq!(lower("ΑΣ"), "ας");
        assert_eq!(lower("QEMU HARDDISK"), "qemu harddisk");
    }

    #[test]
    fn quote_matches_urllib() {
        // urllib.parse.quote('a b/c~_.-:=<>!ÄÖ%[](') in Python 3.11.
        assert_eq!(
            url_quote("a b/c~_.-:=<>!ÄÖ%[]("),
            "a%20b/c~_.-%3A%3D%3C%3E%21%C3%84%C3%96%25%5B%5D%28"
        );
        assert_eq!(url_quote(""), "");
    }

    #[test]
    fn int_follows_python_int() {
        assert_eq!(int_is_positive("447"), Some(true));
        assert_eq!(int_is_positive(" +1_000 "), Some(true));
        assert_eq!(int_is_positive("007"), Some(true));
        assert_eq!(int_is_positive("0"), Some(false));
        assert_eq!(int_is_positive("-0"), Some(false));
        assert_eq!(int_is_positive("-5"), Some(false));
        for bad in [
            "", "+", "1_", "_1", "1__0", "1.0", "1e3", "0x10", "1 2", "[1]",
        ] {
            assert_eq!(int_is_positive(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn float_follows_python_float() {
        assert_eq!(float(" 1.5 "), Some(1.5));
        assert_eq!(float("1_000.5"), Some(1000.5));
        assert_eq!(float("1e3"), Some(1000.0));
        assert_eq!(float(".5"), Some(0.5));
        assert_eq!(float("5."), Some(5.0));
        assert_eq!(float("-InFiNiTy"), Some(f64::NEG_INFINITY));
        assert!(float("nan").is_some_and(f64::is_nan));
        for bad in [
            "",
            ".",
            "1_",
            "1__0",
            "0x10",
            "qemu%20harddisk",
            "1e",
            "e5",
            "--1",
        ] {
            assert_eq!(float(bad), None, "{bad:?}");
        }
    }
}
