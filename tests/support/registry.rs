//! Test support: a throw-away Debian `docker-registry` on 127.0.0.1, image building and
//! pushing through oci-client, and a plain tar-unpacking layer sink.
//!
//! Use it from an integration test with
//! `#[path = "support/registry.rs"] mod registry;` (each test binary compiles its own copy).
#![allow(dead_code)]

use flate2::write::GzEncoder;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{
    ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest, OciManifest,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// OCI media types used by the helpers.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

/// A running `docker-registry` with its storage in a temporary directory; killed on drop.
pub struct TestRegistry {
    child: Child,
    dir: tempfile::TempDir,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Basic-auth user for [`TestRegistry::start_with_basic_auth`].
pub struct BasicUser<'a> {
    pub user: &'a str,
    pub password: &'a str,
}

impl TestRegistry {
    /// Starts an anonymous registry on a free port and waits until `GET /v2/` answers.
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// Starts a registry that requires HTTP basic auth (htpasswd, bcrypt via `htpasswd -B`).
    pub fn start_with_basic_auth(user: BasicUser<'_>) -> Self {
        Self::start_inner(Some(user))
    }

    /// Starts an anonymous registry serving HTTPS only, with a certificate for 127.0.0.1
    /// made by a CA of its own; returns the registry and the CA's PEM file.
    pub fn start_with_tls() -> (Self, tempfile::TempDir, PathBuf) {
        let pki = tempfile::tempdir().expect("temp dir");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(pki.path())
                .output()
                .expect("the openssl command is needed for TLS tests");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(pki.path().join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        let tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            pki.path().join("server.pem").display(),
            pki.path().join("server.key").display()
        );
        let registry = Self::start_with(None, Some(&tls));
        let ca = pki.path().join("ca.pem");
        (registry, pki, ca)
    }

    fn start_inner(user: Option<BasicUser<'_>>) -> Self {
        Self::start_with(user, None)
    }

    /// `http_extra` goes under `http:` in the registry's configuration.
    fn start_with(user: Option<BasicUser<'_>>, http_extra: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        let tls = http_extra.is_some();
        if let Some(extra) = http_extra {
            config.push_str(extra);
        }
        if let Some(user) = user {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-nbB", user.user, user.password])
                .output()
                .expect("htpasswd (apache2-utils) is needed for auth tests");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(&htpasswd, &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("docker-registry must be installed");
        let mut registry = Self {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        registry.wait_ready(Duration::from_secs(30), tls);
        registry
    }

    /// `127.0.0.1:PORT`, as used in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The registry's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Polls `GET /v2/` until it answers 200 or 401 (400 from a TLS registry asked in plain
    /// HTTP), or panics at the deadline.
    fn wait_ready(&mut self, timeout: Duration, tls: bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("docker-registry exited with {status}: {}", self.log());
            }
            if let Some(code) = http_status(self.addr, "/v2/") {
                if code == 200 || code == 401 || (tls && code == 400) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on {} within {timeout:?}: {}",
                self.addr,
                self.log()
            );
            // Bounded polling of the socket: the registry has no readiness notification.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Status code of a plain `GET path`, or None when nothing answers.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// One entry of a synthetic layer.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

/// An uncompressed tar with the given entries (root-owned, fixed mtime).
pub fn tar_layer(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
            Entry::File(path, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, *data).unwrap();
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// gzip, as two concatenated members (exercises multi-member decoding).
pub fn gzip_two_members(data: &[u8]) -> Vec<u8> {
    let half = data.len() / 2;
    let mut out = Vec::new();
    for part in [&data[..half], &data[half..]] {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(part).unwrap();
        out.extend(enc.finish().unwrap());
    }
    out
}

/// gzip, one member.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// zstd.
pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// Bytes that do not compress (so that blobs are large on the wire).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A layer blob and how it is encoded.
pub struct Layer {
    pub media_type: &'static str,
    pub blob: Vec<u8>,
    /// The uncompressed tar (for the config's diff_ids).
    pub tar: Vec<u8>,
}

impl Layer {
    pub fn plain(tar: Vec<u8>) -> Self {
        Self {
            media_type: media::OCI_TAR,
            blob: tar.clone(),
            tar,
        }
    }
    pub fn gzip(tar: Vec<u8>) -> Self {
        Self {
            media_type: media::OCI_GZIP,
            blob: gzip_two_members(&tar),
            tar,
        }
    }
    pub fn zstd(tar: Vec<u8>) -> Self {
        Self {
            media_type: media::OCI_ZSTD,
            blob: zstd(&tar),
            tar,
        }
    }
    pub fn docker_gzip(tar: Vec<u8>) -> Self {
        Self {
            media_type: media::DOCKER_GZIP,
            blob: gzip(&tar),
            tar,
        }
    }
    pub fn digest(&self) -> String {
        sha256_digest(&self.blob)
    }
}

/// Manifest flavour to push.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Oci,
    DockerSchema2,
}

/// A pushed manifest: what an index entry needs.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub digest: String,
    pub size: i64,
    pub media_type: String,
}

/// An index entry's platform: (os, architecture, variant).
pub type IndexPlatform<'a> = (&'a str, &'a str, Option<&'a str>);

/// Pushes images to a [`TestRegistry`] (or any registry) through oci-client.
pub struct Pusher {
    client: Client,
    auth: RegistryAuth,
}

impl Pusher {
    /// A pusher speaking plain HTTP to `host`, anonymous.
    pub fn new(host: &str) -> Self {
        Self::with_auth(host, RegistryAuth::Anonymous)
    }

    /// A pusher speaking HTTPS to a registry whose certificate `ca_pem` issued.
    pub fn with_ca(ca_pem: &Path) -> Self {
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::Https,
            extra_root_certificates: vec![oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data: std::fs::read(ca_pem).unwrap(),
            }],
            ..ClientConfig::default()
        });
        Self {
            client,
            auth: RegistryAuth::Anonymous,
        }
    }

    /// A pusher with credentials.
    pub fn with_auth(host: &str, auth: RegistryAuth) -> Self {
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(vec![host.to_string()]),
            ..ClientConfig::default()
        });
        Self { client, auth }
    }

    async fn authenticate(&self, reference: &Reference) {
        if self.auth != RegistryAuth::Anonymous {
            self.client
                .auth(reference, &self.auth, oci_client::RegistryOperation::Push)
                .await
                .expect("auth for push");
        }
    }

    /// Pushes one single-platform image to `reference` (e.g. `127.0.0.1:5000/t/img:1`).
    pub async fn push_image(
        &self,
        reference: &str,
        layers: &[Layer],
        os_arch: (&str, &str),
        flavour: Flavour,
    ) -> Pushed {
        let reference: Reference = reference.parse().unwrap();
        self.authenticate(&reference).await;
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(&l.tar)).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": os_arch.1,
            "os": os_arch.0,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let (manifest_type, config_type) = match flavour {
            Flavour::Oci => (media::OCI_MANIFEST, media::OCI_CONFIG),
            Flavour::DockerSchema2 => (media::DOCKER_MANIFEST, media::DOCKER_CONFIG),
        };
        for layer in layers {
            self.client
                .push_blob(&reference, layer.blob.clone(), &layer.digest())
                .await
                .expect("push layer");
        }
        let config_digest = sha256_digest(&config);
        self.client
            .push_blob(&reference, config.clone(), &config_digest)
            .await
            .expect("push config");
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(manifest_type.to_string()),
            config: OciDescriptor {
                media_type: config_type.to_string(),
                digest: config_digest,
                size: config.len() as i64,
                ..OciDescriptor::default()
            },
            layers: layers
                .iter()
                .map(|l| OciDescriptor {
                    media_type: l.media_type.to_string(),
                    digest: l.digest(),
                    size: l.blob.len() as i64,
                    ..OciDescriptor::default()
                })
                .collect(),
            ..OciImageManifest::default()
        };
        self.push_manifest(&reference, &OciManifest::Image(manifest), manifest_type)
            .await
    }

    /// Pushes an index over already pushed manifests; `None` platforms become
    /// `unknown/unknown` attestation entries.
    pub async fn push_index(
        &self,
        reference: &str,
        entries: &[(Pushed, Option<IndexPlatform<'_>>)],
    ) -> Pushed {
        let reference: Reference = reference.parse().unwrap();
        self.authenticate(&reference).await;
        let manifests = entries
            .iter()
            .map(|(pushed, platform)| {
                let (os, arch, variant) = platform.unwrap_or(("unknown", "unknown", None));
                let mut entry = serde_json::json!({
                    "mediaType": pushed.media_type,
                    "digest": pushed.digest,
                    "size": pushed.size,
                    "platform": {"os": os, "architecture": arch},
                });
                if let Some(variant) = variant {
                    entry["platform"]["variant"] = variant.into();
                }
                if platform.is_none() {
                    entry["annotations"] = serde_json::json!({
                        "vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": entries[0].0.digest,
                    });
                }
                serde_json::from_value::<ImageIndexEntry>(entry).unwrap()
            })
            .collect();
        let index = OciImageIndex {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.to_string()),
            manifests,
            artifact_type: None,
            annotations: None,
        };
        self.push_manifest(
            &reference,
            &OciManifest::ImageIndex(index),
            media::OCI_INDEX,
        )
        .await
    }

    async fn push_manifest(
        &self,
        reference: &Reference,
        manifest: &OciManifest,
        media_type: &str,
    ) -> Pushed {
        let body = serde_json::to_vec(manifest).unwrap();
        let digest = sha256_digest(&body);
        self.client
            .push_manifest_raw(reference, body.clone(), media_type.parse().unwrap())
            .await
            .expect("push manifest");
        Pushed {
            digest,
            size: body.len() as i64,
            media_type: media_type.to_string(),
        }
    }
}

/// Test stand-in for the confined applier: unpacks with the `tar` crate and honours plain
/// whiteouts (`.wh.NAME`). Not confined; only for trees the tests build themselves.
pub struct UnpackSink {
    pub root: PathBuf,
}

impl ocimetal::oci::LayerSink for UnpackSink {
    fn apply_layer(
        &mut self,
        tar: &mut dyn Read,
    ) -> anyhow::Result<ocimetal::oci::apply::LayerStats> {
        let mut stats = ocimetal::oci::apply::LayerStats::default();
        let mut archive = tar::Archive::new(tar);
        archive.set_preserve_permissions(true);
        archive.set_overwrite(true);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.into_owned();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let target = self.root.join(path.with_file_name(hidden));
                let _ = std::fs::remove_file(&target).or_else(|_| std::fs::remove_dir_all(&target));
                stats.whiteouts += 1;
                continue;
            }
            stats.bytes += entry.header().size()?;
            entry.unpack_in(&self.root)?;
            stats.entries += 1;
        }
        Ok(stats)
    }
}

/// Reads a file under `root` as text.
pub fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}
