//! The frame decoder on arbitrary bytes, for every link type it knows (first byte picks one).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mirrorwatch::capture::{LinkType, RawPacket};
use mirrorwatch::time::Ts;

const LINKS: [LinkType; 6] =
    [LinkType::ETHERNET, LinkType::RAW, LinkType::NULL, LinkType::LOOP, LinkType::LINUX_SLL, LinkType::LINUX_SLL2];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else { return };
    let pkt = RawPacket {
        frame: 1,
        ts: Ts(0),
        orig_len: frame.len() as u32,
        link: LINKS[sel as usize % LINKS.len()],
        interface: 0,
        data: frame,
    };
    let _ = mirrorwatch::decode::decode(&pkt);
});
