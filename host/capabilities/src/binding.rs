//! Where the operator lets each credential go (`hosts`, `paths` in
//! `[credentials.NAME]`), checked against the `[[http]]` rules that name it
//! when a plugin loads, and again for every request it is added to.

use fieldhook_credentials::config::CredentialSpec;
use fieldhook_policy::grants::{HttpRule, host_matches};

/// Whether `spec` may go everywhere `rule` lets a request go: every host
/// the rule's pattern matches is one of the credential's, and the rule's
/// path prefix lies inside one of its paths (when it names any).
pub fn covers(spec: &CredentialSpec, rule: &HttpRule) -> bool {
    let host_covered = match rule.host.strip_prefix("*.") {
        // Any sub-domain of `suffix`: only a credential pattern covering
        // every one of them will do.
        Some(suffix) => spec.hosts.iter().any(|h| {
            h.strip_prefix("*.")
                .is_some_and(|t| suffix == t || suffix.ends_with(&format!(".{t}")))
        }),
        None => spec.hosts.iter().any(|h| host_matches(h, &rule.host)),
    };
    host_covered && path_covered(spec, &rule.path)
}

/// Whether `spec` may be added to a request for `host` and `path`
/// (canonical).
pub fn allows(spec: &CredentialSpec, host: &str, path: &str) -> bool {
    spec.hosts.iter().any(|h| host_matches(h, host)) && path_covered(spec, path)
}

fn path_covered(spec: &CredentialSpec, path: &str) -> bool {
    spec.paths.is_empty() || spec.paths.iter().any(|p| path.starts_with(p.as_str()))
}

/// What to tell the operator when a rule names `spec` for a place it may
/// not go.
pub fn refusal(spec: &CredentialSpec, rule: &HttpRule) -> String {
    format!(
        "[[http]] rule for `{}{}` names credential `{}`, which the daemon configuration allows \
         only for hosts {:?}{}; if this plugin should send it there, add the host to \
         `hosts` in [credentials.{}] (an endpoint that echoes request headers hands the \
         credential back to the plugin)",
        rule.host,
        rule.path,
        spec.name,
        spec.hosts,
        if spec.paths.is_empty() {
            String::new()
        } else {
            format!(" and paths {:?}", spec.paths)
        },
        spec.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldhook_core::secret::Secret;
    use fieldhook_credentials::config::CredentialKind;

    fn spec(hosts: &[&str], paths: &[&str]) -> CredentialSpec {
        CredentialSpec {
            name: "books".into(),
            kind: CredentialKind::ApiKey {
                header: "Authorization".into(),
                value: Secret::new("k".into()),
            },
            headers: vec![],
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn rule(host: &str, path: &str) -> HttpRule {
        HttpRule {
            scheme: "https".into(),
            host: host.into(),
            port: None,
            methods: vec!["POST".into()],
            path: path.into(),
            credential: Some("books".into()),
        }
    }

    #[test]
    fn a_rule_may_name_a_credential_only_for_its_hosts() {
        let s = spec(&["api.books.com"], &[]);
        assert!(covers(&s, &rule("api.books.com", "/")));
        assert!(!covers(&s, &rule("evil.example.com", "/")));
        assert!(
            !covers(&s, &rule("*.books.com", "/")),
            "a wildcard reaches more than the one host"
        );
    }

    #[test]
    fn a_wildcard_credential_covers_its_sub_domains_and_narrower_patterns() {
        let s = spec(&["*.servicem8.com"], &[]);
        assert!(covers(&s, &rule("api.servicem8.com", "/")));
        assert!(covers(&s, &rule("*.servicem8.com", "/")));
        assert!(covers(&s, &rule("*.eu.servicem8.com", "/")));
        assert!(!covers(&s, &rule("servicem8.com", "/")));
        assert!(!covers(&s, &rule("*.com", "/")));
    }

    #[test]
    fn paths_narrow_where_a_credential_goes() {
        let s = spec(&["api.servicetitan.io"], &["/jpm/v2/"]);
        assert!(covers(&s, &rule("api.servicetitan.io", "/jpm/v2/")));
        assert!(covers(&s, &rule("api.servicetitan.io", "/jpm/v2/jobs/")));
        assert!(!covers(&s, &rule("api.servicetitan.io", "/")));
        assert!(allows(&s, "api.servicetitan.io", "/jpm/v2/jobs"));
        assert!(!allows(&s, "api.servicetitan.io", "/settings"));
        assert!(!allows(&s, "other.example.com", "/jpm/v2/jobs"));
    }

    #[test]
    fn the_refusal_names_the_setting_to_change() {
        let e = refusal(
            &spec(&["api.books.com"], &[]),
            &rule("evil.example.com", "/"),
        );
        assert!(
            e.contains("[credentials.books]") && e.contains("hosts"),
            "{e}"
        );
    }
}
