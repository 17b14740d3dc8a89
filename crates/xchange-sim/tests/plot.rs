//! Tests of the chart writers (feature `plots`): both charts come out as a real SVG and a
//! real PNG carrying every policy's name, and empty or undrawable input is an error.
#![cfg(feature = "plots")]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use xchange_sim::SimError;
use xchange_sim::plot::{Balance, LoadCurve, completion_vs_load, load_balance};

const PNG_SIGNATURE: [u8; 4] = [0x89, b'P', b'N', b'G'];

/// A fresh folder under the system's temporary one, removed when dropped so that a failed
/// assertion does not leave it behind.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        // Tests of one binary run in parallel threads of one process: the counter keeps
        // their folders apart, the process id keeps concurrent runs apart.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xchange-sim-plot-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the test folder");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn curves() -> Vec<LoadCurve> {
    vec![
        LoadCurve {
            policy: "hungarian".into(),
            points: vec![(0.5, 1.2), (0.7, 1.6), (0.9, 3.1), (0.95, 5.0)],
        },
        // Out of order on purpose: the chart joins points in order of load.
        LoadCurve { policy: "greedy".into(), points: vec![(0.9, 3.8), (0.5, 1.3), (0.95, 6.4), (0.7, 1.9)] },
        LoadCurve {
            policy: "cnp-iterated".into(),
            points: vec![(0.5, 1.4), (0.7, 2.0), (0.9, 4.4), (0.95, 7.9)],
        },
    ]
}

fn balance_rows() -> Vec<Balance> {
    vec![
        Balance { policy: "hungarian".into(), jain: 0.97, cov: 0.17 },
        Balance { policy: "greedy".into(), jain: 0.88, cov: 0.37 },
        Balance { policy: "random".into(), jain: 0.61, cov: 0.80 },
    ]
}

/// The contents of the SVG's `<text>` elements, trimmed: the names must be drawn as
/// text, not merely appear somewhere in the markup.
fn svg_texts(svg: &str) -> Vec<&str> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim())
        })
        .collect()
}

/// Checks the two files written for `stem`, and that they are exactly what was returned.
fn check_outputs(written: &[PathBuf], stem: &Path, names: &[&str]) {
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    assert_eq!(written, [svg.clone(), png.clone()]);

    let text = std::fs::read_to_string(&svg).expect("read the SVG");
    assert!(text.contains("<svg"), "not an SVG: {}", &text[..text.len().min(200)]);
    let texts = svg_texts(&text);
    for name in names {
        assert!(texts.contains(name), "{} lacks the text {name:?}; it has {texts:?}", svg.display());
    }

    let bytes = std::fs::read(&png).expect("read the PNG");
    assert_eq!(bytes[..4], PNG_SIGNATURE, "{} is not a PNG", png.display());
    assert!(bytes.len() > 8 * 1024, "{} is only {} bytes", png.display(), bytes.len());
}

#[test]
fn completion_chart_writes_svg_and_png() {
    let dir = TempDir::new("completion");
    let stem = dir.0.join("completion");
    let written = completion_vs_load("Mean completion time against load", &curves(), &stem).expect("draw");
    check_outputs(
        &written,
        &stem,
        &["hungarian", "greedy", "cnp-iterated", "offered load", "mean completion time (s)"],
    );
}

#[test]
fn balance_chart_writes_svg_and_png() {
    let dir = TempDir::new("balance");
    let stem = dir.0.join("balance");
    let written = load_balance("Load balance by policy", &balance_rows(), &stem).expect("draw");
    check_outputs(&written, &stem, &["hungarian", "greedy", "random"]);
}

#[test]
fn missing_parent_folders_are_created() {
    let dir = TempDir::new("nested");
    let stem = dir.0.join("a").join("b").join("balance");
    load_balance("nested", &balance_rows(), &stem).expect("draw");
    assert!(stem.with_extension("svg").is_file() && stem.with_extension("png").is_file());
}

#[test]
fn empty_input_is_an_error() {
    let dir = TempDir::new("empty");
    let stem = dir.0.join("empty");
    let err = completion_vs_load("t", &[], &stem).expect_err("no curves");
    assert!(matches!(err, SimError::Plot { .. }), "{err}");
    assert!(err.to_string().contains("no curves"), "{err}");

    let no_points = [LoadCurve { policy: "greedy".into(), points: vec![] }];
    let err = completion_vs_load("t", &no_points, &stem).expect_err("no points");
    assert!(err.to_string().contains("greedy") && err.to_string().contains("no points"), "{err}");

    let err = load_balance("t", &[], &stem).expect_err("no rows");
    assert!(matches!(err, SimError::Plot { .. }), "{err}");
    assert!(err.to_string().contains("no policies"), "{err}");

    // Nothing is written when the input is rejected.
    assert!(!stem.with_extension("svg").exists() && !stem.with_extension("png").exists());
}

#[test]
fn undrawable_values_are_errors() {
    let dir = TempDir::new("bad");
    let stem = dir.0.join("bad");
    let nan = [LoadCurve { policy: "random".into(), points: vec![(0.5, f64::NAN)] }];
    assert!(matches!(completion_vs_load("t", &nan, &stem), Err(SimError::Plot { .. })));
    let over = [Balance { policy: "random".into(), jain: 1.5, cov: 0.1 }];
    assert!(matches!(load_balance("t", &over, &stem), Err(SimError::Plot { .. })));
    let negative = [Balance { policy: "random".into(), jain: 0.5, cov: -0.1 }];
    assert!(matches!(load_balance("t", &negative, &stem), Err(SimError::Plot { .. })));
}

/// A single load, and long names on many bars, still draw: the x range gets a margin of
/// its own and names shrink or shorten to fit under their bars.
#[test]
fn degenerate_but_valid_input_draws() {
    let dir = TempDir::new("edge");
    let one = [LoadCurve { policy: "jsq".into(), points: vec![(0.8, 0.0)] }];
    completion_vs_load("one point", &one, &dir.0.join("one")).expect("draw one point");

    let many: Vec<Balance> = (0..12)
        .map(|i| Balance { policy: format!("power-of-two-choices-variant-{i}"), jain: 0.9, cov: 0.3 })
        .collect();
    load_balance("many", &many, &dir.0.join("many")).expect("draw many bars");
}
