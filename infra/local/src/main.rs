//! `cargo run -p local-api`: the whole API on http://127.0.0.1:3000 over an embedded DynamoDB whose
//! data lives in `./.data/` and survives restarts.
//!
//! `cargo run -p local-api -- create-admin USERNAME EMAIL`: the first operator, written into the same
//! data directory while the host is stopped (password from `ADMIN_PASSWORD`, or asked on the
//! terminal). With `--aws` before the username it writes to the real table instead (`TABLE_NAME`,
//! `AWS_REGION` and the usual AWS credentials; see docs/deploy.md). There is no route for it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use local_api::{router, Emulator, LocalApi};
use shared::config::{Defaults, EcpayEnvironment};
use shared::Config;

mod background;
mod create_admin;

use background::{
    fulfilment_interval, reconcile_interval, spawn_fulfilment, spawn_reconciler, spawn_ttl_sweeper,
};
use create_admin::create_admin;

/// The local host serves every function and the emulator from one process, whose threads allocate
/// and free small buffers at a high rate (requests, SDK bodies, the emulator's JSON items); glibc's
/// allocator spent ~17% of a flash sale's CPU here (`perf`: `malloc`, `free`, `malloc_consolidate`).
/// The Lambda functions keep the system allocator: each instance serves one request at a time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("cannot start the async runtime: {err}")),
    };
    let outcome = match args.first().map(String::as_str) {
        None => {
            shared::telemetry::init_json_logging();
            runtime.block_on(run(started))
        }
        Some("create-admin") => runtime.block_on(create_admin(&args[1..])),
        Some("--help" | "-h" | "help") => {
            println!("usage: local-api                                  serve the API");
            println!("       local-api create-admin [--aws] USERNAME EMAIL");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}; try `local-api --help`")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

/// The data directory (`DATA_DIR`, default `./.data`), created if needed.
fn data_dir() -> Result<PathBuf, String> {
    let data_dir = PathBuf::from(std::env::var("DATA_DIR").unwrap_or_else(|_| "./.data".into()));
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("data directory {} is unusable: {e}", data_dir.display()))?;
    data_dir
        .canonicalize()
        .map_err(|e| format!("data directory {} is unusable: {e}", data_dir.display()))
}

/// Holds the data directory for one process: the host while it serves, `create-admin` while it
/// writes. Released when the process ends, however it ends (an advisory lock, not a file left over).
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, String> {
    let path = data_dir.join("host.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another local-api process is using {} (stop the host first)",
            data_dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
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
    let data_dir = data_dir()?;
    let _lock = lock_data_dir(&data_dir)?;

    // Bind first, so a taken port fails before anything is written.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen on {addr}: {e} (is another process using port {port}? set PORT)")
    })?;

    let db_path = data_dir.join("points.db");
    let emulator = Emulator::open_file(&db_path)
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
    let faults = local_api::faults::FaultModel::from_env()?;
    if faults.is_some() {
        println!("DynamoDB fault model on (DYNAMODB_FAULTS)");
    }
    let latency = local_api::latency::LatencyModel::from_env()?;
    if let Some(model) = &latency {
        println!(
            "DynamoDB latency model on (DYNAMODB_LATENCY: p50 {:?}, p99 {:?})",
            model.p50, model.p99
        );
    }
    // Nearest the engine the network's delay, then faults (a call the contention model admits may
    // still fail on the way), then contention.
    let wrap: Option<local_api::host::HttpClientWrapper> = match (contention, faults, latency) {
        (None, None, None) => None,
        (contention, faults, latency) => Some(Box::new(move |inner| {
            let inner = match latency {
                Some(latency) => latency.wrap(inner),
                None => inner,
            };
            let inner = match faults {
                Some(faults) => faults.wrap(inner),
                None => inner,
            };
            match contention {
                Some(contention) => contention.wrap(inner),
                None => inner,
            }
        })),
    };
    let api = LocalApi::connect_through(config, wrap)
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
    let api = api.with_max_in_flight(max_in_flight).with_cors_origins(
        local_api::cors::Cors::origins_from(std::env::var("CORS_ALLOWED_ORIGINS").ok().as_deref()),
    );
    // Users registered before the operators' directory existed get its keys (once; cheap after).
    match api.ctx.store.backfill_user_directory().await {
        Ok(0) => {}
        Ok(indexed) => tracing::info!(indexed, "added existing users to the directory"),
        Err(err) => return Err(format!("cannot index existing users: {err}")),
    }
    // Data written before the catalogue and merchants' orders were spread over index partitions.
    match api.ctx.store.spread_legacy_index_keys().await {
        Ok(0) => {}
        Ok(moved) => tracing::info!(moved, "spread legacy index entries"),
        Err(err) => return Err(format!("cannot re-key legacy index entries: {err}")),
    }

    spawn_ttl_sweeper(emulator.database().clone());
    let api = Arc::new(api);
    api.start_webhooks(emulator.database().clone());
    let reconcile_every = reconcile_interval()?;
    spawn_reconciler(api.clone(), reconcile_every);
    spawn_fulfilment(api.clone(), fulfilment_interval()?);

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
