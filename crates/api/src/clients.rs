//! Who a client is, and what it holds open. A client address is an IPv4 address, or an IPv6
//! /64 (one host is usually given a whole /64, so counting /128s would give one client
//! unlimited identities); the rate limiter and the connection cap count by it. [`Slots`] counts
//! what a key holds open (connections per client address, event streams per tenant) against a
//! cap, and frees a slot when its guard is dropped.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

/// The address `ip` is counted by: IPv4 as is (an IPv4-mapped IPv6 address is the IPv4
/// client it maps), IPv6 cut to its /64.
pub fn client_addr(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & (u128::MAX << 64);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Open things per key, at most `limit` each. Memory: one entry per key holding at least one.
pub struct Slots<K: Hash + Eq + Clone> {
    limit: usize,
    open: Mutex<HashMap<K, usize>>,
}

/// One held slot; dropping it frees the slot.
pub struct Slot<K: Hash + Eq + Clone> {
    slots: Arc<Slots<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Slots<K> {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A slot for `key`, or `None` when it already holds `limit`.
    pub fn try_take(self: &Arc<Self>, key: K) -> Option<Slot<K>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let held = open.entry(key.clone()).or_insert(0);
        if *held >= self.limit {
            return None;
        }
        *held += 1;
        Some(Slot {
            slots: Arc::clone(self),
            key,
        })
    }

    /// Slots `key` holds now.
    #[cfg(test)]
    pub fn held(&self, key: &K) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(key).copied().unwrap_or(0)
    }
}

impl<K: Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = open.get_mut(&self.key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Two addresses of one /64 are one client; the neighbouring /64 is another; IPv4 keeps
    /// every address apart, and an IPv4-mapped IPv6 address is its IPv4 client.
    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a = client_addr(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"));
        assert_eq!(a, client_addr(ip("2001:db8:1:2::1")));
        assert_eq!(a, ip("2001:db8:1:2::"));
        assert_ne!(a, client_addr(ip("2001:db8:1:3::1")));
        assert_ne!(a, client_addr(ip("2001:db8:1:1:ffff:ffff:ffff:ffff")));
        assert_eq!(client_addr(ip("::1")), ip("::"));
        assert_ne!(
            client_addr(ip("192.0.2.7")),
            client_addr(ip("192.0.2.8")),
            "IPv4 addresses are clients of their own"
        );
        assert_eq!(client_addr(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    /// A key gets `limit` slots and no more; dropping one frees it; keys do not share, and a
    /// key holding nothing takes no memory.
    #[test]
    fn slots_are_capped_per_key_and_freed_on_drop() {
        let slots = Slots::<&str>::new(2);
        let a1 = slots.try_take("a").unwrap();
        let _a2 = slots.try_take("a").unwrap();
        assert!(slots.try_take("a").is_none());
        let b = slots.try_take("b").unwrap();
        drop(a1);
        assert_eq!(slots.held(&"a"), 1);
        assert!(slots.try_take("a").is_some());
        drop(b);
        assert_eq!(slots.held(&"b"), 0);
        assert!(!slots.open.lock().unwrap().contains_key("b"));
    }
}
