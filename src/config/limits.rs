//! `[limits]`: how much an anonymous caller may ask of the service, and
//! which proxies may say who the caller is.

use std::net::IpAddr;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::env::{Env, parse_env};

#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Anonymous requests per client address and minute (0: no limit).
    pub anonymous_per_minute: u32,
    /// How many of those may come at once before the limit applies.
    pub anonymous_burst: u32,
    /// Anonymous requests served at the same time, whoever sends them; the
    /// rest of the pool is kept for signed-in callers (0: half the pool).
    pub anonymous_concurrency: u32,
    /// Proxies whose `X-Forwarded-For` names the client (addresses or
    /// CIDR blocks). Without one, the client is the connection's peer.
    pub trusted_proxies: Vec<Cidr>,
    /// Failed credentials (bad tokens, bad API keys) per client and minute
    /// before the client's next ones are refused unchecked (0: no limit).
    pub auth_failures_per_minute: u32,
    /// How many may fail at once before that limit applies.
    pub auth_failure_burst: u32,
}

/// An address block, `10.0.0.0/8` or a single address (ipnet's `IpNet`;
/// an IPv4-mapped IPv6 address is compared as the IPv4 address it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(ipnet::IpNet);

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl std::str::FromStr for Cidr {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let t = s.trim();
        let net = match t.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            Err(_) if !t.contains('/') => ipnet::IpNet::from(
                t.parse::<IpAddr>()
                    .with_context(|| format!("{s:?} is not an address or CIDR block"))?
                    .to_canonical(),
            ),
            Err(_) => bail!(
                "{s:?} is not a CIDR block (an address, then a prefix length of 0-32 for IPv4 or \
                 0-128 for IPv6)"
            ),
        };
        Ok(Cidr(net))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    anonymous_per_minute: Option<u32>,
    anonymous_burst: Option<u32>,
    anonymous_concurrency: Option<u32>,
    trusted_proxies: Option<Vec<String>>,
    auth_failures_per_minute: Option<u32>,
    auth_failure_burst: Option<u32>,
}

impl LimitSettings {
    pub(super) fn build(file: FileLimits, env: &dyn Env) -> anyhow::Result<Self> {
        let per_minute = parse_env(env, "PHI_ANONYMOUS_PER_MINUTE")?
            .or(file.anonymous_per_minute)
            .unwrap_or(600);
        let burst = parse_env(env, "PHI_ANONYMOUS_BURST")?
            .or(file.anonymous_burst)
            .unwrap_or(60);
        if per_minute > 0 && burst == 0 {
            bail!("PHI_ANONYMOUS_BURST must be at least 1 when anonymous requests are limited");
        }
        let proxies: Vec<String> = match env.var("PHI_TRUSTED_PROXIES") {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            None => file.trusted_proxies.unwrap_or_default(),
        };
        Ok(LimitSettings {
            anonymous_per_minute: per_minute,
            anonymous_burst: burst,
            anonymous_concurrency: parse_env(env, "PHI_ANONYMOUS_CONCURRENCY")?
                .or(file.anonymous_concurrency)
                .unwrap_or(0),
            trusted_proxies: proxies
                .iter()
                .map(|p| p.parse().context("PHI_TRUSTED_PROXIES"))
                .collect::<anyhow::Result<_>>()?,
            auth_failures_per_minute: parse_env(env, "PHI_AUTH_FAILURES_PER_MINUTE")?
                .or(file.auth_failures_per_minute)
                .unwrap_or(30),
            auth_failure_burst: parse_env(env, "PHI_AUTH_FAILURE_BURST")?
                .or(file.auth_failure_burst)
                .unwrap_or(30)
                .max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hold_what_they_say() {
        let b: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(b.contains("10.1.200.3".parse().unwrap()));
        assert!(!b.contains("10.2.0.1".parse().unwrap()));
        assert!(b.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one: Cidr = "192.168.1.7".parse().unwrap();
        assert!(one.contains("192.168.1.7".parse().unwrap()));
        assert!(!one.contains("192.168.1.8".parse().unwrap()));
        let odd: Cidr = "172.16.0.0/12".parse().unwrap();
        assert!(odd.contains("172.31.255.255".parse().unwrap()));
        assert!(!odd.contains("172.32.0.0".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "example.org", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
