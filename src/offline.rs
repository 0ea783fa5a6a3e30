//! The pipeline over capture files, as `analyze`, `diff`, `run --replay` and the dashboard's
//! captures page use it: files one after the other (TCP state and frame numbers restart per
//! file), damage reported with its byte offset, progress on a bar. Below both the command line
//! and the dashboard, which share it.

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

use crate::capture::file::FileSource;
use crate::capture::PacketSource;
use crate::pipeline::{NullSink, Pipeline, Sink};
use crate::summary::FileReport;
use crate::transactions::{CaptureTx, Tracker};

/// Runs every file through `pipeline`, one after the other (TCP state and frame numbers restart
/// per file). Damage stops that file — after every whole frame before it was processed — and is
/// reported with the byte offset; the other files are still read.
pub fn process_files<S: Sink>(
    pipeline: &mut Pipeline<S>,
    files: &[PathBuf],
    progress: Option<&ProgressBar>,
) -> Vec<FileReport> {
    process_files_with(pipeline, files, progress.map(|pb| (pb, 0)), |_, _| {})
}

/// [`process_files`], handing each frame's analysis to `on_frame` (the diff's transaction
/// tracker) as the pipeline finishes it. The progress bar may already hold `done` bytes of
/// other input.
pub fn process_files_with<S: Sink>(
    pipeline: &mut Pipeline<S>,
    files: &[PathBuf],
    progress: Option<(&ProgressBar, u64)>,
    on_frame: impl FnMut(&crate::filter::fields::Ctx<'_, '_>, &crate::pipeline::PacketOutcome),
) -> Vec<FileReport> {
    process_files_until(pipeline, files, progress, None, on_frame)
}

/// [`process_files_with`] that stops early when `stop` is set (the daemon's replay on SIGTERM):
/// the file's report then says where it stopped.
pub fn process_files_until<S: Sink>(
    pipeline: &mut Pipeline<S>,
    files: &[PathBuf],
    progress: Option<(&ProgressBar, u64)>,
    stop: Option<&std::sync::atomic::AtomicBool>,
    mut on_frame: impl FnMut(&crate::filter::fields::Ctx<'_, '_>, &crate::pipeline::PacketOutcome),
) -> Vec<FileReport> {
    let mut reports = Vec::with_capacity(files.len());
    let (progress, mut done_bytes) = match progress {
        Some((pb, done)) => (Some(pb), done),
        None => (None, 0),
    };
    for path in files {
        let name = path.display().to_string();
        let mut src = match FileSource::open(path) {
            Ok(s) => s,
            Err(e) => {
                reports.push(FileReport { file: name.clone(), packets: 0, error: Some(format!("{name}: {e}")) });
                continue;
            }
        };
        let mut packets = 0u64;
        let mut error = None;
        pipeline.input.clone_from(&name);
        loop {
            match src.next_packet() {
                Ok(Some(pkt)) => {
                    pipeline.process_with(&pkt, &mut on_frame);
                    packets += 1;
                    if packets % 16_384 == 0 {
                        if let Some(pb) = progress {
                            pb.set_position(done_bytes + src.position());
                        }
                        if stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
                            error = Some(format!("{name}: stopped after frame {packets}"));
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(format!("{name}: {e} (after frame {packets})"));
                    break;
                }
            }
        }
        done_bytes += src.file_len().unwrap_or(0);
        pipeline.end_of_file();
        reports.push(FileReport { file: name, packets, error });
    }
    reports
}

/// One capture through the pipeline, summarised as transactions. Memory stays bounded whatever
/// the file's size: the pipeline's tables and the tracker's are.
pub fn transactions(path: &Path, pb: Option<&ProgressBar>, done: u64) -> Result<CaptureTx, String> {
    let name = path.display().to_string();
    let mut p = Pipeline::new(Default::default(), Default::default(), NullSink);
    p.track_exchanges();
    let mut t = Tracker::new(name);
    let reports = process_files_with(&mut p, &[path.to_path_buf()], pb.map(|pb| (pb, done)), |c, o| t.observe(c, o));
    // Exchanges of the connections the end of the file closed.
    for x in p.take_exchanges() {
        t.exchange(&x);
    }
    match reports.into_iter().next().and_then(|r| r.error) {
        Some(e) => Err(e),
        None => Ok(t.finish()),
    }
}
