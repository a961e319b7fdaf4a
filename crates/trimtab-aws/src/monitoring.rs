//! API discovery (REST and HTTP APIs with their stages), and the CloudWatch dashboard and alarms
//! the performance monitor keeps in step.

use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator, Dimension, Metric, MetricDataQuery, MetricStat,
};
use trimtab_core::monitor::{AlarmBody, AlarmSource, AlarmSpec, ApiKind, ExistingAlarm};

use crate::{AwsError, Clients, ErrorKind};

/// An API stage, the unit API Gateway reports metrics for.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiStage {
    pub kind: ApiKind,
    /// REST: the API's name (its metric dimension); HTTP: the API id.
    pub dimension_value: String,
    pub name: String,
    pub stage: String,
    /// The stage's own steady-state throttle limit, requests a second, where one is set (a REST
    /// stage's `*/*` method setting, an HTTP stage's default route setting); otherwise the
    /// account's applies.
    pub rate_limit_rps: Option<f64>,
}

/// Every REST and HTTP API stage whose API name starts with `prefix` (paged), and the APIs
/// whose stages could not be read (one bad API does not hide the others; one deleted since it
/// was listed is simply gone).
pub async fn list_api_stages(
    c: &Clients,
    prefix: Option<&str>,
) -> Result<(Vec<ApiStage>, Vec<AwsError>), AwsError> {
    let admit = |name: &str| prefix.is_none_or(|p| name.starts_with(p));
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    let mut keep = |stages: Result<Vec<ApiStage>, AwsError>| match stages {
        Ok(s) => out.extend(s),
        Err(e) if e.kind == ErrorKind::NotFound => {}
        Err(e) => unreadable.push(e),
    };
    let mut apis = c
        .apigateway
        .get_rest_apis()
        .limit(500)
        .into_paginator()
        .items()
        .send();
    while let Some(api) = apis
        .try_next()
        .await
        .map_err(|e| AwsError::new("apigateway:GetRestApis", "apis", e))?
    {
        if let (Some(id), Some(name)) = (api.id(), api.name())
            && admit(name)
        {
            keep(rest_stages(c, id, name).await);
        }
    }
    // GetApis (apigatewayv2) has no paginator in the SDK model: follow NextToken by hand.
    let mut token: Option<String> = None;
    loop {
        let page = c
            .apigatewayv2
            .get_apis()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| AwsError::new("apigatewayv2:GetApis", "apis", e))?;
        for api in page.items() {
            if let (Some(id), Some(name)) = (api.api_id(), api.name())
                && admit(name)
            {
                keep(http_stages(c, id, name).await);
            }
        }
        token = page.next_token().map(ToOwned::to_owned);
        if token.is_none() {
            break;
        }
    }
    out.sort_by(|a, b| (&a.name, &a.stage).cmp(&(&b.name, &b.stage)));
    Ok((out, unreadable))
}

/// A REST API's stages (GetStages answers them all at once).
async fn rest_stages(c: &Clients, id: &str, name: &str) -> Result<Vec<ApiStage>, AwsError> {
    let stages = c
        .apigateway
        .get_stages()
        .rest_api_id(id)
        .send()
        .await
        .map_err(|e| AwsError::new("apigateway:GetStages", name, e))?;
    Ok(stages
        .item()
        .iter()
        .filter_map(|s| {
            let limit = s
                .method_settings()
                .and_then(|m| m.get("*/*"))
                .map(|m| m.throttling_rate_limit());
            Some(ApiStage {
                kind: ApiKind::Rest,
                dimension_value: name.to_owned(),
                name: name.to_owned(),
                stage: s.stage_name()?.to_owned(),
                rate_limit_rps: limit.filter(|l| *l > 0.0),
            })
        })
        .collect())
}

/// An HTTP API's stages, every page (GetStages has no paginator in the SDK model).
async fn http_stages(c: &Clients, id: &str, name: &str) -> Result<Vec<ApiStage>, AwsError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = c
            .apigatewayv2
            .get_stages()
            .api_id(id)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| AwsError::new("apigatewayv2:GetStages", name, e))?;
        out.extend(page.items().iter().filter_map(|s| {
            let limit = s
                .default_route_settings()
                .and_then(|r| r.throttling_rate_limit());
            Some(ApiStage {
                kind: ApiKind::Http,
                dimension_value: id.to_owned(),
                name: name.to_owned(),
                stage: s.stage_name()?.to_owned(),
                rate_limit_rps: limit.filter(|l| *l > 0.0),
            })
        }));
        token = page.next_token().map(ToOwned::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// The account's per-Region API Gateway throttle limit (`GetAccount` `throttleSettings`), requests
/// a second: shared by every REST, HTTP and WebSocket API in the Region.
pub async fn account_rate_limit(c: &Clients) -> Result<Option<f64>, AwsError> {
    let account = c
        .apigateway
        .get_account()
        .send()
        .await
        .map_err(|e| AwsError::new("apigateway:GetAccount", "account", e))?;
    Ok(account
        .throttle_settings()
        .map(|t| t.rate_limit())
        .filter(|l| *l > 0.0))
}

/// The body of a dashboard, `None` when it does not exist.
pub async fn get_dashboard(c: &Clients, name: &str) -> Result<Option<String>, AwsError> {
    match c
        .cloudwatch
        .get_dashboard()
        .dashboard_name(name)
        .send()
        .await
    {
        Ok(d) => Ok(d.dashboard_body().map(ToOwned::to_owned)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_dashboard_not_found_error()) =>
        {
            Ok(None)
        }
        Err(e) => {
            // Some backends answer a missing dashboard with a generic error code.
            let missing = e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
                || format!(
                    "{}",
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                )
                .contains("does not exist");
            if missing {
                Ok(None)
            } else {
                Err(AwsError::new("cloudwatch:GetDashboard", name, e))
            }
        }
    }
}

pub async fn put_dashboard(c: &Clients, name: &str, body: &str) -> Result<(), AwsError> {
    c.cloudwatch
        .put_dashboard()
        .dashboard_name(name)
        .dashboard_body(body)
        .send()
        .await
        .map_err(|e| AwsError::new("cloudwatch:PutDashboard", name, e))?;
    Ok(())
}

/// Alarms, metric and composite, whose names start with `prefix`: (name, description). Both
/// types are asked for: by default `DescribeAlarms` returns metric alarms only.
pub async fn alarms(c: &Clients, prefix: &str) -> Result<Vec<ExistingAlarm>, AwsError> {
    let pages: Vec<_> = c
        .cloudwatch
        .describe_alarms()
        .alarm_name_prefix(prefix)
        .alarm_types(AlarmType::MetricAlarm)
        .alarm_types(AlarmType::CompositeAlarm)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| AwsError::new("cloudwatch:DescribeAlarms", prefix, e))?;
    let mut out = Vec::new();
    for page in pages {
        for a in page.metric_alarms() {
            out.push(ExistingAlarm {
                name: a.alarm_name().unwrap_or_default().to_owned(),
                description: a.alarm_description().unwrap_or_default().to_owned(),
                composite: false,
            });
        }
        for a in page.composite_alarms() {
            out.push(ExistingAlarm {
                name: a.alarm_name().unwrap_or_default().to_owned(),
                description: a.alarm_description().unwrap_or_default().to_owned(),
                composite: true,
            });
        }
    }
    Ok(out)
}

fn metric(namespace: &str, name: &str, dims: &[(String, String)]) -> Metric {
    Metric::builder()
        .namespace(namespace)
        .metric_name(name)
        .set_dimensions(Some(
            dims.iter()
                .map(|(n, v)| Dimension::builder().name(n).value(v).build())
                .collect(),
        ))
        .build()
}

/// Creates or replaces an alarm: a metric alarm, or a composite (whose children must exist).
pub async fn put_alarm(c: &Clients, spec: &AlarmSpec) -> Result<(), AwsError> {
    let actions = (!spec.actions.is_empty()).then(|| spec.actions.clone());
    let AlarmBody::Metric {
        source,
        threshold,
        at_least,
        evaluation_periods,
        datapoints_to_alarm,
    } = &spec.body
    else {
        c.cloudwatch
            .put_composite_alarm()
            .alarm_name(&spec.name)
            .alarm_description(spec.description_with_hash())
            .alarm_rule(spec.rule().unwrap_or_default())
            .set_alarm_actions(actions)
            .send()
            .await
            .map_err(|e| AwsError::new("cloudwatch:PutCompositeAlarm", &spec.name, e))?;
        return Ok(());
    };
    let mut req = c
        .cloudwatch
        .put_metric_alarm()
        .alarm_name(&spec.name)
        .alarm_description(spec.description_with_hash())
        .comparison_operator(if *at_least {
            ComparisonOperator::GreaterThanOrEqualToThreshold
        } else {
            ComparisonOperator::GreaterThanThreshold
        })
        .threshold(*threshold)
        .evaluation_periods(*evaluation_periods)
        .datapoints_to_alarm(*datapoints_to_alarm)
        .treat_missing_data("notBreaching")
        .set_alarm_actions(actions);
    match source {
        AlarmSource::Single {
            namespace,
            metric: name,
            dimensions,
            extended_statistic,
            period_s,
        } => {
            req = req
                .namespace(namespace)
                .metric_name(name)
                .set_dimensions(Some(
                    dimensions
                        .iter()
                        .map(|(n, v)| Dimension::builder().name(n).value(v).build())
                        .collect(),
                ))
                .extended_statistic(extended_statistic)
                .period(*period_s);
        }
        AlarmSource::Ratio {
            namespace,
            numerator,
            denominator,
            dimensions,
            scale,
            period_s,
            label,
        } => {
            let stat = |id: &str, name: &str| {
                MetricDataQuery::builder()
                    .id(id)
                    .metric_stat(
                        MetricStat::builder()
                            .metric(metric(namespace, name, dimensions))
                            .period(*period_s)
                            .stat("Sum")
                            .build(),
                    )
                    .return_data(false)
                    .build()
            };
            req = req
                .metrics(stat("bad", numerator))
                .metrics(stat("total", denominator))
                .metrics(
                    MetricDataQuery::builder()
                        .id("ratio")
                        .expression(format!("{scale} * bad / total"))
                        .label(label)
                        .return_data(true)
                        .build(),
                );
        }
    }
    req.send()
        .await
        .map_err(|e| AwsError::new("cloudwatch:PutMetricAlarm", &spec.name, e))?;
    Ok(())
}

/// One `DeleteAlarms` call (at most 100 names, at most one of them a composite).
pub async fn delete_alarms(c: &Clients, names: &[String]) -> Result<(), AwsError> {
    c.cloudwatch
        .delete_alarms()
        .set_alarm_names(Some(names.to_vec()))
        .send()
        .await
        .map_err(|e| AwsError::new("cloudwatch:DeleteAlarms", "alarms", e))?;
    Ok(())
}
