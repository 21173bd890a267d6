//! Networks no outbound connection may reach (`[outbound_networking] block_networks` in the
//! runtime configuration): CIDR ranges and `private`, matched against resolved addresses.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockedNetwork {
    /// Loopback, link-local, RFC 1918, shared (CGNAT), special-purpose, benchmarking,
    /// reserved, multicast, unspecified, unique-local and site-local addresses, including
    /// IPv4 addresses carried inside IPv6 ones.
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

    /// Whether `ip`, or an IPv4 address it carries (IPv4-mapped, IPv4-compatible, NAT64,
    /// 6to4), is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let carried = carried_ipv4(ip).map(IpAddr::V4);
        let matches = |ip: IpAddr| match self {
            BlockedNetwork::Private => is_private(ip),
            BlockedNetwork::Range(range) => range.contains(&ip),
        };
        matches(ip) || carried.is_some_and(matches)
    }

    /// The rule as written in the configuration.
    pub fn rule(&self) -> String {
        match self {
            BlockedNetwork::Private => "private".into(),
            BlockedNetwork::Range(range) => range.to_string(),
        }
    }
}

/// The IPv4 address an IPv6 address stands for, where its form says it carries one:
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and
/// `64:ff9b:1::/48`, 6to4 `2002:aabb:ccdd::`, and Teredo `2001::/32` (the client address,
/// stored inverted in the last 32 bits).
fn carried_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let segments = v6.segments();
    let last_32 = Ipv4Addr::from_bits(v6.to_bits() as u32);
    if let Some(mapped) = v6.to_ipv4_mapped() {
        return Some(mapped);
    }
    match segments {
        [0, 0, 0, 0, 0, 0, ..] if !v6.is_loopback() && !v6.is_unspecified() => Some(last_32),
        [0x64, 0xff9b, 0, 0, 0, 0, ..] | [0x64, 0xff9b, 1, ..] => Some(last_32),
        [0x2002, high, low, ..] => Some(Ipv4Addr::from_bits(
            (u32::from(high) << 16) | u32::from(low),
        )),
        [0x2001, 0, ..] => Some(Ipv4Addr::from_bits(!last_32.to_bits())),
        _ => None,
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
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
        assert!(
            blocked("10.0.0.0/8", "64:ff9b::a00:5"),
            "NAT64 carries 10.0.0.5"
        );
        assert!(
            blocked("10.0.0.0/8", "2002:a00:5::1"),
            "6to4 carries 10.0.0.5"
        );
        assert!(blocked("1.2.3.4", "1.2.3.4"));
        assert!(!blocked("1.2.3.4", "1.2.3.5"));
        assert!(blocked("10.1.2.3/8", "10.200.0.1"), "host bits are ignored");
        assert!(BlockedNetwork::parse("10.0.0.0/33").is_err());
        assert!(BlockedNetwork::parse("intranet").is_err());
    }
}
