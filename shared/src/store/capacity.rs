//! What each request costs in DynamoDB capacity units: every data-plane call the store makes asks
//! for `ReturnConsumedCapacity = INDEXES`, and what DynamoDB answers is added to the request's
//! `DynamoDbReadUnits` / `DynamoDbWriteUnits` (its EMF document and its log line, see
//! [`crate::observe`]).
//!
//! One SDK interceptor does both, on the store's one client, so no call site can forget either: it
//! sets the field on each operation's input before serialisation and reads the answer after
//! deserialisation. `INDEXES` rather than `TOTAL` because what an index costs is the waste worth
//! seeing (a test's recorder reads the breakdown from the wire); the units counted are the call's
//! `CapacityUnits`, which include the indexes. On-demand bills exactly these units
//! (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html):
//! a failed conditional write is billed too, but DynamoDB returns no `ConsumedCapacity` with an
//! error, so those units are not seen here.

use aws_sdk_dynamodb::operation::{
    batch_get_item::{BatchGetItemInput, BatchGetItemOutput},
    batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput},
    delete_item::{DeleteItemInput, DeleteItemOutput},
    get_item::{GetItemInput, GetItemOutput},
    put_item::{PutItemInput, PutItemOutput},
    query::{QueryInput, QueryOutput},
    scan::{ScanInput, ScanOutput},
    transact_get_items::{TransactGetItemsInput, TransactGetItemsOutput},
    transact_write_items::{TransactWriteItemsInput, TransactWriteItemsOutput},
    update_item::{UpdateItemInput, UpdateItemOutput},
};
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut, Output,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::observe::{count, Metric};

/// The interceptor the store's client carries (added once, in `Store::new`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CapacityMeter;

/// Sets `ReturnConsumedCapacity = INDEXES` on `input` when it is one of the types listed.
macro_rules! ask_capacity {
    ($input:expr, $($ty:ty),+) => {{
        let input = $input;
        $(if let Some(op) = input.downcast_mut::<$ty>() {
            op.return_consumed_capacity = Some(ReturnConsumedCapacity::Indexes);
        })+
    }};
}

/// What an answer reports it consumed: one `ConsumedCapacity`, or one per table (batches and
/// transactions); `CapacityUnits` includes the indexes.
trait ReportsUnits: Send + Sync + std::fmt::Debug + 'static {
    fn units(&self) -> f64;
}

macro_rules! reports_one {
    ($($ty:ty),+) => {$(
        impl ReportsUnits for $ty {
            fn units(&self) -> f64 {
                self.consumed_capacity.as_ref().and_then(|c| c.capacity_units).unwrap_or(0.0)
            }
        }
    )+};
}

macro_rules! reports_per_table {
    ($($ty:ty),+) => {$(
        impl ReportsUnits for $ty {
            fn units(&self) -> f64 {
                self.consumed_capacity().iter().filter_map(|c| c.capacity_units).sum()
            }
        }
    )+};
}

reports_one!(
    GetItemOutput,
    QueryOutput,
    ScanOutput,
    PutItemOutput,
    UpdateItemOutput,
    DeleteItemOutput
);
reports_per_table!(
    BatchGetItemOutput,
    TransactGetItemsOutput,
    BatchWriteItemOutput,
    TransactWriteItemsOutput
);

fn units_as<T: ReportsUnits>(output: &Output) -> Option<f64> {
    output.downcast_ref::<T>().map(ReportsUnits::units)
}

/// The units a data-plane call's answer reports, with the metric they count as.
fn units_of(output: &Output) -> Option<(Metric, f64)> {
    let read = units_as::<GetItemOutput>(output)
        .or_else(|| units_as::<QueryOutput>(output))
        .or_else(|| units_as::<ScanOutput>(output))
        .or_else(|| units_as::<BatchGetItemOutput>(output))
        .or_else(|| units_as::<TransactGetItemsOutput>(output));
    if let Some(units) = read {
        return Some((Metric::DynamoDbReadUnits, units));
    }
    units_as::<PutItemOutput>(output)
        .or_else(|| units_as::<UpdateItemOutput>(output))
        .or_else(|| units_as::<DeleteItemOutput>(output))
        .or_else(|| units_as::<BatchWriteItemOutput>(output))
        .or_else(|| units_as::<TransactWriteItemsOutput>(output))
        .map(|units| (Metric::DynamoDbWriteUnits, units))
}

impl Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Control-plane calls (DescribeTable, CreateTable, UpdateTimeToLive) have no such field.
        ask_capacity!(
            context.input_mut(),
            GetItemInput,
            QueryInput,
            ScanInput,
            BatchGetItemInput,
            TransactGetItemsInput,
            PutItemInput,
            UpdateItemInput,
            DeleteItemInput,
            BatchWriteItemInput,
            TransactWriteItemsInput
        );
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(output) = context.output_or_error() {
            if let Some((metric, units)) = units_of(output) {
                count(metric, units);
            }
        }
        Ok(())
    }
}
