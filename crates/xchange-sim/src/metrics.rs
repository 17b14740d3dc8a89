//! Summary statistics shared by the reports: quantiles, fairness and spread of per-agent
//! work, and rounding for stable JSON.

/// The `q` quantile of sorted values (nearest rank); 0 when empty.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Rounds to `digits` decimals, so that reports compare equal across runs and machines.
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Jain's fairness index of per-agent work: 1 when every agent did the same, 1/n when one
/// agent did everything.
pub(crate) fn jain(work: &[f64]) -> f64 {
    let (sum, squares) = work.iter().fold((0.0, 0.0), |(s, q), w| (s + w, q + w * w));
    if squares == 0.0 { 1.0 } else { sum * sum / (work.len() as f64 * squares) }
}

/// Coefficient of variation (standard deviation over mean) of per-agent work.
pub(crate) fn coefficient_of_variation(work: &[f64]) -> f64 {
    let n = work.len().max(1) as f64;
    let mean = work.iter().sum::<f64>() / n;
    if mean == 0.0 {
        return 0.0;
    }
    let variance = work.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / n;
    variance.sqrt() / mean
}

/// A report as CSV: one line per entry of its `results`, each with the report's other
/// top-level settings (seed, preset, sizes...) repeated in front; `perf` is left out, so
/// the file is a pure function of seed and workload like the JSON outside `perf`.
pub(crate) fn report_csv<R: serde::Serialize>(report: &R) -> String {
    let value = serde_json::to_value(report).expect("reports serialize");
    let serde_json::Value::Object(fields) = value else { return String::new() };
    let rows = fields.get("results").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
    let context: Vec<(&str, serde_json::Value)> = fields
        .iter()
        .filter(|(k, v)| *k != "results" && *k != "perf" && !v.is_array() && !v.is_object())
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    csv(&rows, &context)
}

/// Rows of serialisable records as CSV: a header of the records' field names, then one line
/// per record. Nested objects are flattened with dotted names; `null` is an empty cell.
/// Values never contain commas or quotes here (names, numbers, booleans), but strings are
/// quoted anyway so that the output stays valid if one ever does.
pub(crate) fn csv<T: serde::Serialize>(rows: &[T], context: &[(&str, serde_json::Value)]) -> String {
    let flat: Vec<Vec<(String, String)>> = rows
        .iter()
        .map(|r| {
            let mut cells: Vec<(String, String)> =
                context.iter().map(|(k, v)| ((*k).to_owned(), cell(v))).collect();
            flatten("", &serde_json::to_value(r).expect("records serialize"), &mut cells);
            cells
        })
        .collect();
    // Columns in order of first appearance; a field that is null in one row and an object
    // in another keeps only the object's columns.
    let mut columns: Vec<&str> = Vec::new();
    for (k, _) in flat.iter().flatten() {
        if !columns.contains(&k.as_str()) {
            columns.push(k);
        }
    }
    let nested = |c: &str| {
        columns.iter().any(|o| o.len() > c.len() && o.starts_with(c) && o[c.len()..].starts_with('.'))
    };
    let columns: Vec<&str> = columns.iter().copied().filter(|c| !nested(c)).collect();
    let mut out = columns.join(",");
    out.push('\n');
    for row in &flat {
        let line: Vec<&str> = columns
            .iter()
            .map(|c| row.iter().find(|(k, _)| k == c).map_or("", |(_, v)| v.as_str()))
            .collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&name, v, out);
            }
        }
        other => out.push((prefix.to_owned(), cell(other))),
    }
}

fn cell(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => format!("\"{}\"", s.replace('"', "\"\"")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fairness_and_spread_of_known_distributions() {
        assert_eq!(jain(&[2.0, 2.0, 2.0, 2.0]), 1.0);
        assert_eq!(jain(&[4.0, 0.0, 0.0, 0.0]), 0.25);
        assert_eq!(coefficient_of_variation(&[3.0, 3.0]), 0.0);
        assert_eq!(coefficient_of_variation(&[0.0, 2.0]), 1.0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert_eq!(quantile(&[], 0.99), 0.0);
    }

    #[test]
    fn csv_flattens_nested_fields_and_aligns_rows_where_one_is_null() {
        let rows = vec![
            serde_json::json!({ "policy": "a", "crashes": null, "n": 1 }),
            serde_json::json!({ "policy": "b", "crashes": { "p50": 0.5, "p99": 2 }, "n": 2 }),
        ];
        let out = csv(&rows, &[("seed", serde_json::json!(7))]);
        assert_eq!(out, "seed,n,policy,crashes.p50,crashes.p99\n7,1,\"a\",,\n7,2,\"b\",0.5,2\n");
    }
}
