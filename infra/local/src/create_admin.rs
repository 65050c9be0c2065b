//! `local-api create-admin`: the first operator, written into the local data directory (or, with
//! `--aws`, the real table). There is no route for it.

use shared::Config;

use local_api::{Emulator, LocalApi};

use crate::{data_dir, lock_data_dir};

/// `create-admin [--aws] USERNAME EMAIL`.
pub async fn create_admin(args: &[String]) -> Result<(), String> {
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
