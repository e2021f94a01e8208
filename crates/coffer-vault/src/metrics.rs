//! Prometheus text metrics from atomic counters (no metrics crate needed), served on their
//! own listener (`serve --metrics-listen`), never on the API's.
//!
//! Nothing exported may tell an unknown account's dummy KE2 from a real one (the dummy
//! exists so that `recover/start` does not reveal whether a record exists): one counter
//! covers both kinds of KE2, and no counter moves only when a real record is touched by
//! `recover/start` (no guesses-counted, destroyed-records or, unless a benchmark asks,
//! group-commit counters). The latency histogram is the exception docs/VAULT-API.md names.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// Latency bucket bounds in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// The API routes, each counted separately.
#[derive(Clone, Copy, Debug)]
pub enum Route {
    /// `POST /v1/register/start`
    RegisterStart,
    /// `POST /v1/register/finish`
    RegisterFinish,
    /// `POST /v1/recover/start`
    RecoverStart,
    /// `POST /v1/recover/finish`
    RecoverFinish,
    /// `POST /v1/delete`
    Delete,
    /// `GET /v1/status`
    Status,
    /// `GET /v1/head`
    GetHead,
    /// `POST /v1/head`
    PutHead,
}

impl Route {
    const ALL: [Route; 8] = [
        Route::RegisterStart,
        Route::RegisterFinish,
        Route::RecoverStart,
        Route::RecoverFinish,
        Route::Delete,
        Route::Status,
        Route::GetHead,
        Route::PutHead,
    ];

    /// The route's label in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Route::RegisterStart => "register_start",
            Route::RegisterFinish => "register_finish",
            Route::RecoverStart => "recover_start",
            Route::RecoverFinish => "recover_finish",
            Route::Delete => "delete",
            Route::Status => "status",
            Route::GetHead => "get_head",
            Route::PutHead => "put_head",
        }
    }
}

/// All counters.
#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; Route::ALL.len()],
    errors_4xx: AtomicU64,
    errors_5xx: AtomicU64,
    /// KE2s sent, real (after their guess was committed) and dummy alike.
    pub ke2_sent: AtomicU64,
    /// Verified recoveries.
    pub recoveries: AtomicU64,
    /// Failed KE3s.
    pub ke3_failed: AtomicU64,
    /// Requests refused because the stored record was below its rollback floor.
    pub storage_rolled_back: AtomicU64,
    commit_batches: AtomicU64,
    commit_writes: AtomicU64,
    /// Whether `render` includes the group-commit counters (benchmarks only).
    export_commits: bool,
    latency_buckets: [AtomicU64; 10],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    /// Counters at zero; `export_commits` adds the group-commit counters to `render`,
    /// which tells real accounts from unknown ones (`serve --metrics-commit-counters`).
    pub fn new(export_commits: bool) -> Self {
        Self {
            export_commits,
            ..Self::default()
        }
    }

    /// Counts one request to `route` with its status and latency.
    pub fn request(&self, route: Route, status: u16, elapsed: Duration) {
        self.requests[route as usize].fetch_add(1, Relaxed);
        if (400..500).contains(&status) {
            self.errors_4xx.fetch_add(1, Relaxed);
        } else if status >= 500 {
            self.errors_5xx.fetch_add(1, Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.latency_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us
            .fetch_add(elapsed.as_micros() as u64, Relaxed);
    }

    /// Counts one group-commit batch of `n` writes.
    pub fn commit_batch(&self, n: usize) {
        self.commit_batches.fetch_add(1, Relaxed);
        self.commit_writes.fetch_add(n as u64, Relaxed);
    }

    /// Renders the Prometheus text format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# TYPE coffer_vault_requests_total counter");
        for r in Route::ALL {
            let _ = writeln!(
                s,
                "coffer_vault_requests_total{{route=\"{}\"}} {}",
                r.name(),
                self.requests[r as usize].load(Relaxed)
            );
        }
        let _ = writeln!(s, "# TYPE coffer_vault_errors_total counter");
        let _ = writeln!(
            s,
            "coffer_vault_errors_total{{class=\"4xx\"}} {}",
            self.errors_4xx.load(Relaxed)
        );
        let _ = writeln!(
            s,
            "coffer_vault_errors_total{{class=\"5xx\"}} {}",
            self.errors_5xx.load(Relaxed)
        );
        let commits = [
            ("coffer_vault_commit_batches_total", &self.commit_batches),
            ("coffer_vault_commit_writes_total", &self.commit_writes),
        ];
        let commits = if self.export_commits {
            &commits[..]
        } else {
            &[]
        };
        for (name, v) in [
            ("coffer_vault_ke2_total", &self.ke2_sent),
            ("coffer_vault_recoveries_total", &self.recoveries),
            ("coffer_vault_ke3_failed_total", &self.ke3_failed),
            (
                "coffer_vault_storage_rolled_back_total",
                &self.storage_rolled_back,
            ),
        ]
        .iter()
        .chain(commits)
        {
            let _ = writeln!(s, "# TYPE {name} counter\n{name} {}", v.load(Relaxed));
        }
        let _ = writeln!(s, "# TYPE coffer_vault_request_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                s,
                "coffer_vault_request_seconds_bucket{{le=\"{b}\"}} {}",
                self.latency_buckets[i].load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            s,
            "coffer_vault_request_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "coffer_vault_request_seconds_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "coffer_vault_request_seconds_count {count}");
        s
    }
}

/// The metrics listener's router: `GET /metrics`, and a 404 for anything else.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") })
        .with_state(metrics)
}

async fn serve_metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}
