//! SASL and base64 pieces shared by the mail protocols (RFC 4616 PLAIN, the LOGIN mechanism).

use base64::Engine;

use super::user_name;

pub fn b64(s: &[u8]) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s.trim_ascii()).ok()
}

/// SASL PLAIN: authzid NUL authcid NUL passwd — the login is authcid.
pub fn plain_user(s: &[u8]) -> Option<String> {
    let raw = b64(s)?;
    let mut parts = raw.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let authcid = parts.next()?;
    // Without the password part this is not a PLAIN response.
    parts.next()?;
    user_name(authcid)
}

/// The LOGIN mechanism's user name line (base64).
pub fn login_user(s: &[u8]) -> Option<String> {
    b64(s).and_then(|u| user_name(&u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_takes_the_authentication_id() {
        // "\0alice\0s3cret"
        assert_eq!(plain_user(b"AGFsaWNlAHMzY3JldA==").as_deref(), Some("alice"));
        assert_eq!(plain_user(b"not base64!"), None);
        assert_eq!(login_user(b"YWxpY2U=").as_deref(), Some("alice"));
    }
}
