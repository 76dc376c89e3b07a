//! Embeds the plugin SDKs and the contract in the binary, so `fieldhook
//! plugin new` writes a plugin that builds anywhere, without this checkout.

use std::path::{Path, PathBuf};

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("../..");
    // Each SDK builds one contract version: the Rust SDK 0.3, the JS and
    // Python SDKs 0.2 (their build scripts read `../wit/0.2`).
    let sets: [(&str, &str, &[&str]); 5] = [
        ("RUST_SDK", "guest-sdk", &["rs", "toml"]),
        ("JS_SDK", "guest-sdk-js", &["js", "mjs", "ts", "json"]),
        ("PY_SDK", "guest-sdk-py", &["py"]),
        ("WIT_0_2", "wit/0.2", &["wit"]),
        ("WIT_0_3", "wit/0.3", &["wit"]),
    ];
    let mut out = String::new();
    for (name, dir, exts) in sets {
        let base = root.join(dir);
        println!("cargo:rerun-if-changed={}", base.display());
        let mut files = Vec::new();
        walk(&base, &base, exts, &mut files);
        files.sort();
        out.push_str(&format!("pub const {name}: &[(&str, &str)] = &[\n"));
        for rel in files {
            let abs = base.join(&rel);
            out.push_str(&format!(
                "    ({:?}, include_str!({:?})),\n",
                rel,
                abs.display().to_string()
            ));
        }
        out.push_str("];\n");
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("sdk_files.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

/// Source files under `dir`, relative to `base`; tests, build output and
/// installed packages are not part of an SDK a plugin carries.
fn walk(base: &Path, dir: &Path, exts: &[&str], files: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(
                name.as_str(),
                "node_modules" | "target" | "test" | "tests" | "__pycache__"
            ) {
                walk(base, &path, exts, files);
            }
            continue;
        }
        let wanted =
            exts.iter().any(|x| name.ends_with(&format!(".{x}"))) && name != "package-lock.json";
        if wanted && let Ok(rel) = path.strip_prefix(base) {
            files.push(rel.to_string_lossy().into_owned());
        }
    }
}
