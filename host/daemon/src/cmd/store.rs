//! `fieldhook store verify`: check the store's invariants, read-only.

use std::path::Path;

use anyhow::bail;

pub fn verify(data_dir: &Path) -> anyhow::Result<()> {
    let db = data_dir.join("db");
    let report = fieldhook_store::events::verify::verify(&db).map_err(|e| {
        anyhow::anyhow!(
            "cannot check {}: {e} (stop the daemon first: it locks the store)",
            db.display()
        )
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
