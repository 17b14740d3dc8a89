//! `xchange agent run` as a child process, killed when dropped.

use std::process::{Child, Command, Stdio};

pub(crate) struct Agent {
    child: Child,
}

impl Agent {
    pub(crate) fn start(base: &str, capability: &str, exec: &str) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_xchange"))
            .args(["agent", "run", "--server", base, "--capability", capability, "--exec", exec])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xchange agent run starts");
        Self { child }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
