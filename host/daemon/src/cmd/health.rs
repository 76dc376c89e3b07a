//! `fieldhook health`: asks a running daemon's admin API whether it is
//! alive (`/healthz`) or ready (`/readyz`), for container health checks
//! and scripts. Exit 0 yes, 1 no.

use std::path::Path;

use fieldhook::admin::client::AdminClient;

pub async fn health(config: &Path, ready: bool) -> i32 {
    let path = if ready { "/readyz" } else { "/healthz" };
    let client = match AdminClient::from_config(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    match client.get_text(path).await {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
