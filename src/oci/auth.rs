//! Registry credentials: a docker `config.json` (`--auth-file`) and Ironic's
//! `instance_info.image_pull_secret`. Values are never logged; only where they came from.

use super::Secret;
use crate::bounded;
use crate::error::OrderError;
use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One `auths` entry of a docker config file.
#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

/// A docker `config.json`; only `auths` matters here.
#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

/// Largest auth file read (a docker config with credentials for many registries is a few KiB).
pub const MAX_AUTH_FILE: u64 = bounded::MIB;

/// Where credentials for a registry come from, in order of precedence.
#[derive(Default)]
pub struct Credentials {
    pull_secret: Option<PullSecret>,
    auth_file: DockerConfig,
}

/// Ironic's pull secret: a whole docker config, or credentials for the image's own registry.
enum PullSecret {
    Config(DockerConfig),
    Basic(String, String),
    Bearer(String),
}

impl Credentials {
    /// Loads the auth file (when given) and interprets the pull secret (when given).
    pub fn load(auth_file: Option<&Path>, pull_secret: Option<&Secret>) -> anyhow::Result<Self> {
        let auth_file = match auth_file {
            Some(path) => {
                let text = bounded::read_file(path, MAX_AUTH_FILE).map_err(|refused| {
                    OrderError::new(
                        "auth_file",
                        format!("the auth file {} {refused}", path.display()),
                    )
                })?;
                // serde_json's messages may quote values, so only the position is reported.
                serde_json::from_slice(&text).map_err(|e| {
                    OrderError::new(
                        "auth_file",
                        format!(
                            "{} is not a docker config.json (invalid at line {} column {})",
                            path.display(),
                            e.line(),
                            e.column()
                        ),
                    )
                })?
            }
            None => DockerConfig::default(),
        };
        let pull_secret = pull_secret.map(|s| PullSecret::parse(s.expose()));
        Ok(Self {
            pull_secret,
            auth_file,
        })
    }

    /// The credentials for `registry` (a host[:port] as in normalised references).
    /// `origin` is the image's own registry: a bare pull secret applies only there.
    pub fn for_registry(&self, registry: &str, origin: &str) -> RegistryAuth {
        if let Some(secret) = &self.pull_secret {
            let found = match secret {
                PullSecret::Config(config) => config.lookup(registry),
                PullSecret::Basic(user, pass) if same_registry(registry, origin) => {
                    Some(RegistryAuth::Basic(user.clone(), pass.clone()))
                }
                PullSecret::Bearer(token) if same_registry(registry, origin) => {
                    Some(RegistryAuth::Bearer(token.clone()))
                }
                _ => None,
            };
            if let Some(auth) = found {
                tracing::debug!(registry, "using credentials from the image pull secret");
                return auth;
            }
        }
        if let Some(auth) = self.auth_file.lookup(registry) {
            tracing::debug!(registry, "using credentials from the auth file");
            return auth;
        }
        RegistryAuth::Anonymous
    }
}

impl PullSecret {
    /// Accepts what Ironic users put there: a docker config JSON (`{"auths": …}`), the
    /// base64 `user:password` of a config's `auth` field, a plain `user:password`, or a token.
    fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw).trim().to_string();
        if let Ok(config) = serde_json::from_str::<DockerConfig>(&text) {
            if !config.auths.is_empty() {
                return Self::Config(config);
            }
        }
        if let Some((user, pass)) = decode_basic(&text) {
            return Self::Basic(user, pass);
        }
        if let Some((user, pass)) = text.split_once(':') {
            return Self::Basic(user.to_string(), pass.to_string());
        }
        Self::Bearer(text)
    }
}

impl DockerConfig {
    fn lookup(&self, registry: &str) -> Option<RegistryAuth> {
        let entry = self
            .auths
            .iter()
            .find(|(key, _)| same_registry(&key_host(key), registry))
            .map(|(_, entry)| entry)?;
        if let Some((user, pass)) = entry.auth.as_deref().and_then(decode_basic) {
            return Some(RegistryAuth::Basic(user, pass));
        }
        if let (Some(user), Some(pass)) = (&entry.username, &entry.password) {
            return Some(RegistryAuth::Basic(user.clone(), pass.clone()));
        }
        entry.registrytoken.clone().map(RegistryAuth::Bearer)
    }
}

/// Decodes base64 `user:password`.
fn decode_basic(b64: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `host:5000` stays.
fn key_host(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    without_scheme
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Docker Hub goes by several names.
pub(crate) fn same_registry(a: &str, b: &str) -> bool {
    fn canonical(host: &str) -> &str {
        match host {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
            other => other,
        }
    }
    canonical(&a.to_ascii_lowercase()) == canonical(&b.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn basic(user: &str, pass: &str) -> RegistryAuth {
        RegistryAuth::Basic(user.into(), pass.into())
    }

    #[test]
    fn reads_docker_config_auth_and_username_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let config = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": b64("hub:hubpass")},
            "registry.example:5000": {"username": "u", "password": "p:w"},
            "http://tokens.example": {"registrytoken": "tok"},
        }});
        std::fs::write(&path, config.to_string()).unwrap();
        let creds = Credentials::load(Some(&path), None).unwrap();
        let get = |r: &str| creds.for_registry(r, r);
        assert_eq!(get("docker.io"), basic("hub", "hubpass"));
        assert_eq!(get("registry.example:5000"), basic("u", "p:w"));
        assert_eq!(get("tokens.example"), RegistryAuth::Bearer("tok".into()));
        assert_eq!(get("registry.example"), RegistryAuth::Anonymous);
    }

    #[test]
    fn pull_secret_forms_and_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let file = serde_json::json!({"auths": {"r.example": {"auth": b64("file:f")}}});
        std::fs::write(&path, file.to_string()).unwrap();

        let secret = Secret::new(b64("ironic:s3cret"));
        let creds = Credentials::load(Some(&path), Some(&secret)).unwrap();
        assert_eq!(
            creds.for_registry("r.example", "r.example"),
            basic("ironic", "s3cret")
        );
        // A bare secret belongs to the image's registry, not to a mirror.
        assert_eq!(
            creds.for_registry("mirror:5000", "r.example"),
            RegistryAuth::Anonymous
        );

        let creds = Credentials::load(None, Some(&Secret::new("plain:pw"))).unwrap();
        assert_eq!(creds.for_registry("r", "r"), basic("plain", "pw"));

        let config = serde_json::json!({"auths": {"mirror:5000": {"auth": b64("m:p")}}});
        let creds = Credentials::load(Some(&path), Some(&Secret::new(config.to_string()))).unwrap();
        assert_eq!(
            creds.for_registry("mirror:5000", "r.example"),
            basic("m", "p")
        );
        assert_eq!(
            creds.for_registry("r.example", "r.example"),
            basic("file", "f")
        );

        let creds = Credentials::load(None, Some(&Secret::new("opaque-token"))).unwrap();
        assert_eq!(
            creds.for_registry("r", "r"),
            RegistryAuth::Bearer("opaque-token".into())
        );
    }

    #[test]
    fn broken_auth_file_errors_without_echoing_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"auths": "hunter2-secret"}"#).unwrap();
        let err = Credentials::load(Some(&path), None).err().unwrap();
        assert!(!format!("{err:#}").contains("hunter2"));
        assert!(err.downcast_ref::<OrderError>().is_some(), "{err:#}");
        let missing = Credentials::load(Some(&dir.path().join("none")), None)
            .err()
            .unwrap();
        assert!(format!("{missing:#}").contains("the auth file"));
        assert!(format!("{missing:#}").contains("cannot be read"));
        assert!(
            missing.downcast_ref::<OrderError>().is_some(),
            "{missing:#}"
        );
    }
}
