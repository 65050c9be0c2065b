//! A record of every DynamoDB call the code under test makes, by operation: how tests count round
//! trips. It wraps the SDK's HTTP client outermost, so a call refused by a fault or the contention
//! model still counts (it was a round trip).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

#[derive(Debug, Default)]
pub struct CallLog {
    calls: Mutex<Vec<String>>,
    /// What each call needed from IAM, by the function that made it (see [`crate::iam`]). Never
    /// cleared: a test may look at everything a host did.
    permissions: Mutex<Vec<(&'static str, crate::iam::Permission)>>,
}

impl CallLog {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Forgets what was recorded so far.
    pub fn clear(&self) {
        self.calls.lock().expect("call log").clear();
    }

    /// Calls since the last [`CallLog::clear`], counted by operation (`GetItem`, `BatchGetItem`…).
    pub fn by_operation(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for call in self.calls.lock().expect("call log").iter() {
            *counts.entry(call.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Every (function, permission) the functions' calls needed since the host started. Calls made
    /// outside any function (test set-up reading the table directly) are not in it.
    pub fn permissions(&self) -> Vec<(&'static str, crate::iam::Permission)> {
        self.permissions.lock().expect("call log").clone()
    }

    pub fn total(&self) -> usize {
        self.calls.lock().expect("call log").len()
    }

    pub fn wrap(self: &Arc<Self>, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(Recorder {
            inner,
            log: Arc::clone(self),
        })
    }
}

#[derive(Debug, Clone)]
struct Recorder {
    inner: SharedHttpClient,
    log: Arc<CallLog>,
}

#[derive(Debug)]
struct RecordingConnector {
    inner: SharedHttpConnector,
    log: Arc<CallLog>,
}

impl HttpClient for Recorder {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RecordingConnector {
            inner: self.inner.http_connector(settings, components),
            log: Arc::clone(&self.log),
        })
    }
}

impl HttpConnector for RecordingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let operation = local_api::in_process::operation_of(&request);
        if let Some(function) = local_api::host::current_function() {
            let body = request.body().bytes().unwrap_or_default();
            let needed = crate::iam::required_permissions(&operation, body);
            if let Ok(mut permissions) = self.log.permissions.lock() {
                permissions.extend(needed.into_iter().map(|p| (function, p)));
            }
        }
        if let Ok(mut calls) = self.log.calls.lock() {
            calls.push(operation);
        }
        self.inner.call(request)
    }
}
