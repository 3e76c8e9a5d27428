//! Decoding the byte escapes the kernel and udev put in names: `\040` (octal, in mountinfo)
//! and `\x20` (hex, in udev's `*_ENC` values and `/dev/disk/by-label` link names).

/// Decodes udev's `\xNN` escapes; malformed ones stay as they are.
pub fn decode_hex_escapes(text: &str) -> String {
    decode(text, "\\x", 2, 16)
}

/// Decodes the kernel's `\NNN` octal escapes (space, tab, newline and backslash in
/// mountinfo); malformed ones stay as they are.
pub fn decode_octal_escapes(text: &str) -> String {
    decode(text, "\\", 3, 8)
}

/// Replaces every `marker` followed by `width` digits of `radix` that fit a byte by that byte.
fn decode(text: &str, marker: &str, width: usize, radix: u32) -> String {
    let bytes = text.as_bytes();
    let marker = marker.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(marker) {
            let start = i + marker.len();
            let byte = bytes
                .get(start..start + width)
                .filter(|digits| digits.iter().all(|d| char::from(*d).is_digit(radix)))
                .and_then(|digits| std::str::from_utf8(digits).ok())
                .and_then(|digits| u8::from_str_radix(digits, radix).ok());
            if let Some(byte) = byte {
                out.push(byte);
                i = start + width;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_escapes_are_decoded_and_malformed_ones_kept() {
        assert_eq!(decode_hex_escapes(r"my\x20disk"), "my disk");
        assert_eq!(decode_hex_escapes(r"a\x2Fb\xZZ\x4"), r"a/b\xZZ\x4");
        assert_eq!(decode_hex_escapes(r"\x+1"), r"\x+1");
    }

    #[test]
    fn octal_escapes_are_decoded_and_malformed_ones_kept() {
        assert_eq!(
            decode_octal_escapes(r"/mnt/with\040space"),
            "/mnt/with space"
        );
        assert_eq!(decode_octal_escapes(r"a\134b\011c"), "a\\b\tc");
        assert_eq!(decode_octal_escapes(r"\09x\777\04"), r"\09x\777\04");
    }
}
