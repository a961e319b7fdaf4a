//! The decision table (DynamoDB): decision records, the per-job run lease, and job results.
//!
//! One table, keys `pk` / `sk` (strings):
//! - `fn#<function>` / `rec#<record_id>`: a [`DecisionRecord`] (as JSON in `record`, with `state`
//!   beside it for conditions);
//! - `res#<resource>` / `rec#<record_id>`: a [`ChangeRecord`] (autoscaling changes);
//! - `lease#<job>` / `lease`: who is running the job, until when (`owner`, `expires_at`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use trimtab_core::apply::{ChangeRecord, DecisionRecord, RecordState};

use crate::{AwsError, Clients};

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn state_name(state: RecordState) -> &'static str {
    match state {
        RecordState::Pending => "pending",
        RecordState::Applied => "applied",
        RecordState::Verified => "verified",
        RecordState::NotApplied => "not_applied",
        RecordState::RolledBack => "rolled_back",
    }
}

/// The item of a record: keys, its state beside it for conditions, the record as JSON.
fn item<T: Serialize>(
    pk: String,
    record_id: &str,
    state: RecordState,
    record: &T,
) -> Result<HashMap<String, AttributeValue>, AwsError> {
    let json = serde_json::to_string(record).map_err(|e| AwsError {
        operation: "dynamodb:PutItem",
        resource: pk.clone(),
        message: e.to_string(),
    })?;
    Ok(HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(format!("rec#{record_id}"))),
        ("state".to_owned(), s(state_name(state))),
        ("record".to_owned(), s(json)),
    ]))
}

fn decision_item(r: &DecisionRecord) -> Result<HashMap<String, AttributeValue>, AwsError> {
    item(format!("fn#{}", r.function_name), &r.record_id, r.state, r)
}

fn change_item(r: &ChangeRecord) -> Result<HashMap<String, AttributeValue>, AwsError> {
    item(format!("res#{}", r.resource), &r.record_id, r.state, r)
}

fn parse(item: &HashMap<String, AttributeValue>) -> Option<DecisionRecord> {
    let json = item.get("record")?.as_s().ok()?;
    serde_json::from_str(json).ok()
}

/// The decision table, by name.
#[derive(Debug, Clone)]
pub struct DecisionTable {
    pub name: String,
}

impl DecisionTable {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// Writes a new record; fails if one with the same id exists.
    pub async fn create(&self, c: &Clients, record: &DecisionRecord) -> Result<(), AwsError> {
        self.put(c, decision_item(record)?, None, &record.function_name)
            .await
    }

    /// Replaces a record whose stored state is still `expected`, so two writers cannot both move it.
    pub async fn update(
        &self,
        c: &Clients,
        record: &DecisionRecord,
        expected: RecordState,
    ) -> Result<(), AwsError> {
        self.put(
            c,
            decision_item(record)?,
            Some(expected),
            &record.function_name,
        )
        .await
    }

    /// Writes a new change record.
    pub async fn create_change(&self, c: &Clients, record: &ChangeRecord) -> Result<(), AwsError> {
        self.put(c, change_item(record)?, None, &record.resource)
            .await
    }

    /// Moves a change record on from `expected`.
    pub async fn update_change(
        &self,
        c: &Clients,
        record: &ChangeRecord,
        expected: RecordState,
    ) -> Result<(), AwsError> {
        self.put(c, change_item(record)?, Some(expected), &record.resource)
            .await
    }

    /// Every change record of a resource, newest first.
    pub async fn changes(
        &self,
        c: &Clients,
        resource: &str,
    ) -> Result<Vec<ChangeRecord>, AwsError> {
        c.record("dynamodb:Query");
        let page = c
            .dynamodb
            .query()
            .table_name(&self.name)
            .key_condition_expression("pk = :pk AND begins_with(sk, :rec)")
            .expression_attribute_values(":pk", s(format!("res#{resource}")))
            .expression_attribute_values(":rec", s("rec#"))
            .scan_index_forward(false)
            .send()
            .await
            .map_err(|e| AwsError::new("dynamodb:Query", resource, e))?;
        Ok(page
            .items()
            .iter()
            .filter_map(|i| {
                i.get("record")?
                    .as_s()
                    .ok()
                    .and_then(|j| serde_json::from_str(j).ok())
            })
            .collect())
    }

    /// A conditional put: new (`expected` None) or moving on from `expected`.
    async fn put(
        &self,
        c: &Clients,
        item: HashMap<String, AttributeValue>,
        expected: Option<RecordState>,
        resource: &str,
    ) -> Result<(), AwsError> {
        c.record("dynamodb:PutItem");
        let req = c
            .dynamodb
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item));
        let req = match expected {
            None => req.condition_expression("attribute_not_exists(pk)"),
            Some(state) => req
                .condition_expression("#s = :expected")
                .expression_attribute_names("#s", "state")
                .expression_attribute_values(":expected", s(state_name(state))),
        };
        req.send()
            .await
            .map_err(|e| AwsError::new("dynamodb:PutItem", resource, e))?;
        Ok(())
    }

    /// Every record of one function, newest first (paged to the end).
    pub async fn history(
        &self,
        c: &Clients,
        function: &str,
    ) -> Result<Vec<DecisionRecord>, AwsError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            c.record("dynamodb:Query");
            let page = c
                .dynamodb
                .query()
                .table_name(&self.name)
                .key_condition_expression("pk = :pk AND begins_with(sk, :rec)")
                .expression_attribute_values(":pk", s(format!("fn#{function}")))
                .expression_attribute_values(":rec", s("rec#"))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::new("dynamodb:Query", function, e))?;
            out.extend(page.items().iter().filter_map(parse));
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// Records in `states`, across functions (paged scan with a filter: the table holds one row
    /// per change ever made, which is small next to what a run reads from CloudWatch).
    pub async fn in_states(
        &self,
        c: &Clients,
        states: &[RecordState],
    ) -> Result<Vec<DecisionRecord>, AwsError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        let names: Vec<String> = (0..states.len()).map(|i| format!(":s{i}")).collect();
        loop {
            c.record("dynamodb:Scan");
            let mut req = c
                .dynamodb
                .scan()
                .table_name(&self.name)
                .filter_expression(format!(
                    "begins_with(pk, :fn) AND begins_with(sk, :rec) AND #s IN ({})",
                    names.join(", ")
                ))
                .expression_attribute_names("#s", "state")
                .expression_attribute_values(":rec", s("rec#"))
                .expression_attribute_values(":fn", s("fn#"))
                .set_exclusive_start_key(start.take());
            for (name, state) in names.iter().zip(states) {
                req = req.expression_attribute_values(name, s(state_name(*state)));
            }
            let page = req
                .send()
                .await
                .map_err(|e| AwsError::new("dynamodb:Scan", &self.name, e))?;
            out.extend(page.items().iter().filter_map(parse));
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.record_id.cmp(&b.record_id));
        Ok(out)
    }

    /// Takes the lease on `job` for `owner` until `expires_at`, if nobody holds an unexpired one.
    /// `Ok(false)` when another run holds it.
    pub async fn acquire_lease(
        &self,
        c: &Clients,
        job: &str,
        owner: &str,
        now_epoch_s: i64,
        expires_at_epoch_s: i64,
    ) -> Result<bool, AwsError> {
        c.record("dynamodb:PutItem");
        let result = c
            .dynamodb
            .put_item()
            .table_name(&self.name)
            .item("pk", s(format!("lease#{job}")))
            .item("sk", s("lease"))
            .item("owner", s(owner))
            .item(
                "expires_at",
                AttributeValue::N(expires_at_epoch_s.to_string()),
            )
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", AttributeValue::N(now_epoch_s.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(AwsError::new("dynamodb:PutItem", format!("lease#{job}"), e)),
        }
    }

    /// Gives the lease back, if `owner` still holds it.
    pub async fn release_lease(&self, c: &Clients, job: &str, owner: &str) -> Result<(), AwsError> {
        c.record("dynamodb:DeleteItem");
        let result = c
            .dynamodb
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(format!("lease#{job}")))
            .key("sk", s("lease"))
            .condition_expression("#o = :owner")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(AwsError::new(
                "dynamodb:DeleteItem",
                format!("lease#{job}"),
                e,
            )),
        }
    }
}
