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

pub fn build(dir: &Path) -> anyhow::Result<()> {
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
    println!(
        "next: fieldhook plugin check {}; copy plugin.toml and the component into the daemon's plugins directory",
        component.display()
    );
    Ok(())
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
