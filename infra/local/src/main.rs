//! `cargo run -p local-api`: the whole API on http://127.0.0.1:3000 over an embedded DynamoDB whose
//! data lives in `./.data/` and survives restarts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use local_api::{router, Emulator, LocalApi};
use shared::config::{Defaults, EcpayEnvironment};
use shared::Config;

const TTL_SWEEP_EVERY: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let started = Instant::now();
    shared::telemetry::init_json_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("cannot start the async runtime: {err}")),
    };
    match runtime.block_on(run(started)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("local-api: {message}");
    ExitCode::FAILURE
}

async fn run(started: Instant) -> Result<(), String> {
    let port: u16 = match std::env::var("PORT") {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .map_err(|_| format!("PORT must be a port number, got {raw:?}"))?,
        _ => 3000,
    };
    let data_dir = PathBuf::from(std::env::var("DATA_DIR").unwrap_or_else(|_| "./.data".into()));
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("data directory {} is unusable: {e}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .map_err(|e| format!("data directory {} is unusable: {e}", data_dir.display()))?;

    // Bind first, so a taken port fails before anything is written.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen on {addr}: {e} (is another process using port {port}? set PORT)")
    })?;

    let db_path = data_dir.join("points.db");
    let database = dynoxide::Database::new(&db_path.to_string_lossy())
        .map_err(|e| format!("cannot open the database at {}: {e}", db_path.display()))?;
    let emulator = Emulator::start(database)
        .map_err(|e| format!("cannot start the embedded DynamoDB: {e}"))?;

    let secret = local_jwt_secret(&data_dir)?;
    let mut config = Config::from_env_with(Defaults {
        fallback_secret: Some(secret),
        public_base_url: Some(format!("http://{addr}")),
        ecpay_environment: EcpayEnvironment::Local,
    })
    .map_err(|e| format!("configuration: {e}"))?;
    // The embedded emulator is the only DynamoDB the local host talks to.
    config.dynamodb_endpoint = Some(emulator.endpoint().to_string());
    let contention = local_api::contention::ContentionModel::from_env()?;
    if contention.is_some() {
        println!("DynamoDB contention model on (DYNAMODB_CONTENTION=aws)");
    }
    let api = LocalApi::connect_with(config, contention)
        .await
        .map_err(|e| format!("cannot prepare the table: {e}"))?;

    let max_in_flight = match std::env::var("MAX_IN_FLIGHT") {
        Ok(raw) if !raw.trim().is_empty() => match raw.trim().parse::<usize>() {
            Ok(limit) if limit > 0 => limit,
            _ => {
                return Err(format!(
                    "MAX_IN_FLIGHT must be a positive whole number, got {raw:?}"
                ))
            }
        },
        _ => local_api::host::DEFAULT_MAX_IN_FLIGHT,
    };
    let api = api.with_max_in_flight(max_in_flight);

    spawn_ttl_sweeper(emulator.database().clone());
    let api = Arc::new(api);
    let reconcile_every = reconcile_interval()?;
    spawn_reconciler(api.clone(), reconcile_every);

    println!("Points redemption API listening on http://{addr}");
    println!(
        "Data: {} (keep points.db, -wal and -shm together)",
        db_path.display()
    );
    tracing::info!(
        url = %format!("http://{addr}"),
        data = %db_path.display(),
        dynamodb = emulator.endpoint(),
        startup_ms = started.elapsed().as_millis() as u64,
        "local API ready"
    );

    axum::serve(
        listener,
        router(api).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| format!("server failed: {e}"))?;
    drop(emulator);
    Ok(())
}

/// `JWT_SECRET` if set; otherwise a random secret generated once into the data directory, so tokens
/// survive restarts without anyone having to invent a key.
fn local_jwt_secret(data_dir: &Path) -> Result<Vec<u8>, String> {
    if let Ok(secret) = std::env::var("JWT_SECRET") {
        if !secret.trim().is_empty() {
            if secret.len() < shared::config::MIN_JWT_SECRET_BYTES {
                return Err("JWT_SECRET must be at least 32 bytes".into());
            }
            return Ok(secret.into_bytes());
        }
    }
    let path = data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing.trim().len() >= shared::config::MIN_JWT_SECRET_BYTES => {
            return Ok(existing.trim().as_bytes().to_vec())
        }
        Ok(_) | Err(_) => {}
    }
    let bytes: [u8; 32] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &secret).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

/// The emulator never expires TTL items on its own; AWS does, so the host sweeps on a timer.
fn spawn_ttl_sweeper(database: dynoxide::Database) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TTL_SWEEP_EVERY);
        loop {
            interval.tick().await;
            let db = database.clone();
            match tokio::task::spawn_blocking(move || db.sweep_ttl()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(deleted)) => tracing::info!(deleted, "swept expired items"),
                Ok(Err(err)) => tracing::warn!(error = %err, "TTL sweep failed"),
                Err(err) => tracing::warn!(error = %err, "TTL sweep task failed"),
            }
        }
    });
}

/// `RECONCILE_INTERVAL_SECONDS` (default 300): how often the host runs the reconciliation job that
/// EventBridge Scheduler runs on AWS.
fn reconcile_interval() -> Result<Duration, String> {
    match std::env::var("RECONCILE_INTERVAL_SECONDS") {
        Ok(raw) if !raw.trim().is_empty() => match raw.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
            _ => Err(format!(
                "RECONCILE_INTERVAL_SECONDS must be a positive number of seconds, got {raw:?}"
            )),
        },
        _ => Ok(Duration::from_secs(300)),
    }
}

/// The scheduled reconciliation (`fn-reconcile` on AWS), on a timer, through the same code.
fn spawn_reconciler(api: Arc<LocalApi>, every: Duration) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.tick().await;
        loop {
            interval.tick().await;
            if let Err(err) = fn_reconcile::run(&api.ctx).await {
                tracing::warn!(error = %err, "reconciliation run failed");
            }
        }
    });
}
