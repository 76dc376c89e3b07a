//! `fieldhook plugin build [DIR]`: builds a plugin of any language from its
//! directory, with the tool chain its files name.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use fieldhook_policy::manifest::Manifest;

/// The languages a plugin directory can be in, told by its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rust,
    Js,
    Python,
}

fn kind_of(dir: &Path) -> Option<Kind> {
    if dir.join("Cargo.toml").is_file() {
        Some(Kind::Rust)
    } else if dir.join("package.json").is_file() {
        Some(Kind::Js)
    } else if dir.join("app.py").is_file() {
        Some(Kind::Python)
    } else {
        None
    }
}

/// Whether `program` runs at all (found on PATH and executable).
fn found(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn build(dir: &Path, install: Option<&Path>) -> anyhow::Result<()> {
    let manifest_path = dir.join("plugin.toml");
    let manifest = Manifest::load(&manifest_path)
        .with_context(|| format!("{} is not a plugin directory", dir.display()))?;
    let Some(kind) = kind_of(dir) else {
        bail!(
            "cannot tell the language of {}: a Rust plugin has Cargo.toml, a JavaScript one \
             package.json, a Python one app.py (`fieldhook plugin new` writes them)",
            dir.display()
        );
    };
    let mut command = match kind {
        Kind::Rust => {
            if !found("cargo", "--version") {
                bail!("cargo is not installed: install Rust with rustup (https://rustup.rs)");
            }
            if found("rustup", "--version") {
                let installed = Command::new("rustup")
                    .args(["target", "list", "--installed"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip2"))
                    .unwrap_or(false);
                if !installed {
                    bail!(
                        "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
                    );
                }
            }
            let mut c = Command::new("cargo");
            c.args(["build", "--release", "--target", "wasm32-wasip2"]);
            c
        }
        Kind::Js => {
            if !found("node", "--version") {
                bail!("node is not installed: install Node.js 20 or later (https://nodejs.org)");
            }
            if !has_node_module(dir, "@bytecodealliance/componentize-js") {
                bail!(
                    "componentize-js is not installed for this plugin: run `npm install` in {}",
                    dir.display()
                );
            }
            let script = dir.join("sdk/build.mjs");
            if !script.is_file() {
                bail!(
                    "{} is missing: the plugin's copy of the SDK (`fieldhook plugin new` writes it)",
                    script.display()
                );
            }
            let mut c = Command::new("node");
            c.args(["sdk/build.mjs", &entry_of(dir)?, "-o"])
                .arg(relative_component(dir, &manifest)?);
            c
        }
        Kind::Python => {
            if !found("componentize-py", "--version") {
                bail!(
                    "componentize-py is not installed: pip install componentize-py==0.25.0 \
                     (in a virtual environment, activate it first)"
                );
            }
            let python = ["python3", "python"]
                .into_iter()
                .find(|p| found(p, "--version"))
                .context("python3 is not installed")?;
            let mut c = Command::new(python);
            c.args(["sdk/build.py", ".", "-o"])
                .arg(relative_component(dir, &manifest)?);
            c
        }
    };
    let started = Instant::now();
    let status = command
        .current_dir(dir)
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!(
            "the build failed ({status}): {command:?} in {}",
            dir.display()
        );
    }
    let component = &manifest.component;
    if kind == Kind::Rust
        && let Some(target) = std::env::var_os("CARGO_TARGET_DIR")
        && let Some(file) = component.file_name()
    {
        // cargo built into the shared target directory: put the component
        // where plugin.toml says it is.
        let built = PathBuf::from(target)
            .join("wasm32-wasip2/release")
            .join(file);
        if built.is_file() && built != *component {
            if let Some(parent) = component.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&built, component).with_context(|| {
                format!("cannot copy {} to {}", built.display(), component.display())
            })?;
        }
    }
    let bytes = std::fs::metadata(component)
        .with_context(|| {
            format!(
                "the build ran but {} (plugin.toml `component`) is not there",
                component.display()
            )
        })?
        .len();
    println!(
        "built {} ({:.1} MiB) in {:.1} s",
        component.display(),
        bytes as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64()
    );
    match install {
        Some(to) => {
            install_into(&manifest_path, component, to)?;
            println!(
                "installed into {}: a running daemon loads it within a second",
                to.display()
            );
        }
        None => println!(
            "next: fieldhook plugin check {}; then `fieldhook plugin build --install \
             PLUGINS_DIR/{}` (or copy plugin.toml and the component there)",
            component.display(),
            manifest.name
        ),
    }
    Ok(())
}

/// Copies the component and the manifest (its `component` set to the
/// copy's file name) into `to`. Each file is written under a temporary
/// name and renamed over the old one, so the daemon never reads half a
/// file, and a version that fails to load leaves the old one serving.
fn install_into(manifest_path: &Path, component: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let file = component
        .file_name()
        .context("the component path has no file name")?;
    let put = |name: &std::ffi::OsStr, bytes: &[u8]| -> anyhow::Result<()> {
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".tmp");
        let tmp = to.join(tmp_name);
        std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, to.join(name))
            .with_context(|| format!("cannot put {} in place", to.join(name).display()))
    };
    let wasm =
        std::fs::read(component).with_context(|| format!("cannot read {}", component.display()))?;
    put(file, &wasm)?;
    let text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not TOML", manifest_path.display()))?;
    table.insert(
        "component".into(),
        toml::Value::String(file.to_string_lossy().into_owned()),
    );
    put(
        std::ffi::OsStr::new("plugin.toml"),
        table.to_string().as_bytes(),
    )
}

/// Builds (and installs) now and after every change to the plugin's
/// sources, until the process is interrupted. A failed build is reported
/// and the watch goes on: the daemon keeps the last good version.
pub fn watch(dir: &Path, install: Option<&Path>) -> anyhow::Result<()> {
    let mut seen = None;
    loop {
        let now = fingerprint(dir);
        if seen.as_ref() != Some(&now) {
            // Let an editor finish writing: build once the files are quiet.
            std::thread::sleep(std::time::Duration::from_millis(300));
            let settled = fingerprint(dir);
            if settled != now {
                continue;
            }
            if let Err(e) = build(dir, install) {
                eprintln!("build failed: {e:#}");
            }
            println!("watching {} for changes (Ctrl-C to stop)", dir.display());
            // What the build itself wrote (a JS/Python component inside the
            // directory) is not a change to build again for.
            seen = Some(fingerprint(dir));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Names, sizes and modification times of the plugin's source files:
/// everything but build output, installed packages and hidden files.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64, Option<std::time::SystemTime>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.')
                || matches!(name.as_ref(), "target" | "node_modules" | "__pycache__")
                || name.ends_with(".wasm")
            {
                continue;
            }
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                walk(&path, out);
            } else {
                out.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// The JS entry: the `main` of package.json, else `plugin.js`.
fn entry_of(dir: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(dir.join("package.json"))?;
    let package: serde_json::Value =
        serde_json::from_str(&text).context("package.json is not JSON")?;
    Ok(package["main"].as_str().unwrap_or("plugin.js").to_owned())
}

/// The manifest's component, relative to the plugin directory when inside it.
fn relative_component(dir: &Path, manifest: &Manifest) -> anyhow::Result<PathBuf> {
    Ok(manifest
        .component
        .strip_prefix(dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| manifest.component.clone()))
}

fn has_node_module(dir: &Path, name: &str) -> bool {
    dir.ancestors().any(|d| {
        d.join("node_modules")
            .join(name)
            .join("package.json")
            .is_file()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_told_by_the_files_plugin_new_writes() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(kind_of(tmp.path()), None);
        std::fs::write(tmp.path().join("app.py"), "").unwrap();
        assert_eq!(kind_of(tmp.path()), Some(Kind::Python));
        std::fs::write(tmp.path().join("package.json"), "{}").unwrap();
        assert_eq!(kind_of(tmp.path()), Some(Kind::Js));
        std::fs::write(tmp.path().join("Cargo.toml"), "").unwrap();
        assert_eq!(kind_of(tmp.path()), Some(Kind::Rust));
    }
}
