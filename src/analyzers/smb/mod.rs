//! SMB (SMB2/3, and SMB1) over the NetBIOS session service or direct TCP: the security blobs of
//! the client's SESSION_SETUP requests — NTLM responses (crackable offline), Kerberos tickets
//! and authenticators — as credentials; and the Kerberos AP-REQ, AP-REP or KRB-ERROR inside the
//! SMB2 SESSION_SETUP blobs of both sides (GSS-API, bare or in SPNEGO) for the `kerberos.*`
//! filter fields, on the frame that completes the message, as tshark shows them. Nothing else
//! of SMB is read here.
//!
//! The blob's place is in the SMB2 request's fixed part (SecurityBufferOffset/Length), so it is
//! masked in whatever segments it comes. SMB1's SESSION_SETUP_ANDX is masked past its header
//! (its parameters hold the LM/NTLM responses or the blob). Client bytes whose framing is lost
//! are masked until a segment starts a message again, while no other command than NEGOTIATE
//! and SESSION_SETUP has been seen (the login may be under way).

use super::budget::Lazy;
use super::frames::{Event, Framing, MsgReader};
use super::secrets::Secrets;
use super::{Here, TcpSeg};

/// Bytes of each message kept: the NetBIOS header, the SMB2 header and the fixed part of a
/// SESSION_SETUP request or a NEGOTIATE response (up to its security buffer's place).
const HEAD: usize = 4 + 64 + 60;
const NEGOTIATE: u16 = 0x0000;
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

/// The security blob of an SMB2 SESSION_SETUP request or response, or of a NEGOTIATE response
/// (offsets in the message, header included), from its head.
fn smb2_blob(h: &[u8]) -> Option<(usize, usize)> {
    if h.get(4..8)? != b"\xfeSMB" {
        return None;
    }
    let body = 4 + 64;
    let response = h.get(4 + 16)? & 1 != 0;
    // SESSION_SETUP request: offset and length at 12 and 14 of its fixed part; its response:
    // at 4 and 6; NEGOTIATE response: at 56 and 58.
    let at = match (u16::from_le_bytes([*h.get(4 + 12)?, *h.get(4 + 13)?]), response) {
        (SESSION_SETUP, false) => body + 12,
        (SESSION_SETUP, true) => body + 4,
        (NEGOTIATE, true) => body + 56,
        _ => return None,
    };
    let off = u16::from_le_bytes([*h.get(at)?, *h.get(at + 1)?]) as usize;
    let len = u16::from_le_bytes([*h.get(at + 2)?, *h.get(at + 3)?]) as usize;
    (len > 0 && off >= 64).then_some((4 + off, 4 + off + len))
}

/// Bytes of a security blob kept for the Kerberos inside (tickets with a PAC run to a few KB).
const MAX_BLOB: usize = 16 << 10;

/// One direction's SESSION_SETUP blob being gathered, by sequence numbers.
#[derive(Debug, Default)]
struct Blob {
    /// [start, end) of the blob in the direction's sequence space, once the head told it.
    range: Option<(u32, u32)>,
    data: Lazy,
    /// The message carrying it ended in the segment being read.
    ended: bool,
}

impl Blob {
    /// Keeps the part of `seg` inside the blob, if it continues what is kept.
    fn take(&mut self, seq: u32, data: &[u8]) {
        let Some((a, b)) = self.range else { return };
        let have = a.wrapping_add(self.data.len() as u32);
        let end = seq.wrapping_add(data.len() as u32);
        // Sequence arithmetic: the segment must cover the next byte wanted.
        if have.wrapping_sub(seq) as i32 >= 0 && end.wrapping_sub(have) as i32 > 0 && have != b {
            let from = have.wrapping_sub(seq) as usize;
            let to = (b.wrapping_sub(seq) as usize).min(data.len());
            if from < to {
                let cap = (b.wrapping_sub(a) as usize).min(MAX_BLOB);
                self.data.push(&data[from..to], cap);
            }
        }
    }

    fn complete(&self) -> Option<&[u8]> {
        let (a, b) = self.range?;
        (self.data.len() == b.wrapping_sub(a) as usize && !self.data.lossy).then(|| self.data.as_slice())
    }

    fn reset(&mut self) {
        self.range = None;
        self.data.clear();
        self.data.lossy = false;
        self.ended = false;
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
    server: MsgReader,
    recorded: bool,
    /// A command beyond the login was seen: lost bytes are no longer masked.
    past_login: bool,
    /// The SESSION_SETUP blob of each direction (client, server) while its message streams by.
    blob: [Blob; 2],
    /// A blob starting a GSS-API token (RFC 2743 §3.1: 0x60, with its mechanism) was seen on
    /// the connection. Wireshark reads the later tokens that do not say their mechanism
    /// (SPNEGO's negTokenResp) only with that; without it they are unknown to it too.
    gss_seen: bool,
}

impl Smb {
    pub fn new(fresh: [bool; 2]) -> Smb {
        Smb {
            client: MsgReader::new(HEAD, fresh[0]),
            server: MsgReader::new(HEAD, fresh[1]),
            recorded: false,
            past_login: !fresh[0],
            blob: Default::default(),
            gss_seen: false,
        }
    }

    pub fn segment(&mut self, s: TcpSeg<'_>, secrets: &mut Secrets, here: &mut Here<'_>) -> bool {
        let dir = usize::from(!s.from_client);
        if s.from_client {
            self.client_segment(s, secrets);
        } else {
            let blob = &mut self.blob[1];
            self.server.feed::<Nbss>(s.seg, &mut |e| blob_event(blob, e));
        }
        // The blob's bytes in this segment (its range may have come with this segment's head),
        // and the Kerberos in it once its message is complete.
        let blob = &mut self.blob[dir];
        let cap = s.seg.data.len().min(s.seg.seg_len as usize);
        blob.take(s.seg.seq, &s.seg.data[..cap]);
        if blob.ended {
            if let Some(b) = blob.complete() {
                let initial = b.first() == Some(&0x60);
                if initial || self.gss_seen {
                    if let Some(fields) = super::kerberos::parse_gss(b) {
                        here.out.krb = Some(fields);
                    }
                }
                self.gss_seen |= initial;
            }
            blob.reset();
        }
        false
    }

    fn client_segment(&mut self, s: TcpSeg<'_>, secrets: &mut Secrets) {
        let (recorded, past_login, blob) = (&mut self.recorded, &mut self.past_login, &mut self.blob[0]);
        self.client.feed::<Nbss>(s.seg, &mut |e| {
            blob_event(blob, e);
            match e {
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
            }
        });
    }
}

/// Follows one direction's messages for its SESSION_SETUP blob: its range from the head, the
/// end of its message, and a hole that loses it.
fn blob_event(blob: &mut Blob, e: Event<'_>) {
    match e {
        Event::Head { start, head } => {
            if blob.range.is_none() && head.len() >= HEAD {
                if let Some((a, b)) = smb2_blob(head) {
                    blob.reset();
                    blob.range = Some((start.wrapping_add(a as u32), start.wrapping_add(b as u32)));
                }
            }
        }
        Event::End { .. } => blob.ended = blob.range.is_some(),
        Event::Lost { .. } => blob.reset(),
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
        assert_eq!(smb2_blob(&m), Some((92, 102)));
        // The response keeps its blob's offset and length at 4 and 6 of its fixed part.
        let mut r = m.clone();
        r[4 + 16] = 1;
        r[4 + 64 + 4..4 + 64 + 8].copy_from_slice(&[72, 0, 10, 0]);
        assert_eq!((secret(&r), smb2_blob(&r)), (None, Some((76, 86))));
        // A NEGOTIATE response's blob (the server's SPNEGO hints) is at 56 and 58.
        let mut n = vec![0u8; HEAD];
        n[4..8].copy_from_slice(b"\xfeSMB");
        n[4 + 16] = 1;
        n[4 + 64 + 56..4 + 64 + 60].copy_from_slice(&[128, 0, 74, 0]);
        assert_eq!(smb2_blob(&n), Some((132, 206)));
        assert_eq!(Nbss::total_len(&m), Some(Some(m.len() as u64)));
        for cut in 0..m.len() {
            let _ = secret(&m[..cut]);
            let _ = smb2_blob(&m[..cut]);
        }
    }

    #[test]
    fn a_blob_is_gathered_in_order_across_segments() {
        let mut b = Blob { range: Some((100, 110)), ..Default::default() };
        b.take(90, b"0123456789abcd"); // 100..104 from this one
        b.take(90, b"0123456789abcd"); // a repeat adds nothing
        b.take(106, b"ghij"); // after a hole: not taken
        assert_eq!(b.complete(), None);
        b.take(104, b"efghijklmn");
        assert_eq!(b.complete(), Some(&b"abcdefghij"[..]));
        b.take(110, b"zz"); // past the blob
        assert_eq!(b.complete(), Some(&b"abcdefghij"[..]));
    }
}
