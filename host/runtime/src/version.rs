//! Which `fieldhook:plugin` version a component targets, read from the
//! names of its imports and exports before anything is linked, so a plugin
//! built for another version is refused with a message that says so.

use wasmtime::Engine;
use wasmtime::component::Component;

use fieldhook_policy::manifest::SUPPORTED_WIT;

/// The interface every plugin exports; its version names the contract.
const HANDLER: &str = "fieldhook:plugin/handler";
const PACKAGE: &str = "fieldhook:plugin/";

/// A WIT version this host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WitVersion {
    /// `fieldhook:plugin@0.1.x`.
    V0_1,
    /// `fieldhook:plugin@0.2.x`.
    V0_2,
    /// `fieldhook:plugin@0.3.x`: 0.2 plus schedules.
    V0_3,
}

impl WitVersion {
    /// Every version served, oldest first.
    pub const ALL: &[WitVersion] = &[WitVersion::V0_1, WitVersion::V0_2, WitVersion::V0_3];

    /// The package version this host's bindings were generated from.
    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1 => "0.1.0",
            WitVersion::V0_2 => "0.2.0",
            WitVersion::V0_3 => "0.3.0",
        }
    }

    /// The served version matching a component's `X.Y.Z`: same minor for
    /// 0.x (same major from 1.0), patch not newer than the host's WIT.
    fn serving(version: &str) -> Option<WitVersion> {
        let wanted = parse(version)?;
        WitVersion::ALL.iter().copied().find(|v| {
            let Some(ours) = parse(v.as_str()) else {
                return false;
            };
            let same_line = if ours.0 == 0 {
                ours.0 == wanted.0 && ours.1 == wanted.1
            } else {
                ours.0 == wanted.0
            };
            same_line && wanted <= ours && SUPPORTED_WIT.contains(&v.as_str())
        })
    }
}

impl std::fmt::Display for WitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fieldhook:plugin@{}", self.as_str())
    }
}

fn parse(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    let r = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(r)
}

/// Why a component's contract version is not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// No `fieldhook:plugin/handler` export at all.
    #[error(
        "does not export `{HANDLER}` (it exports: {exports}); build it against the `plugin` \
         world of fieldhook's wit/0.1/plugin.wit (fieldhook:plugin@{served})",
        served = served()
    )]
    NoHandler {
        /// What it exports instead.
        exports: String,
    },
    /// The handler carries a version this host does not serve.
    #[error(
        "targets fieldhook:plugin@{found}, but this fieldhook serves fieldhook:plugin@{served}; \
         rebuild the plugin against a served version or run a fieldhook that serves {found}",
        served = served()
    )]
    Unsupported {
        /// The version the component targets.
        found: String,
    },
    /// Imports from one version, exports of another.
    #[error(
        "mixes contract versions: it exports {HANDLER}@{export} but imports {import}; rebuild it \
         against one version of wit/0.1/plugin.wit"
    )]
    Mixed {
        /// Version of the handler export.
        export: String,
        /// The offending import.
        import: String,
    },
}

fn served() -> String {
    SUPPORTED_WIT.join(", ")
}

/// Reads the contract version a component targets and checks it is served.
pub fn detect(engine: &Engine, component: &Component) -> Result<WitVersion, VersionError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    classify(&exports, &imports)
}

/// The rules of [`detect`], on names only (unit-testable without a component).
pub fn classify(exports: &[String], imports: &[String]) -> Result<WitVersion, VersionError> {
    let handler = exports.iter().find_map(|name| {
        let rest = name.strip_prefix(HANDLER)?;
        Some(rest.strip_prefix('@').unwrap_or("").to_owned())
    });
    let Some(found) = handler else {
        return Err(VersionError::NoHandler {
            exports: if exports.is_empty() {
                "nothing".into()
            } else {
                exports.join(", ")
            },
        });
    };
    let version = WitVersion::serving(&found).ok_or_else(|| VersionError::Unsupported {
        found: if found.is_empty() {
            "(unversioned)".into()
        } else {
            found.clone()
        },
    })?;
    let served_line = parse(version.as_str());
    for import in imports.iter().filter(|i| i.starts_with(PACKAGE)) {
        let v = import.rsplit_once('@').map(|(_, v)| v).unwrap_or("");
        let line = parse(v);
        let same = matches!((line, served_line), (Some(a), Some(b)) if a.0 == b.0 && a.1 == b.1);
        if !same {
            return Err(VersionError::Mixed {
                export: found,
                import: import.clone(),
            });
        }
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_0_1_plugin_is_served_by_the_0_1_bindings() {
        let v = classify(
            &names(&["fieldhook:plugin/handler@0.1.0"]),
            &names(&[
                "fieldhook:plugin/log@0.1.0",
                "wasi:http/outgoing-handler@0.2.12",
            ]),
        );
        assert_eq!(v, Ok(WitVersion::V0_1));
    }

    #[test]
    fn a_0_2_plugin_is_served_by_the_0_2_bindings() {
        let v = classify(
            &names(&["fieldhook:plugin/handler@0.2.0"]),
            &names(&[
                "fieldhook:plugin/types@0.2.0",
                "fieldhook:plugin/config@0.2.0",
            ]),
        );
        assert_eq!(v, Ok(WitVersion::V0_2));
    }

    #[test]
    fn a_0_3_plugin_is_served_by_the_0_3_bindings() {
        let v = classify(
            &names(&[
                "fieldhook:plugin/handler@0.3.0",
                "fieldhook:plugin/scheduler@0.3.0",
            ]),
            &names(&["fieldhook:plugin/events@0.3.0"]),
        );
        assert_eq!(v, Ok(WitVersion::V0_3));
    }

    #[test]
    fn a_newer_contract_is_refused_naming_both_versions() {
        let e = classify(&names(&["fieldhook:plugin/handler@0.4.0"]), &[]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("fieldhook:plugin@0.4.0"), "{text}");
        assert!(
            text.contains("serves fieldhook:plugin@0.1.0, 0.2.0, 0.3.0"),
            "{text}"
        );
    }

    #[test]
    fn a_newer_patch_than_the_host_knows_is_refused() {
        assert!(classify(&names(&["fieldhook:plugin/handler@0.1.99"]), &[]).is_err());
        assert!(classify(&names(&["fieldhook:plugin/handler@0.2.1"]), &[]).is_err());
        assert!(classify(&names(&["fieldhook:plugin/handler@0.3.1"]), &[]).is_err());
    }

    #[test]
    fn a_component_without_the_handler_is_not_a_plugin() {
        let e = classify(&names(&["wasi:http/incoming-handler@0.2.0"]), &[]).unwrap_err();
        assert!(matches!(e, VersionError::NoHandler { .. }), "{e}");
        assert!(e.to_string().contains("wasi:http/incoming-handler"), "{e}");
    }

    #[test]
    fn imports_from_another_version_are_refused() {
        let e = classify(
            &names(&["fieldhook:plugin/handler@0.1.0"]),
            &names(&["fieldhook:plugin/log@0.2.0"]),
        )
        .unwrap_err();
        assert!(matches!(e, VersionError::Mixed { .. }), "{e}");
    }
}
