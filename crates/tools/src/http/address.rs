//! Which IP addresses `http_fetch` may connect to: only public unicast. A pure check, separate
//! from resolution and connection, so it can be tested exhaustively without a network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The verdict on one address; the reason names the range for the refusal message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressVerdict {
    Allowed,
    Refused(&'static str),
}

/// Decides whether `http_fetch` may connect to an address. The default is [`PublicOnly`];
/// tests inject a policy that treats one loopback port as external.
pub trait AddressPolicy: Send + Sync {
    fn check(&self, addr: SocketAddr) -> AddressVerdict;
}

/// Allows only globally routable unicast addresses (see [`check_ip`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicOnly;

impl AddressPolicy for PublicOnly {
    fn check(&self, addr: SocketAddr) -> AddressVerdict {
        check_ip(addr.ip())
    }
}

/// The default rule: refuses loopback, private, link-local, shared (CGNAT), unspecified,
/// multicast, broadcast, reserved, documentation and benchmark ranges, cloud metadata
/// addresses, and IPv6 addresses embedding any of those (mapped, compatible, NAT64, 6to4).
#[must_use]
pub fn check_ip(ip: IpAddr) -> AddressVerdict {
    match ip {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => check_v6(v6),
    }
}

fn in_v4(ip: u32, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    ip & mask == u32::from_be_bytes(net) & mask
}

const V4_RANGES: &[([u8; 4], u32, &str)] = &[
    // Cloud metadata and host-agent endpoints come first, so a refusal names them. Two of
    // them are not in any private range: Azure's WireServer is public address space.
    ([169, 254, 169, 254], 32, "the cloud metadata address"),
    (
        [168, 63, 129, 16],
        32,
        "the Azure WireServer/host agent address",
    ),
    (
        [100, 100, 100, 200],
        32,
        "the Alibaba Cloud metadata address",
    ),
    ([192, 0, 0, 192], 32, "the Oracle Cloud metadata address"),
    (
        [169, 254, 170, 2],
        32,
        "the AWS container credentials address",
    ),
    (
        [0, 0, 0, 0],
        8,
        "the unspecified/\"this network\" range 0.0.0.0/8",
    ),
    ([10, 0, 0, 0], 8, "the private range 10.0.0.0/8"),
    (
        [100, 64, 0, 0],
        10,
        "the shared (CGNAT) range 100.64.0.0/10",
    ),
    ([127, 0, 0, 0], 8, "the loopback range 127.0.0.0/8"),
    ([169, 254, 0, 0], 16, "the link-local range 169.254.0.0/16"),
    ([172, 16, 0, 0], 12, "the private range 172.16.0.0/12"),
    ([192, 0, 0, 0], 24, "the IETF protocol range 192.0.0.0/24"),
    ([192, 0, 2, 0], 24, "the documentation range 192.0.2.0/24"),
    ([192, 88, 99, 0], 24, "the 6to4 relay range 192.88.99.0/24"),
    ([192, 168, 0, 0], 16, "the private range 192.168.0.0/16"),
    ([198, 18, 0, 0], 15, "the benchmarking range 198.18.0.0/15"),
    (
        [198, 51, 100, 0],
        24,
        "the documentation range 198.51.100.0/24",
    ),
    (
        [203, 0, 113, 0],
        24,
        "the documentation range 203.0.113.0/24",
    ),
    ([224, 0, 0, 0], 4, "the multicast range 224.0.0.0/4"),
    ([255, 255, 255, 255], 32, "the broadcast address"),
    ([240, 0, 0, 0], 4, "the reserved range 240.0.0.0/4"),
];

fn check_v4(ip: Ipv4Addr) -> AddressVerdict {
    let n = u32::from(ip);
    V4_RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(n, *net, *prefix))
        .map_or(AddressVerdict::Allowed, |(_, _, why)| {
            AddressVerdict::Refused(why)
        })
}

fn in_v6(ip: u128, net: u128, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    ip & mask == net & mask
}

const V6_RANGES: &[(u128, u32, &str)] = &[
    (
        0xfd00_0ec2_0000_0000_0000_0000_0000_0254,
        128,
        "the cloud metadata address",
    ),
    (
        0xfd20_00ce_0000_0000_0000_0000_0000_0254,
        128,
        "the Google Cloud metadata address",
    ),
    (
        0x2001_0db8 << 96,
        32,
        "the documentation range 2001:db8::/32",
    ),
    (0x3fff << 112, 20, "the documentation range 3fff::/20"),
    (0x2002 << 112, 16, "the 6to4 range 2002::/16 (embeds IPv4)"),
    (
        0x2001 << 112,
        23,
        "the IETF protocol range 2001::/23 (Teredo, benchmarking)",
    ),
    (0xfc00 << 112, 7, "the unique-local range fc00::/7"),
    (0xfe80 << 112, 10, "the link-local range fe80::/10"),
    (0xfec0 << 112, 10, "the site-local range fec0::/10"),
    (0xff00 << 112, 8, "the multicast range ff00::/8"),
    (
        0x0064_ff9b << 96,
        32,
        "the NAT64 range 64:ff9b::/32 (embeds IPv4)",
    ),
];

fn check_v6(ip: Ipv6Addr) -> AddressVerdict {
    if ip.is_unspecified() {
        return AddressVerdict::Refused("the unspecified address ::");
    }
    if ip.is_loopback() {
        return AddressVerdict::Refused("the loopback address ::1");
    }
    // Mapped (::ffff:a.b.c.d) and compatible (::a.b.c.d) addresses reach the IPv4 host.
    if let Some(v4) = ip.to_ipv4() {
        return match check_v4(v4) {
            AddressVerdict::Allowed => AddressVerdict::Refused("an IPv4-mapped/compatible address"),
            refused => refused,
        };
    }
    let n = u128::from(ip);
    if let Some((_, _, why)) = V6_RANGES.iter().find(|(net, p, _)| in_v6(n, *net, *p)) {
        return AddressVerdict::Refused(why);
    }
    // Only 2000::/3 is allocated for global unicast; everything else is reserved.
    if in_v6(n, 0x2000 << 112, 3) {
        AddressVerdict::Allowed
    } else {
        AddressVerdict::Refused("outside the global unicast range 2000::/3")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        let ip: IpAddr = s.parse().expect(s);
        matches!(check_ip(ip), AddressVerdict::Refused(_))
    }

    /// Each row is a range an attacker would aim a fetch at; one address per edge.
    #[test]
    fn refuses_every_non_public_range() {
        for s in [
            "127.0.0.1",
            "127.255.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "192.168.255.255",
            "169.254.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "100.100.100.200",
            "192.0.0.192",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::ffff:8.8.8.8",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd00::1",
            "fd00:ec2::254",
            "ff02::1",
            "2001:db8::1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "2001::1",
            "fec0::1",
            "100::1",
            "3fff::1",
        ] {
            assert!(refused(s), "{s} must be refused");
        }
    }

    /// The edges just outside the private ranges are public and must stay reachable.
    #[test]
    fn allows_public_unicast_including_range_edges() {
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
        ] {
            assert!(!refused(s), "{s} must be allowed");
        }
    }

    #[test]
    fn metadata_refusal_names_it() {
        assert_eq!(
            check_ip("169.254.169.254".parse().expect("ip")),
            AddressVerdict::Refused("the cloud metadata address")
        );
    }

    /// Every cloud's metadata or host-agent endpoint is refused and named, including those
    /// outside the private ranges (Azure's WireServer is public address space); the public
    /// neighbours of the WireServer stay reachable.
    #[test]
    fn cloud_metadata_and_host_agent_addresses_are_refused() {
        for (s, named) in [
            ("169.254.169.254", "cloud metadata"),
            ("168.63.129.16", "Azure WireServer"),
            ("100.100.100.200", "Alibaba Cloud metadata"),
            ("192.0.0.192", "Oracle Cloud metadata"),
            ("169.254.170.2", "AWS container credentials"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fd20:ce::254", "Google Cloud metadata"),
            ("::ffff:168.63.129.16", "Azure WireServer"),
        ] {
            let AddressVerdict::Refused(why) = check_ip(s.parse().expect(s)) else {
                panic!("{s} must be refused");
            };
            assert!(why.contains(named), "{s}: {why}");
        }
        for s in ["168.63.129.15", "168.63.129.17"] {
            assert!(!refused(s), "{s} is an ordinary public address");
        }
    }
}
