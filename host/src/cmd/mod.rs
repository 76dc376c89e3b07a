//! One module per subcommand of the `fieldhook` binary.

pub mod dlq;
pub mod events;
pub mod replay;
pub mod send;
pub mod serve;
pub mod stats;
pub mod store;
