//! The methods the line implements: what `Allow` lists (RFC 3261 §20.5) and
//! what a request with another method gets (405 or 501, §8.2.1).

use rsip::Method;

/// The methods the line answers, in `Allow` order.
pub const ALLOWED: [Method; 6] = [
    Method::Invite,
    Method::Ack,
    Method::Bye,
    Method::Cancel,
    Method::Options,
    Method::Info,
];

/// [`ALLOWED`] as the `Allow` header value.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO";

/// Whether the line implements `method`. rsip knows more methods than that
/// (REGISTER, SUBSCRIBE…): those get 405 with `Allow`.
pub fn is_allowed(method: Method) -> bool {
    ALLOWED.contains(&method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_the_allowed_methods() {
        let listed: Vec<String> = ALLOWED.iter().map(Method::to_string).collect();
        assert_eq!(ALLOW, listed.join(", "));
        assert!(is_allowed(Method::Info) && !is_allowed(Method::Register));
    }
}
