//! `fieldhook store verify`: check the store's invariants, read-only.

use std::path::Path;

use anyhow::bail;

pub fn verify(data_dir: &Path) -> anyhow::Result<()> {
    let db = data_dir.join("db");
    let report = fieldhook_store::events::verify::verify(&db).map_err(|e| {
        if e.is_locked() {
            anyhow::anyhow!(
                "cannot check {}: {e} (stop the daemon first: it locks the store)",
                db.display()
            )
        } else {
            anyhow::anyhow!("cannot check {}: {e}", db.display())
        }
    })?;
    println!(
        "{} events, {} waiting for fan-out, {} dedupe entries, {} messages shared by split events",
        report.events, report.inbox, report.dedupe, report.messages
    );
    for n in &report.notes {
        println!("note: {n}");
    }
    if report.problems.is_empty() {
        println!("ok: no problems found");
        return Ok(());
    }
    for p in &report.problems {
        println!("problem: {p}");
    }
    bail!(
        "{} problem(s) found in {}",
        report.problems.len(),
        db.display()
    )
}

/// `fieldhook store backup DEST`: the running daemon writes a copy of its
/// store into DEST (a new or empty directory on its machine).
pub async fn backup(config: &Path, dest: &Path) -> anyhow::Result<()> {
    let dest = std::path::absolute(dest).map_err(|e| anyhow::anyhow!("{}: {e}", dest.display()))?;
    let client = fieldhook::admin::client::AdminClient::from_config(config)?;
    let report = client
        .post("/store/backup", &serde_json::json!({ "dest": dest }))
        .await?;
    println!(
        "backed up {} entries and {} journal bytes to {} in {} ms",
        report["entries"],
        report["journal_bytes"],
        dest.display(),
        report["took_ms"]
    );
    println!(
        "restore: stop fieldhook, move its data_dir aside, copy {} in its place, start fieldhook",
        dest.display()
    );
    Ok(())
}
