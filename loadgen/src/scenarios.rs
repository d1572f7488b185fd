//! The five load scenarios: handshake storm, fan-out, inbound, RTT, idle.
//!
//! Each runs one goose attack whose users own WebSocket connections, plus (except the
//! handshake storm) a controller task on a `ctl-` connection that drives the bench server and
//! reads the server's CPU time and RSS from `/proc`. Each returns one JSON object of results.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use goose::config::GooseConfiguration;
use goose::metrics::GooseMetrics;
use goose::prelude::*;
use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::conn::{ConnectError, Target, Ws, control, wall_us};
use crate::procfs;
use crate::stats::{latency_histogram, percentiles, record, record_us};

/// A scenario failed as a whole (not one connection of it).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// goose refused its configuration or failed.
    #[error("goose: {0:?}")]
    Goose(#[from] GooseError),
    /// The control connection failed.
    #[error("control: {0}")]
    Control(#[from] ConnectError),
    /// The server did not reach the expected state in time.
    #[error("{0}")]
    Timeout(String),
}

/// What every scenario needs.
#[derive(Debug, Clone)]
pub struct Common {
    /// The server.
    pub target: Arc<Target>,
    /// goose users (each owns `connections / users` connections).
    pub users: usize,
    /// goose users started per second.
    pub hatch_rate: usize,
    /// goose's HTML report, if wanted.
    pub report: Option<String>,
    /// Upper bound on any wait of the scenario.
    pub timeout: Duration,
}

/// Runs one goose attack of `users` users, `iterations` each.
async fn attack(
    common: &Common,
    scenario: Scenario,
    users: usize,
    iterations: usize,
) -> Result<GooseMetrics, GooseError> {
    let host = format!("http://{}", common.target.addr);
    let mut attack = GooseAttack::initialize_with_config(GooseConfiguration::default())?
        .register_scenario(scenario)
        .set_default(GooseDefault::Host, host.as_str())?
        .set_default(GooseDefault::Users, users.max(1))?
        .set_default(
            GooseDefault::IncreaseRate,
            common.hatch_rate.max(1).to_string().as_str(),
        )?
        .set_default(GooseDefault::Iterations, iterations.max(1))?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoWebSocket, true)?
        .set_default(GooseDefault::NoStatusCodes, true)?;
    if let Some(report) = &common.report {
        attack = attack.set_default(GooseDefault::ReportFile, report.as_str())?;
    }
    // Boxed: goose's attack future is over 20 KB.
    Box::pin(attack.execute()).await
}

fn goose_summary(out: &mut Map<String, Value>, metrics: &GooseMetrics) {
    let mut requests = 0usize;
    let mut failures = 0usize;
    for aggregate in metrics.requests.values() {
        requests += aggregate.success_count + aggregate.fail_count;
        failures += aggregate.fail_count;
    }
    out.insert("goose_requests".into(), json!(requests));
    out.insert("goose_failures".into(), json!(failures));
    out.insert("goose_duration_s".into(), json!(metrics.duration));
}

/// Records one WebSocket operation in goose and returns goose's verdict.
async fn record_ws(
    user: &mut GooseUser,
    name: &str,
    took: Duration,
    error: Option<&str>,
) -> TransactionResult {
    user.record_custom_request_duration("WS", name, took, error.is_none(), None, error)
        .await
}

// ---------------------------------------------------------------------------------------------
// Handshake storm

/// `total` connections opened (JWT, until `server_ready`) and closed, `concurrency` at a time.
pub async fn handshake(
    common: &Common,
    total: usize,
    concurrency: usize,
) -> Result<Value, ScenarioError> {
    struct Storm {
        target: Arc<Target>,
        total: usize,
        next: AtomicUsize,
        failed: AtomicUsize,
        hist: Mutex<Histogram<u64>>,
        first: OnceLock<Instant>,
        last: Mutex<Option<Instant>>,
    }
    let storm = Arc::new(Storm {
        target: common.target.clone(),
        total,
        next: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        hist: Mutex::new(latency_histogram()),
        first: OnceLock::new(),
        last: Mutex::new(None),
    });
    let s = storm.clone();
    let connect_close: TransactionFunction = Arc::new(move |user| {
        let s = s.clone();
        Box::pin(async move {
            let n = s.next.fetch_add(1, Ordering::Relaxed);
            if n >= s.total {
                return Ok(());
            }
            let started = *s.first.get_or_init(Instant::now);
            let _ = started;
            let t = Instant::now();
            match s.target.connect(&format!("hs-{n}")).await {
                Ok((mut ws, took)) => {
                    record(&mut lock(&s.hist), took);
                    record_ws(user, "handshake", took, None).await?;
                    let _ = ws.close(None).await;
                }
                Err(e) => {
                    s.failed.fetch_add(1, Ordering::Relaxed);
                    record_ws(user, "handshake", t.elapsed(), Some(&e.to_string())).await?;
                }
            }
            *lock(&s.last) = Some(Instant::now());
            Ok(())
        })
    });
    let concurrency = concurrency.clamp(1, total.max(1));
    let scenario = scenario!("HandshakeStorm")
        .register_transaction(Transaction::new(connect_close).set_name("connect_close"));
    // The server's pid, for its CPU time over the storm.
    let (mut ctl, stats) = control_conn(common).await?;
    let pid = pid_of(&stats);
    let cpu0 = procfs::cpu_seconds(pid);
    let metrics = attack(common, scenario, concurrency, total.div_ceil(concurrency)).await?;
    let cpu1 = procfs::cpu_seconds(pid);
    let _ = ctl.close(None).await;

    let hist = lock(&storm.hist).clone();
    let failed = storm.failed.load(Ordering::Relaxed);
    let elapsed = match (storm.first.get(), *lock(&storm.last)) {
        (Some(first), Some(last)) => last.duration_since(*first).as_secs_f64(),
        _ => 0.0,
    };
    let ok = hist.len() as f64;
    let mut out = Map::new();
    out.insert("scenario".into(), json!("handshake"));
    out.insert("connections".into(), json!(total));
    out.insert("concurrency".into(), json!(concurrency));
    out.insert("failures".into(), json!(failed));
    out.insert("elapsed_s".into(), json!(elapsed));
    out.insert("handshakes_per_s".into(), json!(per_second(ok, elapsed)));
    percentiles(&mut out, "handshake", &hist);
    out.insert(
        "impl".into(),
        stats.get("impl").cloned().unwrap_or(Value::Null),
    );
    if let (Some(a), Some(b)) = (cpu0, cpu1)
        && ok > 0.0
    {
        out.insert("server_cpu_s".into(), json!(b - a));
        out.insert(
            "server_cpu_us_per_handshake".into(),
            json!((b - a) * 1e6 / ok),
        );
    }
    goose_summary(&mut out, &metrics);
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------------------------
// Connection pools: goose users that open connections and hand each to the scenario.

/// What a pool does with each connection once it is open: the connection, its index, and the
/// signal that ends the scenario (set when the controller is done, whatever its outcome).
type OnOpen = Arc<dyn Fn(Ws, usize, watch::Receiver<bool>) -> JoinHandle<()> + Send + Sync>;

/// `total` connections named `<prefix><i>`, opened by the users of one goose attack.
struct Pool {
    /// Connection `i` goes to `targets[i % len]`.
    targets: Vec<Arc<Target>>,
    prefix: &'static str,
    total: usize,
    next: AtomicUsize,
    opened: AtomicUsize,
    failed: AtomicUsize,
    hist: Mutex<Histogram<u64>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    on_open: OnOpen,
    /// Set by the controller once its baseline is taken: users connect only then.
    begin: watch::Sender<bool>,
    done: watch::Sender<bool>,
}

impl Pool {
    fn new(common: &Common, prefix: &'static str, total: usize, on_open: OnOpen) -> Arc<Pool> {
        Pool::spread(vec![common.target.clone()], prefix, total, on_open)
    }

    /// A pool whose connections go round-robin to `targets` (several cluster nodes).
    fn spread(
        targets: Vec<Arc<Target>>,
        prefix: &'static str,
        total: usize,
        on_open: OnOpen,
    ) -> Arc<Pool> {
        assert!(!targets.is_empty(), "a pool needs a target");
        Arc::new(Pool {
            targets,
            prefix,
            total,
            next: AtomicUsize::new(0),
            opened: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            hist: Mutex::new(latency_histogram()),
            tasks: Mutex::new(Vec::new()),
            on_open,
            begin: watch::channel(false).0,
            done: watch::channel(false).0,
        })
    }

    /// Connections settled (opened or failed).
    fn settled(&self) -> usize {
        self.opened.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }

    /// The goose scenario: each user opens its share on start, then waits for `done`.
    fn scenario(self: &Arc<Self>, name: &str, per_user: usize) -> Scenario {
        let pool = self.clone();
        let open: TransactionFunction = Arc::new(move |user| {
            let pool = pool.clone();
            let mut begin = pool.begin.subscribe();
            Box::pin(async move {
                let _ = begin.wait_for(|b| *b).await;
                for _ in 0..per_user {
                    let i = pool.next.fetch_add(1, Ordering::Relaxed);
                    if i >= pool.total {
                        break;
                    }
                    let t = Instant::now();
                    let target = &pool.targets[i % pool.targets.len()];
                    match target.connect(&format!("{}{i}", pool.prefix)).await {
                        Ok((ws, took)) => {
                            record(&mut lock(&pool.hist), took);
                            let task = (pool.on_open)(ws, i, pool.done.subscribe());
                            lock(&pool.tasks).push(task);
                            pool.opened.fetch_add(1, Ordering::Relaxed);
                            record_ws(user, "handshake", took, None).await?;
                        }
                        Err(e) => {
                            pool.failed.fetch_add(1, Ordering::Relaxed);
                            record_ws(user, "handshake", t.elapsed(), Some(&e.to_string())).await?;
                        }
                    }
                }
                Ok(())
            })
        });
        let pool = self.clone();
        let hold: TransactionFunction = Arc::new(move |_user| {
            let mut done = pool.done.subscribe();
            Box::pin(async move {
                let _ = done.wait_for(|d| *d).await;
                Ok(())
            })
        });
        scenario!(name)
            .register_transaction(Transaction::new(open).set_name("open").set_on_start())
            .register_transaction(Transaction::new(hold).set_name("hold"))
    }

    /// Waits until every connection is settled.
    async fn wait_settled(&self, timeout: Duration) -> Result<(), ScenarioError> {
        wait_until(timeout, || self.settled() >= self.total)
            .await
            .map_err(|()| {
                ScenarioError::Timeout(format!(
                    "{} of {} connections settled",
                    self.settled(),
                    self.total
                ))
            })
    }

    /// Ends the users' hold and waits for the per-connection tasks.
    /// Lets the users connect (the controller's baseline is taken).
    fn begin(&self) {
        self.begin.send_replace(true);
    }

    async fn finish(&self) {
        self.begin.send_replace(true);
        self.done.send_replace(true);
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            let _ = task.await;
        }
    }

    fn report(&self, out: &mut Map<String, Value>) {
        out.insert("connections".into(), json!(self.total));
        out.insert("opened".into(), json!(self.opened.load(Ordering::Relaxed)));
        out.insert(
            "failures".into(),
            json!(self.failed.load(Ordering::Relaxed)),
        );
        percentiles(out, "handshake", &lock(&self.hist));
    }
}

/// Users for `connections`: at most `common.users`, each owning an equal share.
fn split(common: &Common, connections: usize) -> (usize, usize) {
    let users = common.users.clamp(1, connections.max(1));
    (users, connections.div_ceil(users))
}

/// Runs the pool's attack and `controller` side by side; the controller ends the hold.
async fn with_pool<F>(
    common: &Common,
    pool: &Arc<Pool>,
    name: &str,
    controller: F,
) -> Result<(Map<String, Value>, GooseMetrics), ScenarioError>
where
    F: std::future::Future<Output = Result<Map<String, Value>, ScenarioError>>,
{
    let (users, per_user) = split(common, pool.total);
    let scenario = pool.scenario(name, per_user);
    let run = attack(common, scenario, users, 1);
    let control = async {
        let result = controller.await;
        // Whatever happened, release the users so the attack ends.
        pool.finish().await;
        result
    };
    let (metrics, result) = tokio::join!(run, control);
    Ok((result?, metrics?))
}

/// Opens the control connection and reads the server's stats.
async fn control_conn(common: &Common) -> Result<(Ws, Map<String, Value>), ScenarioError> {
    control_conn_to(&common.target, common.timeout).await
}

async fn control_conn_to(
    target: &Target,
    timeout: Duration,
) -> Result<(Ws, Map<String, Value>), ScenarioError> {
    let (mut ws, _) = target.connect("ctl-0").await?;
    let stats = bench_stats(&mut ws, timeout).await?;
    Ok((ws, stats))
}

/// The server's `bench_stats`.
async fn bench_stats(ws: &mut Ws, timeout: Duration) -> Result<Map<String, Value>, ConnectError> {
    control(ws, "bench_stats", json!({}), "bench_stats", timeout).await
}

fn pid_of(stats: &Map<String, Value>) -> u32 {
    stats.get("pid").and_then(Value::as_u64).unwrap_or(0) as u32
}

fn u64_of(stats: &Map<String, Value>, key: &str) -> u64 {
    stats.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Polls bench_stats until `ready` holds.
async fn poll_stats(
    ws: &mut Ws,
    timeout: Duration,
    mut ready: impl FnMut(&Map<String, Value>) -> bool,
) -> Result<Map<String, Value>, ScenarioError> {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = bench_stats(ws, timeout).await?;
        if ready(&stats) {
            return Ok(stats);
        }
        if Instant::now() >= deadline {
            return Err(ScenarioError::Timeout(format!(
                "server stats never ready: {stats:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Fan-out

#[derive(Debug, Default)]
struct FanoutTally {
    delivered: AtomicU64,
    /// µs since the publication started, of the latest delivery.
    last_at_us: AtomicU64,
    lost: AtomicU64,
    duplicates: AtomicU64,
    reordered: AtomicU64,
}

/// Fan-out parameters.
#[derive(Debug, Clone)]
pub struct Fanout {
    /// Subscribers.
    pub subscribers: usize,
    /// Publications.
    pub messages: u64,
    /// Padding bytes per publication.
    pub size: usize,
    /// Publications per second (0 = as fast as the server publishes).
    pub rate: u64,
    /// Cluster fan-out: the subscribers connect round-robin to these nodes, the publisher is
    /// `common.target`; empty means everything on `common.target`.
    pub subscriber_targets: Vec<Arc<Target>>,
    /// Cluster fan-out on a publisher that does not report `routes` (the original): the wait
    /// after it reports a live link to every subscriber node, before publishing.
    pub settle: Duration,
}

/// N subscribers to `bench`, K publications of S bytes: deliveries/s, e2e latency, loss, and
/// the server's CPU time per delivery.
pub async fn fanout(common: &Common, p: Fanout) -> Result<Value, ScenarioError> {
    let tally = Arc::new(FanoutTally::default());
    let hist = Arc::new(Mutex::new(latency_histogram()));
    let started: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let on_open: OnOpen = {
        let (tally, hist, started) = (tally.clone(), hist.clone(), started.clone());
        Arc::new(move |ws, _, stop| {
            let reader = Reader {
                expect: p.messages,
                tally: tally.clone(),
                hist: hist.clone(),
                started: started.clone(),
            };
            tokio::spawn(reader.run(ws, stop))
        })
    };
    let clustered = !p.subscriber_targets.is_empty();
    let targets = if clustered {
        p.subscriber_targets.clone()
    } else {
        vec![common.target.clone()]
    };
    let pool = Pool::spread(targets.clone(), "f-", p.subscribers, on_open);
    let expected = p.subscribers as u64 * p.messages;
    let controller = async {
        let (mut ctl, _) = control_conn(common).await?;
        // One control connection per subscriber node (the publisher's own when not clustered).
        let mut node_ctls = Vec::new();
        if clustered {
            for t in &targets {
                node_ctls.push(control_conn_to(t, common.timeout).await?.0);
            }
        }
        pool.begin();
        pool.wait_settled(common.timeout).await?;
        let want = pool.opened.load(Ordering::Relaxed) as u64;
        let mut pids = Vec::new();
        let mut cluster_wait = None;
        let stats = if clustered {
            // Every subscriber registered on its node (the servers subscribe a connection
            // when their application drains its connect event, after its `server_ready`).
            let deadline = Instant::now() + common.timeout;
            loop {
                let mut subscribed = 0;
                pids.clear();
                for ws in &mut node_ctls {
                    let s = bench_stats(ws, common.timeout).await?;
                    subscribed += u64_of(&s, "subscribers");
                    pids.push(pid_of(&s));
                }
                if subscribed >= want {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(ScenarioError::Timeout(format!(
                        "{subscribed} of {want} subscribers registered on the subscriber nodes"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Interest converged: the publisher routes the topic to every subscriber node.
            // A server that cannot say so (no `routes`: the original) is waited for until it
            // has a live link to every subscriber node, then for a fixed settle.
            let nodes = targets.len() as u64;
            let waited = Instant::now();
            let s = poll_stats(&mut ctl, common.timeout, |s| {
                match (s.get("routes"), s.get("peers")) {
                    (Some(r), _) => r.as_u64().unwrap_or(0) >= nodes,
                    (None, Some(peers)) => peers.as_u64().unwrap_or(0) >= nodes,
                    (None, None) => true,
                }
            })
            .await?;
            let how = match (s.get("routes"), s.get("peers")) {
                (Some(_), _) => "routes",
                (None, Some(_)) => {
                    tokio::time::sleep(p.settle).await;
                    "peers+settle"
                }
                (None, None) => "none",
            };
            cluster_wait = Some((how, waited.elapsed().as_secs_f64()));
            s
        } else {
            poll_stats(&mut ctl, common.timeout, |s| {
                u64_of(s, "subscribers") >= want
            })
            .await?
        };
        let pid = pid_of(&stats);
        pids.push(pid);
        pids.sort_unstable();
        pids.dedup();
        let nodes_cpu =
            |pids: &[u32]| -> Option<f64> { pids.iter().map(|p| procfs::cpu_seconds(*p)).sum() };
        let all0 = nodes_cpu(&pids);
        let cpu0 = procfs::cpu_seconds(pid);
        let self_cpu0 = procfs::cpu_seconds(std::process::id());
        let t0 = *started.get_or_init(Instant::now);
        let request = json!({"count": p.messages, "size": p.size, "rate": p.rate});
        let publish_timeout = common.timeout + Duration::from_secs(p.messages / p.rate.max(1));
        let done = control(
            &mut ctl,
            "bench_fanout",
            request,
            "bench_fanout_done",
            publish_timeout,
        )
        .await?;
        // Deliveries trail the last publication; wait for all, or for 5 s without progress.
        let want_deliveries = want * p.messages;
        let mut last = (tally.delivered.load(Ordering::Relaxed), Instant::now());
        while last.0 < want_deliveries && last.1.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = tally.delivered.load(Ordering::Relaxed);
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
        let cpu1 = procfs::cpu_seconds(pid);
        let all1 = nodes_cpu(&pids);
        let self_cpu1 = procfs::cpu_seconds(std::process::id());
        let mut out = Map::new();
        if clustered {
            out.insert("nodes".into(), json!(pids.len()));
            if let Some((how, secs)) = cluster_wait {
                out.insert("cluster_wait".into(), json!(how));
                out.insert("cluster_wait_s".into(), json!(secs));
            }
            if let (Some(a), Some(b)) = (all0, all1) {
                out.insert("cluster_cpu_s".into(), json!(b - a));
            }
        }
        out.insert(
            "impl".into(),
            stats.get("impl").cloned().unwrap_or(Value::Null),
        );
        out.insert(
            "published".into(),
            done.get("sent").cloned().unwrap_or(Value::Null),
        );
        out.insert(
            "publish_s".into(),
            json!(u64_of(&done, "elapsed_us") as f64 / 1e6),
        );
        let _ = t0;
        if let (Some(a), Some(b)) = (cpu0, cpu1) {
            out.insert("server_cpu_s".into(), json!(b - a));
        }
        if let (Some(a), Some(b)) = (self_cpu0, self_cpu1) {
            out.insert("loadgen_cpu_s".into(), json!(b - a));
        }
        Ok(out)
    };
    let (mut out, metrics) = with_pool(common, &pool, "Fanout", controller).await?;
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let window = tally.last_at_us.load(Ordering::Relaxed) as f64 / 1e6;
    out.insert("scenario".into(), json!("fanout"));
    pool.report(&mut out);
    out.insert("messages".into(), json!(p.messages));
    out.insert("size".into(), json!(p.size));
    out.insert("rate".into(), json!(p.rate));
    out.insert("expected".into(), json!(expected));
    out.insert("delivered".into(), json!(delivered));
    out.insert("lost".into(), json!(tally.lost.load(Ordering::Relaxed)));
    out.insert(
        "duplicates".into(),
        json!(tally.duplicates.load(Ordering::Relaxed)),
    );
    out.insert(
        "reordered".into(),
        json!(tally.reordered.load(Ordering::Relaxed)),
    );
    out.insert("delivery_window_s".into(), json!(window));
    out.insert(
        "deliveries_per_s".into(),
        json!(per_second(delivered as f64, window)),
    );
    if let Some(cpu) = out.get("server_cpu_s").and_then(Value::as_f64)
        && delivered > 0
    {
        out.insert(
            "server_cpu_us_per_delivery".into(),
            json!(cpu * 1e6 / delivered as f64),
        );
    }
    if let Some(cpu) = out.get("cluster_cpu_s").and_then(Value::as_f64)
        && delivered > 0
    {
        out.insert(
            "cluster_cpu_us_per_delivery".into(),
            json!(cpu * 1e6 / delivered as f64),
        );
    }
    percentiles(&mut out, "e2e", &lock(&hist));
    goose_summary(&mut out, &metrics);
    Ok(Value::Object(out))
}

/// A subscriber's background reader: checks order and loss, feeds the latency histogram.
struct Reader {
    expect: u64,
    tally: Arc<FanoutTally>,
    hist: Arc<Mutex<Histogram<u64>>>,
    started: Arc<OnceLock<Instant>>,
}

impl Reader {
    async fn run(self, mut ws: Ws, mut stop: watch::Receiver<bool>) {
        let mut hist = latency_histogram();
        let mut next = 0u64;
        let mut unique = 0u64;
        loop {
            let frame = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                frame = ws.next() => frame,
            };
            let bytes: &[u8] = match &frame {
                Some(Ok(Message::Text(t))) => t.as_bytes(),
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => break,
            };
            let (Some(q), Some(st)) = (field(bytes, b"\"q\":"), field(bytes, b"\"st\":")) else {
                continue;
            };
            record_us(&mut hist, wall_us().saturating_sub(st));
            self.tally.delivered.fetch_add(1, Ordering::Relaxed);
            if let Some(t0) = self.started.get() {
                self.tally
                    .last_at_us
                    .fetch_max(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            if q >= next {
                if q > next {
                    self.tally
                        .reordered
                        .fetch_add(u64::from(q > next), Ordering::Relaxed);
                }
                unique += 1;
                next = q + 1;
            } else {
                self.tally.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.tally
            .lost
            .fetch_add(self.expect.saturating_sub(unique), Ordering::Relaxed);
        let _ = lock(&self.hist).add(&hist);
        let _ = ws.close(None).await;
    }
}

/// The unsigned integer after `key` in `bytes` (a JSON scan that does not build a tree: the
/// reader must cost the load generator as little as possible).
fn field(bytes: &[u8], key: &[u8]) -> Option<u64> {
    let at = bytes.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&bytes[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// Inbound

/// N connections send M messages each, pipelined: the rate the server's application drained
/// them at, and what it lost.
pub async fn inbound(
    common: &Common,
    connections: usize,
    messages: u64,
) -> Result<Value, ScenarioError> {
    let (go_tx, go_rx) = watch::channel(false);
    let sent = Arc::new(AtomicU64::new(0));
    let send_errors = Arc::new(AtomicU64::new(0));
    let on_open: OnOpen = {
        let (sent, send_errors) = (sent.clone(), send_errors.clone());
        Arc::new(move |ws, i, mut stop| {
            let mut go = go_rx.clone();
            let (sent, send_errors) = (sent.clone(), send_errors.clone());
            tokio::spawn(async move {
                let (mut sink, mut stream) = ws.split();
                let reader = tokio::spawn(async move {
                    // Keep reading so the server's writes never stall; stop on `stop`.
                    loop {
                        tokio::select! {
                            biased;
                            _ = stop.wait_for(|s| *s) => break,
                            frame = stream.next() => if !matches!(frame, Some(Ok(_))) { break },
                        }
                    }
                });
                if go.wait_for(|g| *g).await.is_ok() {
                    for k in 0..messages {
                        let text = format!(r#"{{"t":"in","p":{{"c":{i},"k":{k}}}}}"#);
                        if sink
                            .feed(Message::Text(Utf8Bytes::from(text)))
                            .await
                            .is_err()
                        {
                            send_errors.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    if sink.flush().await.is_err() {
                        send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let _ = reader.await;
                let _ = sink.close().await;
            })
        })
    };
    let pool = Pool::new(common, "in-", connections, on_open);
    let controller = async {
        let (mut ctl, _) = control_conn(common).await?;
        control(
            &mut ctl,
            "bench_reset",
            json!({}),
            "bench_stats",
            common.timeout,
        )
        .await?;
        pool.begin();
        pool.wait_settled(common.timeout).await?;
        let opened = pool.opened.load(Ordering::Relaxed) as u64;
        let expected = opened * messages;
        let stats0 = bench_stats(&mut ctl, common.timeout).await?;
        let pid = pid_of(&stats0);
        let cpu0 = procfs::cpu_seconds(pid);
        let t0 = Instant::now();
        go_tx.send_replace(true);
        // Until everything is drained or dropped, or 5 s pass without progress.
        let mut last = (0u64, Instant::now());
        let stats = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let s = bench_stats(&mut ctl, common.timeout).await?;
            let seen = u64_of(&s, "received") + u64_of(&s, "dropped") - u64_of(&stats0, "dropped");
            if seen >= expected || (seen == last.0 && last.1.elapsed() > Duration::from_secs(5)) {
                break s;
            }
            if seen != last.0 {
                last = (seen, Instant::now());
            }
        };
        let wall = t0.elapsed().as_secs_f64();
        let cpu1 = procfs::cpu_seconds(pid);
        let received = u64_of(&stats, "received");
        let span =
            u64_of(&stats, "last_us").saturating_sub(u64_of(&stats, "first_us")) as f64 / 1e6;
        let mut out = Map::new();
        out.insert("scenario".into(), json!("inbound"));
        out.insert(
            "impl".into(),
            stats.get("impl").cloned().unwrap_or(Value::Null),
        );
        out.insert("messages_per_connection".into(), json!(messages));
        out.insert("expected".into(), json!(expected));
        out.insert("received".into(), json!(received));
        out.insert("lost".into(), json!(expected.saturating_sub(received)));
        out.insert(
            "server_reported_dropped".into(),
            json!(u64_of(&stats, "dropped") - u64_of(&stats0, "dropped")),
        );
        out.insert("drain_span_s".into(), json!(span));
        out.insert(
            "drained_per_s".into(),
            json!(per_second(received as f64, span)),
        );
        out.insert("wall_s".into(), json!(wall));
        if let (Some(a), Some(b)) = (cpu0, cpu1) {
            out.insert("server_cpu_s".into(), json!(b - a));
        }
        Ok(out)
    };
    let (mut out, metrics) = with_pool(common, &pool, "Inbound", controller).await?;
    pool.report(&mut out);
    out.insert("sent".into(), json!(sent.load(Ordering::Relaxed)));
    out.insert(
        "send_errors".into(),
        json!(send_errors.load(Ordering::Relaxed)),
    );
    goose_summary(&mut out, &metrics);
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------------------------
// RTT

/// `connections` users each make `pings` sequential ping → PONG round trips.
pub async fn rtt(
    common: &Common,
    connections: usize,
    pings: usize,
) -> Result<Value, ScenarioError> {
    /// A user's connection (goose session data must be `Clone`).
    #[derive(Clone)]
    struct Session(Arc<tokio::sync::Mutex<Ws>>);
    struct Shared {
        target: Arc<Target>,
        next: AtomicUsize,
        failed: AtomicUsize,
        handshakes: Mutex<Histogram<u64>>,
        rtt: Mutex<Histogram<u64>>,
    }
    let shared = Arc::new(Shared {
        target: common.target.clone(),
        next: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        handshakes: Mutex::new(latency_histogram()),
        rtt: Mutex::new(latency_histogram()),
    });
    let s = shared.clone();
    let open: TransactionFunction = Arc::new(move |user| {
        let s = s.clone();
        Box::pin(async move {
            let i = s.next.fetch_add(1, Ordering::Relaxed);
            let t = Instant::now();
            match s.target.connect(&format!("rtt-{i}")).await {
                Ok((ws, took)) => {
                    record(&mut lock(&s.handshakes), took);
                    user.set_session_data(Session(Arc::new(tokio::sync::Mutex::new(ws))));
                    record_ws(user, "handshake", took, None).await
                }
                Err(e) => {
                    s.failed.fetch_add(1, Ordering::Relaxed);
                    record_ws(user, "handshake", t.elapsed(), Some(&e.to_string())).await
                }
            }
        })
    });
    let s = shared.clone();
    let ping: TransactionFunction = Arc::new(move |user| {
        let s = s.clone();
        Box::pin(async move {
            let Some(Session(ws)) = user.get_session_data::<Session>().cloned() else {
                return Ok(());
            };
            let mut ws = ws.lock().await;
            let t = Instant::now();
            let result = ping_once(&mut ws).await;
            let took = t.elapsed();
            match result {
                Ok(()) => {
                    record(&mut lock(&s.rtt), took);
                    record_ws(user, "ping", took, None).await
                }
                Err(e) => {
                    s.failed.fetch_add(1, Ordering::Relaxed);
                    record_ws(user, "ping", took, Some(&e)).await
                }
            }
        })
    });
    let s = shared.clone();
    let close: TransactionFunction = Arc::new(move |user| {
        let _ = &s;
        Box::pin(async move {
            if let Some(Session(ws)) = user.get_session_data::<Session>().cloned() {
                let _ = ws.lock().await.close(None).await;
            }
            Ok(())
        })
    });
    let scenario = scenario!("Rtt")
        .register_transaction(Transaction::new(open).set_name("open").set_on_start())
        .register_transaction(Transaction::new(ping).set_name("ping"))
        .register_transaction(Transaction::new(close).set_name("close").set_on_stop());
    let metrics = attack(common, scenario, connections, pings).await?;
    let mut out = Map::new();
    out.insert("scenario".into(), json!("rtt"));
    out.insert("connections".into(), json!(connections));
    out.insert("pings_per_connection".into(), json!(pings));
    out.insert(
        "failures".into(),
        json!(shared.failed.load(Ordering::Relaxed)),
    );
    percentiles(&mut out, "handshake", &lock(&shared.handshakes));
    percentiles(&mut out, "rtt", &lock(&shared.rtt));
    goose_summary(&mut out, &metrics);
    Ok(Value::Object(out))
}

async fn ping_once(ws: &mut Ws) -> Result<(), String> {
    let ms = wall_us() / 1000;
    let ping = format!(r#"{{"c":"WSE","t":"ping","p":{{"timestamp":{ms}}},"v":1}}"#);
    ws.send(Message::Text(Utf8Bytes::from(ping)))
        .await
        .map_err(|e| e.to_string())?;
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("\"PONG\"") => return Ok(()),
                Some(Ok(Message::Close(c))) => return Err(format!("closed: {c:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("stream ended".to_owned()),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .map_err(|_| "no PONG within 10 s".to_owned())?
}

// ---------------------------------------------------------------------------------------------
// Idle

/// `connections` connections opened and held: the server's RSS per connection.
pub async fn idle(
    common: &Common,
    connections: usize,
    hold: Duration,
) -> Result<Value, ScenarioError> {
    let on_open: OnOpen = Arc::new(move |mut ws, _, mut stop| {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => break,
                    frame = ws.next() => if !matches!(frame, Some(Ok(_))) { return },
                }
            }
            let _ = ws.close(None).await;
        })
    });
    let pool = Pool::new(common, "idle-", connections, on_open);
    let controller = async {
        let (mut ctl, stats0) = control_conn(common).await?;
        let pid = pid_of(&stats0);
        let base_conns = u64_of(&stats0, "connections");
        let rss0 = procfs::rss_bytes(pid);
        let fds0 = procfs::open_fds(pid);
        pool.begin();
        pool.wait_settled(common.timeout).await?;
        let want = base_conns + pool.opened.load(Ordering::Relaxed) as u64;
        let stats = poll_stats(&mut ctl, common.timeout, |s| {
            u64_of(s, "connections") >= want
        })
        .await?;
        // Let allocators settle and late buffers be released.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss1 = procfs::rss_bytes(pid);
        let fds1 = procfs::open_fds(pid);
        tokio::time::sleep(hold).await;
        let n = pool.opened.load(Ordering::Relaxed) as f64;
        let mut out = Map::new();
        out.insert("scenario".into(), json!("idle"));
        out.insert(
            "impl".into(),
            stats.get("impl").cloned().unwrap_or(Value::Null),
        );
        out.insert(
            "server_connections".into(),
            json!(u64_of(&stats, "connections")),
        );
        if let (Some(a), Some(b)) = (rss0, rss1) {
            out.insert("server_rss_before_mb".into(), json!(a as f64 / 1048576.0));
            out.insert("server_rss_after_mb".into(), json!(b as f64 / 1048576.0));
            if n > 0.0 {
                out.insert(
                    "rss_per_connection_kb".into(),
                    json!((b as f64 - a as f64) / n / 1024.0),
                );
            }
        }
        if let (Some(a), Some(b)) = (fds0, fds1)
            && n > 0.0
        {
            out.insert(
                "fds_per_connection".into(),
                json!((b as f64 - a as f64) / n),
            );
        }
        Ok(out)
    };
    let (mut out, metrics) = with_pool(common, &pool, "Idle", controller).await?;
    pool.report(&mut out);
    goose_summary(&mut out, &metrics);
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------------------------

/// `count / seconds`, 0 for an empty interval.
fn per_second(count: f64, seconds: f64) -> f64 {
    if seconds > 0.0 { count / seconds } else { 0.0 }
}

async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            return Err(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn field_reads_the_integer_after_its_key() {
        let text = br#"{"c":"WSE","t":"bench","p":{"q":42,"st":1700000000000000,"pad":"xx"}}"#;
        assert_eq!(field(text, b"\"q\":"), Some(42));
        assert_eq!(field(text, b"\"st\":"), Some(1_700_000_000_000_000));
        assert_eq!(field(text, b"\"nope\":"), None);
        assert_eq!(field(br#"{"q":"x"}"#, b"\"q\":"), None);
    }
}
