//! Secret values, and the one way the configuration reads them.
//!
//! A configuration never holds a secret inline: a key `X_env` names an
//! environment variable, `X_file` a file (trailing newlines trimmed, as
//! editors and `echo` add one; relative paths resolve against the
//! configuration's directory). Webhook signing keys, credentials and the
//! admin token are all read through [`SecretSource`].
//!
//! ```
//! use fieldhook_core::secret::SecretSource;
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("hook.secret"), "s3cret\n").unwrap();
//! let source = SecretSource::from_pair("secret", None, Some("hook.secret".into()))
//!     .unwrap()
//!     .expect("a file was named");
//! let secret = source.load(dir.path()).unwrap();
//! assert_eq!(secret.expose(), b"s3cret");
//! assert_eq!(format!("{secret:?}"), "Secret(6 bytes)");
//! ```

use std::path::{Path, PathBuf};

/// A secret: printed as its length only. `T` is `Vec<u8>` for signing keys
/// (vendors send and sign bytes) and `String` where the secret goes into a
/// header or a form ([`Secret::into_text`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T = Vec<u8>>(T);

impl<T: AsRef<[u8]>> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.as_ref().len())
    }
}

impl<T> Secret<T> {
    /// Wraps a value as a secret.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself, for signing or building a header.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl Secret<Vec<u8>> {
    /// The secret as text; fails when it is not UTF-8.
    pub fn into_text(self) -> Result<Secret<String>, SecretError> {
        String::from_utf8(self.0)
            .map(Secret)
            .map_err(|_| SecretError::NotText)
    }
}

impl Secret<String> {
    /// The secret as `&str`.
    pub fn expose_str(&self) -> &str {
        &self.0
    }
}

/// Why a secret could not be read. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Both `X_env` and `X_file` are set.
    #[error("give either `{0}_env` or `{0}_file`, not both")]
    Ambiguous(String),
    /// The variable is not set, or empty.
    #[error("environment variable `{0}` is not set or empty (export it before starting)")]
    EnvUnset(String),
    /// The file cannot be read.
    #[error("cannot read secret file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds nothing but newlines.
    #[error("secret file {0} is empty")]
    Empty(PathBuf),
    /// The secret must be text (it goes into a header) and is not UTF-8.
    #[error("the secret is not UTF-8 text")]
    NotText,
}

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file; relative to the configuration's directory.
    File(PathBuf),
}

impl SecretSource {
    /// The source a configuration's `{what}_env` / `{what}_file` pair names:
    /// none when neither is set.
    pub fn from_pair(
        what: &str,
        env: Option<String>,
        file: Option<PathBuf>,
    ) -> Result<Option<Self>, SecretError> {
        match (env, file) {
            (Some(_), Some(_)) => Err(SecretError::Ambiguous(what.to_owned())),
            (Some(var), None) => Ok(Some(Self::Env(var))),
            (None, Some(path)) => Ok(Some(Self::File(path))),
            (None, None) => Ok(None),
        }
    }

    /// Reads the secret; a relative file resolves against `base`. Trailing
    /// newlines are trimmed; an empty secret is an error.
    pub fn load(&self, base: &Path) -> Result<Secret, SecretError> {
        match self {
            Self::Env(var) => match std::env::var_os(var) {
                Some(v) if !v.is_empty() => Ok(Secret(v.into_encoded_bytes())),
                _ => Err(SecretError::EnvUnset(var.clone())),
            },
            Self::File(path) => {
                let path = base.join(path);
                let mut bytes = std::fs::read(&path).map_err(|source| SecretError::Unreadable {
                    path: path.clone(),
                    source,
                })?;
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                if bytes.is_empty() {
                    return Err(SecretError::Empty(path));
                }
                Ok(Secret(bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_names_one_source_or_none_and_never_both() {
        assert_eq!(SecretSource::from_pair("key", None, None).unwrap(), None);
        assert_eq!(
            SecretSource::from_pair("key", Some("K".into()), None).unwrap(),
            Some(SecretSource::Env("K".into()))
        );
        let both = SecretSource::from_pair("key", Some("K".into()), Some("k".into()));
        assert_eq!(
            both.unwrap_err().to_string(),
            "give either `key_env` or `key_file`, not both"
        );
    }

    #[test]
    fn an_unset_variable_is_named_in_the_error() {
        let e = SecretSource::Env("FIELDHOOK_CORE_TEST_SURELY_UNSET".into())
            .load(Path::new("."))
            .unwrap_err();
        assert!(
            e.to_string().contains("FIELDHOOK_CORE_TEST_SURELY_UNSET"),
            "{e}"
        );
    }

    #[test]
    fn a_file_of_newlines_is_empty_and_bytes_need_not_be_text() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blank"), "\n\r\n").unwrap();
        let blank = SecretSource::File("blank".into()).load(dir.path());
        assert!(matches!(blank, Err(SecretError::Empty(_))));
        std::fs::write(dir.path().join("raw"), [0xff, 0x00, b'\n']).unwrap();
        let raw = SecretSource::File("raw".into()).load(dir.path()).unwrap();
        assert_eq!(raw.expose(), &[0xff, 0x00]);
        assert!(matches!(raw.into_text(), Err(SecretError::NotText)));
    }
}
