//! `mirrorwatch run [--config FILE] [--replay PCAP]`: the appliance daemon.
//!
//! Live: libpcap on the mirror interface → pipeline → SQLite, until SIGINT/SIGTERM. Drop
//! counters are read once a second and stored with the minute. `--replay` feeds a capture file
//! through the same pipeline as fast as possible, then keeps running until stopped (the
//! dashboard and mailer are served by the same process).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use super::Outcome;
use crate::capture::live::LiveSource;
use crate::capture::PacketSource;
use crate::config::{Config, DEFAULT_PATH};
use crate::pipeline::{Pipeline, Sink};
use crate::rules::RuleSet;
use crate::store::{Backpressure, SqliteSink};
use crate::time::Ts;
use crate::web::{Live, RulesStatus};

pub struct RunArgs {
    pub config: Option<PathBuf>,
    pub replay: Option<PathBuf>,
    /// Overrides `[capture] interface`.
    pub interface: Option<String>,
    /// Overrides the database path (default: `[store] dir`/mirrorwatch.db).
    pub db: Option<PathBuf>,
    /// Overrides `[rules] dir`.
    pub rules: Option<PathBuf>,
    /// Overrides `[web] listen` ("" turns the dashboard off).
    pub listen: Option<String>,
}

/// How often the mailer looks at the outbox.
const MAIL_POLL: Duration = Duration::from_secs(2);

/// Watches the rule directory: a change of any `*.toml` (name, size or mtime) triggers a reload.
/// An invalid rule set is reported and not applied: the running rules stay.
struct RuleWatch {
    dir: PathBuf,
    fingerprint: Vec<(PathBuf, u64, Option<SystemTime>)>,
    /// Where the dashboard reads which rules are in effect.
    live: Arc<Live>,
}

impl RuleWatch {
    fn new(dir: PathBuf, live: Arc<Live>) -> RuleWatch {
        RuleWatch { dir, fingerprint: Vec::new(), live }
    }

    fn scan(&self) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
        let mut v: Vec<_> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .map(|p| {
                        let m = std::fs::metadata(&p).ok();
                        let len = m.as_ref().map(|m| m.len()).unwrap_or(0);
                        let mtime = m.and_then(|m| m.modified().ok());
                        (p, len, mtime)
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Whether to look at the directory now: once a second, and at once after SIGHUP (`hup`,
    /// reset here), which also makes the next [`poll`](Self::poll) reload unchanged files.
    fn due(&mut self, hup: &AtomicBool, last: &mut Instant) -> bool {
        let hupped = hup.swap(false, Ordering::Relaxed);
        if hupped {
            tracing::info!("SIGHUP: reloading rules");
            self.fingerprint.clear();
        }
        let due = hupped || last.elapsed() >= Duration::from_secs(1);
        if due {
            *last = Instant::now();
        }
        due
    }

    /// A new valid rule set if the directory changed since the last call.
    fn poll(&mut self) -> Option<RuleSet> {
        let now = self.scan();
        if now == self.fingerprint {
            return None;
        }
        self.fingerprint = now;
        if !self.dir.is_dir() {
            return None;
        }
        match RuleSet::load_dir(&self.dir) {
            Ok(r) => {
                tracing::info!(
                    "rules loaded from {}: {} counters, {} alerts",
                    self.dir.display(),
                    r.counters.len(),
                    r.alerts.len()
                );
                self.live.set_rules(RulesStatus {
                    loaded_us: crate::store::wall_us(),
                    files: r.files.len(),
                    counters: r.counters.len(),
                    alerts: r.alerts.len(),
                    error: None,
                });
                Some(r)
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!("rules not applied: {e}");
                }
                if let Ok(mut st) = self.live.rules.lock() {
                    st.error = errors.first().map(|e| format!("not applied: {e}"));
                }
                None
            }
        }
    }
}

/// Loads and compiles rule sets off the capture thread: a thread polls the rule directory once
/// a second (and at once on SIGHUP) and hands each new valid set over a channel; the capture
/// loop only swaps it in.
struct RuleLoader {
    rx: Receiver<RuleSet>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RuleLoader {
    fn spawn(mut watch: RuleWatch, stop: Arc<AtomicBool>) -> anyhow::Result<RuleLoader> {
        let hup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup)).context("installing SIGHUP")?;
        let (tx, rx) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("rules".into())
            .spawn(move || {
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if watch.due(&hup, &mut last) {
                        if let Some(r) = watch.poll() {
                            if tx.send(r).is_err() {
                                return;
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .context("starting the rules thread")?;
        Ok(RuleLoader { rx, thread: Some(thread) })
    }

    fn take(&self) -> Option<RuleSet> {
        self.rx.try_recv().ok()
    }
}

impl Drop for RuleLoader {
    fn drop(&mut self) {
        // Unblocks a pending send; the thread sees the stop flag within 100 ms.
        while self.rx.try_recv().is_ok() {}
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Once a second on the capture thread: the store's health becomes a `store.failing` event
/// (once a minute while it lasts, so an episode stays open until the store recovers).
struct HealthWatch {
    last_report: Option<Instant>,
}

impl HealthWatch {
    fn check(&mut self, p: &mut Pipeline<SqliteSink>, now: Ts) {
        let Some((since_us, why)) = p.sink.health.failing() else {
            self.last_report = None;
            return;
        };
        if self.last_report.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
            return;
        }
        self.last_report = Some(Instant::now());
        let secs = (crate::store::wall_us() - since_us) / 1_000_000;
        let held = p.sink.health.held_events.load(Ordering::Relaxed);
        let summary = format!("the store has refused writes for {secs} s ({why}); {held} events held in memory");
        p.box_event("store.failing", String::new(), now, 1, summary);
    }
}

/// Once a second on the capture thread: frames in the last minute of wall time for the
/// dashboard, and a `capture.silent` event (once a minute while it lasts) when no frame came for
/// `[capture] silent_after` — a dead mirror port must not look like a quiet network.
struct SilenceWatch {
    /// (packets, bytes) totals of the last 61 seconds, oldest first overwritten.
    seconds: [(u64, u64); 61],
    tick: usize,
    last_packets: u64,
    last_frame: Instant,
    last_frame_us: i64,
    silent_after: Duration,
    last_report: Option<Instant>,
}

impl SilenceWatch {
    fn new(silent_after_secs: u64, live: &crate::web::Live) -> SilenceWatch {
        live.wall.start(crate::store::wall_us(), silent_after_secs);
        SilenceWatch {
            seconds: [(0, 0); 61],
            tick: 0,
            last_packets: 0,
            last_frame: Instant::now(),
            last_frame_us: 0,
            silent_after: Duration::from_secs(silent_after_secs),
            last_report: None,
        }
    }

    fn check(&mut self, p: &mut Pipeline<SqliteSink>, now: Ts, live: &crate::web::Live, iface: &str) {
        let (packets, bytes) = (p.summary.packets, p.summary.bytes);
        let now_us = now.0 / 1000;
        self.tick += 1;
        let slot = self.tick % self.seconds.len();
        // The oldest kept second, up to a minute ago (fewer seconds just after the start).
        let oldest = self.seconds[if self.tick >= self.seconds.len() { slot } else { 0 }];
        self.seconds[slot] = (packets, bytes);
        if packets != self.last_packets {
            self.last_packets = packets;
            self.last_frame = Instant::now();
            self.last_frame_us = now_us;
            if self.last_report.take().is_some() {
                tracing::info!("frames again on {iface}");
            }
        }
        live.wall.publish(now_us, packets - oldest.0, bytes - oldest.1, self.last_frame_us);
        let quiet = self.last_frame.elapsed();
        if quiet < self.silent_after || self.last_report.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
            return;
        }
        if self.last_report.is_none() {
            tracing::warn!("no frame on {iface} for {} s: is the mirror port still mirrored?", quiet.as_secs());
        }
        self.last_report = Some(Instant::now());
        let summary = match self.last_frame_us {
            0 => format!("no frame on {iface} since the capture began {} min ago", quiet.as_secs() / 60),
            t => format!(
                "no frame on {iface} since {} ({} min): check the mirror port's cable and the switch's mirror session",
                Ts(t * 1000).rfc3339(),
                quiet.as_secs() / 60
            ),
        };
        p.box_event("capture.silent", iface.to_string(), now, 1, summary);
    }
}

/// Baselines and mail suppression survive a restart: they are rebuilt from the store.
/// So do the episodes left active: the rules that raised them clear them, and those no rule
/// continues any more (rule removed, duplicates of older versions) are cleared now.
fn restore_alerts<S: Sink>(p: &mut Pipeline<S>, db: &std::path::Path) {
    if !db.exists() {
        return; // a new store: nothing to restore
    }
    match crate::store::read::alert_history(db, &p.followed_counters()) {
        Ok(h) if h.minutes.is_empty() && h.mails.is_empty() && h.active.is_empty() => {}
        Ok(h) => {
            let orphans = p.restore_alerts(&h);
            tracing::info!(
                "alert state restored: {} counter minutes, {} last mails, {} active episodes ({} cleared: no rule continues them)",
                h.minutes.len(),
                h.mails.len(),
                h.active.len() - orphans.len(),
                orphans.len()
            );
            if let Err(e) = clear_orphans(db, &orphans) {
                tracing::warn!("{} orphaned alert episodes not cleared: {e}", orphans.len());
            }
        }
        Err(e) => tracing::warn!("alert state not restored from {}: {e}", db.display()),
    }
}

fn clear_orphans(db: &std::path::Path, ids: &[i64]) -> rusqlite::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut conn = crate::store::open_existing(db)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let tx = conn.transaction()?;
    {
        let mut st =
            tx.prepare("UPDATE alerts SET state = 'cleared', cleared_us = ?2 WHERE id = ?1 AND state = 'active'")?;
        let now = crate::store::wall_us();
        for id in ids {
            st.execute(rusqlite::params![id, now])?;
        }
    }
    tx.commit()
}

fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handler")?;
    }
    Ok(stop)
}

/// The daemon's parts, set up from the configuration and the command line before anything
/// starts: a configuration mistake stops it before it captures.
struct Daemon {
    cfg: Config,
    db: PathBuf,
    rules_dir: PathBuf,
    /// What the dashboard shows of the running daemon.
    live: Arc<Live>,
    /// SIGINT/SIGTERM.
    stop: Arc<AtomicBool>,
    /// Stops the jobs and the mailer, after the store has written its last batch (so the mailer
    /// sees every alert).
    bg_stop: Arc<AtomicBool>,
    ring: Option<crate::store::ring::RingSettings>,
    evidence_window: Option<(i64, i64)>,
    plan: Vec<(crate::jobs::Job, croner::Cron)>,
    mail_on: bool,
    session_lifetime: Duration,
    /// Made with the configuration (its mistakes stop the daemon at once), started with the rest.
    mailer: Option<crate::mail::Mailer>,
    replay: Option<PathBuf>,
    /// The fleet export's thread, once the store has started (its events come from the store's
    /// batches).
    exporter: Option<crate::export::Exporter>,
}

/// What runs beside the capture loop.
struct Running {
    web: Option<crate::web::Server>,
    threads: Vec<std::thread::JoinHandle<()>>,
    notifier: crate::notify::Notifier,
}

impl Daemon {
    fn new(args: &RunArgs) -> anyhow::Result<Daemon> {
        let path = args.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
        let mut cfg = if args.config.is_some() || path.exists() { Config::load(&path)? } else { Config::default() };
        if let Some(i) = &args.interface {
            cfg.capture.interface = i.clone();
        }
        if let Some(l) = &args.listen {
            cfg.web.listen = l.clone();
        }
        let db = args.db.clone().unwrap_or_else(|| cfg.store.database());
        // `--db` moves the whole store: the ring and the evidence live beside the database.
        if let Some(dir) = args.db.as_ref().and_then(|d| d.parent()) {
            cfg.store.dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir.to_path_buf() };
        }
        let rules_dir = args.rules.clone().unwrap_or_else(|| cfg.rules.dir.clone());
        // A directory someone named (--rules, [rules] dir) must exist: a typo must not run the
        // box without rules. The default one may be missing (a box set up without rules yet).
        if args.rules.is_some() || cfg.rules.dir != crate::config::RulesConfig::default().dir {
            super::rules_dir_exists(&rules_dir)?;
        } else if !rules_dir.is_dir() {
            tracing::warn!("no rule directory {}: running without rules", rules_dir.display());
        }
        let (ring, evidence_window) = match cfg.store.ring {
            true => (
                Some(crate::store::ring::RingSettings::from_config(&cfg.store, &db, &rules_dir)?),
                Some(cfg.store.evidence_window()?),
            ),
            false => (None, None),
        };
        cfg.pipeline.analyzer_buffer_bytes()?;
        let session_lifetime = cfg.web.session_lifetime()?;
        cfg.capture.silent_after_secs().map_err(anyhow::Error::msg)?;
        let mut plan = crate::jobs::schedule(&cfg.jobs)?;
        // The ring watches the disk every 10 s (and records a shortage the full disk kept it from
        // recording); the cron watchdog is for a daemon without a ring.
        if ring.is_some() {
            plan.retain(|(j, _)| *j != crate::jobs::Job::Disk);
        }
        let mail_on = crate::mail::enabled(&cfg.mail);
        let mailer = match mail_on {
            true => Some(crate::mail::Mailer::new(&cfg.mail, &db)?),
            false => {
                tracing::warn!("[mail] server or to not set: alerts are stored, not mailed");
                None
            }
        };
        let live = Arc::new(Live::new());
        let settings = cfg.export.settings().map_err(|(_, why)| anyhow::anyhow!(why))?;
        if let Ok(mut f) = live.fleet.lock() {
            *f = (settings.host, settings.branch);
        }
        Ok(Daemon {
            cfg,
            db,
            rules_dir,
            live,
            stop: stop_flag()?,
            bg_stop: Arc::new(AtomicBool::new(false)),
            ring,
            evidence_window,
            plan,
            mail_on,
            session_lifetime,
            mailer,
            replay: args.replay.clone(),
            exporter: None,
        })
    }

    /// The store's writer: blocking for a replay (a file waits for the disk), dropping for live
    /// capture (which never waits).
    /// With `[export]`, the export thread starts too and sees every batch.
    fn store(&mut self, backpressure: Backpressure) -> anyhow::Result<SqliteSink> {
        let mut sink = SqliteSink::start_opts(&self.db, backpressure, self.mail_on, self.evidence_window, true)?;
        if self.cfg.export.enabled() {
            let exporter = crate::export::Exporter::start(&self.cfg.export, Some(Arc::clone(&sink.health)))?;
            sink.set_tap(Box::new(exporter.tap()));
            // disk.low, written by the ring or the disk job, goes out too.
            crate::event::listen_outside(Some(Box::new(exporter.tap())));
            if let Ok(mut e) = self.live.export.lock() {
                *e = Some(Arc::clone(&exporter.stats));
            }
            self.exporter = Some(exporter);
        }
        Ok(sink)
    }

    /// The pcap ring, once the store has created or migrated the database (it reads its windows).
    fn start_ring(&self) -> anyhow::Result<Option<crate::store::ring::Ring>> {
        let Some(s) = self.ring.clone() else { return Ok(None) };
        let ring = crate::store::ring::Ring::start(s)?;
        if let Ok(mut r) = self.live.ring.lock() {
            *r = Some(Arc::clone(&ring.stats));
        }
        Ok(Some(ring))
    }

    /// The pipeline with the rules as they are now, and the alert state the store remembers.
    fn pipeline(&self, sink: SqliteSink, rules: &mut RuleWatch) -> Pipeline<SqliteSink> {
        let mut p = Pipeline::new(self.cfg.flows.clone(), self.cfg.pipeline.clone(), sink);
        p.digest_every_secs = self.cfg.mail.digest_every_secs();
        p.store_exchanges();
        if let Some(r) = rules.poll() {
            p.set_rules(r);
        }
        restore_alerts(&mut p, &self.db);
        p
    }

    /// Dashboard, jobs and mailer, once the store is up; then READY.
    fn start_beside(&mut self, health: &Arc<crate::store::StoreHealth>, ready: &str) -> anyhow::Result<Running> {
        let web = self.dashboard(health)?;
        let mut threads = vec![crate::jobs::Jobs::new(&self.cfg, &self.db, &self.rules_dir)
            .spawn(self.plan.clone(), Arc::clone(&self.bg_stop))];
        if let Some(m) = self.mailer.take() {
            threads.push(m.spawn(Arc::clone(&self.bg_stop), MAIL_POLL));
        }
        let mut notifier = crate::notify::Notifier::from_env();
        notifier.ready(ready);
        Ok(Running { web, threads, notifier })
    }

    fn dashboard(&self, health: &Arc<crate::store::StoreHealth>) -> anyhow::Result<Option<crate::web::Server>> {
        if let Ok(mut s) = self.live.store.lock() {
            *s = Some(Arc::clone(health));
        }
        let web = &self.cfg.web;
        if web.listen.is_empty() {
            return Ok(None);
        }
        let state = crate::web::WebState::new(crate::web::WebSettings {
            db: self.db.clone(),
            mode: crate::web::Mode::Daemon,
            rules_dir: Some(self.rules_dir.clone()),
            preview_files: self.replay.iter().cloned().collect(),
            password_file: web.password_file.clone(),
            metrics_token_file: web.metrics_token_file.clone(),
            session_lifetime: self.session_lifetime,
            live: Arc::clone(&self.live),
            hostnames: web.answered_names(),
            limits: web.limits()?,
        });
        // Capture matters more than the dashboard: a taken port is reported, not fatal.
        let server = match crate::web::Server::start(&web.listen, state, Arc::new(AtomicBool::new(false))) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("dashboard not started: {e:#}");
                return Ok(None);
            }
        };
        tracing::info!("dashboard on http://{}/", server.addr);
        if matches!(crate::web::auth::password_state(&web.password_file), crate::web::auth::PasswordState::Unset) {
            tracing::warn!(
                "no dashboard password yet ({}): set one with `mirrorwatch passwd`",
                web.password_file.display()
            );
        }
        Ok(Some(server))
    }

    /// STOPPING, the dashboard down, the store's last batch written, the ring closed, then the
    /// jobs and the mailer.
    fn shut_down(
        &mut self,
        mut run: Running,
        sink: SqliteSink,
        ring: Option<crate::store::ring::Ring>,
    ) -> anyhow::Result<()> {
        run.notifier.stopping();
        if let Some(w) = run.web.take() {
            w.stop();
        }
        // Stopping: a failing store gets a few seconds, not the minute a file analysis waits;
        // whatever it could not store is said, and the rest still shuts down in order.
        sink.health.stopping.store(true, Ordering::Relaxed);
        if let Some(r) = &ring {
            r.stop_soon();
        }
        let stored = sink.finish();
        if let Err(e) = &stored {
            tracing::error!("stopping with the store failing: {e:#}");
        }
        if let Some(r) = ring {
            r.finish();
        }
        // The store's sink (and with it the export's tap) is gone: the export writes what is
        // queued and stops.
        if let Some(e) = self.exporter.take() {
            crate::event::listen_outside(None);
            e.finish();
        }
        self.bg_stop.store(true, Ordering::Relaxed);
        run.threads.into_iter().for_each(|t| t.join().unwrap_or(()));
        stored.map(|_| ())
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    // A replay of a file that cannot be read is a mistake to say now, not a daemon that serves
    // an empty store.
    // A pipe (`tcpdump -w - | mirrorwatch run --replay /dev/stdin`) is only looked at: opening
    // it here would eat the first bytes the replay needs.
    if let Some(file) = &args.replay {
        let regular = std::fs::metadata(file).map(|m| m.is_file());
        match regular {
            Ok(true) => {
                crate::capture::file::FileSource::open(file)
                    .map_err(|e| anyhow::anyhow!("--replay {}: {e}", file.display()))?;
            }
            Ok(false) => {}
            Err(e) => anyhow::bail!("--replay {}: {e}", file.display()),
        }
    }
    let d = Daemon::new(&args)?;
    let rules = RuleWatch::new(d.rules_dir.clone(), Arc::clone(&d.live));
    match d.replay.clone() {
        Some(file) => replay(d, rules, &file),
        None => capture(d, rules),
    }
}

/// `run --replay`: the file through the same pipeline as fast as it goes (packet time), then
/// the daemon serves the dashboard and sends mail until stopped.
fn replay(mut d: Daemon, mut rules: RuleWatch, file: &std::path::Path) -> anyhow::Result<Outcome> {
    // SIGHUP during the replay (a long file) must not end it either: the rules are reloaded
    // once the file is through.
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup)).context("installing SIGHUP")?;
    let mut sink = d.store(Backpressure::Block)?;
    sink.stop_on(Arc::clone(&d.stop));
    let mut ring = d.start_ring()?.map(|r| r.blocking());
    let mut run = d.start_beside(&sink.health, &format!("replaying {}", file.display()))?;
    let mut p = d.pipeline(sink, &mut rules);
    // SIGTERM stops the replay too, not only the serving after it. The dashboard's frame
    // counts follow the replay once a second (a long file, or a pipe fed as it goes).
    let (mut frames, mut bytes, mut shown) = (0u64, 0u64, Instant::now());
    let live = Arc::clone(&d.live);
    let reports = crate::offline::process_files_until(
        &mut p,
        std::slice::from_ref(&file.to_path_buf()),
        None,
        Some(&d.stop),
        |ctx, _| {
            frames += 1;
            bytes += u64::from(ctx.d.frame_len);
            if shown.elapsed() >= Duration::from_secs(1) {
                shown = Instant::now();
                live.packets.store(frames, Ordering::Relaxed);
                live.bytes.store(bytes, Ordering::Relaxed);
            }
            if let Some(r) = ring.as_mut() {
                let pkt = crate::capture::RawPacket {
                    frame: ctx.d.frame,
                    ts: ctx.d.ts,
                    orig_len: ctx.d.frame_len,
                    link: ctx.d.link,
                    interface: 0,
                    data: ctx.d.data,
                };
                r.push(&pkt, &ctx.app.masks);
            }
        },
    );
    p.finish_alerts();
    // Stopped by SIGTERM is not bad input.
    let stopped = d.stop.load(Ordering::Relaxed);
    let bad_input = !stopped && reports.iter().any(|r| r.error.is_some());
    for r in &reports {
        match &r.error {
            Some(e) => tracing::error!("replay: {e}"),
            None => tracing::info!("replayed {} frames from {}", r.packets, r.file),
        }
    }
    p.sink.flush();
    d.live.publish(&p.summary);
    if let Some(r) = ring.as_mut().filter(|_| !stopped) {
        // Once the store has written the last alerts, their windows are cut from what there is.
        p.sink.wait_idle(Duration::from_secs(30));
        r.end_of_input();
    }
    // Rule files saved meanwhile (the dashboard's editor) are still checked and applied, at
    // once on SIGHUP (which would otherwise end the process).
    let mut last_poll = Instant::now();
    while !d.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if rules.due(&hup, &mut last_poll) {
            if let Some(r) = rules.poll() {
                p.set_rules(r);
            }
            run.notifier.tick(crate::notify::writer_healthy(&p.sink.health));
        }
    }
    d.shut_down(run, p.sink, ring)?;
    Ok(Outcome { bad_input })
}

/// Drop counters of the capture and the ring, read once a second (the counters only grow).
#[derive(Default)]
struct Drops {
    kernel: u64,
    interface: u64,
    ring: u64,
    /// Kernel and interface drops since the start, for the status line.
    total: u64,
}

impl Drops {
    /// What was lost since the last call: (kernel, interface, ring).
    fn since_last(&mut self, src: &mut LiveSource, ring: Option<&crate::store::ring::Ring>) -> (u64, u64, u64) {
        let ring_lost = ring.map_or(0, |r| r.stats.frames_lost.load(Ordering::Relaxed));
        let ring_new = ring_lost.saturating_sub(self.ring);
        self.ring = ring_lost;
        let (mut kernel, mut interface) = (0, 0);
        if let Some(d) = src.drops() {
            kernel = d.dropped.saturating_sub(self.kernel);
            interface = d.if_dropped.saturating_sub(self.interface);
            if kernel + interface > 0 {
                tracing::error!(
                    "capture dropped {} frames in the last second ({kernel} kernel buffer, {interface} interface)",
                    kernel + interface
                );
                self.kernel = self.kernel.max(d.dropped);
                self.interface = self.interface.max(d.if_dropped);
                self.total = self.kernel + self.interface;
            }
        }
        (kernel, interface, ring_new)
    }
}

/// Live capture: libpcap on the mirror port → pipeline (→ ring), with a tick once a second, until
/// SIGINT/SIGTERM.
fn capture(mut d: Daemon, mut rules: RuleWatch) -> anyhow::Result<Outcome> {
    let iface = d.cfg.capture.interface.clone();
    let mut src = LiveSource::open(&d.cfg.capture).context("starting live capture")?;
    tracing::info!("capturing on {iface} (link type {})", src.link_type().name());
    let sink = d.store(Backpressure::Drop)?;
    let mut ring = d.start_ring()?;
    let mut run = d.start_beside(&sink.health, &format!("capturing on {iface}"))?;
    let mut p = d.pipeline(sink, &mut rules);
    let loader = RuleLoader::spawn(rules, Arc::clone(&d.bg_stop))?;
    // A Pi boots without a real-time clock: say so until NTP has set it (retention waits; the
    // stored minutes of that time never become what retention or a baseline measures from).
    let timesync = std::path::Path::new(crate::time::TIMESYNC_DIR);
    let mut clock = crate::time::clock_status(crate::time::wall_now().secs(), timesync);
    if !clock.synchronized {
        tracing::warn!("clock not synchronised: {}", clock.reason);
    }
    let mut health = HealthWatch { last_report: None };
    let silent_after = d.cfg.capture.silent_after_secs().map_err(|e| anyhow::anyhow!(e))?;
    let mut silence = SilenceWatch::new(silent_after, &d.live);
    let (mut last_tick, mut last_status) = (Instant::now(), Instant::now());
    let mut drops = Drops::default();
    let mut result = Ok(());
    while !d.stop.load(Ordering::Relaxed) {
        match src.next_packet() {
            Ok(Some(pkt)) => {
                p.process(&pkt);
                if let Some(r) = ring.as_mut() {
                    r.push(&pkt, p.masks());
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("capture stopped: {e}");
                result = Err(anyhow::anyhow!("capture on {iface} failed: {e}"));
                break;
            }
        }
        if last_tick.elapsed() < Duration::from_secs(1) {
            continue;
        }
        // Once a second: drops, the store's health, the open minute, the ring, the watchdog.
        last_tick = Instant::now();
        let now = crate::time::wall_now();
        let (kernel, interface, ring_new) = drops.since_last(&mut src, ring.as_ref());
        p.add_drops(now, kernel, interface, ring_new);
        health.check(&mut p, now);
        silence.check(&mut p, now, &d.live, &iface);
        p.tick(now);
        if let Some(r) = ring.as_mut() {
            r.flush();
        }
        d.live.publish(&p.summary);
        // Fed from this loop only: a capture loop that stops turning stops feeding it.
        run.notifier.tick(crate::notify::writer_healthy(&p.sink.health));
        if last_status.elapsed() >= Duration::from_secs(10) {
            last_status = Instant::now();
            let now_clock = crate::time::clock_status(now.secs(), timesync);
            if now_clock.synchronized != clock.synchronized {
                match now_clock.synchronized {
                    true => tracing::info!("clock synchronised"),
                    false => tracing::warn!("clock not synchronised: {}", now_clock.reason),
                }
                clock = now_clock;
            }
            run.notifier.status(&format!(
                "capturing on {iface}: {} frames, {} dropped{}",
                p.summary.packets,
                drops.total,
                if clock.synchronized { "" } else { "; clock not synchronised" }
            ));
        }
        if let Some(r) = loader.take() {
            p.set_rules(r);
        }
    }
    // Let the kernel hand over what it still holds, then account for it.
    while let Ok(Some(pkt)) = src.next_packet() {
        p.process(&pkt);
        if let Some(r) = ring.as_mut() {
            r.push(&pkt, p.masks());
        }
    }
    p.end_of_file();
    p.finish_alerts();
    let dropped_events = p.sink.dropped_events;
    d.shut_down(run, p.sink, ring)?;
    // (Its thread ends with the jobs and the mailer, on bg_stop.)
    drop(loader);
    if dropped_events > 0 {
        tracing::error!("store could not keep up: {dropped_events} events dropped");
    }
    result.map(|()| Outcome::default())
}
