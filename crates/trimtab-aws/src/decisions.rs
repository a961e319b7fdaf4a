//! The decision table (DynamoDB): the audit trail of every change, the per-job run lease, and
//! the status and report of runs started asynchronously.
//!
//! One table, keys `pk` / `sk` (strings); docs/decision-table.md lists every item kind:
//! - `fn#<function>` / `rec#<record_id>`: a [`DecisionRecord`] (memory, timeout, provisioned
//!   concurrency), as JSON in `record` with `state` beside it for conditions;
//! - `res#<resource>` / `rec#<record_id>`: a [`ChangeRecord`] (an autoscaling write);
//! - `lease#<job>` / `lease`: the run holding the job's lease (`owner`, `expires_at`);
//! - `run#<run_id>` / `status` and `part#<n>`: a run started through the API, and its report;
//! - `result#<job>`, `ce#...`, `alert#...`: see `costs`.
//!
//! Records still open (pending, awaiting verification, holding a function back) carry `open`
//! (the job's name), the key of the sparse index `open`: a run reads exactly those with one
//! query instead of scanning the audit trail.
//!
//! Every conditional write asks for the item it lost to (`ALL_OLD`), so a write the SDK retried
//! after a lost response, which then fails its own condition, is recognised as done.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use trimtab_core::records::{ChangeRecord, DecisionRecord, RecordState};

use crate::schema::{
    Key, RECORD_PREFIX, RUN_STATUS_SK, function_partition, resource_partition, run_partition,
};
use crate::{AwsError, Clients, ErrorKind};

/// The sparse index of open records.
pub const OPEN_INDEX: &str = "open";
/// The job name decision records are indexed under.
pub const RIGHTSIZING_JOB: &str = "rightsizing";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

type Item = HashMap<String, AttributeValue>;

/// An item of a record: keys, its state beside it for conditions, `open` while open, the record
/// as JSON.
fn item<T: Serialize>(
    pk: String,
    record_id: &str,
    state: RecordState,
    open: Option<&str>,
    record: &T,
) -> Result<Item, AwsError> {
    let json = serde_json::to_string(record)
        .map_err(|e| AwsError::invalid("dynamodb:PutItem", pk.clone(), e.to_string()))?;
    let mut item = HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(format!("{RECORD_PREFIX}{record_id}"))),
        ("state".to_owned(), s(state.name())),
        ("record".to_owned(), s(json)),
    ]);
    if let Some(job) = open {
        item.insert("open".to_owned(), s(job));
    }
    Ok(item)
}

fn parse<T: DeserializeOwned>(item: &Item) -> Option<T> {
    let json = item.get("record")?.as_s().ok()?;
    serde_json::from_str(json).ok()
}

/// Something the table keeps as a record.
pub trait Record: Serialize + DeserializeOwned {
    fn pk(&self) -> String;
    fn record_id(&self) -> &str;
    fn state(&self) -> RecordState;
    /// The job it is indexed under while open; `None` once closed.
    fn open_under(&self) -> Option<&str>;
}

impl Record for DecisionRecord {
    fn pk(&self) -> String {
        function_partition(&self.function_name)
    }
    fn record_id(&self) -> &str {
        &self.record_id
    }
    fn state(&self) -> RecordState {
        self.state
    }
    fn open_under(&self) -> Option<&str> {
        self.is_open().then_some(RIGHTSIZING_JOB)
    }
}

impl Record for ChangeRecord {
    fn pk(&self) -> String {
        resource_partition(&self.resource)
    }
    fn record_id(&self) -> &str {
        &self.record_id
    }
    fn state(&self) -> RecordState {
        self.state
    }
    fn open_under(&self) -> Option<&str> {
        self.is_open().then_some(self.job.as_str())
    }
}

/// Who holds a job's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub owner: String,
    pub expires_at_epoch_s: i64,
}

/// A run started through the API: where it is, who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStatus {
    pub run_id: String,
    /// The job: `rightsizing`, `dynamodb`, `cost`, `performance`.
    pub kind: String,
    pub mode: String,
    pub state: RunState,
    pub requested_by: Option<String>,
    pub created_at_epoch_s: i64,
    pub updated_at_epoch_s: i64,
    /// Why it failed.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Done,
    Failed,
}

/// Largest report part per item (DynamoDB items hold at most 400 KB).
const PART_BYTES: usize = 300_000;

/// The decision table, by name.
#[derive(Debug, Clone)]
pub struct DecisionTable {
    pub name: String,
}

impl DecisionTable {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// Writes a new record; fails if another record with the same id exists.
    pub async fn create<R: Record>(&self, c: &Clients, record: &R) -> Result<(), AwsError> {
        let item = item(
            record.pk(),
            record.record_id(),
            record.state(),
            record.open_under(),
            record,
        )?;
        self.put(c, item, None).await
    }

    /// Replaces a record whose stored state is still `expected`, so two writers cannot both move
    /// it on.
    pub async fn update<R: Record>(
        &self,
        c: &Clients,
        record: &R,
        expected: RecordState,
    ) -> Result<(), AwsError> {
        let item = item(
            record.pk(),
            record.record_id(),
            record.state(),
            record.open_under(),
            record,
        )?;
        self.put(c, item, Some(expected)).await
    }

    /// A conditional put. A condition failure caused by this very item (our own write, retried
    /// by the SDK after its answer was lost) counts as success.
    async fn put(
        &self,
        c: &Clients,
        item: Item,
        expected: Option<RecordState>,
    ) -> Result<(), AwsError> {
        let pk = item
            .get("pk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let req = c
            .dynamodb
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let req = match expected {
            None => req.condition_expression("attribute_not_exists(pk)"),
            Some(state) => req
                .condition_expression("#s = :expected")
                .expression_attribute_names("#s", "state")
                .expression_attribute_values(":expected", s(state.name())),
        };
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let existing = e
                    .as_service_error()
                    .and_then(|se| match se { aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(x) => Some(x), _ => None })
                    .and_then(|x| x.item().cloned());
                if existing.as_ref().and_then(|i| i.get("record")) == item.get("record") {
                    return Ok(());
                }
                Err(AwsError::new("dynamodb:PutItem", pk, e))
            }
        }
    }

    /// Records under one partition key, newest first.
    async fn query<T: DeserializeOwned>(
        &self,
        c: &Clients,
        pk: String,
    ) -> Result<Vec<T>, AwsError> {
        let items = c
            .dynamodb
            .query()
            .table_name(&self.name)
            .key_condition_expression("pk = :pk AND begins_with(sk, :rec)")
            .expression_attribute_values(":pk", s(pk.clone()))
            .expression_attribute_values(":rec", s(RECORD_PREFIX))
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| AwsError::new("dynamodb:Query", pk, e))?;
        Ok(items.iter().filter_map(parse).collect())
    }

    /// Every record of one function, newest first.
    pub async fn history(
        &self,
        c: &Clients,
        function: &str,
    ) -> Result<Vec<DecisionRecord>, AwsError> {
        self.query(c, function_partition(function)).await
    }

    /// Every change record of a resource, newest first.
    pub async fn changes(
        &self,
        c: &Clients,
        resource: &str,
    ) -> Result<Vec<ChangeRecord>, AwsError> {
        self.query(c, resource_partition(resource)).await
    }

    /// The open records of `job`: their keys from the sparse index (one query), each record then
    /// read from the table itself with a strongly consistent read, because an index lags the
    /// table (it supports eventually consistent reads only) and a stale copy would make the next
    /// conditional write fail. A record closed since is dropped.
    pub async fn open<T: DeserializeOwned>(
        &self,
        c: &Clients,
        job: &str,
    ) -> Result<Vec<T>, AwsError> {
        let keys = self.open_keys(c, job).await?;
        let mut out = Vec::with_capacity(keys.len());
        for (pk, sk) in keys {
            let item = c
                .dynamodb
                .get_item()
                .table_name(&self.name)
                .key("pk", s(pk.clone()))
                .key("sk", s(sk))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| AwsError::new("dynamodb:GetItem", pk, e))?;
            if let Some(item) = item.item()
                && item.contains_key("open")
                && let Some(record) = parse(item)
            {
                out.push(record);
            }
        }
        Ok(out)
    }

    async fn open_keys(&self, c: &Clients, job: &str) -> Result<Vec<(String, String)>, AwsError> {
        let items = c
            .dynamodb
            .query()
            .table_name(&self.name)
            .index_name(OPEN_INDEX)
            .key_condition_expression("#o = :job")
            .expression_attribute_names("#o", "open")
            .expression_attribute_values(":job", s(job))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| AwsError::new("dynamodb:Query", format!("open records of {job}"), e))?;
        Ok(items
            .iter()
            .filter_map(|i| {
                let key = |k: &str| i.get(k).and_then(|v| v.as_s().ok()).cloned();
                Some((key("pk")?, key("sk")?))
            })
            .collect())
    }

    /// Takes the lease on `job` for `owner` until `expires_at`, unless another owner holds an
    /// unexpired one (then `Err(holder)`). Taking a lease one already holds extends it, so an
    /// acquire the SDK retried after a lost answer finds its own lease, not a stranger's.
    pub async fn acquire_lease(
        &self,
        c: &Clients,
        job: &str,
        owner: &str,
        now_epoch_s: i64,
        expires_at_epoch_s: i64,
    ) -> Result<Result<(), LeaseHolder>, AwsError> {
        let result = c
            .dynamodb
            .put_item()
            .table_name(&self.name)
            .item("pk", s(Key::Lease { job }.pk()))
            .item("sk", s(Key::Lease { job }.sk()))
            .item("owner", s(owner))
            .item(
                "expires_at",
                AttributeValue::N(expires_at_epoch_s.to_string()),
            )
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now OR #o = :me")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":now", AttributeValue::N(now_epoch_s.to_string()))
            .expression_attribute_values(":me", s(owner))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Ok(())),
            Err(e) => {
                let holder = e
                    .as_service_error()
                    .and_then(|se| match se { aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(x) => Some(x), _ => None })
                    .map(|x| lease_holder(x.item()));
                match holder {
                    Some(h) => Ok(Err(h)),
                    None => Err(AwsError::new(
                        "dynamodb:PutItem",
                        Key::Lease { job }.pk(),
                        e,
                    )),
                }
            }
        }
    }

    /// Extends the lease `owner` holds. `Ok(false)` when it no longer holds it.
    pub async fn renew_lease(
        &self,
        c: &Clients,
        job: &str,
        owner: &str,
        expires_at_epoch_s: i64,
    ) -> Result<bool, AwsError> {
        let result = c
            .dynamodb
            .update_item()
            .table_name(&self.name)
            .key("pk", s(Key::Lease { job }.pk()))
            .key("sk", s(Key::Lease { job }.sk()))
            .update_expression("SET expires_at = :until")
            .condition_expression("#o = :me")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(
                ":until",
                AttributeValue::N(expires_at_epoch_s.to_string()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = AwsError::new("dynamodb:UpdateItem", Key::Lease { job }.pk(), e);
                if e.is(ErrorKind::ConditionFailed) {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Gives the lease back, if `owner` still holds it.
    pub async fn release_lease(&self, c: &Clients, job: &str, owner: &str) -> Result<(), AwsError> {
        let result = c
            .dynamodb
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(Key::Lease { job }.pk()))
            .key("sk", s(Key::Lease { job }.sk()))
            .condition_expression("#o = :owner")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::new("dynamodb:DeleteItem", Key::Lease { job }.pk(), e);
                if e.is(ErrorKind::ConditionFailed) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Who holds `job`'s lease now, if anyone.
    pub async fn lease(&self, c: &Clients, job: &str) -> Result<Option<LeaseHolder>, AwsError> {
        let out = c
            .dynamodb
            .get_item()
            .table_name(&self.name)
            .key("pk", s(Key::Lease { job }.pk()))
            .key("sk", s(Key::Lease { job }.sk()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::new("dynamodb:GetItem", Key::Lease { job }.pk(), e))?;
        Ok(out.item().map(|i| lease_holder(Some(i))))
    }

    /// Writes a run's status (and, when it is done, its report in parts).
    pub async fn put_run(
        &self,
        c: &Clients,
        status: &RunStatus,
        report: Option<&serde_json::Value>,
    ) -> Result<(), AwsError> {
        let pk = run_partition(&status.run_id);
        let text = report.map(ToString::to_string).unwrap_or_default();
        let parts: Vec<&str> = split_utf8(&text, PART_BYTES);
        for (i, part) in parts.iter().enumerate() {
            c.dynamodb
                .put_item()
                .table_name(&self.name)
                .item("pk", s(pk.clone()))
                .item(
                    "sk",
                    s(Key::RunPart {
                        run_id: &status.run_id,
                        part: i,
                    }
                    .sk()),
                )
                .item("text", s(*part))
                .send()
                .await
                .map_err(|e| AwsError::new("dynamodb:PutItem", pk.clone(), e))?;
        }
        let json = serde_json::to_string(status)
            .map_err(|e| AwsError::invalid("dynamodb:PutItem", pk.clone(), e.to_string()))?;
        c.dynamodb
            .put_item()
            .table_name(&self.name)
            .item("pk", s(pk.clone()))
            .item("sk", s(RUN_STATUS_SK))
            .item("status", s(json))
            .item("run_state", s(run_state_name(status.state)))
            .item("parts", AttributeValue::N(parts.len().to_string()))
            .send()
            .await
            .map_err(|e| AwsError::new("dynamodb:PutItem", pk, e))?;
        Ok(())
    }

    /// Claims a queued run for `owner` (`queued` -> `running`). `Ok(false)` when it is no longer
    /// queued: Lambda delivered the same asynchronous event twice, and another invocation has it.
    pub async fn claim_run(
        &self,
        c: &Clients,
        status: &RunStatus,
        owner: &str,
    ) -> Result<bool, AwsError> {
        let pk = run_partition(&status.run_id);
        let json = serde_json::to_string(status)
            .map_err(|e| AwsError::invalid("dynamodb:UpdateItem", pk.clone(), e.to_string()))?;
        let result = c
            .dynamodb
            .update_item()
            .table_name(&self.name)
            .key("pk", s(pk.clone()))
            .key("sk", s(RUN_STATUS_SK))
            .update_expression("SET #st = :status, #o = :owner, run_state = :running")
            .condition_expression(
                "attribute_not_exists(pk) OR attribute_not_exists(run_state) OR run_state = :queued OR #o = :owner",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":status", s(json))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":running", s("running"))
            .expression_attribute_values(":queued", s("queued"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = AwsError::new("dynamodb:UpdateItem", pk, e);
                if e.is(ErrorKind::ConditionFailed) {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// A run's status and, once written, its report.
    pub async fn run(
        &self,
        c: &Clients,
        run_id: &str,
    ) -> Result<Option<(RunStatus, Option<serde_json::Value>)>, AwsError> {
        let pk = run_partition(run_id);
        let items = c
            .dynamodb
            .query()
            .table_name(&self.name)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk.clone()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| AwsError::new("dynamodb:Query", pk, e))?;
        let status_item = items.iter().find(|i| {
            i.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(RUN_STATUS_SK)
        });
        let Some(status_item) = status_item else {
            return Ok(None);
        };
        let status: Option<RunStatus> = status_item
            .get("status")
            .and_then(|v| v.as_s().ok())
            .and_then(|j| serde_json::from_str(j).ok());
        let Some(status) = status else {
            return Ok(None);
        };
        let parts: usize = status_item
            .get("parts")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mut text = String::new();
        for i in 0..parts {
            let key = Key::RunPart { run_id, part: i }.sk();
            let part = items
                .iter()
                .find(|it| it.get("sk").and_then(|v| v.as_s().ok()) == Some(&key))
                .and_then(|it| it.get("text"))
                .and_then(|v| v.as_s().ok());
            match part {
                Some(p) => text.push_str(p),
                None => return Ok(Some((status, None))),
            }
        }
        let report = (parts > 0)
            .then(|| serde_json::from_str(&text).ok())
            .flatten();
        Ok(Some((status, report)))
    }
}

fn run_state_name(state: RunState) -> &'static str {
    match state {
        RunState::Queued => "queued",
        RunState::Running => "running",
        RunState::Done => "done",
        RunState::Failed => "failed",
    }
}

fn lease_holder(item: Option<&Item>) -> LeaseHolder {
    LeaseHolder {
        owner: item
            .and_then(|i| i.get("owner"))
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned()),
        expires_at_epoch_s: item
            .and_then(|i| i.get("expires_at"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or_default(),
    }
}

/// Splits `text` into pieces of at most `max` bytes on character boundaries.
fn split_utf8(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(max);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_split_on_character_boundaries() {
        let text = "ab\u{e9}cd";
        let parts = split_utf8(text, 3);
        assert_eq!(parts.concat(), text);
        assert!(parts.iter().all(|p| p.len() <= 3));
        assert!(split_utf8("", 3).is_empty());
    }
}
