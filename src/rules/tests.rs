//! Rule-file loading: every kind of mistake is reported with file, line and column.

use super::*;

fn errors(text: &str) -> Vec<String> {
    match RuleSet::parse_text(Path::new("r.toml"), text) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn a_valid_file_loads() {
    let set = RuleSet::parse_text(
        Path::new("r.toml"),
        r#"
[[counter]]
id = "resets"
filter = "tcp.flags.reset == 1"
group_by = ["ip.src"]

[[alert]]
id = "many-resets"
counter = "resets"
above = 100
window = "10m"
"#,
    )
    .unwrap();
    assert_eq!(set.counters.len(), 1);
    assert_eq!(set.counters[0].value, ValueKind::Packets);
    assert_eq!(set.alerts[0].window_secs, 600);
    assert_eq!(set.alerts[0].suppress_secs, 3600);
}

#[test]
fn unknown_key_is_reported_at_its_line_and_column() {
    let e = errors("[[counter]]\nid = \"a\"\nfilter = \"tcp\"\nfiltre = \"udp\"\n");
    assert_eq!(
        e,
        ["r.toml:4:1: unknown field `filtre`, expected one of `id`, `description`, `filter`, `group_by`, `value`, `app_error`"]
    );
}

#[test]
fn bad_filter_points_into_the_string() {
    let e = errors("[[counter]]\nid = \"a\"\nfilter = \"tcp.prot == 80\"\n");
    assert_eq!(e, ["r.toml:3:11: filter: unknown field or protocol \"tcp.prot\" (did you mean \"tcp.port\"?)"]);
    let e = errors("[[counter]]\nid = \"a\"\nfilter = \"tcp.port in {80 443}\"\n");
    assert_eq!(e, ["r.toml:3:27: filter: \"443\" was unexpected (set elements are separated by commas)"]);
}

#[test]
fn all_problems_of_a_file_are_listed() {
    let e = errors(
        r#"[[counter]]
id = "a"
filter = "tcp"
group_by = ["ip.srcc"]
value = "packets"

[[counter]]
id = "a"
filter = "udp"

[[alert]]
id = "x"
event = "app_eror"
window = "5 minutes"
severity = "loud"
"#,
    );
    assert_eq!(
        e,
        [
            "r.toml:4:13: group_by: unknown field \"ip.srcc\" (did you mean \"ip.src\"?)",
            "r.toml:8:6: duplicate id \"a\" (first defined at r.toml:2:6)",
            "r.toml:13:9: unknown event \"app_eror\" (known: app_error, identity.new, identity.shared_mac, capture.drops, capture.silent, disk.low, store.failing)",
            "r.toml:14:10: window: \"5 minutes\" is not a duration (e.g. 90s, 5m, 1h, 7d)",
            "r.toml:15:12: severity must be one of info, warning, critical",
        ]
    );
}

#[test]
fn wrong_types_and_missing_keys() {
    assert_eq!(
        errors("[[counter]]\nid = 5\nfilter = \"tcp\"\n"),
        ["r.toml:2:6: invalid type: integer `5`, expected a string"]
    );
    assert_eq!(errors("[[counter]]\nid = \"a\"\n"), ["r.toml:1:1: missing field `filter`"]);
    assert_eq!(
        errors("[[counter]]\nid = \"a\"\nfilter = \"tcp\"\nvalue = \"frames\"\n"),
        ["r.toml:4:9: unknown variant `frames`, expected `packets` or `bytes`"]
    );
    assert_eq!(
        errors("[[alert]]\nid = \"x\"\ncounter = \"c\"\n"),
        ["r.toml:2:6: a counter alert needs `above` and/or `above_baseline`"]
    );
}

#[test]
fn alert_naming_an_unknown_counter_is_an_error_across_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), "[[counter]]\nid = \"c1\"\nfilter = \"tcp\"\n").unwrap();
    std::fs::write(dir.path().join("b.toml"), "[[alert]]\nid = \"x\"\ncounter = \"c2\"\nabove = 1\n").unwrap();
    let e = RuleSet::load_dir(dir.path()).unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].to_string().ends_with("b.toml:3:11: alert \"x\" follows counter \"c2\", which no rule file defines"),
        "{}",
        e[0]
    );
    std::fs::write(dir.path().join("b.toml"), "[[alert]]\nid = \"x\"\ncounter = \"c1\"\nabove = 1\n").unwrap();
    assert!(RuleSet::load_dir(dir.path()).is_ok());
}

#[test]
fn shipped_rules_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let set = RuleSet::load_dir(&dir).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(set.counters.len() >= 10, "{} counters", set.counters.len());
}

#[test]
fn out_of_range_numbers_are_refused_at_their_position() {
    let counter = "[[counter]]\nid = \"c\"\nfilter = \"tcp\"\n";
    let alert = |body: &str| errors(&format!("{counter}[[alert]]\nid = \"a\"\ncounter = \"c\"\n{body}"));
    assert_eq!(
        alert("window = \"2d\"\nabove_baseline = 3.0\n"),
        ["r.toml:7:10: window: \"2d\" is out of range (60s to 1d, whole minutes for a counter alert)"]
    );
    assert_eq!(
        alert("window = \"90s\"\nabove = 1\n"),
        ["r.toml:7:10: window: \"90s\" is out of range (60s to 1d, whole minutes for a counter alert)"]
    );
    assert_eq!(
        alert("suppress = \"400d\"\nabove = 1\n"),
        ["r.toml:7:12: suppress: \"400d\" is out of range (1s to 30d)"]
    );
    assert_eq!(alert("above = 1e300\n"), ["r.toml:7:9: above must be a number above 0 and at most 1000000000000"]);
    assert_eq!(
        alert("above_baseline = 1e9\n"),
        ["r.toml:7:18: above_baseline must be a number above 0 and at most 1000000"]
    );
    assert_eq!(
        alert("above_baseline = 2.0\nmin_count = 9223372036854775807\n"),
        ["r.toml:8:13: min_count must be at most 1000000000000"]
    );
    assert_eq!(
        alert("window = \"213503982334602d\"\nabove = 1\n"),
        ["r.toml:7:10: window: \"213503982334602d\" is not a duration (e.g. 90s, 5m, 1h, 7d)"]
    );
    // Event windows may be seconds long.
    assert!(errors("[[alert]]\nid = \"e\"\nevent = \"app_error\"\nwindow = \"10s\"\n").is_empty());
}
