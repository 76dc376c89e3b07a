//! `fieldhook plugins`: the running daemon's plugins, from `GET /plugins`.

use std::path::Path;

use fieldhook::admin::client::AdminClient;
use serde_json::Value;

pub async fn plugins(config: &Path, json: bool) -> anyhow::Result<()> {
    let v = AdminClient::from_config(config)?.get("/plugins").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print!("{}", render(&v));
    Ok(())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// One line per loaded plugin, then one block per failing directory.
fn render(v: &Value) -> String {
    let mut out = String::new();
    let loaded = v["loaded"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let failures = v["failures"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if loaded.is_empty() {
        out.push_str("no plugin loaded\n");
    }
    for p in loaded {
        let i = &p["instances"];
        let instances = match text(&i["mode"]) {
            "reuse" => format!("warm, {} idle", i["warm"]),
            _ => "fresh per event".to_owned(),
        };
        out.push_str(&format!(
            "{:<24} {:<10} {:<24} {:<18} {}\n",
            text(&p["name"]),
            text(&p["version"]),
            text(&p["contract"]),
            instances,
            text(&p["state"]),
        ));
    }
    for f in failures {
        let serving = match f["serving"].as_str() {
            Some(name) => format!(" (`{name}` keeps serving its previous version)"),
            None => String::new(),
        };
        out.push_str(&format!("FAILED {}{serving}\n", text(&f["dir"])));
        for line in text(&f["reason"]).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn loaded_plugins_are_one_line_each_and_failures_say_why_and_what_still_serves() {
        let v = json!({
            "loaded": [{
                "name": "relay", "version": "2", "contract": "fieldhook:plugin@0.2.0",
                "instances": {"mode": "reuse", "warm": 1}, "state": "loaded, new version failing"
            }],
            "failures": [{"dir": "/p/relay", "reason": "bad\ncomponent", "serving": "relay"}]
        });
        let text = render(&v);
        assert!(text.starts_with("relay "), "{text}");
        assert!(text.contains("fieldhook:plugin@0.2.0"), "{text}");
        assert!(text.contains("warm, 1 idle"), "{text}");
        assert!(
            text.contains(
                "FAILED /p/relay (`relay` keeps serving its previous version)\n  bad\n  component\n"
            ),
            "{text}"
        );
        assert_eq!(
            render(&json!({"loaded": [], "failures": []})),
            "no plugin loaded\n"
        );
    }
}
