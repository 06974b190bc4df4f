//! Who may talk to the line, and how many calls it takes: the first checks a
//! request meets, before any other processing (Kamailio's `permissions` and
//! `pike`, Asterisk's `acl` and call limits, in spirit).
//!
//! - **Trust.** With `[sip] trust` or `[trunk] trust`, only those networks
//!   are served (a proxy in front, a provider's servers); with a
//!   trunk and no `trust`, only the trunk's resolved address, unless
//!   `[trunk] accept_direct`; with neither, anyone (a line reached directly).
//!   What others get is `[trunk] untrusted`: one 403, or nothing at all.
//! - **Limits.** At most `max_calls` calls at once, and at most
//!   `max_setups_per_source` calls being set up (offered, not yet
//!   acknowledged) from one address, so a flood of INVITEs that never ACK
//!   cannot hold every RTP port; and new calls from one address at most
//!   `max_call_rate_per_source` a second (a token bucket, like Kamailio's
//!   `pike`), so a flood of calls that do complete cannot take the line or
//!   its log. Trusted and trunk addresses are exempt from both. Refusals are
//!   `503` with `Retry-After` (RFC 3261 §21.5.4), in O(1).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use crate::config::{IpNet, Untrusted};

/// Whose requests the line serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// No trunk, no trust list: the line is dialled directly.
    Anyone,
    /// `[sip] trust` and `[trunk] trust`.
    Networks(Vec<IpNet>),
    /// A trunk without `trust` or `accept_direct`: its own addresses only.
    TrunkOnly,
}

impl Policy {
    /// The policy a configuration asks for.
    pub fn from_settings(trust: Option<Vec<IpNet>>, has_trunk: bool, accept_direct: bool) -> Self {
        match trust {
            Some(nets) => Policy::Networks(nets),
            None if has_trunk && !accept_direct => Policy::TrunkOnly,
            None => Policy::Anyone,
        }
    }

    /// For the start log: who may call.
    pub fn describe(&self) -> String {
        match self {
            Policy::Anyone => "calls are taken from any address".to_owned(),
            Policy::Networks(nets) => format!(
                "calls are taken only from the trusted networks: {}",
                nets.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Policy::TrunkOnly => "calls are taken only from the trunk's address \
                 (set [trunk] trust to list the provider's servers, or \
                 accept_direct = true to take calls from anywhere)"
                .to_owned(),
        }
    }
}

/// Why a new call was refused with 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `[sip] max_calls` calls are up.
    Full,
    /// The source has `max_setups_per_source` calls being set up.
    SourceBusy,
    /// The source starts calls faster than `max_call_rate_per_source`.
    SourceTooFast,
    /// The line is stopping (SIGTERM): a proxy in front tries another.
    ShuttingDown,
}

impl Refusal {
    /// The kind for quiet logs and metrics.
    pub fn kind(self) -> &'static str {
        match self {
            Refusal::Full => "call refused: the line is full ([sip] max_calls)",
            Refusal::SourceBusy => {
                "call refused: too many calls being set up from one address ([sip] max_setups_per_source)"
            }
            Refusal::SourceTooFast => {
                "call refused: calls coming too fast from one address ([sip] max_call_rate_per_source)"
            }
            Refusal::ShuttingDown => "call refused: the line is shutting down",
        }
    }
}

/// The gate itself: policy, limits and the per-source setup counts.
#[derive(Debug)]
pub struct Admission {
    policy: Policy,
    untrusted: Untrusted,
    /// The trunk's resolved addresses (for `TrunkOnly` and the exemption).
    trunk: Vec<IpAddr>,
    max_calls: usize,
    max_setups_per_source: usize,
    /// Calls being set up, per source address.
    setups: HashMap<IpAddr, usize>,
    /// New calls a second from one address, and the burst allowed.
    rate: f64,
    burst: f64,
    /// Per address: tokens left, and when they were counted.
    buckets: HashMap<IpAddr, (f64, Instant)>,
    /// Set on SIGTERM: every new call is refused, the trunk's too.
    draining: bool,
}

/// Buckets kept before full ones are forgotten (bounds memory under a
/// forged-address flood; a full bucket is the same as none).
const MAX_BUCKETS: usize = 4096;

impl Admission {
    pub fn new(
        policy: Policy,
        untrusted: Untrusted,
        max_calls: usize,
        max_setups_per_source: usize,
        max_call_rate_per_source: f64,
    ) -> Self {
        let rate = max_call_rate_per_source.max(0.01);
        Admission {
            policy,
            untrusted,
            trunk: Vec::new(),
            max_calls: max_calls.max(1),
            max_setups_per_source: max_setups_per_source.max(1),
            setups: HashMap::new(),
            rate,
            // A few seconds' worth at once: a caller who redials, a small
            // office whose phones all ring the line after a service.
            burst: (rate * 2.0).max(3.0),
            buckets: HashMap::new(),
            draining: false,
        }
    }

    /// From now on every new call is refused (the line is stopping).
    pub fn start_draining(&mut self) {
        self.draining = true;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn untrusted(&self) -> Untrusted {
        self.untrusted
    }

    pub fn max_calls(&self) -> usize {
        self.max_calls
    }

    /// The trunk's address is known (or changed).
    pub fn add_trunk_address(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        if !self.trunk.contains(&ip) {
            self.trunk.push(ip);
        }
    }

    /// May `source` send us requests at all?
    pub fn is_allowed(&self, source: IpAddr) -> bool {
        let source = source.to_canonical();
        match &self.policy {
            Policy::Anyone => true,
            Policy::Networks(nets) => nets.iter().any(|net| net.contains(source)),
            Policy::TrunkOnly => self.trunk.contains(&source),
        }
    }

    /// Exempt from the per-source limit: a trunk sends every caller's call
    /// from one address.
    fn is_exempt(&self, source: IpAddr) -> bool {
        let source = source.to_canonical();
        self.trunk.contains(&source)
            || matches!(&self.policy, Policy::Networks(nets) if nets.iter().any(|n| n.contains(source)))
    }

    /// May a new call start with `active` calls up, whoever places it?
    pub fn check_capacity(&self, active: usize) -> Result<(), Refusal> {
        if self.draining {
            return Err(Refusal::ShuttingDown);
        }
        if active >= self.max_calls {
            return Err(Refusal::Full);
        }
        Ok(())
    }

    /// May a new call from `source` start at `now`, with `active` calls
    /// up? A call let through takes a token from its source's bucket.
    pub fn check_new_call(
        &mut self,
        source: IpAddr,
        active: usize,
        now: Instant,
    ) -> Result<(), Refusal> {
        self.check_capacity(active)?;
        if self.is_exempt(source) {
            return Ok(());
        }
        let source = source.to_canonical();
        let setting_up = self.setups.get(&source).copied().unwrap_or(0);
        if setting_up >= self.max_setups_per_source {
            return Err(Refusal::SourceBusy);
        }
        if self.buckets.len() >= MAX_BUCKETS {
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
            if self.buckets.len() >= MAX_BUCKETS {
                // Thousands of addresses at once are forged or a botnet:
                // forgetting them all costs each one burst more, no memory.
                self.buckets.clear();
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        let (tokens, at) = self.buckets.entry(source).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens < 1.0 {
            return Err(Refusal::SourceTooFast);
        }
        *tokens -= 1.0;
        Ok(())
    }

    /// A call from `source` is being set up.
    pub fn setup_started(&mut self, source: IpAddr) {
        *self.setups.entry(source.to_canonical()).or_default() += 1;
    }

    /// A call from `source` is set up (ACKed) or gone before that.
    pub fn setup_ended(&mut self, source: IpAddr) {
        let source = source.to_canonical();
        if let Some(count) = self.setups.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                self.setups.remove(&source);
            }
        }
    }

    /// Calls being set up from `source`.
    pub fn setups_from(&self, source: IpAddr) -> usize {
        self.setups
            .get(&source.to_canonical())
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, last))
    }

    #[test]
    fn policies_follow_the_settings() {
        let net: IpNet = "203.0.113.0/28".parse().unwrap();
        assert_eq!(Policy::from_settings(None, false, false), Policy::Anyone);
        assert_eq!(Policy::from_settings(None, true, false), Policy::TrunkOnly);
        assert_eq!(Policy::from_settings(None, true, true), Policy::Anyone);
        assert_eq!(
            Policy::from_settings(Some(vec![net]), true, true),
            Policy::Networks(vec![net])
        );
        let gate = Admission::new(Policy::Networks(vec![net]), Untrusted::Ignore, 10, 2, 2.0);
        assert!(gate.is_allowed(ip(3)));
        assert!(!gate.is_allowed(ip(200)));
    }

    #[test]
    fn trunk_only_admits_nobody_until_the_trunk_is_resolved() {
        let mut gate = Admission::new(Policy::TrunkOnly, Untrusted::Reject, 10, 2, 2.0);
        assert!(!gate.is_allowed(ip(5)));
        gate.add_trunk_address(ip(5));
        assert!(gate.is_allowed(ip(5)));
        // The same address seen on a dual-stack socket.
        let mapped: IpAddr = "::ffff:203.0.113.5".parse().unwrap();
        assert!(gate.is_allowed(mapped));
        assert!(!gate.is_allowed(ip(6)));
    }

    #[test]
    fn setups_are_limited_per_source_but_not_for_the_trunk() {
        let now = Instant::now();
        let mut gate = Admission::new(Policy::Anyone, Untrusted::Reject, 100, 2, 100.0);
        gate.add_trunk_address(ip(1));
        for _ in 0..2 {
            assert_eq!(gate.check_new_call(ip(9), 0, now), Ok(()));
            gate.setup_started(ip(9));
        }
        assert_eq!(gate.check_new_call(ip(9), 2, now), Err(Refusal::SourceBusy));
        assert_eq!(
            gate.check_new_call(ip(10), 2, now),
            Ok(()),
            "others still get in"
        );
        gate.setup_ended(ip(9));
        assert_eq!(gate.check_new_call(ip(9), 1, now), Ok(()));
        for _ in 0..50 {
            gate.setup_started(ip(1));
        }
        assert_eq!(
            gate.check_new_call(ip(1), 51, now),
            Ok(()),
            "the trunk is exempt"
        );
        assert_eq!(gate.check_new_call(ip(1), 100, now), Err(Refusal::Full));
        gate.setup_ended(ip(9));
        gate.setup_ended(ip(9));
        assert_eq!(gate.setups_from(ip(9)), 0, "never below zero");
    }

    #[test]
    fn calls_from_one_address_are_limited_in_rate_after_a_burst() {
        let t0 = Instant::now();
        let mut gate = Admission::new(Policy::Anyone, Untrusted::Reject, 1000, 1000, 2.0);
        gate.add_trunk_address(ip(1));
        let admitted = |gate: &mut Admission, source, at| {
            (0..100)
                .filter(|_| gate.check_new_call(source, 0, at).is_ok())
                .count()
        };
        assert_eq!(
            admitted(&mut gate, ip(9), t0),
            4,
            "a burst of two seconds' worth"
        );
        assert_eq!(
            gate.check_new_call(ip(9), 0, t0),
            Err(Refusal::SourceTooFast)
        );
        let later = t0 + std::time::Duration::from_secs(3);
        assert_eq!(
            admitted(&mut gate, ip(9), later),
            4,
            "refilled, to the burst"
        );
        assert_eq!(admitted(&mut gate, ip(10), t0), 4, "each address its own");
        assert_eq!(admitted(&mut gate, ip(1), t0), 100, "the trunk is exempt");
        // Forged addresses cannot grow the table without bound.
        for i in 0..10_000u32 {
            let forged = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = gate.check_new_call(forged, 0, later + std::time::Duration::from_secs(10));
        }
        assert!(gate.buckets.len() <= MAX_BUCKETS + 1);
    }

    #[test]
    fn a_draining_line_refuses_everyone_even_the_trunk() {
        let now = Instant::now();
        let mut gate = Admission::new(Policy::Anyone, Untrusted::Reject, 100, 10, 2.0);
        gate.add_trunk_address(ip(7));
        assert_eq!(gate.check_new_call(ip(7), 0, now), Ok(()));
        gate.start_draining();
        assert!(gate.is_draining());
        assert_eq!(
            gate.check_new_call(ip(7), 0, now),
            Err(Refusal::ShuttingDown)
        );
        assert_eq!(
            gate.check_new_call(ip(1), 0, now),
            Err(Refusal::ShuttingDown)
        );
    }
}
