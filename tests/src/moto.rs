//! A moto server per test, on a free loopback port, from the project's virtualenv.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::fidelity::Fidelity;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

static INSTALL: Mutex<bool> = Mutex::new(false);

/// Makes sure `.venv` holds moto and cfn-lint, installing them (once per process) if missing.
pub fn ensure_venv() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let mut done = INSTALL
        .lock()
        .map_err(|_| anyhow::anyhow!("install lock poisoned"))?;
    if !*done {
        let status = Command::new(root.join("scripts/emulator.sh"))
            .arg("install")
            .status()
            .context("running scripts/emulator.sh install")?;
        if !status.success() {
            bail!("scripts/emulator.sh install failed: {status}");
        }
        *done = true;
    }
    Ok(root.join(".venv/bin"))
}

/// A running moto server behind the AWS fidelity layer; both stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    /// Makes moto answer as AWS documents (see [`crate::fidelity`]); tests arm faults here.
    pub fidelity: Fidelity,
    child: Child,
    dir: PathBuf,
    /// Where clients connect: the fidelity layer.
    pub endpoint: String,
    /// moto itself, for the rare check that must bypass the layer.
    pub upstream: String,
}

impl Moto {
    /// Starts a fresh, empty moto server on a free loopback port, and the fidelity layer in
    /// front of it, and waits until moto answers.
    pub fn start() -> anyhow::Result<Self> {
        let bin = ensure_venv()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // Its own working directory, so moto's recorder file never lands in the checkout.
        let dir = std::env::temp_dir().join(format!("trimtab-moto-{port}"));
        std::fs::create_dir_all(&dir)?;
        let child = Command::new(bin.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting moto_server")?;
        let upstream = format!("http://127.0.0.1:{port}");
        let fidelity = Fidelity::start(&upstream)?;
        let moto = Self {
            endpoint: fidelity.endpoint(),
            fidelity,
            child,
            dir,
            upstream,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                bail!("moto_server did not listen on {addr} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(moto)
    }

    /// SDK configuration for this server: us-east-1, dummy static credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint).await
    }

    /// Environment for a child process that reads the standard chain (`trimtab invoke`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// POSTs to one of moto's own control endpoints (`/moto-api/...`).
    pub fn control(&self, path: &str, body: &str) -> anyhow::Result<String> {
        http(&self.endpoint, "POST", path, body)
    }

    /// GETs one of moto's own control endpoints.
    pub fn read(&self, path: &str) -> anyhow::Result<String> {
        http(&self.endpoint, "GET", path, "")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SDK configuration for an emulator at `endpoint`. Refuses anything but loopback, so test and
/// demo code can never write to a real account.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    assert!(
        is_loopback(endpoint),
        "refusing a non-loopback endpoint: {endpoint}"
    );
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "trimtab-tests",
        ))
        .load()
        .await
}

/// True for `http://127.x.x.x:...`, `http://localhost:...` and `http://[::1]:...`.
pub fn is_loopback(endpoint: &str) -> bool {
    let host = endpoint
        .strip_prefix("http://")
        .unwrap_or_default()
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    host.starts_with("127.") || host == "localhost" || endpoint.starts_with("http://[::1]")
}

/// POSTs to a control endpoint of the moto server at `endpoint` (loopback only).
pub fn post(endpoint: &str, path: &str, body: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        is_loopback(endpoint),
        "refusing a non-loopback endpoint: {endpoint}"
    );
    http(endpoint, "POST", path, body)
}

/// A minimal HTTP/1.1 exchange with moto's control plane (no client library needed for it).
fn http(endpoint: &str, method: &str, path: &str, body: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).with_context(|| format!("connecting to {host}"))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, rest) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 2") && !head.starts_with("HTTP/1.0 2") {
        bail!(
            "{method} {path}: {}",
            head.lines().next().unwrap_or_default()
        );
    }
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok(if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_endpoints_pass() {
        assert!(is_loopback("http://127.0.0.1:5000"));
        assert!(is_loopback("http://localhost:5000"));
        assert!(!is_loopback("https://lambda.us-east-1.amazonaws.com"));
        assert!(!is_loopback("http://10.0.0.5:5000"));
    }
}
