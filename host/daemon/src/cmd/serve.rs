//! `fieldhook serve`: run the daemon until SIGINT or SIGTERM.

use std::path::PathBuf;

use fieldhook::config::Config;
use fieldhook::daemon::Daemon;

pub async fn serve(config_path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let daemon = Daemon::start(config).await?;
    // Machine-readable: tests and scripts wait for this line.
    if let Some(admin) = daemon.admin_addr {
        println!("fieldhook admin on http://{admin}");
    }
    println!("fieldhook listening on http://{}", daemon.addr);
    shutdown_signal().await;
    tracing::info!("shutting down");
    daemon.shutdown().await;
    Ok(())
}

pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
