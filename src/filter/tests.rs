//! Parser and type-checker error messages (column and what was expected), and semantics on
//! literal frames.

use super::*;
use crate::capture::{LinkType, RawPacket};
use crate::decode::decode;
use crate::flow::tcp::TcpAnalysis;
use crate::time::Ts;

/// (expression, expected column, expected message fragment)
const ERRORS: &[(&str, usize, &str)] = &[
    ("", 1, "empty filter"),
    ("tcp.prot == 80", 1, "unknown field or protocol \"tcp.prot\" (did you mean \"tcp.port\"?)"),
    ("tcp.port == ", 13, "expected a field or a value at the end"),
    ("tcp.port in {80 443}", 17, "\"443\" was unexpected (set elements are separated by commas)"),
    ("tcp.port in {80, 443", 21, "missing \"}\" at the end of the set"),
    ("tcp.port in 80", 13, "expected \"{\" after \"in\""),
    ("tcp.port == 80.0", 13, "\"80.0\" is not a valid number"),
    ("ip.src == \"10.0.0.1\"", 11, "a IPv4 address cannot be written as a quoted string"),
    ("ip.src == 10.0.0.256", 11, "\"10.0.0.256\" is not a valid IPv4 address"),
    ("ip.src == 10.0.0.0/33", 11, "invalid prefix length"),
    ("tcp.port == http", 13, "\"http\" is a protocol and cannot be compared with a unsigned integer"),
    ("1 == 1", 1, "\"1\" is a value: the left side must be a field or a function"),
    ("tcp xor udp", 5, "\"xor\" was unexpected here"),
    ("tcp.flags.syn == true", 18, "\"true\" is not a valid boolean (write True or False)"),
    ("http.host == \"www\\.espn\"", 18, "\\. is not a valid escape"),
    ("http.host == \"www\\u002e\"", 18, "not valid universal character names"),
    ("http.host == 'w'", 14, "single quotes make a one-character constant"),
    ("eth.src == c8:bc:c8:96:d2", 12, "contains too few bytes to be a valid Ethernet address"),
    ("(tcp", 5, "missing \")\" at the end"),
    ("tcp and", 8, "expected a field or a value at the end"),
    ("tcp udp", 5, "\"udp\" was unexpected here (expected \"and\", \"or\" or the end)"),
    ("tcp.port = 80", 10, "\"=\" is not an operator (use \"==\")"),
    ("tcp.port | 80", 10, "\"|\" is not an operator (use \"||\")"),
    ("frame matches \"(\"", 15, "invalid regular expression"),
    ("tcp.port matches \"x\"", 10, "matches needs a string or bytes field, not a unsigned integer"),
    ("tcp.port contains 50", 10, "contains needs a string or bytes field"),
    ("tcp.port[0:1] == 00", 1, "cannot be sliced"),
    ("size(ip.src) == 4", 1, "unknown function \"size\" (known: len, count)"),
    ("ip.src#0 == 1.2.3.4", 8, "layer number \"0\" must be a number from 1 to 255"),
    ("tcp == 1", 1, "\"tcp\" is a protocol: test it alone, or compare one of its fields"),
    ("\"abc\"", 1, "a string alone is not a test"),
    ("80", 1, "\"80\" is neither a field nor a protocol name"),
    ("frame contains \"abc", 16, "unterminated string"),
];

#[test]
fn every_error_names_its_column_and_what_was_wrong() {
    for (expr, col, msg) in ERRORS {
        let e = Filter::compile(expr).expect_err(expr);
        assert!(e.msg.contains(msg), "{expr:?}: got {:?}, want {msg:?}", e.msg);
        assert_eq!(e.column(expr), *col, "{expr:?}: {}", e.msg);
    }
}

#[test]
fn render_puts_a_caret_under_the_column() {
    let expr = "tcp.port in {80 443}";
    let e = Filter::compile(expr).unwrap_err();
    let r = e.render(expr);
    let lines: Vec<&str> = r.lines().collect();
    assert!(lines[0].starts_with("column 17: "));
    assert_eq!(lines[1], "    tcp.port in {80 443}");
    assert_eq!(lines[2], format!("    {}^", " ".repeat(16)));
}

fn frame(f: &str, data: &[u8]) -> bool {
    let pkt =
        RawPacket { frame: 1, ts: Ts(0), orig_len: data.len() as u32, link: LinkType::ETHERNET, interface: 0, data };
    let d = decode(&pkt);
    let t = TcpAnalysis::default();
    let app = crate::analyzers::AppFacts::dissect(&d, &t);
    Filter::compile(f).unwrap().matches(&fields::Ctx { d: &d, tcp: &t, stream: Some(0), app: &app })
}

#[test]
fn semantics_on_a_literal_frame() {
    let data = crate::flow::tests::tcp_frame([10, 1, 2, 3], [192, 168, 7, 9], 40000, 80, 1, 2, 0x18, 4);
    for (f, want) in [
        ("tcp.port == 80", true),
        ("tcp.port != 80", false),
        ("tcp.port ~= 80", true),
        ("tcp.port in {79..81}", true),
        ("udp.port != 53", false),
        ("!(udp.port == 53)", true),
        ("ip.addr == 192.168.0.0/16 && ip.addr == 10.0.0.0/8", true),
        ("ip.src > 10.1.2.2 && ip.src < 10.1.2.4", true),
        ("tcp.flags.syn", true),
        ("tcp.flags.syn == 1", false),
        ("tcp.flags.push == True && tcp.flags & 0x10", true),
        ("tcp.payload == \"xxxx\"", true),
        ("tcp.payload contains 78:78", true),
        ("frame matches \"XXXX\"", true),
        ("frame matches \"(?-i)XXXX\"", false),
        ("frame contains \"XXXX\"", false),
        ("len(tcp.payload) == 4 && count(ip.src) == 1", true),
        ("ip.dst[2:2] == 07:09 && ip.dst[-1] == 9", true),
        ("eth.dst == 00:00:00:00:00:02 && eth.addr == 00-00-00-00-00-01", true),
        ("80 == tcp.dstport and 40001 > tcp.srcport", true),
        ("tcp.stream == 0 and frame.number == 1", true),
    ] {
        assert_eq!(frame(f, &data), want, "{f}");
    }
}

#[test]
fn hostile_nesting_is_an_error_not_a_stack_overflow() {
    for deep in
        ["(".repeat(20_000) + "tcp" + &")".repeat(20_000), "!".repeat(50_000) + "tcp", "not ".repeat(50_000) + "tcp"]
    {
        let e = Filter::compile(&deep).expect_err("refused");
        assert!(e.msg.contains("nested too deeply") || e.msg.contains("too long"), "{}", e.msg);
    }
    let e = Filter::compile(&format!("{}tcp{}", "(".repeat(65), ")".repeat(65))).expect_err("65 levels");
    assert!(e.msg.contains("nested too deeply"), "{}", e.msg);
    assert!(Filter::compile(&format!("{}tcp{}", "(".repeat(60), ")".repeat(60))).is_ok());
    let chain = vec!["tcp"; 30_000].join(" && ");
    assert!(Filter::compile(&chain).expect_err("long").msg.contains("too long"));
    // The longest accepted chain compiles on a default-sized thread stack (2 MiB), even unoptimised.
    let chain = vec!["tcp.port == 80"; 1000].join(" || ");
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let f = Filter::compile(&chain).unwrap();
            drop(f);
        })
        .unwrap()
        .join()
        .unwrap();
}
