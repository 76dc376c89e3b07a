//! What a plugin is and what it may do, as pure rules: no wasmtime, no I/O
//! beyond reading a manifest file, so every rule is unit-tested.
//!
//! - [`manifest`]: a plugin's `plugin.toml` (name, version, subscriptions,
//!   limits, configuration values, outbound grants).
//! - [`grants`]: the manifest's `[[http]]` rules, deny by default, and the
//!   check of one request (and of the addresses its host resolves to).
//! - [`path`]: the one canonical form of a request path, which grants are
//!   checked against and which is then sent.
//! - [`sandbox`]: the operator's `[sandbox]` section: ceilings over what a
//!   manifest may ask for.
//!
//! ```
//! use fieldhook_policy::grants::Target;
//! use fieldhook_policy::manifest::Manifest;
//!
//! let manifest = Manifest::parse(
//!     r#"
//!     name = "books"
//!     version = "1.0.0"
//!     [[http]]
//!     host = "books.example.com"
//!     methods = ["POST"]
//!     path = "/api/"
//!     "#,
//!     std::path::Path::new("/plugins/books/plugin.toml"),
//! )
//! .unwrap();
//! let allowed = Target::from_uri("POST", &"https://books.example.com/api/jobs".parse().unwrap()).unwrap();
//! assert!(manifest.http.check(&allowed).is_ok());
//! let denied = Target::from_uri("POST", &"https://books.example.com/admin".parse().unwrap()).unwrap();
//! let why = manifest.http.check(&denied).unwrap_err().to_string();
//! assert!(why.contains("[[http]]"), "the refusal prints the manifest lines to add: {why}");
//! ```
#![deny(missing_docs)]

pub mod grants;
pub mod manifest;
pub mod path;
pub mod sandbox;
pub mod schedule;
