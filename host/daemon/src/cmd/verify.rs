//! `fieldhook verify`: the signature debugger. Runs one captured request
//! through a vendor verifier and prints, step by step, what was checked and
//! why it was accepted or rejected.
//!
//! Exit status: 0 accepted (events or a handshake), 1 rejected, 2 the
//! invocation or the configuration is wrong.

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args};
use fieldhook::config::Config;
use fieldhook_core::secret::SecretSource;
use fieldhook_vendors::{self as vendors, Inbound, Report, Secret};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Arguments of `fieldhook verify`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("verifier").required(true).args(["vendor", "config"])))]
pub struct VerifyArgs {
    /// Vendor to verify as (`jobber`, `housecall-pro`, `standard-webhooks`, ...).
    #[arg(long, conflicts_with = "config")]
    vendor: Option<String>,
    /// Secret: signing key, URL token, `user:password` or API key, as the
    /// vendor's page in docs/vendors/ describes. Give it twice to try a
    /// current and a previous secret. Visible in `ps` and shell history:
    /// prefer --secret-file on shared machines.
    #[arg(long, requires = "vendor")]
    secret: Vec<String>,
    /// File holding a secret (trailing newline ignored); may be repeated.
    #[arg(long, requires = "vendor")]
    secret_file: Vec<PathBuf>,
    /// Vendor option as in the source's TOML block, `key=value`; the value
    /// is read as TOML when it parses (`tolerance_secs=0`,
    /// `headers=["X-Sig"]`) and as a string otherwise (`encoding=base64`).
    #[arg(long = "option", value_name = "KEY=VALUE", requires = "vendor")]
    options: Vec<String>,
    /// Use a source of a daemon configuration instead of --vendor/--secret.
    #[arg(long, requires = "source")]
    config: Option<PathBuf>,
    /// Name of the configured source (with --config).
    #[arg(long, requires = "config")]
    source: Option<String>,
    /// A request header, `Name: value`; repeat for each header (a name
    /// given twice is sent twice).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// File holding the raw body, byte for byte (`-` reads stdin).
    #[arg(long)]
    body_file: PathBuf,
    /// Judge timestamps as if now were this Unix time (seconds), e.g. when
    /// the request was captured. Default: the real clock.
    #[arg(long, value_name = "UNIX_SECONDS", allow_negative_numbers = true)]
    at: Option<i64>,
    /// The `{token}` of `/hooks/{source}/{token}` (ServiceM8, ServiceTrade).
    #[arg(long)]
    token: Option<String>,
    /// Address the request came from, for sources with `allowed_ips`.
    #[arg(long)]
    peer: Option<IpAddr>,
}

/// Runs the debugger; returns the process exit status.
pub fn verify(args: VerifyArgs) -> i32 {
    match run(&args) {
        Ok(report) => {
            print!("{report}");
            match (report.status, report.accepted) {
                (None, _) => 2,
                (Some(_), true) => 0,
                (Some(_), false) => 1,
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

fn run(args: &VerifyArgs) -> anyhow::Result<Report> {
    let headers = parse_headers(&args.headers)?;
    let body = read_body(&args.body_file)?;
    let req = Inbound {
        headers: &headers,
        body: &body,
        path_token: args.token.as_deref(),
        now: args.at.unwrap_or_else(Inbound::now_unix),
        peer: args.peer,
    };
    match (&args.vendor, &args.config, &args.source) {
        (Some(vendor), _, _) => {
            let mut secrets: Vec<Secret> = args
                .secret
                .iter()
                .map(|s| Secret::new(s.as_bytes().to_vec()))
                .collect();
            for path in &args.secret_file {
                secrets.push(read_secret(path)?);
            }
            if secrets.is_empty() {
                bail!(
                    "give the secret with --secret or --secret-file (twice to try a previous secret as well)"
                );
            }
            let options = parse_options(&args.options)?;
            let built = vendors::build(vendor, secrets, options)?;
            Ok(vendors::explain_with(built.as_ref(), &req))
        }
        (None, Some(config_path), Some(source)) => {
            let config = Config::load(config_path)?;
            let Some(src) = config.source(source) else {
                let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
                bail!(
                    "no source named `{source}` in {}; configured sources: {}",
                    config_path.display(),
                    if known.is_empty() {
                        "(none)".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
            };
            Ok(vendors::explain_with(src.vendor.as_ref(), &req))
        }
        _ => bail!("give either --vendor (with --secret) or --config with --source"),
    }
}

/// `Name: value` lines into headers, in order, repeated names kept.
fn parse_headers(lines: &[String]) -> anyhow::Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            bail!("--header `{line}`: expected `Name: value`");
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes()).with_context(|| {
            format!("--header `{line}`: `{}` is not a header name", name.trim())
        })?;
        let value = HeaderValue::from_str(value.trim())
            .with_context(|| format!("--header `{line}`: the value is not a valid header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// `key=value` options into the TOML table a source block would hold.
fn parse_options(pairs: &[String]) -> anyhow::Result<toml::Table> {
    let mut table = toml::Table::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--option `{pair}`: expected `key=value`");
        };
        let key = key.trim();
        if key.is_empty() {
            bail!("--option `{pair}`: the key is empty");
        }
        // A TOML value when it is one (numbers, booleans, arrays, quoted
        // strings), otherwise the text itself.
        let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_owned()));
        if table.insert(key.to_owned(), value).is_some() {
            bail!("--option `{key}` given twice");
        }
    }
    Ok(table)
}

fn read_body(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut body = Vec::new();
        std::io::stdin()
            .read_to_end(&mut body)
            .context("cannot read the body from stdin")?;
        return Ok(body);
    }
    std::fs::read(path).with_context(|| format!("cannot read --body-file {}", path.display()))
}

fn read_secret(path: &Path) -> anyhow::Result<Secret> {
    SecretSource::File(path.to_owned())
        .load(Path::new(""))
        .context("--secret-file")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_keep_order_and_repeats_and_trim_the_value() {
        let map =
            parse_headers(&["X-A: 1".into(), "x-a:2".into(), "B:  c: d ".into()]).expect("valid");
        let a: Vec<_> = map.get_all("x-a").iter().collect();
        assert_eq!(a, ["1", "2"]);
        assert_eq!(map["b"], "c: d");
        assert!(parse_headers(&["no colon".into()]).is_err());
        assert!(parse_headers(&["bad name: x".into()]).is_err());
    }

    #[test]
    fn option_values_are_toml_when_they_parse_and_text_otherwise() {
        let t = parse_options(&[
            "tolerance_secs=0".into(),
            "headers=[\"X-Sig\"]".into(),
            "encoding=base64".into(),
            "prefix=sha256=".into(),
        ])
        .expect("valid");
        assert_eq!(t["tolerance_secs"], toml::Value::Integer(0));
        assert_eq!(t["headers"], toml::Value::Array(vec!["X-Sig".into()]));
        assert_eq!(t["encoding"], toml::Value::String("base64".into()));
        assert_eq!(t["prefix"], toml::Value::String("sha256=".into()));
        assert!(parse_options(&["x".into()]).is_err());
        assert!(parse_options(&["a=1".into(), "a=2".into()]).is_err());
    }
}
