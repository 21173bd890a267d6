//! Networks no outbound connection may reach (`[outbound_networking] block_networks` in the
//! runtime configuration): CIDR ranges and `private`, matched against resolved addresses.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockedNetwork {
    /// Loopback, link-local, RFC 1918, shared (CGNAT), unspecified and unique-local
    /// addresses, IPv4-mapped IPv6 forms included.
    Private,
    Range(IpNet),
}

impl BlockedNetwork {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "private" {
            return Ok(BlockedNetwork::Private);
        }
        let range = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| {
                format!(
                    "{text:?} is not a network: expected a CIDR range such as \"10.0.0.0/8\" or \"fd00::/8\", an address, or \"private\""
                )
            })?;
        Ok(BlockedNetwork::Range(range.trunc()))
    }

    /// Whether `ip` (or, for an IPv4-mapped IPv6 address, the IPv4 address inside) is in
    /// this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let unmapped = unmap(ip);
        match self {
            BlockedNetwork::Private => is_private(unmapped),
            BlockedNetwork::Range(range) => range.contains(&ip) || range.contains(&unmapped),
        }
    }

    /// The rule as written in the configuration.
    pub fn rule(&self) -> String {
        match self {
            BlockedNetwork::Private => "private".into(),
            BlockedNetwork::Range(range) => range.to_string(),
        }
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        // IPv4-compatible (deprecated) forms of private IPv4 addresses.
        || (ip.segments()[..6] == [0; 6] && is_private_v4(Ipv4Addr::from_bits(ip.to_bits() as u32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(rule: &str, ip: &str) -> bool {
        BlockedNetwork::parse(rule)
            .unwrap()
            .contains(ip.parse().unwrap())
    }

    #[test]
    fn private_covers_every_local_network_in_both_families() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(blocked("private", ip), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(!blocked("private", ip), "{ip}");
        }
    }

    #[test]
    fn ranges_match_mapped_addresses_too() {
        assert!(blocked("127.0.0.0/8", "127.0.0.2"));
        assert!(blocked("127.0.0.0/8", "::ffff:127.0.0.2"));
        assert!(blocked("1.2.3.4", "1.2.3.4"));
        assert!(!blocked("1.2.3.4", "1.2.3.5"));
        assert!(blocked("10.1.2.3/8", "10.200.0.1"), "host bits are ignored");
        assert!(BlockedNetwork::parse("10.0.0.0/33").is_err());
        assert!(BlockedNetwork::parse("intranet").is_err());
    }
}
