#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn renders_the_text_format() {
    let r = Registry::new();
    let c = r.counter("dfs_test_requests_total", "Requests.\nTwo lines.", &["op"]);
    let g = r.gauge("dfs_test_used_bytes", "Bytes used.", &[]);
    let h = r.histogram("dfs_test_duration_seconds", "Latency.", &["op"]);
    c.inc(&["get"]);
    c.add(&["put"], 3);
    c.inc(&["get"]);
    c.inc(&["we\"ird\\"]);
    g.set(&[], -5);
    h.observe(&["get"], Duration::from_micros(300));
    h.observe(&["get"], Duration::from_secs(20));
    let text = r.render();
    let expect_start = "\
# HELP dfs_test_requests_total Requests.\\nTwo lines.
# TYPE dfs_test_requests_total counter
dfs_test_requests_total{op=\"get\"} 2
dfs_test_requests_total{op=\"put\"} 3
dfs_test_requests_total{op=\"we\\\"ird\\\\\"} 1
# HELP dfs_test_used_bytes Bytes used.
# TYPE dfs_test_used_bytes gauge
dfs_test_used_bytes -5
# HELP dfs_test_duration_seconds Latency.
# TYPE dfs_test_duration_seconds histogram
dfs_test_duration_seconds_bucket{op=\"get\",le=\"0.0001\"} 0
dfs_test_duration_seconds_bucket{op=\"get\",le=\"0.00025\"} 0
dfs_test_duration_seconds_bucket{op=\"get\",le=\"0.0005\"} 1
";
    assert!(text.starts_with(expect_start), "{text}");
    assert!(
        text.contains("dfs_test_duration_seconds_bucket{op=\"get\",le=\"10\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("dfs_test_duration_seconds_bucket{op=\"get\",le=\"+Inf\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("dfs_test_duration_seconds_sum{op=\"get\"} 20.0003\n"),
        "{text}"
    );
    assert!(
        text.ends_with("dfs_test_duration_seconds_count{op=\"get\"} 2\n"),
        "{text}"
    );
}

#[test]
fn an_observation_on_a_bound_counts_in_that_bucket() {
    // Prometheus buckets are "less than or equal": 1 ms belongs in le="0.001".
    let r = Registry::new();
    let h = r.histogram("h_seconds", "h", &[]);
    h.observe(&[], Duration::from_millis(1));
    let text = r.render();
    assert!(
        text.contains("h_seconds_bucket{le=\"0.0005\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("h_seconds_bucket{le=\"0.001\"} 1\n"),
        "{text}"
    );
}

#[test]
fn unlabelled_metrics_show_zero_before_first_use() {
    let r = Registry::new();
    r.counter("a_total", "a", &[]);
    r.gauge("b", "b", &[]);
    r.counter("c_total", "c", &["op"]);
    let text = r.render();
    assert!(text.contains("\na_total 0\n"), "{text}");
    assert!(text.contains("\nb 0\n"), "{text}");
    assert!(!text.contains("c_total{"), "{text}");
}

#[test]
fn counters_set_from_elsewhere() {
    let r = Registry::new();
    let c = r.counter("x_total", "x", &[]);
    c.set(&[], 7);
    assert!(r.render().ends_with("x_total 7\n"));
}
