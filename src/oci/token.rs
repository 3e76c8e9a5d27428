//! The `Authorization` a registry wants: its `/v2/` answer either challenges for a bearer
//! token, which the realm it names hands out in exchange for the credentials (Docker Hub,
//! GHCR, Harbor), or asks for nothing but basic credentials, or nothing at all.
//!
//! Both requests are bounded: each has its time limit in all, the `/v2/` body is never
//! read, a token answer may hold [`MAX_TOKEN_ANSWER`] bytes, and a refusal is quoted as one
//! short line.

use super::endpoint::{one_line, Endpoint, Failure};
use super::pull_error::PullError;
use crate::bounded::{self, BodyError};
use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::StatusCode;
use serde::Deserialize;
use std::time::Duration;

/// Largest token answer read (tokens are a few KiB; JWTs with many claims some more).
pub(crate) const MAX_TOKEN_ANSWER: u64 = bounded::MIB;

/// The `Authorization` value for `endpoint` (`None`: anonymous), reaching its registry as
/// `scheme`; each request within `time`, body included.
pub(crate) async fn authorization(
    client: &reqwest::Client,
    scheme: &str,
    endpoint: &Endpoint,
    time: Duration,
) -> Result<Option<String>, Failure> {
    let basic = match &endpoint.auth {
        RegistryAuth::Bearer(token) => return Ok(Some(format!("Bearer {token}"))),
        RegistryAuth::Basic(user, password) => Some((user.as_str(), password.as_str())),
        RegistryAuth::Anonymous => None,
    };
    let basic_header = basic.map(|(user, password)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    });
    let host = endpoint.reference.resolve_registry();
    let probe = client
        .get(format!("{scheme}://{host}/v2/"))
        .timeout(time)
        .send()
        .await
        .map_err(|e| Failure::Transient(one_line(&e), None))?;
    let challenge = probe
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(BearerChallenge::parse);
    // The answer's body is of no use; dropping it closes the connection unread.
    drop(probe);
    let Some(challenge) = challenge else {
        return Ok(basic_header);
    };
    let scope = format!("repository:{}:pull", endpoint.reference.repository());
    let mut query = vec![("scope", scope.as_str())];
    if let Some(service) = &challenge.service {
        query.push(("service", service));
    }
    let mut request = client.get(&challenge.realm).query(&query).timeout(time);
    if let Some((user, password)) = basic {
        request = request.basic_auth(user, Some(password));
    }
    // Named in errors without its query, which may carry more than a name, and as one short
    // line: the registry chose it.
    let realm = bounded::excerpt(
        challenge
            .realm
            .split('?')
            .next()
            .unwrap_or_default()
            .as_bytes(),
    );
    let fatal = |cause: String| {
        Failure::Fatal(PullError::Other {
            reference: endpoint.reference.whole(),
            registry: endpoint.host.clone(),
            cause,
        })
    };
    let mut answer = request.send().await.map_err(|e| {
        let builder = e.is_builder();
        let cause = one_line(&e.without_url());
        if builder {
            // A realm that is no URL: asking again will not mend it.
            fatal(format!("token endpoint {realm}: {cause}"))
        } else {
            Failure::Transient(format!("token endpoint {realm}: {cause}"), None)
        }
    })?;
    match answer.status() {
        StatusCode::OK => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(Failure::Fatal(PullError::Unauthorized {
                reference: endpoint.reference.whole(),
                registry: endpoint.host.clone(),
            }))
        }
        s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => {
            return Err(Failure::Transient(
                format!("token endpoint {realm}: HTTP {}", s.as_u16()),
                super::http::retry_after(answer.headers(), std::time::SystemTime::now()),
            ))
        }
        s => {
            let code = s.as_u16();
            let text = bounded::body_excerpt(answer).await;
            return Err(fatal(format!(
                "token endpoint {realm}: HTTP {code}: {text}"
            )));
        }
    }
    let body = match bounded::read_body(&mut answer, MAX_TOKEN_ANSWER).await {
        Ok(body) => body,
        Err(BodyError::TooLarge(limit)) => {
            return Err(fatal(format!(
                "token endpoint {realm}: answer is larger than {}",
                bounded::size(limit)
            )))
        }
        Err(BodyError::Transport(e)) => {
            return Err(Failure::Transient(one_line(&e.without_url()), None))
        }
    };
    // The answer holds the token: never quoted.
    let token = serde_json::from_slice::<TokenAnswer>(&body)
        .ok()
        .and_then(TokenAnswer::token)
        .ok_or_else(|| fatal(format!("token endpoint {realm}: answer holds no token")))?;
    Ok(Some(format!("Bearer {token}")))
}

/// What a token endpoint answers: `token`, or OAuth2's `access_token`.
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

impl TokenAnswer {
    fn token(self) -> Option<String> {
        self.token.or(self.access_token).filter(|t| !t.is_empty())
    }
}

/// `Bearer realm="…",service="…",scope="…"`.
#[derive(Debug, PartialEq)]
struct BearerChallenge {
    realm: String,
    service: Option<String>,
}

impl BearerChallenge {
    fn parse(header: &str) -> Option<Self> {
        let header = header.trim_start();
        let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut realm = None;
        let mut service = None;
        for (key, value) in auth_params(params) {
            match key.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "service" => service = Some(value),
                _ => {}
            }
        }
        Some(Self {
            realm: realm.filter(|r| !r.is_empty())?,
            service,
        })
    }
}

/// The `key=value` and `key="quoted, value"` pairs of a challenge.
fn auth_params(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((key, after)) = rest.split_once('=') else {
            return pairs;
        };
        let key = key.trim().to_string();
        let after = after.trim_start();
        let value;
        if let Some(quoted) = after.strip_prefix('"') {
            let mut text = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((at, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            text.push(escaped);
                        }
                    }
                    '"' => {
                        end = at + 1;
                        break;
                    }
                    c => text.push(c),
                }
            }
            value = text;
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = after.find(',').unwrap_or(after.len());
            value = after[..end].trim().to_string();
            rest = &after[end..];
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_challenges() {
        let hub = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#;
        assert_eq!(
            BearerChallenge::parse(hub),
            Some(BearerChallenge {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
            })
        );
        let odd = r#"bearer  service=gate, realm="http://h/t?a=1,b=\"2\"""#;
        assert_eq!(
            BearerChallenge::parse(odd),
            Some(BearerChallenge {
                realm: r#"http://h/t?a=1,b="2""#.into(),
                service: Some("gate".into()),
            })
        );
        assert_eq!(BearerChallenge::parse(r#"Basic realm="r""#), None);
        assert_eq!(BearerChallenge::parse(r#"Bearer service="s""#), None);
        assert_eq!(BearerChallenge::parse("Bearer"), None);
    }

    #[test]
    fn token_answers_carry_token_or_access_token() {
        let parse = |text: &str| {
            serde_json::from_str::<TokenAnswer>(text)
                .ok()
                .and_then(TokenAnswer::token)
        };
        assert_eq!(
            parse(r#"{"token":"t","expires_in":300}"#).as_deref(),
            Some("t")
        );
        assert_eq!(parse(r#"{"access_token":"a"}"#).as_deref(), Some("a"));
        assert_eq!(parse(r#"{"token":""}"#), None);
        assert_eq!(parse("[]"), None);
    }
}
