//! One module per subcommand of the `fieldhook` binary.

pub mod plugin;
pub mod send;
pub mod serve;
pub mod verify;
