//! `fieldhook plugin check`.

use std::path::Path;
use std::sync::Arc;

use anyhow::bail;
use fieldhook_capabilities::{Capabilities, Sandbox};
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
    Ok(())
}
