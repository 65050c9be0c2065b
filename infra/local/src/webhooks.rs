//! Webhooks on the local host, standing in for what AWS runs: the table's DynamoDB stream read by
//! the dispatcher (the emulator's own stream, polled as Lambda's event source mapping polls it) and
//! the SQS queue read by the sender (a channel whose messages wait out their delay). Both hand
//! their records to the very functions `fn-webhook-dispatcher` and `fn-webhook-sender` run, in the
//! Lambda event's shape, and act on the partial batch failures they report.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dynoxide::Database;
use serde_json::json;
use shared::webhook_queue::{DeliveryJob, DeliveryQueue, QueueFuture};
use tokio::sync::mpsc;

use crate::LocalApi;

/// How often the stream is polled when it had nothing (Lambda polls a stream's shards about four
/// times a second: "Lambda polls shards in your DynamoDB stream for records at a base rate of 4
/// times per second", Lambda Developer Guide, "Using AWS Lambda with Amazon DynamoDB").
const STREAM_POLL: Duration = Duration::from_millis(250);
/// Records per batch (the event source mapping's `BatchSize` in the template).
const BATCH_SIZE: usize = 500;
/// How often the poller looks for shards it has not seen (the emulator keeps one per table).
const DISCOVER_EVERY: Duration = Duration::from_secs(5);
/// A message whose attempt failed to be recorded comes back after this (the queue's visibility
/// timeout in the template is longer; locally there is no need to wait as long).
const REDELIVER_AFTER: Duration = Duration::from_secs(1);
/// After this many receives a message goes to the dead-letter queue (`maxReceiveCount`).
const MAX_RECEIVES: u32 = 5;

/// A queued job, with how often it was received.
pub type Queued = (DeliveryJob, Duration, u32);

/// The queue: a channel to the sender task.
pub struct LocalQueue {
    jobs: mpsc::UnboundedSender<Queued>,
}

impl LocalQueue {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Queued>) {
        let (jobs, incoming) = mpsc::unbounded_channel();
        (LocalQueue { jobs }, incoming)
    }
}

impl DeliveryQueue for LocalQueue {
    fn enqueue<'a>(&'a self, job: &'a DeliveryJob, delay: Duration) -> QueueFuture<'a> {
        let sent = self.jobs.send((job.clone(), delay, 0));
        Box::pin(
            async move { sent.map_err(|_| "the local webhook sender has stopped".to_string()) },
        )
    }
}

/// The sender: each message waits out its delay, then `fn-webhook-sender`'s handler makes the
/// attempt; a message it reports failed is received again, up to [`MAX_RECEIVES`] times.
pub fn spawn_sender(api: Arc<LocalApi>, mut incoming: mpsc::UnboundedReceiver<Queued>) {
    tokio::spawn(async move {
        let (again, mut redelivered) = mpsc::unbounded_channel::<Queued>();
        loop {
            let (job, delay, receives) = tokio::select! {
                Some(next) = incoming.recv() => next,
                Some(next) = redelivered.recv() => next,
                else => break,
            };
            let api = Arc::clone(&api);
            let again = again.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let body = match serde_json::to_string(&job) {
                    Ok(body) => body,
                    Err(_) => return,
                };
                let event =
                    json!({"Records": [{"messageId": job.delivery_id.to_string(), "body": body}]});
                let answer = crate::host::as_function(
                    "fn-webhook-sender",
                    fn_webhooks::send(&api.ctx, &event),
                )
                .await;
                let failed = answer["batchItemFailures"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                if failed {
                    if receives + 1 >= MAX_RECEIVES {
                        tracing::error!(delivery = %job.delivery_id, "a webhook job failed {MAX_RECEIVES} times: moved to the dead-letter queue");
                    } else {
                        let _ = again.send((job, REDELIVER_AFTER, receives + 1));
                    }
                }
            });
        }
    });
}

/// The emulator's side of the stream (GetRecords, its answer's JSON, describing the stream, trimming
/// it) on a thread of its own named like the engine's: the work DynamoDB Streams and Lambda's event
/// source mapping do on AWS, kept apart from the dispatcher's (ours) in CPU figures (the flash-sale
/// bench counts threads named `dynamodb…` as the engine's).
struct StreamEngine {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl StreamEngine {
    fn start() -> Option<Self> {
        let (jobs, incoming) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("dynamodb-stream".into())
            .spawn(move || {
                for job in incoming {
                    job();
                }
            })
            .ok()?;
        Some(StreamEngine { jobs })
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = reply.send(work());
            }))
            .ok()?;
        answer.await.ok()
    }
}

/// The dispatcher: polls every shard of the table's stream from its oldest record, hands batches to
/// `fn-webhook-dispatcher`'s handler, and, when it reports a failure, reads again from that record
/// (as Lambda does with `ReportBatchItemFailures`).
pub fn spawn_dispatcher(api: Arc<LocalApi>, database: Database) {
    tokio::spawn(async move {
        let table = api.ctx.config.table_name.clone();
        // Shard id → the iterator to read next (`None` once a closed shard is read to its end).
        let mut shards: HashMap<String, Option<String>> = HashMap::new();
        let mut stream_arn: Option<String> = None;
        let trimmer = StreamTrimmer::open(&database, &table);
        let Some(engine) = StreamEngine::start() else {
            tracing::error!("the stream poller's thread did not start: no webhooks");
            return;
        };
        let mut discovered: Option<std::time::Instant> = None;
        loop {
            // Find the stream and any shard not seen yet, now and then (describing the stream
            // makes the engine read its records' range).
            if discovered.is_none_or(|at| at.elapsed() >= DISCOVER_EVERY) {
                discovered = Some(std::time::Instant::now());
                let db = database.clone();
                let table_name = table.clone();
                let known_arn = stream_arn.clone();
                let known: Vec<String> = shards.keys().cloned().collect();
                // Engine calls block: off the runtime.
                let found = engine
                    .run(move || discover(&db, &table_name, known_arn, &known))
                    .await;
                if let Some(Some((arn, new_shards))) = found {
                    stream_arn = Some(arn);
                    for (shard, iterator) in new_shards {
                        shards.entry(shard).or_insert(Some(iterator));
                    }
                }
            }
            let mut busy = false;
            let ids: Vec<String> = shards.keys().cloned().collect();
            for shard in ids {
                let Some(Some(iterator)) = shards.get(&shard).cloned() else {
                    continue;
                };
                let db = database.clone();
                // The records as GetRecords answers them, in the event's JSON.
                let read = engine
                    .run(move || {
                        db.get_records(dynoxide::actions::get_records::GetRecordsRequest {
                            shard_iterator: iterator,
                            limit: Some(BATCH_SIZE),
                        })
                        .map(|page| {
                            let last = page
                                .records
                                .last()
                                .map(|r| r.dynamodb.sequence_number.clone());
                            let records = serde_json::to_value(&page.records).unwrap_or_default();
                            (records, last, page.next_shard_iterator)
                        })
                    })
                    .await;
                let Some(Ok((records, last, next))) = read else {
                    continue;
                };
                let Some(last) = last else {
                    shards.insert(shard, next);
                    continue;
                };
                busy = true;
                let event = json!({ "Records": records });
                let answer = crate::host::as_function(
                    "fn-webhook-dispatcher",
                    fn_webhooks::dispatch(&api.ctx, &event),
                )
                .await;
                let failed_at = answer["batchItemFailures"][0]["itemIdentifier"]
                    .as_str()
                    .map(str::to_string);
                match (failed_at, stream_arn.clone()) {
                    (Some(sequence), Some(arn)) => {
                        // Read again from the failed record, after a pause.
                        let db = database.clone();
                        let shard_id = shard.clone();
                        let again = engine
                            .run(move || {
                                db.get_shard_iterator(
                                    dynoxide::actions::get_shard_iterator::GetShardIteratorRequest {
                                        stream_arn: arn,
                                        shard_id,
                                        shard_iterator_type: "AT_SEQUENCE_NUMBER".into(),
                                        sequence_number: Some(sequence),
                                    },
                                )
                            })
                            .await;
                        if let Some(Ok(again)) = again {
                            shards.insert(shard, again.shard_iterator);
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    _ => {
                        // Handled: the emulator need not keep them (see [`StreamTrimmer`]).
                        if let Some(trimmer) = &trimmer {
                            trimmer.trim_through(&engine, &last).await;
                        }
                        shards.insert(shard, next);
                    }
                }
            }
            if !busy {
                tokio::time::sleep(STREAM_POLL).await;
            }
        }
    });
}

/// The table's stream and the iterators (from the oldest record) of shards not in `known`.
fn discover(
    database: &Database,
    table: &str,
    known_arn: Option<String>,
    known: &[String],
) -> Option<(String, Vec<(String, String)>)> {
    let arn = match known_arn {
        Some(arn) => arn,
        None => {
            database
                .list_streams(dynoxide::actions::list_streams::ListStreamsRequest {
                    table_name: Some(table.to_string()),
                    exclusive_start_stream_arn: None,
                    limit: None,
                })
                .ok()?
                .streams
                .into_iter()
                .next()?
                .stream_arn
        }
    };
    let description = database
        .describe_stream(dynoxide::actions::describe_stream::DescribeStreamRequest {
            stream_arn: arn.clone(),
            exclusive_start_shard_id: None,
            limit: None,
        })
        .ok()?
        .stream_description;
    let mut fresh = Vec::new();
    for shard in description.shards {
        if known.contains(&shard.shard_id) {
            continue;
        }
        let iterator = database
            .get_shard_iterator(
                dynoxide::actions::get_shard_iterator::GetShardIteratorRequest {
                    stream_arn: arn.clone(),
                    shard_id: shard.shard_id.clone(),
                    shard_iterator_type: "TRIM_HORIZON".into(),
                    sequence_number: None,
                },
            )
            .ok()?
            .shard_iterator?;
        fresh.push((shard.shard_id, iterator));
    }
    Some((arn, fresh))
}

/// Drops stream records the dispatcher has handled from the emulator's file.
///
/// dynoxide keeps every stream record forever and finds the next sequence number with
/// `SELECT MAX(CAST(sequence_number AS INTEGER)) FROM _stream_records` (no index), so each write
/// scans every record ever written: measured here, a flash sale's engine time per attempt went from
/// 0.73 ms to 13.3 ms with the stream on, and it grows with every write. DynamoDB keeps records 24
/// hours; the local host keeps only those not yet handled. Sequence numbers stay increasing with
/// none kept: a new one is at least the clock's microseconds (`streams::sequence_number_floor`).
/// An in-memory emulator (tests) cannot be reached from a second connection; test hosts turn the
/// stream on only when they run webhooks (`TestApi::start_webhooks`).
struct StreamTrimmer {
    connection: std::sync::Arc<std::sync::Mutex<rusqlite::Connection>>,
    table: String,
}

impl StreamTrimmer {
    fn open(database: &Database, table: &str) -> Option<Self> {
        let path = database.db_path().ok().flatten()?;
        let connection = rusqlite::Connection::open(path).ok()?;
        // The engine's connection may hold the write lock for a moment; wait for it.
        connection.busy_timeout(Duration::from_secs(5)).ok()?;
        Some(StreamTrimmer {
            connection: std::sync::Arc::new(std::sync::Mutex::new(connection)),
            table: table.to_string(),
        })
    }

    /// Deletes the records up to and including `sequence` (its public, 21-digit form).
    async fn trim_through(&self, engine: &StreamEngine, sequence: &str) {
        // The public form is the stored number plus 10^20 (`streams::format_sequence_number`).
        const OFFSET: u128 = 100_000_000_000_000_000_000;
        let Some(stored) = sequence
            .parse::<u128>()
            .ok()
            .and_then(|public| public.checked_sub(OFFSET))
            .and_then(|stored| i64::try_from(stored).ok())
        else {
            return;
        };
        let (connection, table) = (std::sync::Arc::clone(&self.connection), self.table.clone());
        let trimmed = engine
            .run(move || {
                let connection = connection.lock().map_err(|_| "poisoned".to_string())?;
                connection
                    .execute(
                        "DELETE FROM _stream_records WHERE table_name = ?1 AND CAST(sequence_number AS INTEGER) <= ?2",
                        rusqlite::params![table, stored],
                    )
                    .map_err(|e| e.to_string())
            })
            .await;
        if let Some(Err(err)) = trimmed {
            tracing::warn!(error = %err, "could not trim the emulator's stream");
        }
    }
}

/// Turns `table`'s stream on (with both images, as `template.yaml` declares it) or off.
pub fn set_stream(database: &Database, table: &str, enabled: bool) -> Result<(), String> {
    let specification = if enabled {
        json!({"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    } else {
        json!({"StreamEnabled": false})
    };
    let request =
        serde_json::from_value(json!({"TableName": table, "StreamSpecification": specification}))
            .map_err(|e| e.to_string())?;
    database
        .update_table(request)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
