//! Which outbound requests a plugin may make: the manifest's `[[http]]`
//! rules, deny by default.
//!
//! ```toml
//! [[http]]
//! scheme = "https"                 # default "https"
//! host = "api.servicetitan.io"     # exact, or "*.servicem8.com" for sub-domains
//! port = 443                       # default: the scheme's
//! methods = ["GET", "POST"]        # default ["GET"]
//! path = "/jpm/v2/"                # prefix, default "/"
//! credential = "servicetitan"      # optional: the host adds this credential
//! ```
//!
//! Private, loopback, link-local and other non-public addresses are refused,
//! also when a public name resolves to one, unless the matching rule names
//! that host (not a `*.` pattern) or that IP literally. Paths are checked in
//! their [canonical form](crate::path), and URLs with user info
//! (`https://user:pw@host/`) are refused: the user info would become an
//! `Authorization` header the plugin is not allowed to set.
//!
//! Free of wasmtime and of I/O, so every rule is unit-tested.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

/// One grant of outbound HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRule {
    /// `https` or `http`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Exact host name or IP, or `*.suffix` for any sub-domain of `suffix`.
    pub host: String,
    /// Port; the scheme's default when absent.
    #[serde(default)]
    pub port: Option<u16>,
    /// Allowed methods, upper case.
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// Path prefix.
    #[serde(default = "default_path")]
    pub path: String,
    /// Name of a daemon credential the host adds to matching requests.
    #[serde(default)]
    pub credential: Option<String>,
}

fn default_scheme() -> String {
    "https".into()
}
fn default_methods() -> Vec<String> {
    vec!["GET".into()]
}
fn default_path() -> String {
    "/".into()
}

/// Where a request goes, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Method, upper case.
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Host, lower case, IPv6 without brackets.
    pub host: String,
    /// Port (explicit or the scheme's default).
    pub port: u16,
    /// Path, `/` at least.
    pub path: String,
}

/// A refused request, with the manifest lines that would allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No rule covers the request.
    #[error(
        "outbound HTTP denied: {method} {scheme}://{host}:{port}{path} is not granted to this \
         plugin; to allow it, add to its plugin.toml:\n{suggestion}"
    )]
    NotGranted {
        /// Method.
        method: String,
        /// Scheme.
        scheme: String,
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Path.
        path: String,
        /// The TOML to add.
        suggestion: String,
    },
    /// The destination is (or resolves to) a non-public address and no rule
    /// names it explicitly.
    #[error(
        "outbound HTTP denied: {host} is {ip}, a private, loopback or link-local address; \
         only a rule naming it explicitly allows that. To allow it, add to its plugin.toml:\n{suggestion}"
    )]
    PrivateAddress {
        /// Host as requested.
        host: String,
        /// The address it is or resolves to.
        ip: IpAddr,
        /// The TOML to add.
        suggestion: String,
    },
    /// The URL cannot be policed (not absolute http/https, no host).
    #[error("outbound HTTP denied: `{0}` is not an absolute http or https URL")]
    BadUrl(String),
    /// The URL carries user info, which would become credentials.
    #[error(
        "outbound HTTP denied: `{0}` has user info (`user:password@`); name a credential in the \
         [[http]] rule and the host adds it"
    )]
    UserInfo(String),
    /// The path has no safe reading.
    #[error("outbound HTTP denied: {0}")]
    BadPath(#[from] crate::path::PathRefused),
}

/// A manifest's rules, checked in order; the first match wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    rules: Vec<HttpRule>,
}

/// A rule validation failure, naming the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("http rule {index} (host `{host}`): {message}")]
pub struct RuleError {
    /// 0-based position in `[[http]]`.
    pub index: usize,
    /// The rule's host.
    pub host: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// What the policy decided for an allowed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant<'a> {
    /// The rule that matched.
    pub rule: &'a HttpRule,
    /// Whether the rule names the host literally, which also allows
    /// non-public addresses.
    pub explicit: bool,
}

impl Allowlist {
    /// Validates and normalizes rules (lower-case hosts, upper-case methods).
    pub fn new(rules: Vec<HttpRule>) -> Result<Self, RuleError> {
        let mut out = Vec::with_capacity(rules.len());
        for (index, mut r) in rules.into_iter().enumerate() {
            let original = r.host.clone();
            let err = |message: String| RuleError {
                index,
                host: original.clone(),
                message,
            };
            r.scheme = r.scheme.to_ascii_lowercase();
            if r.scheme != "https" && r.scheme != "http" {
                return Err(err(format!(
                    "scheme `{}` must be \"https\" or \"http\"",
                    r.scheme
                )));
            }
            r.host = r
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            let bare = r.host.strip_prefix("*.").unwrap_or(&r.host);
            if bare.is_empty()
                || bare.contains('*')
                || bare.contains('/')
                || (bare.contains(':') && bare.parse::<Ipv6Addr>().is_err())
            {
                return Err(err(
                    "host must be a name (`api.example.com`), an IP, or `*.example.com`".into(),
                ));
            }
            if r.methods.is_empty() {
                return Err(err(
                    "methods is empty; list at least one, e.g. [\"GET\"]".into()
                ));
            }
            for m in &mut r.methods {
                *m = m.to_ascii_uppercase();
            }
            if !r.path.starts_with('/') {
                return Err(err(format!("path `{}` must start with `/`", r.path)));
            }
            out.push(r);
        }
        Ok(Self { rules: out })
    }

    /// The rules.
    pub fn rules(&self) -> &[HttpRule] {
        &self.rules
    }

    /// The rule allowing `target`, before any address is known.
    pub fn check(&self, target: &Target) -> Result<Grant<'_>, Denied> {
        let grant = self
            .rules
            .iter()
            .find(|r| rule_matches(r, target))
            .map(|rule| Grant {
                rule,
                explicit: !rule.host.starts_with("*."),
            })
            .ok_or_else(|| Denied::NotGranted {
                method: target.method.clone(),
                scheme: target.scheme.clone(),
                host: target.host.clone(),
                port: target.port,
                path: target.path.clone(),
                suggestion: suggestion(target),
            })?;
        // An IP literal is checked now; names are checked once resolved.
        if let Ok(ip) = target.host.parse::<IpAddr>() {
            check_address(&grant, target, ip)?;
        }
        Ok(grant)
    }
}

impl Allowlist {
    /// The position in `[[http]]` of the rule `grant` names (0-based), so
    /// tools can say which rule allowed a request.
    pub fn index_of(&self, grant: &Grant<'_>) -> Option<usize> {
        self.rules.iter().position(|r| std::ptr::eq(r, grant.rule))
    }

    /// The first rule reaching `target`'s scheme, host, port and path with
    /// any method: whether a configured endpoint is granted at all, before
    /// the plugin says which method it uses.
    pub fn reaches(&self, target: &Target) -> Option<usize> {
        self.rules.iter().position(|r| {
            let any_method = Target {
                method: r.methods.first().cloned().unwrap_or_default(),
                ..target.clone()
            };
            rule_matches(r, &any_method)
        })
    }
}

impl HttpRule {
    /// The rule as the `[[http]]` TOML block that declares it.
    pub fn to_toml(&self) -> String {
        let mut s = format!(
            "[[http]]\nscheme = \"{}\"\nhost = \"{}\"\n",
            self.scheme, self.host
        );
        if let Some(port) = self.port {
            s.push_str(&format!("port = {port}\n"));
        }
        let methods: Vec<String> = self.methods.iter().map(|m| format!("\"{m}\"")).collect();
        s.push_str(&format!(
            "methods = [{}]\npath = \"{}\"",
            methods.join(", "),
            self.path
        ));
        if let Some(c) = &self.credential {
            s.push_str(&format!("\ncredential = \"{c}\""));
        }
        s
    }
}

/// Checks one resolved address of an allowed request.
pub fn check_address(grant: &Grant<'_>, target: &Target, ip: IpAddr) -> Result<(), Denied> {
    if grant.explicit || is_public(ip) {
        return Ok(());
    }
    Err(Denied::PrivateAddress {
        host: target.host.clone(),
        ip,
        suggestion: suggestion(target),
    })
}

impl Target {
    /// Parses a method and absolute URL.
    pub fn parse(method: &str, url: &str) -> Result<Self, Denied> {
        let uri: http::Uri = url.parse().map_err(|_| Denied::BadUrl(url.into()))?;
        Self::from_uri(method, &uri)
    }

    /// From a method and a parsed URI: absolute http(s), no user info, the
    /// path in its canonical form.
    pub fn from_uri(method: &str, uri: &http::Uri) -> Result<Self, Denied> {
        let bad = || Denied::BadUrl(uri.to_string());
        let scheme = uri.scheme_str().ok_or_else(bad)?.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return Err(bad()),
        };
        let authority = uri.authority().ok_or_else(bad)?;
        if authority.as_str().contains('@') {
            return Err(Denied::UserInfo(uri.to_string()));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            method: method.to_ascii_uppercase(),
            scheme,
            host,
            port: uri.port_u16().unwrap_or(default_port),
            path: crate::path::canonical_path(uri.path())?,
        })
    }

    /// The URL to send: the checked scheme, host, port and canonical path,
    /// and `query` (the original's, if any).
    pub fn url(&self, query: Option<&str>) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mut url = format!("{}://{host}", self.scheme);
        if self.port != self.default_port() {
            url.push_str(&format!(":{}", self.port));
        }
        url.push_str(&self.path);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        url
    }

    /// The path and query to send: the canonical path and `query`.
    pub fn path_and_query(&self, query: Option<&str>) -> String {
        match query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    fn default_port(&self) -> u16 {
        if self.scheme == "https" { 443 } else { 80 }
    }

    /// The narrowest `[[http]]` rule that allows this request: its scheme,
    /// host, port, method and exact path.
    pub fn rule_to_add(&self) -> String {
        suggestion(self)
    }
}

fn rule_matches(r: &HttpRule, t: &Target) -> bool {
    let port = r.port.unwrap_or(if r.scheme == "https" { 443 } else { 80 });
    r.scheme == t.scheme
        && port == t.port
        && host_matches(&r.host, &t.host)
        && r.methods.iter().any(|m| *m == t.method || m == "*")
        && path_matches(&r.path, &t.path)
}

/// Whether `host` (lower case) is `pattern`, or under it when `pattern` is
/// `*.suffix`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        // `*.example.com` covers `a.example.com` and `a.b.example.com`,
        // not `example.com` itself nor `badexample.com`.
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        None => pattern == host,
    }
}

fn path_matches(prefix: &str, path: &str) -> bool {
    // `path` is canonical (no dot segments, no encoded separators): what
    // is checked here is what is sent.
    path.starts_with(prefix)
}

/// The `[[http]]` block that would allow `t`.
fn suggestion(t: &Target) -> String {
    let mut s = format!(
        "[[http]]\nscheme = \"{}\"\nhost = \"{}\"\n",
        t.scheme, t.host
    );
    if t.port != t.default_port() {
        s.push_str(&format!("port = {}\n", t.port));
    }
    s.push_str(&format!(
        "methods = [\"{}\"]\npath = \"{}\"",
        t.method, t.path
    ));
    s
}

/// Whether an address is on the public internet: not loopback, private,
/// link-local, shared, documentation, multicast, unspecified or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x0064 && seg[1] == 0xff9b) // NAT64 may reach anything
                || seg[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 shared (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240) // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml_text: &str) -> Allowlist {
        #[derive(Deserialize)]
        struct W {
            http: Vec<HttpRule>,
        }
        let w: W = toml::from_str(toml_text).expect("valid rules");
        Allowlist::new(w.http).expect("valid rules")
    }

    fn t(method: &str, url: &str) -> Target {
        Target::parse(method, url).expect("valid url")
    }

    const ST: &str = r#"
        [[http]]
        host = "api.servicetitan.io"
        methods = ["GET", "post"]
        path = "/jpm/v2/"
        credential = "servicetitan"
        [[http]]
        host = "*.servicem8.com"
    "#;

    #[test]
    fn nothing_is_allowed_without_a_rule() {
        let e = Allowlist::default()
            .check(&t("GET", "https://api.example.com/x"))
            .unwrap_err();
        assert!(matches!(e, Denied::NotGranted { .. }));
    }

    #[test]
    fn a_rule_matches_scheme_host_port_method_and_path_prefix() {
        let a = rules(ST);
        let g = a
            .check(&t("POST", "https://api.servicetitan.io/jpm/v2/jobs?x=1"))
            .unwrap();
        assert_eq!(g.rule.credential.as_deref(), Some("servicetitan"));
        assert!(
            a.check(&t("DELETE", "https://api.servicetitan.io/jpm/v2/jobs"))
                .is_err()
        );
        assert!(
            a.check(&t("GET", "http://api.servicetitan.io/jpm/v2/jobs"))
                .is_err()
        );
        assert!(
            a.check(&t("GET", "https://api.servicetitan.io:8443/jpm/v2/jobs"))
                .is_err()
        );
        assert!(
            a.check(&t("GET", "https://api.servicetitan.io/crm/v2/x"))
                .is_err()
        );
        assert!(
            a.check(&t("GET", "https://API.ServiceTitan.io:443/jpm/v2/x"))
                .is_ok()
        );
    }

    #[test]
    fn dot_segments_cannot_escape_the_path_prefix() {
        let a = rules(ST);
        for escape in [
            "https://api.servicetitan.io/jpm/v2/../../admin",
            "https://api.servicetitan.io/jpm/v2/.%2e/.%2e/admin",
            "https://api.servicetitan.io/jpm/v2/%2e./%2e./admin",
            "https://api.servicetitan.io/jpm/v2/%2E%2E/%2E%2E/admin",
        ] {
            let target = t("GET", escape);
            assert_eq!(target.path, "/admin", "{escape}");
            assert!(a.check(&target).is_err(), "{escape}");
        }
        // Staying inside is fine, and checked as it will be sent.
        let inside = t("GET", "https://api.servicetitan.io/jpm/v2/x/../jobs");
        assert_eq!(inside.path, "/jpm/v2/jobs");
        assert!(a.check(&inside).is_ok());
    }

    #[test]
    fn backslashes_and_encoded_slashes_are_refused_before_any_grant() {
        for url in [
            "https://api.servicetitan.io/jpm/v2/..\\..\\admin",
            "https://api.servicetitan.io/jpm/v2/..%2F..%2Fadmin",
            "https://api.servicetitan.io/jpm/v2/..%5c..%5cadmin",
        ] {
            let e = Target::parse("GET", url);
            assert!(
                matches!(e, Err(Denied::BadPath(_)) | Err(Denied::BadUrl(_))),
                "{url}: {e:?}"
            );
        }
    }

    #[test]
    fn a_url_with_user_info_is_refused() {
        let e = Target::parse("POST", "https://user:pw@api.servicetitan.io/jpm/v2/x").unwrap_err();
        assert!(matches!(e, Denied::UserInfo(_)), "{e:?}");
        assert!(e.to_string().contains("credential"), "{e}");
    }

    #[test]
    fn the_url_sent_is_the_one_checked() {
        let target = t("POST", "https://API.example.com:8443/a/./b/%2e%2e/c?x=1");
        assert_eq!(
            target.url(Some("x=1")),
            "https://api.example.com:8443/a/c?x=1"
        );
        let v6 = t("GET", "http://[::1]:80/");
        assert_eq!(v6.url(None), "http://[::1]/");
    }

    #[test]
    fn a_wildcard_covers_sub_domains_only() {
        let a = rules(ST);
        assert!(
            a.check(&t("GET", "https://api.servicem8.com/api_1.0/job.json"))
                .is_ok()
        );
        assert!(a.check(&t("GET", "https://a.b.servicem8.com/")).is_ok());
        assert!(a.check(&t("GET", "https://servicem8.com/")).is_err());
        assert!(a.check(&t("GET", "https://evilservicem8.com/")).is_err());
        assert!(
            a.check(&t("GET", "https://servicem8.com.evil.io/"))
                .is_err()
        );
    }

    #[test]
    fn a_denial_prints_the_rule_that_would_allow_it() {
        let e = Allowlist::default()
            .check(&t("POST", "http://127.0.0.1:9000/hook"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("POST http://127.0.0.1:9000/hook"), "{e}");
        assert!(
            e.contains("[[http]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = 9000\nmethods = [\"POST\"]\npath = \"/hook\""),
            "{e}"
        );
        // The suggestion is itself a valid rule that allows the request.
        let suggested = e.split_once("plugin.toml:\n").unwrap().1;
        assert!(
            rules(suggested)
                .check(&t("POST", "http://127.0.0.1:9000/hook"))
                .is_ok()
        );
    }

    #[test]
    fn loopback_and_private_addresses_need_a_rule_naming_them() {
        let wildcard_ip = rules("[[http]]\nscheme = \"http\"\nhost = \"*.internal.example\"\n");
        let target = t("GET", "http://db.internal.example/");
        let g = wildcard_ip.check(&target).unwrap();
        // A wildcard rule does not reach a private address the name resolves to.
        let e = check_address(&g, &target, "10.0.0.5".parse().unwrap()).unwrap_err();
        assert!(matches!(e, Denied::PrivateAddress { .. }), "{e}");
        assert!(check_address(&g, &target, "93.184.216.34".parse().unwrap()).is_ok());

        let named = rules("[[http]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = 9000\n");
        assert!(named.check(&t("GET", "http://127.0.0.1:9000/")).is_ok());
        let named_host = rules("[[http]]\nscheme = \"http\"\nhost = \"fake.test\"\n");
        let target = t("GET", "http://fake.test/");
        let g = named_host.check(&target).unwrap();
        assert!(check_address(&g, &target, "127.0.0.1".parse().unwrap()).is_ok());
    }

    #[test]
    fn non_public_ranges_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn invalid_rules_name_what_to_fix() {
        let bad = |r: &str| {
            #[derive(Deserialize)]
            struct W {
                http: Vec<HttpRule>,
            }
            let w: W = toml::from_str(r).unwrap();
            Allowlist::new(w.http).unwrap_err().to_string()
        };
        assert!(bad("[[http]]\nhost = \"x\"\nscheme = \"ftp\"\n").contains("scheme"));
        assert!(bad("[[http]]\nhost = \"a.*.com\"\n").contains("host"));
        assert!(bad("[[http]]\nhost = \"x\"\nmethods = []\n").contains("methods"));
        assert!(bad("[[http]]\nhost = \"x\"\npath = \"api\"\n").contains("path"));
    }

    #[test]
    fn tools_can_name_the_rule_that_allowed_a_request_and_whether_an_endpoint_is_reached() {
        let a = rules(ST);
        let target = t("POST", "https://api.servicetitan.io/jpm/v2/jobs");
        let grant = a.check(&target).unwrap();
        assert_eq!(a.index_of(&grant), Some(0));
        assert_eq!(
            grant.rule.to_toml(),
            "[[http]]\nscheme = \"https\"\nhost = \"api.servicetitan.io\"\nmethods = [\"GET\", \"POST\"]\npath = \"/jpm/v2/\"\ncredential = \"servicetitan\""
        );
        // A configured endpoint is reached whatever method the rule allows.
        assert_eq!(a.reaches(&t("GET", "https://x.servicem8.com/api")), Some(1));
        assert_eq!(a.reaches(&t("GET", "https://books.example.com/api")), None);
        assert_eq!(
            t("PUT", "http://books.example.com:8080/api/jobs").rule_to_add(),
            "[[http]]\nscheme = \"http\"\nhost = \"books.example.com\"\nport = 8080\nmethods = [\"PUT\"]\npath = \"/api/jobs\""
        );
    }
}
