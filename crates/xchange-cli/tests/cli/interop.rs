//! AIXP/1 from another language: `interop/python/run.sh` checks the committed signed
//! vectors with an independent Python implementation, then runs a Python agent (official
//! NATS client, a key made at run time) through a whole contract with `xchange serve` on
//! the NATS bus: bid (a tampered one refused first), award, result, completed job.

const NATS_VAR: &str = "XCHANGE_TEST_NATS";

#[test]
fn a_python_agent_speaks_aixp_over_nats() {
    let Ok(nats) = std::env::var(NATS_VAR) else {
        eprintln!("skipping: {NATS_VAR} is not set (e.g. nats://127.0.0.1:4222); CI sets it");
        return;
    };
    let stdout = crate::procs::run_script("interop/python/run.sh", &[], &[(NATS_VAR, &nats)]);
    assert!(stdout.lines().any(|l| l == "PASS"), "the live part did not run:\n{stdout}");
}
