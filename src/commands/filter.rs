//! `mirrorwatch filter EXPR PCAP [--count]`: frame numbers matching a display filter, one per
//! line, like `tshark -r PCAP -Y EXPR -T fields -e frame.number`.

use std::io::Write;
use std::path::PathBuf;

use super::Outcome;
use crate::capture::file::FileSource;
use crate::capture::PacketSource;
use crate::filter::fields::FIELDS;
use crate::filter::Filter;
use crate::pipeline::{NullSink, Pipeline};

pub struct FilterArgs {
    pub expr: String,
    pub file: PathBuf,
    pub count: bool,
}

/// Text for `filter --help`: the fields a filter can use.
pub fn fields_help() -> String {
    let names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
    format!("Fields are Wireshark's (tshark 4.0 semantics), plus app_error.*:\n  {}", names.join(", "))
}

pub fn run(args: FilterArgs) -> anyhow::Result<Outcome> {
    let filter = match Filter::compile(&args.expr) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mirrorwatch: invalid filter: {}", e.render(&args.expr));
            return Ok(Outcome { bad_input: true });
        }
    };
    let name = args.file.display().to_string();
    let mut src = FileSource::open(&args.file).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let mut pipeline = Pipeline::new(Default::default(), Default::default(), NullSink);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut matched = 0u64;
    let mut bad_input = false;
    loop {
        match src.next_packet() {
            Ok(Some(pkt)) => {
                let hit = pipeline.process_with(&pkt, |ctx, _| filter.matches(ctx));
                if hit {
                    matched += 1;
                    if !args.count {
                        writeln!(out, "{}", pkt.frame)?;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!("mirrorwatch: {name}: {e}");
                bad_input = true;
                break;
            }
        }
    }
    if args.count {
        writeln!(out, "{matched}")?;
    }
    out.flush()?;
    Ok(Outcome { bad_input })
}
