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
use std::time::{Duration, Instant};

use local_api::{router, Emulator, LocalApi};
use shared::config::{Defaults, EcpayEnvironment};
use shared::Config;

const TTL_SWEEP_EVERY: Duration = Duration::from_secs(60);

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

/// `create-admin [--aws] USERNAME EMAIL`.
async fn create_admin(args: &[String]) -> Result<(), String> {
    let (aws, rest) = match args.first().map(String::as_str) {
        Some("--aws") => (true, &args[1..]),
        _ => (false, args),
    };
    let [username, email] = rest else {
        return Err("usage: local-api create-admin [--aws] USERNAME EMAIL".into());
    };
    let password = admin_password()?;
    let placeholder_secret: [u8; 32] = rand::random();
    let (ctx, _guard) = if aws {
        let table = std::env::var("TABLE_NAME")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or("--aws needs TABLE_NAME (the stack's TableName output)")?;
        let mut config = Config::local(String::new(), table, placeholder_secret.to_vec());
        config.dynamodb_endpoint = None;
        if let Ok(region) = std::env::var("AWS_REGION") {
            config.region = region;
        }
        (shared::AppContext::connect(config).await, None)
    } else {
        let data_dir = data_dir()?;
        let lock = lock_data_dir(&data_dir)?;
        let db_path = data_dir.join("points.db");
        let emulator = Emulator::open_file(&db_path)
            .map_err(|e| format!("cannot start the embedded DynamoDB: {e}"))?;
        let table = std::env::var("TABLE_NAME")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| shared::config::DEFAULT_TABLE_NAME.to_string());
        let config = Config::local(
            emulator.endpoint().to_string(),
            table,
            placeholder_secret.to_vec(),
        );
        let api = LocalApi::connect_with(config, None)
            .await
            .map_err(|e| format!("cannot prepare the table: {e}"))?;
        (api.ctx.clone(), Some((lock, emulator)))
    };
    ctx.store
        .backfill_user_directory()
        .await
        .map_err(|e| format!("cannot index existing users: {e}"))?;
    let admin = ctx
        .admin()
        .create_admin(username.clone(), email.clone(), password)
        .await
        .map_err(|err| match err {
            shared::AppError::Validation { fields, .. } => format!(
                "refused: {}",
                fields
                    .iter()
                    .map(|(field, problem)| format!("{field} {problem}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            other => format!("refused: {other}"),
        })?;
    println!(
        "Created operator {} ({}), id {}. Sign in at /api/admin/console/.",
        admin.username, admin.email, admin.id
    );
    Ok(())
}

/// `ADMIN_PASSWORD`, or asked twice on the terminal without echo.
fn admin_password() -> Result<String, String> {
    if let Ok(password) = std::env::var("ADMIN_PASSWORD") {
        if !password.is_empty() {
            return Ok(password);
        }
    }
    let first = read_hidden("Password for the new operator: ")?;
    let second = read_hidden("Again: ")?;
    if first != second {
        return Err("the two passwords differ".into());
    }
    Ok(first)
}

fn read_hidden(prompt: &str) -> Result<String, String> {
    use std::io::Write;
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let echo_off = std::process::Command::new("stty")
        .arg("-echo")
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success());
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if echo_off {
        let _ = std::process::Command::new("stty")
            .arg("echo")
            .stdin(std::process::Stdio::inherit())
            .status();
        eprintln!();
    }
    match read {
        Ok(0) => Err("no password given (set ADMIN_PASSWORD or type it)".into()),
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_string()),
        Err(e) => Err(format!("cannot read the password: {e}")),
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
    // Users registered before the operators' directory existed get its keys (once; cheap after).
    match api.ctx.store.backfill_user_directory().await {
        Ok(0) => {}
        Ok(indexed) => tracing::info!(indexed, "added existing users to the directory"),
        Err(err) => return Err(format!("cannot index existing users: {err}")),
    }

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
