//! `ocimetal plan --render DIR`: the files an install would write, written under DIR instead,
//! with a manifest of paths and modes.

use crate::plan::{rendered_files, Plan};
use anyhow::Context;
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Name of the manifest written at the top of DIR.
pub const MANIFEST: &str = "ocimetal-render.json";

#[derive(Serialize)]
struct Entry {
    /// Path in the installed system.
    path: String,
    mode: String,
    bytes: usize,
    secret: bool,
    /// False for a secret left out (no `--show-secrets`).
    written: bool,
    /// Merged into the image's own file at install time; shown as for an image without it.
    edit: bool,
}

/// Writes the plan's files under `dir` (created; it must be empty when it exists), secrets
/// only when `show_secrets`, and the manifest. Touches nothing outside `dir`.
pub fn render_into(plan: &Plan, dir: &Path, show_secrets: bool) -> anyhow::Result<usize> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("--render {}: cannot read it", dir.display()))?;
        anyhow::ensure!(
            entries.next().is_none(),
            "--render {}: the directory is not empty; name a new or empty one",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("--render {}", dir.display()))?;
    let mut manifest = Vec::new();
    for rendered in rendered_files(plan) {
        let file = &rendered.file;
        let secret = file.contents.is_secret();
        let written = !secret || show_secrets;
        if written {
            // Paths come from our own renderers: relative, no `..`.
            let path = dir.join(&file.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, file.contents.bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))?;
        }
        manifest.push(Entry {
            path: format!("/{}", file.path.display()),
            mode: format!("{:04o}", file.mode),
            bytes: file.contents.bytes().len(),
            secret,
            written,
            edit: rendered.edit,
        });
    }
    let count = manifest.iter().filter(|e| e.written).count();
    let mut json = serde_json::to_vec_pretty(&manifest)?;
    json.push(b'\n');
    std::fs::write(dir.join(MANIFEST), json)?;
    Ok(count)
}
