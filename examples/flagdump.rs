//! Prints `frame flag` for every TCP analysis flag our pipeline sets (for ad-hoc differential
//! checks of large traces against tshark).
use mirrorwatch::capture::{file::FileSource, PacketSource};
use mirrorwatch::flow::tcp::TcpFlags;
use mirrorwatch::pipeline::{NullSink, Pipeline};

fn main() {
    let path = std::env::args().nth(1).expect("usage: flagdump FILE");
    let mut src = FileSource::open(std::path::Path::new(&path)).expect("open");
    let mut p = Pipeline::new(Default::default(), Default::default(), NullSink);
    while let Ok(Some(pkt)) = src.next_packet() {
        let o = p.process(&pkt);
        for (bit, name) in TcpFlags::NAMES {
            if o.tcp.flags.has(bit) {
                println!("{} {name}", o.frame);
            }
        }
    }
}
