//! Seeds an emulated account with functions and the metrics and logs a real one would have.
//!
//! A [`Workload`] is the truth about a function: how much it computes and waits per invocation,
//! how many threads compute, how much memory it touches, how its traffic moves through the day
//! and the week. From that truth the seeder writes what AWS would have recorded at the function's
//! configured memory: `AWS/Lambda` statistics, Lambda Insights statistics (when the extension is
//! on) and REPORT log lines (when it is not). Tests then judge the recommendation against the
//! truth's own cost curve, which the job never sees.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, StatisticSet};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, EphemeralStorage, FunctionCode, Runtime};
use aws_smithy_types::DateTime;
use trimtab_core::calendar;
use trimtab_core::model::vcpus;
use trimtab_core::pricing::{
    PriceTable, SECONDS_PER_MONTH, expected_billed_duration_ms, gb_seconds,
};

/// The truth about one function.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub arm64: bool,
    pub ephemeral_storage_mb: u32,
    /// Mean invocations per day.
    pub daily_invocations: f64,
    /// Time per invocation not computing (network, downstream services).
    pub wait_ms: f64,
    /// CPU time per invocation, core-ms.
    pub cpu_ms: f64,
    /// Threads that compute at once.
    pub threads: f64,
    /// Longest run over the mean run.
    pub tail_factor: f64,
    pub peak_memory_mb: f64,
    /// Lambda Insights on: `LambdaInsights` metrics; off: REPORT lines in the logs instead.
    pub insights: bool,
    pub cold_start_rate: f64,
    pub init_ms: f64,
    pub error_rate: f64,
    pub tags: Vec<(String, String)>,
}

impl Workload {
    pub fn new(name: &str, memory_mb: u32) -> Self {
        Self {
            name: name.to_owned(),
            memory_mb,
            timeout_s: 30,
            arm64: false,
            ephemeral_storage_mb: 512,
            daily_invocations: 50_000.0,
            wait_ms: 100.0,
            cpu_ms: 20.0,
            threads: 1.0,
            tail_factor: 4.0,
            peak_memory_mb: 100.0,
            insights: true,
            cold_start_rate: 0.01,
            init_ms: 250.0,
            error_rate: 0.0003,
            tags: Vec::new(),
        }
    }

    /// True mean duration at `memory_mb`.
    pub fn duration_ms(&self, memory_mb: u32) -> f64 {
        self.wait_ms + self.cpu_ms / vcpus(memory_mb).min(self.threads.max(1.0))
    }

    /// True monthly cost at `memory_mb` (duration, init, requests; first tier).
    pub fn monthly_cost_usd(&self, memory_mb: u32) -> f64 {
        let prices = PriceTable::us_east_1();
        let arch = if self.arm64 {
            trimtab_core::pricing::Architecture::Arm64
        } else {
            trimtab_core::pricing::Architecture::X86_64
        };
        let per_month = self.daily_invocations * SECONDS_PER_MONTH / 86_400.0;
        let slowdown = self.duration_ms(memory_mb) / self.duration_ms(self.memory_mb);
        let run_ms = per_month * expected_billed_duration_ms(self.duration_ms(memory_mb))
            + per_month * self.cold_start_rate * self.init_ms * slowdown;
        prices.duration_usd(arch, 0.0, gb_seconds(memory_mb, run_ms))
            + prices.requests_usd(per_month)
    }

    /// The cheapest memory whose true duration is within `guard_pct` of today's and which keeps
    /// `headroom_pct` above peak use: what a perfect power-tuning sweep would pick.
    pub fn true_optimum_mb(&self, guard_pct: f64, headroom_pct: f64) -> u32 {
        let limit = self.duration_ms(self.memory_mb) * (1.0 + guard_pct / 100.0);
        let floor = (self.peak_memory_mb * (1.0 + headroom_pct / 100.0)).ceil() as u32;
        (floor.max(128)..=10_240)
            .filter(|&m| m >= self.memory_mb || self.duration_ms(m) <= limit)
            .min_by(|a, b| {
                self.monthly_cost_usd(*a)
                    .total_cmp(&self.monthly_cost_usd(*b))
            })
            .unwrap_or(self.memory_mb)
    }
}

/// A small deterministic generator (xorshift), so seeded data is the same on every run.
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: &str) -> Self {
        Self(
            seed.bytes().fold(0x9E37_79B9_7F4A_7C15, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
            }) | 1,
        )
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// How the seeder lays data over time.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub days: u32,
    /// One aggregated datapoint per metric per this many hours.
    pub interval_hours: u32,
    /// REPORT lines written per function without Lambda Insights.
    pub report_lines: usize,
    pub now: SystemTime,
}

impl Layout {
    pub fn fourteen_days(now: SystemTime) -> Self {
        Self {
            days: 14,
            interval_hours: 3,
            report_lines: 120,
            now,
        }
    }
}

/// Clients for seeding, and the role every function runs as.
#[derive(Debug)]
pub struct Seeder {
    pub lambda: aws_sdk_lambda::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    role_arn: String,
}

const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

impl Seeder {
    pub async fn new(config: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let iam = aws_sdk_iam::Client::new(config);
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let role = iam
            .create_role()
            .role_name("trimtab-seeded-function")
            .assume_role_policy_document(trust)
            .send()
            .await
            .context("creating the functions' role")?;
        let role_arn = role.role().map(|r| r.arn().to_owned()).unwrap_or_default();
        Ok(Self {
            lambda: aws_sdk_lambda::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
            role_arn,
        })
    }

    /// Creates the function and writes its history.
    pub async fn seed(&self, w: &Workload, layout: Layout) -> anyhow::Result<()> {
        self.create_function(w).await?;
        self.put_metrics(w, layout).await?;
        if !w.insights && layout.report_lines > 0 {
            self.put_report_lines(w, layout).await?;
        }
        Ok(())
    }

    pub async fn create_function(&self, w: &Workload) -> anyhow::Result<()> {
        let mut req = self
            .lambda
            .create_function()
            .function_name(&w.name)
            .runtime(Runtime::Providedal2023)
            .role(&self.role_arn)
            .handler("bootstrap")
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(EMPTY_ZIP.to_vec()))
                    .build(),
            )
            .memory_size(i32::try_from(w.memory_mb)?)
            .timeout(i32::try_from(w.timeout_s)?)
            .architectures(if w.arm64 {
                Architecture::Arm64
            } else {
                Architecture::X8664
            })
            .ephemeral_storage(
                EphemeralStorage::builder()
                    .size(i32::try_from(w.ephemeral_storage_mb)?)
                    .build()?,
            );
        for (k, v) in &w.tags {
            req = req.tags(k, v);
        }
        req.send()
            .await
            .with_context(|| format!("creating function {}", w.name))?;
        Ok(())
    }

    /// Writes `layout.days` of aggregated statistics ending at `layout.now`.
    pub async fn put_metrics(&self, w: &Workload, layout: Layout) -> anyhow::Result<()> {
        let mut noise = Noise::new(&w.name);
        let now_s = layout.now.duration_since(SystemTime::UNIX_EPOCH)?.as_secs() as i64;
        let step_s = i64::from(layout.interval_hours) * 3600;
        let end = now_s - now_s % 3600;
        let intervals = i64::from(layout.days) * 24 / i64::from(layout.interval_hours);
        let per_interval = w.daily_invocations * f64::from(layout.interval_hours) / 24.0;
        let mean_ms = w.duration_ms(w.memory_mb);
        let fn_dim = Dimension::builder()
            .name("FunctionName")
            .value(&w.name)
            .build();
        let li_dim = Dimension::builder()
            .name("function_name")
            .value(&w.name)
            .build();
        let mut lambda = Vec::new();
        let mut insights = Vec::new();
        for k in 0..intervals {
            let t = end - (intervals - k) * step_s + step_s / 2;
            let hour = f64::from(calendar::hour_of(t));
            let diurnal = 1.0 + 0.6 * ((hour - 8.0) / 24.0 * std::f64::consts::TAU).sin();
            let weekly = if calendar::is_weekend(calendar::day_of(t)) {
                0.6
            } else {
                1.1
            };
            let n = (per_interval * diurnal * weekly * noise.between(0.85, 1.15))
                .round()
                .max(0.0);
            if n == 0.0 {
                continue;
            }
            let ts = DateTime::from_secs(t);
            let avg = mean_ms * noise.between(0.95, 1.05);
            let max = mean_ms * w.tail_factor * noise.between(0.7, 1.0);
            let stat = |name: &str,
                        dim: &Dimension,
                        unit: StandardUnit,
                        count: f64,
                        sum: f64,
                        min: f64,
                        max: f64| {
                MetricDatum::builder()
                    .metric_name(name)
                    .dimensions(dim.clone())
                    .timestamp(ts)
                    .unit(unit)
                    .statistic_values(
                        StatisticSet::builder()
                            .sample_count(count)
                            .sum(sum)
                            .minimum(min)
                            .maximum(max)
                            .build(),
                    )
                    .build()
            };
            let count = |name: &str, v: f64| stat(name, &fn_dim, StandardUnit::Count, 1.0, v, v, v);
            lambda.push(count("Invocations", n));
            lambda.push(count("Errors", (n * w.error_rate).round()));
            lambda.push(count("Throttles", 0.0));
            lambda.push(stat(
                "Duration",
                &fn_dim,
                StandardUnit::Milliseconds,
                n,
                n * avg,
                avg * 0.4,
                max,
            ));
            let concurrency = (n / step_s as f64 * avg / 1000.0 * 3.0).ceil().max(1.0);
            lambda.push(count("ConcurrentExecutions", concurrency));
            if w.insights {
                let used = w.peak_memory_mb * noise.between(0.85, 1.0);
                let used = if k == intervals / 2 {
                    w.peak_memory_mb
                } else {
                    used
                };
                let pct = 100.0 * used / f64::from(w.memory_mb);
                let ms = StandardUnit::Milliseconds;
                insights.push(stat(
                    "used_memory_max",
                    &li_dim,
                    StandardUnit::Megabytes,
                    n,
                    n * used * 0.9,
                    used * 0.5,
                    used,
                ));
                insights.push(stat(
                    "memory_utilization",
                    &li_dim,
                    StandardUnit::Percent,
                    n,
                    n * pct * 0.9,
                    pct * 0.5,
                    pct,
                ));
                let cpu = w.cpu_ms * noise.between(0.97, 1.03);
                insights.push(stat(
                    "cpu_total_time",
                    &li_dim,
                    ms.clone(),
                    n,
                    n * cpu,
                    cpu * 0.5,
                    cpu * w.tail_factor,
                ));
                let colds = (n * w.cold_start_rate).round().max(1.0);
                insights.push(stat(
                    "init_duration",
                    &li_dim,
                    ms,
                    colds,
                    colds * w.init_ms,
                    w.init_ms * 0.8,
                    w.init_ms * 1.5,
                ));
            }
        }
        self.put_all("AWS/Lambda", lambda).await?;
        self.put_all("LambdaInsights", insights).await
    }

    async fn put_all(&self, namespace: &str, data: Vec<MetricDatum>) -> anyhow::Result<()> {
        for chunk in data.chunks(500) {
            self.cloudwatch
                .put_metric_data()
                .namespace(namespace)
                .set_metric_data(Some(chunk.to_vec()))
                .send()
                .await
                .with_context(|| format!("PutMetricData {namespace}"))?;
        }
        Ok(())
    }

    /// Writes REPORT lines spread over the window, as Lambda does after each invocation.
    pub async fn put_report_lines(&self, w: &Workload, layout: Layout) -> anyhow::Result<()> {
        let group = format!("/aws/lambda/{}", w.name);
        self.logs
            .create_log_group()
            .log_group_name(&group)
            .send()
            .await?;
        self.logs
            .create_log_stream()
            .log_group_name(&group)
            .log_stream_name("2026/11/[$LATEST]seed")
            .send()
            .await?;
        let mut noise = Noise::new(&format!("{}-logs", w.name));
        let end_ms = layout
            .now
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_millis() as i64;
        let span_ms = i64::from(layout.days) * 86_400_000;
        let n = layout.report_lines as i64;
        let mean = w.duration_ms(w.memory_mb);
        let mut events = Vec::with_capacity(layout.report_lines);
        for i in 0..n {
            let t = end_ms - span_ms + (i * span_ms) / n + 1;
            let d = mean * noise.between(0.6, 1.4);
            let used = if i == n / 3 {
                w.peak_memory_mb
            } else {
                w.peak_memory_mb * noise.between(0.7, 0.98)
            };
            let init = if i % 50 == 0 {
                format!("Init Duration: {:.2} ms\t", w.init_ms)
            } else {
                String::new()
            };
            let message = format!(
                "REPORT RequestId: {i:08x}-seed\tDuration: {d:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t{init}",
                d.ceil(),
                w.memory_mb,
                used.round()
            );
            events.push(
                InputLogEvent::builder()
                    .timestamp(t)
                    .message(message)
                    .build()?,
            );
        }
        for chunk in events.chunks(1000) {
            self.logs
                .put_log_events()
                .log_group_name(&group)
                .log_stream_name("2026/11/[$LATEST]seed")
                .set_log_events(Some(chunk.to_vec()))
                .send()
                .await?;
        }
        Ok(())
    }
}

/// Seconds since the epoch, for callers that pin "now".
pub fn at(epoch_s: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(epoch_s)
}

/// Creates the decision table as `template.yaml` declares it (keys `pk`/`sk`, on-demand).
pub async fn create_decision_table(
    config: &aws_config::SdkConfig,
    name: &str,
) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
    };
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .attribute_definitions(attr("open")?)
        // The sparse index of open records, as template.yaml declares it.
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("open")
                .key_schema(key("open", KeyType::Hash)?)
                .key_schema(key("sk", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?,
        )
        .tags(
            aws_sdk_dynamodb::types::Tag::builder()
                .key("trimtab:component")
                .value("decisions")
                .build()?,
        )
        .send()
        .await
        .context("creating the decision table")?;
    Ok(())
}

/// Writes one instant of traffic for `w` running at `memory_mb`, as AWS would record it
/// (`AWS/Lambda` and, with Insights on, `LambdaInsights`): traffic after a change.
pub async fn put_traffic(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    w: &Workload,
    memory_mb: u32,
    at_epoch_s: i64,
    invocations: f64,
    errors: f64,
) -> anyhow::Result<()> {
    let datum = |dim: &str, name: &str, unit: StandardUnit, n: f64, sum: f64| {
        MetricDatum::builder()
            .metric_name(name)
            .dimensions(Dimension::builder().name(dim).value(&w.name).build())
            .timestamp(DateTime::from_secs(at_epoch_s))
            .unit(unit)
            .statistic_values(
                StatisticSet::builder()
                    .sample_count(n)
                    .sum(sum)
                    .minimum(sum / n)
                    .maximum(sum / n)
                    .build(),
            )
            .build()
    };
    let ms = w.duration_ms(memory_mb);
    let fd = "FunctionName";
    cloudwatch
        .put_metric_data()
        .namespace("AWS/Lambda")
        .metric_data(datum(
            fd,
            "Invocations",
            StandardUnit::Count,
            1.0,
            invocations,
        ))
        .metric_data(datum(fd, "Errors", StandardUnit::Count, 1.0, errors))
        .metric_data(datum(fd, "Throttles", StandardUnit::Count, 1.0, 0.0))
        .metric_data(datum(
            fd,
            "Duration",
            StandardUnit::Milliseconds,
            invocations,
            invocations * ms,
        ))
        .send()
        .await
        .context("putting traffic")?;
    if w.insights {
        let li = "function_name";
        cloudwatch
            .put_metric_data()
            .namespace("LambdaInsights")
            .metric_data(datum(
                li,
                "cpu_total_time",
                StandardUnit::Milliseconds,
                invocations,
                invocations * w.cpu_ms,
            ))
            .metric_data(datum(
                li,
                "used_memory_max",
                StandardUnit::Megabytes,
                1.0,
                w.peak_memory_mb,
            ))
            .send()
            .await
            .context("putting insights traffic")?;
    }
    Ok(())
}

/// A table for scaling tests: provisioned (`Some((read, write))`) or on-demand, with GSIs of the
/// same throughput and tags.
pub async fn create_table(
    config: &aws_config::SdkConfig,
    name: &str,
    provisioned: Option<(i64, i64)>,
    indexes: &[&str],
    tags: &[(&str, &str)],
) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ProvisionedThroughput, ScalarAttributeType, Tag,
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
    };
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let throughput = provisioned
        .map(|(r, w)| {
            ProvisionedThroughput::builder()
                .read_capacity_units(r)
                .write_capacity_units(w)
                .build()
        })
        .transpose()?;
    let mut req = aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(name)
        .key_schema(key("pk", KeyType::Hash)?)
        .attribute_definitions(attr("pk")?)
        .billing_mode(if provisioned.is_some() {
            BillingMode::Provisioned
        } else {
            BillingMode::PayPerRequest
        })
        .set_provisioned_throughput(throughput.clone());
    if !indexes.is_empty() {
        req = req.attribute_definitions(attr("gk")?);
    }
    for i in indexes {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(*i)
                .key_schema(key("gk", KeyType::Hash)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .set_provisioned_throughput(throughput.clone())
                .build()?,
        );
    }
    for (k, v) in tags {
        req = req.tags(Tag::builder().key(*k).value(*v).build()?);
    }
    req.send()
        .await
        .with_context(|| format!("creating table {name}"))?;
    Ok(())
}

/// Writes per-minute consumed capacity (`units[m]` units in minute m, the last minute ending at
/// `end_epoch_s`) for a table or index, as DynamoDB publishes it.
pub async fn put_consumed(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    table: &str,
    index: Option<&str>,
    metric: &str,
    units: &[f64],
    end_epoch_s: i64,
) -> anyhow::Result<()> {
    let mut dims = vec![Dimension::builder().name("TableName").value(table).build()];
    if let Some(i) = index {
        dims.push(
            Dimension::builder()
                .name("GlobalSecondaryIndexName")
                .value(i)
                .build(),
        );
    }
    let start = end_epoch_s - 60 * units.len() as i64;
    let data: Vec<MetricDatum> = units
        .iter()
        .enumerate()
        .filter(|(_, u)| **u > 0.0)
        .map(|(m, u)| {
            MetricDatum::builder()
                .metric_name(metric)
                .set_dimensions(Some(dims.clone()))
                .timestamp(DateTime::from_secs(start + 60 * m as i64 + 30))
                .unit(StandardUnit::Count)
                .statistic_values(
                    StatisticSet::builder()
                        .sample_count(1.0)
                        .sum(*u)
                        .minimum(*u)
                        .maximum(*u)
                        .build(),
                )
                .build()
        })
        .collect();
    for chunk in data.chunks(1000) {
        cloudwatch
            .put_metric_data()
            .namespace("AWS/DynamoDB")
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .context("putting consumed capacity")?;
    }
    Ok(())
}

/// Per-minute units over `minutes` ending at `end_epoch_s`: `rate(epoch minute)` units a second,
/// times noise drawn uniformly from `noise` (a `(low, high)` factor).
fn shaped(
    minutes: usize,
    end_epoch_s: i64,
    seed: &str,
    (low, high): (f64, f64),
    rate: impl Fn(i64) -> f64,
) -> Vec<f64> {
    let mut noise = Noise::new(seed);
    let start_min = end_epoch_s / 60 - minutes as i64;
    (0..minutes)
        .map(|m| 60.0 * rate(start_min + m as i64) * noise.between(low, high))
        .collect()
}

/// A day of per-minute units shaped like a business day (peak mid-afternoon UTC), with noise.
pub fn business_day(
    minutes: usize,
    end_epoch_s: i64,
    base_per_s: f64,
    peak_per_s: f64,
    seed: &str,
) -> Vec<f64> {
    shaped(minutes, end_epoch_s, seed, (0.85, 1.15), |minute| {
        let hour = minute.rem_euclid(1440) as f64 / 60.0;
        let shape = (-(hour - 14.0).powi(2) / 18.0).exp();
        base_per_s + (peak_per_s - base_per_s) * shape
    })
}

/// Per-minute units of an office API: quiet nights and weekends, and on weekdays a ramp within
/// minutes to the busy level at 08:00 UTC and back at 18:00, with noise.
pub fn office_hours(
    minutes: usize,
    end_epoch_s: i64,
    quiet_per_s: f64,
    busy_per_s: f64,
    seed: &str,
) -> Vec<f64> {
    shaped(minutes, end_epoch_s, seed, (0.9, 1.1), |minute| {
        let weekday = !trimtab_core::calendar::is_weekend(minute.div_euclid(1440));
        let busy = weekday && (8 * 60..18 * 60).contains(&minute.rem_euclid(1440));
        if busy { busy_per_s } else { quiet_per_s }
    })
}

/// Writes `days` of office-hours write units for a table (ending at `end_epoch_s`): the last
/// `by_minute_days` by the minute, the rest as hourly sums (all a forecast reads; moto takes a
/// few milliseconds a datapoint, and a quiet level of 0 leaves the nights out).
pub async fn put_office_writes(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    table: &str,
    end_epoch_s: i64,
    (days, by_minute_days): (usize, usize),
    (quiet_per_s, busy_per_s): (f64, f64),
) -> anyhow::Result<()> {
    let metric = "ConsumedWriteCapacityUnits";
    let minutes = days * 1440;
    let all = office_hours(minutes, end_epoch_s, quiet_per_s, busy_per_s, table);
    let (older, recent) = all.split_at(minutes - by_minute_days * 1440);
    put_consumed(cloudwatch, table, None, metric, recent, end_epoch_s).await?;
    let first = end_epoch_s - 60 * minutes as i64;
    let hourly: Vec<(i64, f64)> = older
        .chunks(60)
        .enumerate()
        .map(|(h, m)| (first + 3600 * h as i64 + 1800, m.iter().sum::<f64>()))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    put_series(
        cloudwatch,
        "AWS/DynamoDB",
        metric,
        &[("TableName", table)],
        &hourly,
    )
    .await
}

/// Per-minute units of a mostly idle table with a few short bursts.
pub fn bursty(minutes: usize, burst_per_s: f64, seed: &str) -> Vec<f64> {
    let mut noise = Noise::new(seed);
    let mut out: Vec<f64> = (0..minutes)
        .map(|_| {
            if noise.unit() < 0.2 {
                60.0 * noise.unit()
            } else {
                0.0
            }
        })
        .collect();
    for k in 0..(minutes / 480).max(1) {
        let at = k * 480 + (noise.unit() * 400.0) as usize;
        for v in out.iter_mut().skip(at).take(4) {
            *v = 60.0 * burst_per_s;
        }
    }
    out
}

/// Publishes `function`'s `$LATEST` as a version and points a new `alias` at it.
pub async fn publish_alias(
    sdk: &aws_config::SdkConfig,
    function: &str,
    alias: &str,
) -> anyhow::Result<()> {
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let version = lambda
        .publish_version()
        .function_name(function)
        .send()
        .await?;
    lambda
        .create_alias()
        .function_name(function)
        .name(alias)
        .function_version(version.version().unwrap_or("1"))
        .send()
        .await?;
    Ok(())
}

/// A REST API `name` with one stage (a deployment needs a method: `GET /` on a mock
/// integration), its `*/*` throttle rate limit set where given. Returns the API id.
pub async fn create_rest_stage(
    sdk: &aws_config::SdkConfig,
    (name, stage): (&str, &str),
    rate_limit: Option<f64>,
) -> anyhow::Result<String> {
    use aws_sdk_apigateway::types::{IntegrationType, Op, PatchOperation};
    let rest = aws_sdk_apigateway::Client::new(sdk);
    let api = rest.create_rest_api().name(name).send().await?;
    let id = api.id().unwrap_or_default().to_owned();
    let resources = rest.get_resources().rest_api_id(&id).send().await?;
    let root = resources
        .items()
        .iter()
        .find(|r| r.path() == Some("/"))
        .and_then(|r| r.id())
        .context("no root resource")?
        .to_owned();
    rest.put_method()
        .rest_api_id(&id)
        .resource_id(&root)
        .http_method("GET")
        .authorization_type("NONE")
        .send()
        .await?;
    rest.put_integration()
        .rest_api_id(&id)
        .resource_id(&root)
        .http_method("GET")
        .r#type(IntegrationType::Mock)
        .send()
        .await?;
    let deployment = rest.create_deployment().rest_api_id(&id).send().await?;
    rest.create_stage()
        .rest_api_id(&id)
        .stage_name(stage)
        .deployment_id(deployment.id().unwrap_or_default())
        .send()
        .await?;
    if let Some(limit) = rate_limit {
        rest.update_stage()
            .rest_api_id(&id)
            .stage_name(stage)
            .patch_operations(
                PatchOperation::builder()
                    .op(Op::Replace)
                    .path("/*/*/throttling/rateLimit")
                    .value(limit.to_string())
                    .build(),
            )
            .send()
            .await?;
    }
    Ok(id)
}

/// Hourly values over the `days` whole days of hours before `end_epoch_s`'s hour, stamped
/// mid-hour: `quiet` at night and at weekends, `busy` from 09:00 to 17:00 UTC on weekdays,
/// growing by `growth` a day, each within 5% either way (an office's traffic: concurrency
/// peaks, request rates).
pub fn office_hourly(
    end_epoch_s: i64,
    days: i64,
    (quiet, busy, growth): (f64, f64, f64),
) -> Vec<(i64, f64)> {
    let end = end_epoch_s - end_epoch_s.rem_euclid(3600);
    let first = end - days * 86_400;
    let mut noise = Noise::new("office-hourly");
    (0..days * 24)
        .map(|h| {
            let t = first + 3600 * h;
            // 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays.
            let weekday = (t.div_euclid(86_400) + 3).rem_euclid(7) < 5;
            let busy_hour = weekday && (9..17).contains(&(t.rem_euclid(86_400) / 3600));
            let level = if busy_hour {
                busy + growth * (h / 24) as f64
            } else {
                quiet
            };
            (t + 1800, level * noise.between(0.95, 1.05))
        })
        .collect()
}

/// Writes `(epoch s, value)` datapoints of one metric (as sums of one sample each).
pub async fn put_series(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    metric: &str,
    dimensions: &[(&str, &str)],
    points: &[(i64, f64)],
) -> anyhow::Result<()> {
    let dims: Vec<Dimension> = dimensions
        .iter()
        .map(|(k, v)| Dimension::builder().name(*k).value(*v).build())
        .collect();
    let data: Vec<MetricDatum> = points
        .iter()
        .map(|(t, v)| {
            MetricDatum::builder()
                .metric_name(metric)
                .set_dimensions(Some(dims.clone()))
                .timestamp(DateTime::from_secs(*t))
                .statistic_values(
                    StatisticSet::builder()
                        .sample_count(1.0)
                        .sum(*v)
                        .minimum(*v)
                        .maximum(*v)
                        .build(),
                )
                .build()
        })
        .collect();
    for chunk in data.chunks(1000) {
        cloudwatch
            .put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .with_context(|| format!("putting {namespace}/{metric}"))?;
    }
    Ok(())
}
