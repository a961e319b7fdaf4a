//! The parts of the actuation protocol every job that changes the estate shares (right-sizing,
//! provisioned concurrency, DynamoDB autoscaling): who asked and by when the run must be done
//! ([`Invocation`]), the run's clock, the per-job lease with an owner, and the crash points the
//! tests arm. The judgement (is a change applied? may it be undone?) is in
//! `trimtab_core::actuation`; Application Auto Scaling writes, recorded first, are in
//! [`planned`]; a function's record-first steps are in right-sizing, on top of these.
//!
//! docs/actuation.md describes the whole protocol.

pub mod planned;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Mutex;
use trimtab_aws::decisions::{DecisionTable, LeaseHolder};
use trimtab_aws::{AwsError, Clients};

/// What an invocation brings besides its event: when it must be done, who asked, and the run id
/// an asynchronous start already gave it.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub deadline: Deadline,
    /// The schedule rule, the API caller's IAM identity, or the operator's.
    pub requested_by: Option<String>,
    /// Set when the API started the run and told the caller this id.
    pub run_id: Option<String>,
}

impl Invocation {
    /// An invocation with `budget` to run in (the CLI's stand-in for Lambda's deadline).
    pub fn with_budget(budget: Duration) -> Self {
        Self {
            deadline: Deadline::after(budget),
            ..Self::default()
        }
    }
}

/// When the invocation will be stopped: Lambda's deadline (`Lambda-Runtime-Deadline-Ms`), or a
/// budget under `trimtab invoke`. `None`: no limit (tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    pub fn none() -> Self {
        Self(None)
    }

    pub fn after(budget: Duration) -> Self {
        Self(Some(Instant::now() + budget))
    }

    /// From an epoch time in ms (Lambda's context deadline). A clock behind Lambda's only
    /// shortens it.
    pub fn at_epoch_ms(deadline_ms: u64) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(u64::MAX);
        Self::after(Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
    }

    /// Time left; `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether there is time for work that may take `needed`: a change is started only when it
    /// can finish (including the wait for AWS to apply it and writing its record) before the
    /// deadline.
    pub fn allows(&self, needed: Duration) -> bool {
        self.remaining().is_none_or(|left| left >= needed)
    }
}

/// The run's clock: the wall time the run started at (tests move it to stage later runs) plus
/// the time elapsed since.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    started_at: SystemTime,
    started: Instant,
}

impl Clock {
    pub fn starting_at(now: SystemTime) -> Self {
        Self {
            started_at: now,
            started: Instant::now(),
        }
    }

    pub fn now(&self) -> SystemTime {
        self.started_at + self.started.elapsed()
    }

    pub fn now_s(&self) -> i64 {
        epoch_s(self.now())
    }

    /// When the run started.
    pub fn started_s(&self) -> i64 {
        epoch_s(self.started_at)
    }
}

pub fn epoch_s(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// A run id: time-ordered and unique across processes and runs in one process.
pub fn new_run_id(now: SystemTime) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!(
        "{nanos:x}-{:04x}{:04x}",
        std::process::id() & 0xffff,
        n & 0xffff
    )
}

/// How long a lease lasts without renewal. Shorter than a Lambda timeout so that a crashed
/// run's lease lapses soon; a live run renews it before each change.
pub const LEASE_TTL: Duration = Duration::from_secs(300);

/// A job's lease, held by one invocation of a run. Renewed while the run works; released
/// explicitly, or, when the run ends without releasing (an error, a panic, a dropped future),
/// by a task the drop starts: best effort, since a Lambda sandbox may freeze or a process exit
/// first. Whatever is left expires after [`LEASE_TTL`].
#[derive(Debug)]
pub struct Lease {
    clients: Clients,
    table: DecisionTable,
    job: &'static str,
    owner: String,
    clock: Clock,
    expires_at_s: Mutex<i64>,
    released: bool,
}

/// Why a lease could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("another run holds the {job} lease: {holder} until {until}")]
    Held {
        job: &'static str,
        holder: String,
        until: i64,
    },
    #[error("the {0} lease was lost (it expired and another run took it)")]
    Lost(&'static str),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl Lease {
    /// Takes `job`'s lease for this invocation of run `run_id`. The owner is the run id and a
    /// value drawn once per invocation: the SDK's retries of the same write recognise it, while
    /// a second delivery of the same run (Lambda may deliver an asynchronous event twice) is
    /// another owner and waits its turn.
    pub async fn acquire(
        clients: &Clients,
        table: &DecisionTable,
        job: &'static str,
        run_id: &str,
        clock: Clock,
    ) -> Result<Self, LeaseError> {
        let owner = format!("{run_id}/{}", new_run_id(SystemTime::now()));
        let owner = owner.as_str();
        let now = clock.now_s();
        let until = now + LEASE_TTL.as_secs() as i64;
        match table.acquire_lease(clients, job, owner, now, until).await? {
            Ok(()) => Ok(Self {
                clients: clients.clone(),
                table: table.clone(),
                job,
                owner: owner.to_owned(),
                clock,
                expires_at_s: Mutex::new(until),
                released: false,
            }),
            Err(LeaseHolder {
                owner,
                expires_at_epoch_s,
            }) => Err(LeaseError::Held {
                job,
                holder: owner,
                until: expires_at_epoch_s,
            }),
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Makes sure the lease will outlast `needed` more work, renewing it when less than half
    /// its time is left. Call before each change: a run that lost its lease starts nothing.
    pub async fn keep(&self, needed: Duration) -> Result<(), LeaseError> {
        let mut expires = self.expires_at_s.lock().await;
        let now = self.clock.now_s();
        let half = LEASE_TTL.as_secs() as i64 / 2;
        if *expires - now > half.max(needed.as_secs() as i64) {
            return Ok(());
        }
        let until = now + LEASE_TTL.as_secs() as i64 + needed.as_secs() as i64;
        if self
            .table
            .renew_lease(&self.clients, self.job, &self.owner, until)
            .await?
        {
            *expires = until;
            Ok(())
        } else {
            Err(LeaseError::Lost(self.job))
        }
    }

    /// Gives the lease back.
    pub async fn release(mut self) -> Result<(), AwsError> {
        self.released = true;
        self.table
            .release_lease(&self.clients, self.job, &self.owner)
            .await
    }
}

impl Drop for Lease {
    /// A run that ends without releasing (an error, a panic, a dropped future) gives the lease
    /// back in the background; a crash leaves it to expire.
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (clients, table, job, owner) = (
            self.clients.clone(),
            self.table.clone(),
            self.job,
            self.owner.clone(),
        );
        tracing::warn!(
            job,
            owner,
            "run ended without releasing its lease; releasing it"
        );
        rt.spawn(async move {
            if let Err(e) = table.release_lease(&clients, job, &owner).await {
                tracing::warn!(error = %e, "lease not released; it expires by itself");
            }
        });
    }
}

/// A crash point: with the `failpoints` feature (test builds only) and `TRIMTAB_FAILPOINT`
/// naming this point, the process aborts here, as a Lambda killed mid-run would. Compiled to
/// nothing otherwise.
#[inline]
pub fn failpoint(name: &str) {
    #[cfg(feature = "failpoints")]
    if std::env::var("TRIMTAB_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_allows_work_only_if_it_fits() {
        let d = Deadline::after(Duration::from_secs(100));
        assert!(d.allows(Duration::from_secs(60)));
        assert!(!d.allows(Duration::from_secs(200)));
        assert!(Deadline::none().allows(Duration::from_secs(10_000)));
        let past = Deadline::at_epoch_ms(1_000);
        assert_eq!(past.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn run_ids_are_unique_even_at_the_same_instant() {
        let t = SystemTime::now();
        assert_ne!(new_run_id(t), new_run_id(t));
    }
}
