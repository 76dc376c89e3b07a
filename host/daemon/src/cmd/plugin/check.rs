//! `fieldhook plugin check`.

use std::path::Path;
use std::sync::Arc;

use anyhow::bail;
use fieldhook_capabilities::{Capabilities, Sandbox};
use fieldhook_policy::grants::Target;
use fieldhook_policy::manifest::Manifest;
use fieldhook_runtime::{InstancePolicy, Runtime};

use super::{manifest_for, mib, read_component, tool_cache};

pub fn check(component: &Path, manifest: Option<&Path>) -> anyhow::Result<()> {
    let manifest = manifest_for(component, manifest)?;
    let bytes = read_component(component)?;
    let runtime = Runtime::new(
        tool_cache(),
        Arc::new(Capabilities::offline(Sandbox::default())),
    )?;
    let plugin = match runtime.load_bytes(manifest, &bytes) {
        Ok(p) => p,
        Err(e) => bail!(
            "{} is not a plugin this fieldhook can run:\n  {e}",
            component.display()
        ),
    };
    let m = &plugin.manifest;
    println!(
        "ok: {} {} targets {}",
        m.name, m.version, plugin.wit_version
    );
    println!(
        "component  {} ({})",
        component.display(),
        mib(plugin.component_bytes)
    );
    let (imports, exports) = plugin.interfaces(&runtime);
    println!("imports    {}", imports.join(", "));
    println!("exports    {}", exports.join(", "));
    println!(
        "instances  {}",
        match plugin.instances {
            InstancePolicy::Fresh => "fresh per event".to_owned(),
            InstancePolicy::Reuse(r) => format!(
                "warm, reused; recycled after {} calls or past {}",
                r.after_calls,
                mib(r.memory_bytes)
            ),
        }
    );
    println!(
        "limits     memory {} MiB, time {} ms",
        m.limits.memory_mb, m.limits.timeout_ms
    );
    if m.subscriptions.is_empty() {
        println!("warning    no [[subscriptions]]: the daemon will send it nothing");
    }
    for s in &m.subscriptions {
        let kinds = if s.kinds.is_empty() {
            "every kind".to_owned()
        } else {
            s.kinds.join(", ")
        };
        println!("receives   source {}: {kinds}", s.source);
    }
    if !m.config.is_empty() {
        println!(
            "config     {}",
            m.config.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    for (i, rule) in m.http.rules().iter().enumerate() {
        let toml = rule.to_toml();
        let summary: Vec<&str> = toml.lines().skip(1).collect();
        println!("grants     [[http]] rule {}: {}", i + 1, summary.join(", "));
    }
    for warning in unreached_endpoints(m) {
        println!("{warning}");
    }
    Ok(())
}

/// Warnings for `[config]` values that are URLs no `[[http]]` rule reaches:
/// the plugin's requests to them would be refused.
fn unreached_endpoints(m: &Manifest) -> Vec<String> {
    m.config
        .iter()
        .filter(|(_, v)| v.starts_with("http://") || v.starts_with("https://"))
        .filter_map(|(key, url)| {
            let target = match Target::parse("POST", url) {
                Ok(t) => t,
                Err(e) => return Some(format!("warning    config.{key}: {e}")),
            };
            if m.http.reaches(&target).is_some() {
                return None;
            }
            let add: Vec<String> = target
                .rule_to_add()
                .lines()
                .map(|l| format!("             {l}"))
                .collect();
            Some(format!(
                "warning    config.{key} = {url} is covered by no [[http]] rule: requests to it \
                 will be refused. To allow it, add to plugin.toml (with the methods it uses):\n{}",
                add.join("\n")
            ))
        })
        .collect()
}
