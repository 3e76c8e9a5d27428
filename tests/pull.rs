//! Pulls images pushed to a local `docker-registry` and checks the resulting trees.

#[path = "support/registry.rs"]
mod registry;

use ocimetal::config::Secret;
use ocimetal::oci::{pull_into_sink, resolve, Compression, PullError, PullOptions, RetryPolicy};
use registry::{noise, read, tar_layer, Entry, Flavour, Layer, Pusher, TestRegistry, UnpackSink};
use std::path::Path;
use std::time::Duration;

fn options(registry: &TestRegistry) -> PullOptions {
    PullOptions {
        platform: "linux/amd64".parse().unwrap(),
        insecure_registries: vec![registry.host()],
        retry: RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
        ..PullOptions::default()
    }
}

async fn pull(
    image: &str,
    opts: &PullOptions,
    root: &Path,
) -> anyhow::Result<ocimetal::oci::PullReport> {
    let resolved = resolve(image, opts).await?;
    let sink = Box::new(UnpackSink {
        root: root.to_path_buf(),
    });
    pull_into_sink(&resolved, opts, sink).await
}

fn pull_error(err: &anyhow::Error) -> &PullError {
    err.downcast_ref::<PullError>()
        .unwrap_or_else(|| panic!("not a PullError: {err:#}"))
}

/// Three layers, one per compression, each changing what the previous one left.
fn three_layers() -> Vec<Layer> {
    let big = noise(300_000, 1);
    vec![
        Layer::gzip(tar_layer(&[
            Entry::Dir("etc"),
            Entry::File("etc/os-release", b"ID=debian\n"),
            Entry::File("etc/gone", b"removed by layer 2"),
            Entry::Dir("usr"),
            Entry::File("usr/big", &big),
        ])),
        Layer::zstd(tar_layer(&[
            Entry::File("etc/os-release", b"ID=debian\nVERSION_ID=13\n"),
            Entry::File("etc/.wh.gone", b""),
        ])),
        Layer::plain(tar_layer(&[Entry::Symlink("etc/link", "os-release")])),
    ]
}

#[tokio::test]
async fn pulls_gzip_zstd_and_plain_layers_in_order() {
    let registry = TestRegistry::start();
    let image = format!("{}/test/layers:1", registry.host());
    let layers = three_layers();
    let pushed = Pusher::new(&registry.host())
        .push_image(&image, &layers, ("linux", "amd64"), Flavour::Oci)
        .await;

    let opts = options(&registry);
    let resolved = resolve(&image, &opts).await.unwrap();
    assert_eq!(resolved.reference, image);
    assert_eq!(resolved.manifest_digest, pushed.digest);
    assert_eq!(resolved.index_digest, None);
    assert_eq!(resolved.platform.to_string(), "linux/amd64");
    let compressions: Vec<Compression> = resolved.layers.iter().map(|l| l.compression).collect();
    assert_eq!(
        compressions,
        [Compression::Gzip, Compression::Zstd, Compression::None]
    );
    let digests: Vec<String> = layers.iter().map(Layer::digest).collect();
    let resolved_digests: Vec<String> = resolved.layers.iter().map(|l| l.digest.clone()).collect();
    assert_eq!(resolved_digests, digests);

    let root = tempfile::tempdir().unwrap();
    let sink = Box::new(UnpackSink {
        root: root.path().to_path_buf(),
    });
    let report = pull_into_sink(&resolved, &opts, sink).await.unwrap();
    let total: usize = layers.iter().map(|l| l.blob.len()).sum();
    assert_eq!(report.downloaded_bytes, total as u64);
    assert_eq!(report.layers.len(), 3);
    assert_eq!(report.layers[1].whiteouts, 1);
    assert_eq!(
        read(root.path(), "etc/os-release"),
        "ID=debian\nVERSION_ID=13\n"
    );
    assert!(!root.path().join("etc/gone").exists());
    assert_eq!(
        std::fs::read(root.path().join("usr/big")).unwrap(),
        noise(300_000, 1)
    );
    assert_eq!(
        std::fs::read_link(root.path().join("etc/link")).unwrap(),
        Path::new("os-release")
    );
}

#[tokio::test]
async fn pulls_docker_schema2_images_and_by_digest() {
    let registry = TestRegistry::start();
    let image = format!("{}/test/docker:2", registry.host());
    let layers = vec![Layer::docker_gzip(tar_layer(&[Entry::File(
        "hello",
        b"docker\n",
    )]))];
    let pushed = Pusher::new(&registry.host())
        .push_image(&image, &layers, ("linux", "amd64"), Flavour::DockerSchema2)
        .await;
    let opts = options(&registry);

    let root = tempfile::tempdir().unwrap();
    pull(&image, &opts, root.path()).await.unwrap();
    assert_eq!(read(root.path(), "hello"), "docker\n");

    let by_digest = format!("{}/test/docker@{}", registry.host(), pushed.digest);
    let resolved = resolve(&by_digest, &opts).await.unwrap();
    assert_eq!(resolved.manifest_digest, pushed.digest);
    assert_eq!(resolved.layers[0].media_type, registry::media::DOCKER_GZIP);
}

#[tokio::test]
async fn selects_the_platform_from_an_index_with_an_attestation() {
    let registry = TestRegistry::start();
    let host = registry.host();
    let pusher = Pusher::new(&host);
    let amd64 = pusher
        .push_image(
            &format!("{host}/test/multi:amd64"),
            &[Layer::gzip(tar_layer(&[Entry::File("arch", b"amd64")]))],
            ("linux", "amd64"),
            Flavour::Oci,
        )
        .await;
    let arm64 = pusher
        .push_image(
            &format!("{host}/test/multi:arm64"),
            &[Layer::gzip(tar_layer(&[Entry::File("arch", b"arm64")]))],
            ("linux", "arm64"),
            Flavour::Oci,
        )
        .await;
    let attestation = pusher
        .push_image(
            &format!("{host}/test/multi:att"),
            &[Layer::plain(tar_layer(&[Entry::File("sbom", b"{}")]))],
            ("unknown", "unknown"),
            Flavour::Oci,
        )
        .await;
    let image = format!("{host}/test/multi:latest");
    let index = pusher
        .push_index(
            &image,
            &[
                (amd64.clone(), Some(("linux", "amd64", None))),
                (arm64.clone(), Some(("linux", "arm64", Some("v8")))),
                (attestation, None),
            ],
        )
        .await;

    for (platform, want_digest, want_arch) in [
        ("linux/amd64", &amd64.digest, "amd64"),
        ("linux/arm64", &arm64.digest, "arm64"),
        ("linux/arm64/v8", &arm64.digest, "arm64"),
    ] {
        let opts = PullOptions {
            platform: platform.parse().unwrap(),
            ..options(&registry)
        };
        let root = tempfile::tempdir().unwrap();
        let resolved = resolve(&image, &opts).await.unwrap();
        assert_eq!(&resolved.manifest_digest, want_digest, "{platform}");
        assert_eq!(
            resolved.index_digest.as_deref(),
            Some(index.digest.as_str())
        );
        pull(&image, &opts, root.path()).await.unwrap();
        assert_eq!(read(root.path(), "arch"), want_arch);
    }

    let opts = PullOptions {
        platform: "linux/s390x".parse().unwrap(),
        ..options(&registry)
    };
    let err = resolve(&image, &opts).await.unwrap_err();
    assert!(matches!(pull_error(&err), PullError::NoSuchPlatform { .. }));
    let msg = err.to_string();
    assert!(
        msg.ends_with("has no linux/s390x variant; it has: linux/amd64, linux/arm64/v8"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_single_manifest_for_another_platform_is_refused() {
    let registry = TestRegistry::start();
    let image = format!("{}/test/armonly:1", registry.host());
    Pusher::new(&registry.host())
        .push_image(
            &image,
            &[Layer::plain(tar_layer(&[Entry::File("f", b"x")]))],
            ("linux", "arm64"),
            Flavour::Oci,
        )
        .await;
    let err = resolve(&image, &options(&registry)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("has no linux/amd64 variant; it has: linux/arm64"),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_images_tags_and_digests_are_one_line_errors() {
    let registry = TestRegistry::start();
    let host = registry.host();
    Pusher::new(&host)
        .push_image(
            &format!("{host}/test/known:1"),
            &[Layer::plain(tar_layer(&[Entry::File("f", b"x")]))],
            ("linux", "amd64"),
            Flavour::Oci,
        )
        .await;
    let missing_digest = format!("sha256:{}", "0".repeat(64));
    for image in [
        format!("{host}/test/unknown:1"),
        format!("{host}/test/known:2"),
        format!("{host}/test/known@{missing_digest}"),
    ] {
        let err = resolve(&image, &options(&registry)).await.unwrap_err();
        assert!(
            matches!(pull_error(&err), PullError::NotFound { .. }),
            "{image}: {err:#}"
        );
        let msg = format!("{err:#}");
        assert!(msg.contains("not found") && !msg.contains('\n'), "{msg}");
    }
    let err = resolve("Not A Reference", &options(&registry))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<ocimetal::error::OrderError>().is_some());
}

#[tokio::test]
async fn basic_auth_from_config_json_and_pull_secret() {
    let registry = TestRegistry::start_with_basic_auth(registry::BasicUser {
        user: "ironic",
        password: "s3cret-pw",
    });
    let host = registry.host();
    let image = format!("{host}/private/img:1");
    let good = oci_client::secrets::RegistryAuth::Basic("ironic".into(), "s3cret-pw".into());
    Pusher::with_auth(&host, good)
        .push_image(
            &image,
            &[Layer::gzip(tar_layer(&[Entry::File(
                "secret-file",
                b"inside",
            )]))],
            ("linux", "amd64"),
            Flavour::Oci,
        )
        .await;

    // Anonymous: refused, in one line that names the registry and no credentials.
    let err = resolve(&image, &options(&registry)).await.unwrap_err();
    assert!(
        matches!(pull_error(&err), PullError::Unauthorized { .. }),
        "{err:#}"
    );
    assert!(err.to_string().contains(&host));

    let dir = tempfile::tempdir().unwrap();
    let write_config = |name: &str, user_pass: &str| {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(user_pass);
        let path = dir.path().join(name);
        let config = serde_json::json!({"auths": {format!("http://{host}"): {"auth": auth}}});
        std::fs::write(&path, config.to_string()).unwrap();
        path
    };

    let wrong = PullOptions {
        auth_file: Some(write_config("wrong.json", "ironic:nope-nope")),
        ..options(&registry)
    };
    let err = resolve(&image, &wrong).await.unwrap_err();
    assert!(
        matches!(pull_error(&err), PullError::Unauthorized { .. }),
        "{err:#}"
    );
    assert!(!format!("{err:#}").contains("nope-nope"));

    let right = PullOptions {
        auth_file: Some(write_config("right.json", "ironic:s3cret-pw")),
        ..options(&registry)
    };
    let root = tempfile::tempdir().unwrap();
    pull(&image, &right, root.path()).await.unwrap();
    assert_eq!(read(root.path(), "secret-file"), "inside");

    // Ironic's pull secret (base64 user:password) wins over a wrong auth file.
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD.encode("ironic:s3cret-pw");
    let with_secret = PullOptions {
        pull_secret: Some(Secret::new(secret)),
        ..wrong
    };
    let root = tempfile::tempdir().unwrap();
    pull(&image, &with_secret, root.path()).await.unwrap();
    assert_eq!(read(root.path(), "secret-file"), "inside");
}

#[tokio::test]
async fn mirrors_are_tried_first_and_the_origin_is_the_fallback() {
    let origin = TestRegistry::start();
    let mirror = TestRegistry::start();
    let image = format!("{}/test/mirrored:1", origin.host());
    // The image exists only on the mirror (under the same repository name).
    Pusher::new(&mirror.host())
        .push_image(
            &format!("{}/test/mirrored:1", mirror.host()),
            &[Layer::zstd(tar_layer(&[Entry::File("from", b"mirror")]))],
            ("linux", "amd64"),
            Flavour::Oci,
        )
        .await;
    let via_mirror = PullOptions {
        mirrors: vec![ocimetal::config::RegistryMirror {
            registry: origin.host(),
            endpoint: format!("http://{}", mirror.host()),
        }],
        ..options(&origin)
    };
    let root = tempfile::tempdir().unwrap();
    let resolved = resolve(&image, &via_mirror).await.unwrap();
    assert_eq!(resolved.source, mirror.host());
    assert_eq!(resolved.reference, image, "the image keeps its own name");
    pull(&image, &via_mirror, root.path()).await.unwrap();
    assert_eq!(read(root.path(), "from"), "mirror");

    // A dead mirror falls back to the origin.
    Pusher::new(&origin.host())
        .push_image(
            &image,
            &[Layer::gzip(tar_layer(&[Entry::File("from", b"origin")]))],
            ("linux", "amd64"),
            Flavour::Oci,
        )
        .await;
    let dead_mirror = PullOptions {
        mirrors: vec![ocimetal::config::RegistryMirror {
            registry: origin.host(),
            endpoint: format!("http://127.0.0.1:{}", registry::free_port()),
        }],
        ..options(&origin)
    };
    let root = tempfile::tempdir().unwrap();
    let resolved = resolve(&image, &dead_mirror).await.unwrap();
    assert_eq!(resolved.source, origin.host());
    pull(&image, &dead_mirror, root.path()).await.unwrap();
    assert_eq!(read(root.path(), "from"), "origin");
}

#[tokio::test]
async fn https_registries_are_verified_against_the_system_bundle_and_the_ca_file() {
    let (registry, _pki, ca) = TestRegistry::start_with_tls();
    let image = format!("{}/test/tls:1", registry.host());
    Pusher::with_ca(&ca)
        .push_image(
            &image,
            &[Layer::gzip(tar_layer(&[Entry::File("f", b"over https")]))],
            ("linux", "amd64"),
            Flavour::Oci,
        )
        .await;
    let trusting = PullOptions {
        insecure_registries: vec![],
        ca_file: Some(ca),
        ..options(&registry)
    };
    let root = tempfile::tempdir().unwrap();
    pull(&image, &trusting, root.path()).await.unwrap();
    assert_eq!(read(root.path(), "f"), "over https");

    // The same registry, without the CA file: its certificate is not trusted.
    let untrusting = PullOptions {
        insecure_registries: vec![],
        ..options(&registry)
    };
    let err = resolve(&image, &untrusting).await.unwrap_err();
    assert!(
        matches!(pull_error(&err), PullError::Unavailable { .. }),
        "{err:#}"
    );
    assert!(err.to_string().contains("certificate"), "{err:#}");
}

#[tokio::test]
async fn plain_http_only_for_registries_named_insecure() {
    let registry = TestRegistry::start();
    let image = format!("{}/test/tls:1", registry.host());
    Pusher::new(&registry.host())
        .push_image(
            &image,
            &[Layer::plain(tar_layer(&[Entry::File("f", b"x")]))],
            ("linux", "amd64"),
            Flavour::Oci,
        )
        .await;
    let https_only = PullOptions {
        insecure_registries: vec![],
        ..options(&registry)
    };
    let err = resolve(&image, &https_only).await.unwrap_err();
    assert!(
        matches!(pull_error(&err), PullError::Unavailable { .. }),
        "{err:#}"
    );
}
