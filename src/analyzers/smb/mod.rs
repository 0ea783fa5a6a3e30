//! SMB (SMB2/3, and SMB1) over the NetBIOS session service or direct TCP: the security blobs of
//! the client's SESSION_SETUP requests — NTLM responses (crackable offline), Kerberos tickets
//! and authenticators — as credentials. Nothing else of SMB is read here.
//!
//! The blob's place is in the SMB2 request's fixed part (SecurityBufferOffset/Length), so it is
//! masked in whatever segments it comes. SMB1's SESSION_SETUP_ANDX is masked past its header
//! (its parameters hold the LM/NTLM responses or the blob). Client bytes whose framing is lost
//! are masked until a segment starts a message again, while no other command than NEGOTIATE
//! and SESSION_SETUP has been seen (the login may be under way).

use super::frames::{Event, Framing, MsgReader};
use super::secrets::Secrets;
use super::TcpSeg;

/// Bytes of each message kept: the NetBIOS header, the SMB2 header and the request's fixed part.
const HEAD: usize = 4 + 64 + 24;
const SESSION_SETUP: u16 = 0x0001;
const SMB1_SESSION_SETUP_ANDX: u8 = 0x73;

struct Nbss;

impl Framing for Nbss {
    fn total_len(h: &[u8]) -> Option<Option<u64>> {
        if h.len() < 4 {
            return None;
        }
        // Session message (0x00): 17-bit length (direct TCP: 24-bit); other types are short.
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as u64;
        match h[0] {
            0x00 => {
                if h.len() >= 8 && &h[5..8] != b"SMB" {
                    return Some(None);
                }
                Some(Some(4 + len))
            }
            0x81..=0x85 => Some(Some(4 + len)),
            _ => Some(None),
        }
    }
}

/// The secret range of a client message (offsets in it, header included), from its head.
fn secret(h: &[u8]) -> Option<(usize, usize)> {
    let total = 4 + u32::from_be_bytes([0, *h.get(1)?, *h.get(2)?, *h.get(3)?]) as usize;
    match h.get(4..8)? {
        b"\xfeSMB" => {
            let cmd = u16::from_le_bytes([*h.get(4 + 12)?, *h.get(4 + 13)?]);
            let response = h.get(4 + 16)? & 1 != 0;
            if cmd != SESSION_SETUP || response {
                return None;
            }
            let body = 4 + 64;
            let off = u16::from_le_bytes([*h.get(body + 12)?, *h.get(body + 13)?]) as usize;
            let len = u16::from_le_bytes([*h.get(body + 14)?, *h.get(body + 15)?]) as usize;
            Some((4 + off, 4 + off + len))
        }
        b"\xffSMB" => {
            let cmd = *h.get(4 + 4)?;
            let response = h.get(4 + 9)? & 0x80 != 0;
            (cmd == SMB1_SESSION_SETUP_ANDX && !response).then_some((4 + 32, total))
        }
        _ => None,
    }
}

/// Whether a message is a NEGOTIATE or SESSION_SETUP (the login), from its head.
fn login_step(h: &[u8]) -> bool {
    match h.get(4..8) {
        Some(b"\xfeSMB") => h.get(16..18).is_some_and(|c| c[1] == 0 && c[0] <= 1),
        Some(b"\xffSMB") => h.get(8).is_some_and(|c| matches!(c, 0x72 | 0x73)),
        _ => true,
    }
}

#[derive(Debug)]
pub struct Smb {
    client: MsgReader,
    recorded: bool,
    /// A command beyond the login was seen: lost bytes are no longer masked.
    past_login: bool,
}

impl Smb {
    pub fn new(fresh: bool) -> Smb {
        Smb { client: MsgReader::new(HEAD, fresh), recorded: false, past_login: !fresh }
    }

    pub fn segment(&mut self, s: TcpSeg<'_>, secrets: &mut Secrets) -> bool {
        if !s.from_client {
            return false;
        }
        let (recorded, past_login) = (&mut self.recorded, &mut self.past_login);
        self.client.feed::<Nbss>(s.seg, &mut |e| match e {
            Event::Lost { seq, len } => {
                if !*past_login {
                    secrets.add(seq, seq.wrapping_add(len as u32));
                }
            }
            Event::Head { start, head } => {
                if !*recorded {
                    if let Some((a, b)) = secret(head) {
                        secrets.add(start.wrapping_add(a as u32), start.wrapping_add(b as u32));
                        *recorded = true;
                    }
                }
            }
            Event::End { head, .. } => {
                *recorded = false;
                if head.len() >= 18 && !login_step(head) {
                    *past_login = true;
                }
            }
        });
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smb2_session_setup_blob_place() {
        let mut m = vec![0u8; 4 + 64 + 24];
        m[4..8].copy_from_slice(b"\xfeSMB");
        m[4 + 12] = 1; // SESSION_SETUP request
        m[4 + 64 + 12..4 + 64 + 14].copy_from_slice(&88u16.to_le_bytes());
        m[4 + 64 + 14..4 + 64 + 16].copy_from_slice(&10u16.to_le_bytes());
        m.extend_from_slice(b"NTLMSSP\0\x03\0");
        let total = (m.len() - 4) as u32;
        m[1..4].copy_from_slice(&total.to_be_bytes()[1..]);
        assert_eq!(secret(&m), Some((92, 102)));
        assert_eq!(Nbss::total_len(&m), Some(Some(m.len() as u64)));
        for cut in 0..m.len() {
            let _ = secret(&m[..cut]);
        }
    }
}
