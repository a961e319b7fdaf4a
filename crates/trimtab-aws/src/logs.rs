//! Peak memory from the REPORT lines Lambda writes after every invocation, for functions without
//! Lambda Insights. `FilterLogEvents` with a `REPORT` pattern reads only matching events; the scan
//! is bounded by a page budget per function so a chatty log group cannot run up the bill.

use crate::{AwsError, Clients};

/// What the REPORT lines of one function said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportEvidence {
    pub reports: u64,
    pub max_memory_used_mb: Option<f64>,
    pub cold_starts: u64,
    pub init_duration_avg_ms: Option<f64>,
    /// True when the page budget ran out before the window did.
    pub truncated: bool,
}

/// One parsed REPORT line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportLine {
    pub duration_ms: f64,
    pub memory_size_mb: f64,
    pub max_memory_used_mb: f64,
    pub init_duration_ms: Option<f64>,
}

/// Parses `REPORT RequestId: ...\tDuration: 102.25 ms\tBilled Duration: 103 ms\tMemory Size:
/// 1024 MB\tMax Memory Used: 80 MB\t[Init Duration: 200.1 ms\t]`. `None` for any other line.
pub fn parse_report_line(line: &str) -> Option<ReportLine> {
    if !line.trim_start().starts_with("REPORT ") {
        return None;
    }
    let field = |name: &str| -> Option<f64> {
        line.split('\t').find_map(|part| {
            let value = part.trim().strip_prefix(name)?.trim();
            value.split_whitespace().next()?.parse().ok()
        })
    };
    Some(ReportLine {
        duration_ms: field("Duration:")?,
        memory_size_mb: field("Memory Size:")?,
        max_memory_used_mb: field("Max Memory Used:")?,
        init_duration_ms: field("Init Duration:"),
    })
}

/// Scans `/aws/lambda/<function>` for REPORT lines between the two epoch-millisecond instants,
/// reading at most `max_pages` pages. A missing log group is no evidence, not an error.
pub async fn report_evidence(
    clients: &Clients,
    function_name: &str,
    start_epoch_ms: i64,
    end_epoch_ms: i64,
    max_pages: u32,
) -> Result<ReportEvidence, AwsError> {
    let group = format!("/aws/lambda/{function_name}");
    let mut ev = ReportEvidence::default();
    let (mut init_sum, mut pages) = (0.0, 0);
    // The SDK's paginator asks for a page only when the next one is read, so the budget below
    // bounds the requests.
    let mut stream = clients
        .logs
        .filter_log_events()
        .log_group_name(&group)
        .filter_pattern("\"REPORT RequestId\"")
        .start_time(start_epoch_ms)
        .end_time(end_epoch_ms)
        .into_paginator()
        .send();
    loop {
        if pages == max_pages {
            ev.truncated = true;
            break;
        }
        pages += 1;
        let page = match stream.try_next().await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                let missing = e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception());
                if missing {
                    return Ok(ev);
                }
                return Err(AwsError::new("logs:FilterLogEvents", group, e));
            }
        };
        for line in page
            .events()
            .iter()
            .filter_map(|e| e.message())
            .filter_map(parse_report_line)
        {
            ev.reports += 1;
            ev.max_memory_used_mb = Some(
                ev.max_memory_used_mb
                    .unwrap_or(0.0)
                    .max(line.max_memory_used_mb),
            );
            if let Some(init) = line.init_duration_ms {
                ev.cold_starts += 1;
                init_sum += init;
            }
        }
        // The last page: the paginator stops here too (no token, or an empty one).
        if page.next_token().is_none_or(str::is_empty) {
            break;
        }
    }
    if ev.cold_starts > 0 {
        ev.init_duration_avg_ms = Some(init_sum / ev.cold_starts as f64);
    }
    Ok(ev)
}

/// The memory size the function ran at just before `at_epoch_ms`: the most common `Memory Size`
/// of the REPORT lines in one page of `FilterLogEvents` over the day before (every version writes
/// to the same log group, so a weighted alias's other version shows there too; events come
/// oldest first, so a busy function's page ends early in that day and a second change within the
/// day would be missed). `None` when no line was written that day.
pub async fn memory_before(
    clients: &Clients,
    function_name: &str,
    at_epoch_ms: i64,
) -> Result<Option<u32>, AwsError> {
    let group = format!("/aws/lambda/{function_name}");
    let page = clients
        .logs
        .filter_log_events()
        .log_group_name(&group)
        .filter_pattern("\"REPORT RequestId\"")
        .start_time(at_epoch_ms - 86_400_000)
        .end_time(at_epoch_ms - 1)
        .send()
        .await;
    let page = match page {
        Ok(p) => p,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(AwsError::new("logs:FilterLogEvents", group, e)),
    };
    let mut sizes: std::collections::BTreeMap<u32, usize> = Default::default();
    for line in page
        .events()
        .iter()
        .filter(|e| e.timestamp().is_some_and(|t| t < at_epoch_ms))
        .filter_map(|e| e.message())
        .filter_map(parse_report_line)
    {
        *sizes.entry(line.memory_size_mb as u32).or_default() += 1;
    }
    Ok(sizes
        .into_iter()
        .max_by_key(|&(size, n)| (n, size))
        .map(|(size, _)| size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_warm_and_a_cold_report_line() {
        let warm = "REPORT RequestId: 3f1a\tDuration: 102.25 ms\tBilled Duration: 103 ms\tMemory Size: 1024 MB\tMax Memory Used: 80 MB\t";
        let r = parse_report_line(warm).expect("parses");
        assert_eq!(r.duration_ms, 102.25);
        assert_eq!(r.memory_size_mb, 1024.0);
        assert_eq!(r.max_memory_used_mb, 80.0);
        assert_eq!(r.init_duration_ms, None);
        let cold = format!("{warm}Init Duration: 231.40 ms\t");
        assert_eq!(
            parse_report_line(&cold).and_then(|r| r.init_duration_ms),
            Some(231.4)
        );
        assert_eq!(
            parse_report_line("START RequestId: 3f1a Version: $LATEST"),
            None
        );
    }
}
