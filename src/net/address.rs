//! Which IP addresses an outbound fetch may connect to (the SSRF guard).
//!
//! A keyId is chosen by whoever sends us a request, and a list host can redirect anywhere, so
//! without this check anyone could make the proxy GET URLs on the operator's own network
//! (metadata services, admin ports, Mastodon itself). Only globally routable unicast
//! addresses pass.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether a fetch must not connect to `ip` (unless `allow_private_addresses` is set).
///
/// Refused: unspecified, loopback, private (RFC 1918), shared/CGNAT (100.64/10), link-local,
/// multicast, broadcast, reserved (240/4), IETF protocol assignments (192.0.0/24),
/// documentation and benchmarking ranges; for IPv6 also ULA (fc00::/7), site-local
/// (fec0::/10), discard (100::/64), Teredo (2001::/32), and any IPv6 form that embeds an IPv4
/// address (mapped, compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) whose IPv4 address is
/// refused.
pub(crate) fn is_forbidden_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0 // "this network", including 0.0.0.0
        || a == 10
        || a == 127
        || (a == 100 && (64..=127).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 224 // multicast 224/4, reserved 240/4, broadcast
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return is_forbidden_v4(v4);
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: tunnels to an address we cannot check
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only
}

/// The IPv4 address inside an IPv6 address that carries one, so `::ffff:127.0.0.1` and
/// friends cannot dodge the IPv4 rules.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..5] == [0; 5] && s[5] == 0xffff {
        return Some(low); // IPv4-mapped ::ffff:a.b.c.d
    }
    if s[..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback() {
        return Some(low); // IPv4-compatible ::a.b.c.d (deprecated)
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return Some(low); // NAT64 well-known prefix
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        )); // 6to4
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_table() {
        let table: &[(&str, bool)] = &[
            // Public addresses pass.
            ("93.184.215.14", false),
            ("1.1.1.1", false),
            ("8.8.8.8", false),
            ("100.63.255.255", false),
            ("100.128.0.0", false),
            ("172.15.255.255", false),
            ("172.32.0.0", false),
            ("192.0.1.1", false),
            ("198.17.255.255", false),
            ("223.255.255.255", false),
            ("2606:4700:4700::1111", false),
            ("2a00:1450:4001:80b::200e", false),
            ("::ffff:8.8.8.8", false),
            ("64:ff9b::808:808", false),
            ("2002:808:808::1", false),
            // IPv4 refusals.
            ("0.0.0.0", true),
            ("0.1.2.3", true),
            ("127.0.0.1", true),
            ("127.255.255.254", true),
            ("10.0.0.1", true),
            ("10.255.255.255", true),
            ("172.16.0.1", true),
            ("172.31.255.255", true),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("100.127.255.255", true),
            ("192.0.0.8", true),
            ("192.0.2.1", true),
            ("198.51.100.7", true),
            ("203.0.113.9", true),
            ("198.18.0.1", true),
            ("198.19.255.255", true),
            ("224.0.0.1", true),
            ("239.255.255.250", true),
            ("240.0.0.1", true),
            ("255.255.255.255", true),
            // IPv6 refusals.
            ("::", true),
            ("::1", true),
            ("fc00::1", true),
            ("fd12:3456:789a::1", true),
            ("fe80::1", true),
            ("febf::1", true),
            ("fec0::1", true),
            ("ff02::1", true),
            ("2001:db8::1", true),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", true),
            ("100::1", true),
            // IPv6 forms of refused IPv4 addresses.
            ("::ffff:127.0.0.1", true),
            ("::ffff:10.0.0.1", true),
            ("::ffff:169.254.169.254", true),
            ("::127.0.0.1", true),
            ("::192.168.0.1", true),
            ("64:ff9b::7f00:1", true),
            ("64:ff9b::a9fe:a9fe", true),
            ("2002:7f00:1::1", true),
            ("2002:c0a8:101::1", true),
        ];
        for (text, forbidden) in table {
            let ip: IpAddr = text.parse().expect(text);
            assert_eq!(is_forbidden_address(ip), *forbidden, "{text}");
        }
    }
}
