//! A crash at each step of the apply protocol: `trimtab invoke` with a failpoint that aborts the
//! process there (as a Lambda killed mid-run would stop), then the next run. Whatever step the
//! crash came at, the next run settles every record from what the function shows.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, SystemTime};

use trimtab_aws::Clients;
use trimtab_aws::decisions::DecisionTable;
use trimtab_core::records::{DecisionRecord, RecordState};
use trimtab_lambda::{Invocation, Mode};
use trimtab_tests::fleet;
use trimtab_tests::moto::Moto;
use trimtab_tests::seed::{Layout, Seeder, create_decision_table, put_traffic};

const TABLE: &str = "trimtab-decisions-crash";
const FUNCTION: &str = "orders-api";

use RecordState::{Applied, NotApplied, Pending, RolledBack, Verified};

/// One row of the table: where the process dies, what it leaves, what the next run makes of it.
struct Case {
    point: &'static str,
    /// A change applied and regressed before the crashing run (the crash is in its rollback).
    regressed_first: bool,
    /// Records newest first, and memory, right after the crash.
    after_crash: (&'static [RecordState], i32),
    /// The same after the next run.
    after_next: (&'static [RecordState], i32),
}

const CASES: [Case; 6] = [
    Case {
        point: "rightsizing.after_lease",
        regressed_first: false,
        after_crash: (&[], 1536),
        after_next: (&[Applied], 768),
    },
    Case {
        point: "rightsizing.after_record",
        regressed_first: false,
        after_crash: (&[Pending], 1536),
        after_next: (&[NotApplied], 1536),
    },
    Case {
        point: "rightsizing.after_update",
        regressed_first: false,
        after_crash: (&[Pending], 768),
        after_next: (&[Applied], 768),
    },
    Case {
        point: "rightsizing.before_mark",
        regressed_first: false,
        after_crash: (&[Pending], 768),
        after_next: (&[Applied], 768),
    },
    Case {
        point: "rightsizing.rollback.after_record",
        regressed_first: true,
        after_crash: (&[Pending, Applied], 768),
        // The unmade rollback is settled, then the still-regressed change rolled back anew.
        after_next: (&[Verified, NotApplied, RolledBack], 1536),
    },
    Case {
        point: "rightsizing.rollback.after_update",
        regressed_first: true,
        after_crash: (&[Pending, Applied], 1536),
        after_next: (&[Verified, RolledBack], 1536),
    },
];

async fn records(sdk: &aws_config::SdkConfig) -> Vec<DecisionRecord> {
    DecisionTable::new(TABLE)
        .history(&Clients::new(sdk), FUNCTION)
        .await
        .expect("history")
}

async fn memory(sdk: &aws_config::SdkConfig) -> i32 {
    aws_sdk_lambda::Client::new(sdk)
        .get_function_configuration()
        .function_name(FUNCTION)
        .send()
        .await
        .expect("config")
        .memory_size()
        .unwrap_or_default()
}

async fn apply_in_process(sdk: &aws_config::SdkConfig, at: SystemTime) {
    let plan = rightsizing::Request {
        mode: Some(Mode::Apply),
        ..Default::default()
    }
    .plan(Mode::Apply)
    .expect("plan");
    let config = rightsizing::JobConfig::with_table(Some(TABLE.into()));
    rightsizing::run(
        &Clients::new(sdk),
        &config,
        &Invocation::default(),
        &plan,
        at,
    )
    .await
    .expect("run");
}

fn states(records: &[DecisionRecord]) -> Vec<RecordState> {
    records.iter().map(|r| r.state).collect()
}

async fn check(case: &Case) {
    let moto = Moto::start().expect("moto");
    let sdk = moto.sdk_config().await;
    create_decision_table(&sdk, TABLE).await.expect("table");
    let seeder = Seeder::new(&sdk).await.expect("seeder");
    let w = fleet::io_bound_over_provisioned(FUNCTION);
    let now = SystemTime::now();
    seeder
        .seed(&w, Layout::fourteen_days(now))
        .await
        .expect("seed");
    if case.regressed_first {
        // Applied three hours ago; failing since.
        apply_in_process(&sdk, now - Duration::from_secs(3 * 3600)).await;
        let applied = records(&sdk).await[0]
            .applied_at_epoch_s
            .unwrap_or_default();
        put_traffic(&seeder.cloudwatch, &w, 768, applied + 1800, 20_000.0, 900.0)
            .await
            .expect("traffic");
    }

    let event = std::env::temp_dir().join(format!("trimtab-crash-{}.json", std::process::id()));
    std::fs::write(&event, r#"{"mode": "apply"}"#).expect("event");
    let out = Command::new(env!("CARGO_BIN_EXE_trimtab"))
        .args(["invoke", "RightSizingFunction", "--event"])
        .arg(&event)
        .envs(moto.env())
        .env("TRIMTAB_TABLE", TABLE)
        .env("TRIMTAB_FAILPOINT", case.point)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running trimtab");
    assert_eq!(
        out.status.signal(),
        Some(6),
        "{}: expected the process to abort at the failpoint; {:?}\n{}",
        case.point,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let after = records(&sdk).await;
    assert_eq!(
        (states(&after).as_slice(), memory(&sdk).await),
        case.after_crash,
        "{}: right after the crash",
        case.point
    );

    // The next run comes once the crashed run's lease has lapsed.
    apply_in_process(&sdk, now + Duration::from_secs(400)).await;
    let after = records(&sdk).await;
    assert_eq!(
        (states(&after).as_slice(), memory(&sdk).await),
        case.after_next,
        "{}: after the next run: {after:#?}",
        case.point
    );
    assert!(
        after.iter().all(|r| r.state != Pending),
        "{}: a record left pending",
        case.point
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_each_step_is_settled_by_the_next_run() {
    for case in &CASES {
        check(case).await;
    }
}
