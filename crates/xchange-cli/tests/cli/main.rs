//! The `xchange` binary end to end: commands run as a user would run them.

use std::process::Command;

mod bus;
mod contractors;
mod deployment;
mod interop;
mod kill;
mod nats_access;
mod pg;
mod procs;
mod replicas;
mod restart;
mod schemathesis;
mod serve;

fn xchange(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_xchange")).args(args).output().expect("xchange runs");
    assert!(out.status.success(), "xchange {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    serde_json::from_str(stdout.lines().last().expect("a last line")).expect("the last line is JSON")
}

#[test]
fn the_simulator_and_the_runtime_bench_count_the_same_messages_per_task() {
    // Zero-length tasks on a fault-free run: only the protocol is left to count.
    let dir = std::env::temp_dir().join(format!("xchange-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let workload = dir.join("zero.toml");
    let file =
        "preset = \"online\"\nagents = 100\ntasks = 2000\nsizes = { kind = \"exponential\", mean = 0.0 }\n";
    std::fs::write(&workload, file).expect("written");
    let sim = xchange(&["sim", "--workload", workload.to_str().expect("utf-8 path"), "--json"]);
    std::fs::remove_dir_all(&dir).ok();
    let bench = xchange(&[
        "bench",
        "inproc",
        "--agents",
        "100",
        "--tasks",
        "2000",
        "--announce",
        "sample:2",
        "--json",
    ]);
    let sampled_2 = sim["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["policy"] == "cnp-oneshot-sample:2")
        .expect("the policy ran")
        .clone();
    assert_eq!(sampled_2["completed"], 2000);
    assert_eq!(sampled_2["messages_per_task"], bench["messages_per_task"], "sim {sampled_2} bench {bench}");
    assert_eq!(bench["messages_per_task"], 8.0);
}

#[test]
fn bad_simulator_input_is_refused_with_a_reason() {
    for (args, expected) in [
        (vec!["sim", "--preset", "nonesuch"], "unknown preset"),
        (vec!["sim", "--preset", "online", "--load", "0"], "load must be"),
        (vec!["sim", "--preset", "batch", "--loss", "0.1"], "change online presets"),
        (vec!["sim", "--preset", "batch", "--policy", "best"], "unknown policy"),
        (vec!["sim", "--workload", "/nonexistent/w.toml"], "reading /nonexistent/w.toml"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_xchange")).args(&args).output().expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{args:?}: {stderr}");
    }
}
