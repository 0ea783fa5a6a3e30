//! The application-error framers on arbitrary server streams, cut into segments at the
//! positions the first bytes choose: MySQL, PostgreSQL, TDS, Oracle and HTTP.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mirrorwatch::analyzers::errors::ErrorFramer;
use mirrorwatch::analyzers::{http::message, mysql, oracle, pgsql, tds};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else { return };
    let step = cut as usize % 97 + 1;
    let mut found = Vec::new();
    let (mut m, mut p, mut t, mut o) = (
        mysql::framer::Framer::default(),
        pgsql::framer::Framer::default(),
        tds::framer::Framer::with_info(),
        oracle::Scanner::default(),
    );
    for seg in stream.chunks(step) {
        m.feed(seg, &mut found);
        p.feed(seg, &mut found);
        t.feed(seg, &mut found);
        o.feed(seg, &mut found);
    }
    if let Some((mut w, false)) = message::Pending::any(stream, stream.len(), cut % 2 == 0) {
        for seg in stream.chunks(step) {
            if w.more(seg, seg.len()) {
                break;
            }
        }
    }
    let mut tracker = message::Tracker::default();
    for (i, seg) in stream.chunks(step).enumerate() {
        let _ = tracker.segment(i % 2, seg, (i * step) as u32, seg.len() as u32, i % 7 == 3, &mut |_, _| {});
    }
    let _ = message::first_line(stream);
});
