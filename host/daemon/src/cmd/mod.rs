//! One module per subcommand of the `fieldhook` binary.

pub mod config;
pub mod dlq;
pub mod events;
pub mod health;
pub mod init;
pub mod plugin;
pub mod plugins;
pub mod replay;
pub mod schedules;
pub mod send;
pub mod serve;
pub mod stats;
pub mod store;
pub mod verify;
