//! The AWS fidelity layer as a process, for the demo: `aws-fidelity <moto endpoint>` prints the
//! endpoint to use instead of moto's and serves until killed (loopback only).

use anyhow::{Context, bail};
use trimtab_tests::fidelity::Fidelity;
use trimtab_tests::moto::is_loopback;

fn main() -> anyhow::Result<()> {
    let upstream = std::env::args()
        .nth(1)
        .context("usage: aws-fidelity <moto endpoint>")?;
    if !is_loopback(&upstream) {
        bail!("refusing {upstream}: the fidelity layer fronts a local emulator only");
    }
    let layer = Fidelity::start(&upstream)?;
    println!("{}", layer.endpoint());
    loop {
        std::thread::park();
    }
}
