//! The store writer survives what an unattended box meets: another connection holding the
//! write lock for seconds (a long retention DELETE, a checkpoint, an admin's sqlite3 shell), and
//! a batch that fails for good. It holds what it cannot write (bounded), retries with backoff,
//! reports its health, resumes by itself and records the spell in `health_events`.

mod common;

use std::time::{Duration, Instant};

use mirrorwatch::pipeline::{MinuteStats, Sink, StoreEvent};
use mirrorwatch::store::{Backpressure, SqliteSink};
use rusqlite::Connection;

fn minute(m: i64) -> StoreEvent {
    StoreEvent::Minute(MinuteStats { minute: m * 60, packets: 1, bytes: 100, ..Default::default() })
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_lock_held_for_seconds_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut sink = SqliteSink::start(&db, Backpressure::Drop).unwrap();
    let health = std::sync::Arc::clone(&sink.health);
    let admin = Connection::open(&db).unwrap();
    admin.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // Twenty minutes of traffic arrive while the lock is held, across minute boundaries.
    for m in 0..1200 {
        sink.send(minute(m / 60));
        if m % 60 == 59 {
            // The daemon hands over a batch a second; paced faster here, still within the queue.
            sink.flush();
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    sink.flush();
    wait_for("the writer to report failing", Duration::from_secs(10), || health.failing().is_some());
    std::thread::sleep(Duration::from_secs(3));
    let (_, why) = health.failing().expect("still failing under the lock");
    assert!(why.contains("locked") || why.contains("busy"), "{why}");
    assert!(health.held_events.load(std::sync::atomic::Ordering::Relaxed) > 0);
    admin.execute_batch("COMMIT").unwrap();
    wait_for("the writer to recover", Duration::from_secs(15), || health.failing().is_none());
    // More traffic after the recovery is written as usual.
    sink.send(minute(100));
    assert_eq!(sink.dropped_events, 0, "the channel never overflowed behind the lock");
    let stats = sink.finish().unwrap();
    assert!(stats.events >= 1201, "{stats:?}");
    let c = Connection::open(&db).unwrap();
    let (rows, packets): (i64, i64) =
        c.query_row("SELECT count(*), sum(packets) FROM traffic_minute", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!((rows, packets), (21, 1201), "every minute stored once the lock was released");
    let kinds = common::health_kinds(&db);
    assert_eq!(kinds, ["store.failing", "store.recovered"]);
    assert_eq!(health.lost_events.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn a_batch_that_fails_for_good_is_dropped_counted_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut sink = SqliteSink::start(&db, Backpressure::Drop).unwrap();
    let health = std::sync::Arc::clone(&sink.health);
    // A damaged schema: the table of counter rows is gone (not a transient error).
    Connection::open(&db).unwrap().execute_batch("DROP TABLE counter_minute").unwrap();
    sink.send(StoreEvent::Counter(mirrorwatch::pipeline::CounterDelta {
        minute: 60,
        counter: "c".into(),
        key: String::new(),
        delta: 5,
    }));
    sink.flush();
    wait_for("the bad batch to be dropped", Duration::from_secs(10), || {
        health.lost_events.load(std::sync::atomic::Ordering::Relaxed) == 1
    });
    sink.send(minute(2));
    sink.flush();
    sink.finish().unwrap();
    let c = Connection::open(&db).unwrap();
    let n: i64 = c.query_row("SELECT count(*) FROM traffic_minute", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1, "the writer kept writing after the bad batch");
    let lost: i64 = c.query_row("SELECT count FROM health_events WHERE kind = 'store.lost'", [], |r| r.get(0)).unwrap();
    assert_eq!(lost, 1);
}
