//! `fieldhook serve`: run the daemon until SIGINT or SIGTERM.

use std::path::PathBuf;

use fieldhook::config::Config;
use fieldhook::daemon::Daemon;

pub async fn serve(config_path: PathBuf) -> anyhow::Result<()> {
    // Before anything is announced: a SIGTERM right after the listening
    // line must take the graceful path, not the default (exit at once).
    let stop = shutdown_signal();
    #[cfg(unix)]
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let config = Config::load(&config_path)?;
    let daemon = Daemon::start_from(config, config_path).await?;
    #[cfg(unix)]
    if let (Some(mut hangup), Some(reloader)) = (hangup, daemon.reloader.clone()) {
        // The outcome is logged by the reloader; the task ends with the
        // process.
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = reloader.reload().await;
            }
        });
    }
    // Machine-readable: tests and scripts wait for this line.
    if let Some(admin) = daemon.admin_addr {
        println!("fieldhook admin on http://{admin}");
    }
    println!("fieldhook listening on http://{}", daemon.addr);
    stop.await;
    tracing::info!("shutting down");
    daemon.shutdown().await;
    Ok(())
}

/// Resolves at SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when it is first awaited.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}
