//! Source IP allowlists (`allowed_ips = ["203.0.113.0/24", "2001:db8::1"]`)
//! for the vendors that authenticate by URL token (ServiceM8, ServiceTrade).
//!
//! A second factor next to the token: a leaked URL alone is not enough.
//! The address checked is the TCP peer of the connection. Behind a reverse
//! proxy that is the proxy, so put the allowlist on the proxy instead.

use std::net::IpAddr;

use super::signature::shorten;
use super::{Rejection, Trace, VendorConfigError};

/// One network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `a.b.c.d`, `a.b.c.d/n`, `x::y`, `x::y/n`. An address without a
    /// prefix is one host. Host bits set under the prefix are refused:
    /// `10.0.0.1/8` is almost always a typo for `10.0.0.1/32` or `10.0.0.0/8`.
    fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR network"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: prefix length must be 0 to {max}"))?,
        };
        let cidr = Cidr { network, prefix };
        if mask(network, prefix) != bits(network) {
            return Err(format!(
                "`{text}` has host bits set under /{prefix}; write the network address"
            ));
        }
        Ok(cidr)
    }

    fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address on a
        // dual-stack listener: compare it as IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == bits(self.network)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn mask(ip: IpAddr, prefix: u8) -> u128 {
    let width: u32 = if ip.is_ipv4() { 32 } else { 128 };
    let keep = u32::from(prefix).min(width);
    if keep == 0 {
        return 0;
    }
    let host = width - keep;
    // Shifting a u128 by 128 overflows: host < 128 here since keep >= 1.
    bits(ip) & (u128::MAX << host)
}

/// The networks a source accepts requests from; empty means any.
#[derive(Debug, Clone, Default)]
pub(super) struct Allowlist {
    networks: Vec<Cidr>,
}

impl Allowlist {
    /// Parse the `allowed_ips` option of `vendor`.
    pub(super) fn parse(
        vendor: &'static str,
        entries: &[String],
    ) -> Result<Self, VendorConfigError> {
        let networks = entries
            .iter()
            .map(|e| Cidr::parse(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| super::invalid(vendor, format!("allowed_ips: {why}")))?;
        Ok(Allowlist { networks })
    }

    /// Refuse a peer outside the list (and an unknown peer, when a list is
    /// set); accept anything when no list is set.
    pub(super) fn check(&self, peer: Option<IpAddr>, trace: &mut Trace) -> Result<(), Rejection> {
        if self.networks.is_empty() {
            return Ok(());
        }
        let Some(ip) = peer else {
            trace.note(|| {
                "allowed_ips is set but the peer address is unknown (pass --peer to `fieldhook verify`)"
                    .to_owned()
            });
            return Err(Rejection::PeerNotAllowed("unknown address".to_owned()));
        };
        if self.networks.iter().any(|n| n.contains(ip)) {
            trace.note(|| format!("peer {ip} is inside allowed_ips"));
            Ok(())
        } else {
            trace.note(|| {
                format!(
                    "peer {ip} is outside allowed_ips ({} network(s))",
                    self.networks.len()
                )
            });
            Err(Rejection::PeerNotAllowed(shorten(&ip.to_string(), 60)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Allowlist {
        let owned: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        Allowlist::parse("servicem8", &owned).expect("valid allowlist")
    }

    fn allows(list: &Allowlist, ip: &str) -> bool {
        list.check(Some(ip.parse().expect("test ip")), &mut Trace::off())
            .is_ok()
    }

    #[test]
    fn an_empty_list_accepts_everyone_even_an_unknown_peer() {
        let l = list(&[]);
        assert!(allows(&l, "198.51.100.7"));
        assert!(l.check(None, &mut Trace::off()).is_ok());
    }

    #[test]
    fn networks_and_single_hosts_match_by_prefix() {
        let l = list(&["203.0.113.0/24", "198.51.100.7", "2001:db8::/32"]);
        assert!(allows(&l, "203.0.113.1"));
        assert!(allows(&l, "203.0.113.255"));
        assert!(!allows(&l, "203.0.114.0"));
        assert!(allows(&l, "198.51.100.7"));
        assert!(!allows(&l, "198.51.100.8"));
        assert!(allows(&l, "2001:db8:ffff::1"));
        assert!(!allows(&l, "2001:db9::1"));
    }

    #[test]
    fn an_ipv4_mapped_ipv6_peer_is_compared_as_ipv4() {
        let l = list(&["127.0.0.0/8"]);
        assert!(allows(&l, "::ffff:127.0.0.1"));
        assert!(!allows(&l, "::1"));
    }

    #[test]
    fn zero_prefix_allows_the_whole_family_only() {
        let l = list(&["0.0.0.0/0"]);
        assert!(allows(&l, "8.8.8.8"));
        assert!(!allows(&l, "2001:db8::1"));
    }

    #[test]
    fn an_unknown_peer_is_refused_when_a_list_is_set() {
        let l = list(&["127.0.0.1"]);
        assert!(matches!(
            l.check(None, &mut Trace::off()),
            Err(Rejection::PeerNotAllowed(_))
        ));
    }

    #[test]
    fn typos_are_configuration_errors_that_name_the_entry() {
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "example.com",
            "10.0.0.0/x",
            "::1/129",
        ] {
            let err = Allowlist::parse("servicem8", &[bad.to_owned()]).expect_err(bad);
            let text = err.to_string();
            assert!(text.contains("allowed_ips") && text.contains(bad), "{text}");
        }
    }
}
