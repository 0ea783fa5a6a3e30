//! Whole pipeline over an arbitrary "capture file": reader, decoder, flow table, TCP analysis.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mirrorwatch::capture::{file::FileSource, PacketSource};
use mirrorwatch::pipeline::{NullSink, Pipeline};

fuzz_target!(|data: &[u8]| {
    let Ok(mut src) = FileSource::from_reader(Box::new(std::io::Cursor::new(data.to_vec()))) else { return };
    let mut p = Pipeline::new(Default::default(), Default::default(), NullSink);
    while let Ok(Some(pkt)) = src.next_packet() {
        p.process(&pkt);
    }
    p.end_of_file();
});
