//! The image reference grammar that Docker and `oci-spec` implement with one regular
//! expression, checked by hand: compiling that expression took tens of milliseconds at every
//! start of the program, before the first request.
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] component ( "/" component )*
//! domain     := label ( "." label )* [ ":" port ]     label := [A-Za-z0-9] ([A-Za-z0-9-]* [A-Za-z0-9])?
//! component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest     := ( "sha256" | "sha384" | "sha512" ) ":" hex digits of the algorithm's length
//! ```

use oci_client::Reference;

/// Repositories longer than this are refused (as Docker does).
const REPOSITORY_MAX: usize = 255;

/// Parses `text` into a reference, normalised the way Docker does it: short names get
/// `docker.io` and `library/`, a missing tag becomes `latest`.
pub(super) fn parse(text: &str) -> Result<Reference, &'static str> {
    if text.is_empty() {
        return Err("the reference is empty");
    }
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (text, None),
    };
    // A tag is what follows the last `:` when no `/` comes after it: the domain's port is
    // always followed by the path.
    let (name, tag) = match rest.rfind(':') {
        Some(colon) if !rest[colon..].contains('/') => (&rest[..colon], Some(&rest[colon + 1..])),
        _ => (rest, None),
    };
    if !is_name(name) {
        return Err("invalid reference format");
    }
    if tag.is_some_and(|tag| !is_tag(tag)) {
        return Err("invalid tag format");
    }
    if digest.is_some_and(|digest| !is_digest(digest)) {
        return Err("the digest must be sha256:, sha384: or sha512: and its hex digits");
    }
    let (registry, repository) = split_domain(name);
    if repository.len() > REPOSITORY_MAX {
        return Err("the repository name is longer than 255 characters");
    }
    Ok(match (tag, digest) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, repository, tag.into(), digest.into())
        }
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest.into()),
        (tag, None) => Reference::with_tag(registry, repository, tag.unwrap_or("latest").into()),
    })
}

fn is_name(name: &str) -> bool {
    let is_path = |path: &str| path.split('/').all(is_component);
    is_path(name)
        || name
            .split_once('/')
            .is_some_and(|(domain, path)| is_domain(domain) && is_path(path))
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn is_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut at = 0;
    loop {
        let run = bytes[at..].iter().take_while(|b| alnum(b)).count();
        if run == 0 {
            return false;
        }
        at += run;
        let separator = match &bytes[at..] {
            [] => return true,
            [b'_', b'_', ..] => 2,
            [b'.' | b'_', ..] => 1,
            [b'-', ..] => bytes[at..].iter().take_while(|b| **b == b'-').count(),
            _ => return false,
        };
        at += separator;
    }
}

fn is_domain(domain: &str) -> bool {
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let is_label = |label: &str| {
        let bytes = label.as_bytes();
        let edge = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
        edge(bytes.first())
            && edge(bytes.last())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    };
    host.split('.').all(is_label)
        && port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

fn is_tag(tag: &str) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let bytes = tag.as_bytes();
    bytes.first().is_some_and(word)
        && bytes.len() <= 128
        && bytes.iter().all(|b| word(b) || *b == b'.' || *b == b'-')
}

fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == length && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The registry and repository of a valid name: the first component is a registry when it
/// has a `.` or `:` or is `localhost`.
fn split_domain(name: &str) -> (String, String) {
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => ("docker.io", name),
    };
    let registry = if registry == "index.docker.io" {
        "docker.io"
    } else {
        registry
    };
    let repository = if registry == "docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_string()
    };
    (registry.to_string(), repository)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether both parsers agree on `text`: both refuse it, or both give the same parts.
    fn agree(text: &str) -> Result<(), String> {
        let ours = parse(text).ok();
        let theirs = text.parse::<Reference>().ok();
        let parts = |r: &Reference| {
            (
                r.registry().to_string(),
                r.repository().to_string(),
                r.tag().map(str::to_string),
                r.digest().map(str::to_string),
            )
        };
        match (ours.as_ref().map(parts), theirs.as_ref().map(parts)) {
            (a, b) if a == b => Ok(()),
            (a, b) => Err(format!("{text:?}: ours {a:?}, oci-spec {b:?}")),
        }
    }

    #[test]
    fn agrees_with_the_regular_expression_on_every_short_text() {
        // Every text of up to five characters over the characters that matter.
        let alphabet: Vec<char> = "a0Z.-_:/@".chars().collect();
        let mut texts = vec![String::new()];
        let mut checked = 0;
        for _ in 0..5 {
            texts = texts
                .iter()
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            for text in &texts {
                agree(text).unwrap();
                checked += 1;
            }
        }
        assert!(checked > 60_000);
    }

    #[test]
    fn agrees_with_the_regular_expression_on_every_one_character_edit_of_real_references() {
        let hex = "0123456789abcdef".repeat(8);
        let references = [
            "ubuntu".to_string(),
            "ubuntu:24.04".to_string(),
            "library/debian:trixie-slim".to_string(),
            "index.docker.io/a/b".to_string(),
            "localhost:5000/team/app_x__y---z.v2:1.0".to_string(),
            "Registry.Example-1.com:443/a/b/c:_T.a-g".to_string(),
            format!("10.0.2.2:5000/debian:13@sha256:{}", &hex[..64]),
            format!("quay.io/x/y@sha384:{}", &hex[..96]),
            format!("x@sha512:{}", &hex[..128].to_uppercase()),
            format!("d:{}", "t".repeat(128)),
            format!("{}/x", "a".repeat(250)),
        ];
        let alphabet = "aZ9.-_:/@ ";
        for reference in &references {
            agree(reference).unwrap();
            for (at, _) in reference.char_indices() {
                let (head, tail) = reference.split_at(at);
                agree(&format!("{head}{}", &tail[1..])).unwrap();
                for c in alphabet.chars() {
                    agree(&format!("{head}{c}{tail}")).unwrap();
                    agree(&format!("{head}{c}{}", &tail[1..])).unwrap();
                }
            }
        }
    }

    #[test]
    fn tags_and_digests_are_ascii() {
        // Docker's grammar is ASCII; registries refuse the rest.
        assert!(parse("debian:té").is_err());
        assert!(parse("debian:13").is_ok());
    }
}
