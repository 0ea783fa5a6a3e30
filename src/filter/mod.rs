//! Wireshark display filters: parse once, type-check against the field table, evaluate cheaply.
//!
//! Semantics follow tshark 4.0 (`shared/reference/wireshark-semantics.md` §4): a field that
//! occurs several times matches `==`, `<`, `contains`, `matches`, `in` if *any* occurrence does;
//! `!=` means *all* occurrences differ (`all_ne`) and `~=` some occurrence differs (`any_ne`);
//! any comparison with a missing field is false; a bare boolean field only tests presence;
//! `matches` is case-insensitive unless the pattern says `(?-i)`; `contains` is not.
//!
//! Evaluation allocates nothing: field values are gathered into a fixed array per test, regexes
//! are compiled once, literals are converted to the field's type at compile time.

pub mod fields;
pub mod parse;

use std::net::{Ipv4Addr, Ipv6Addr};

use fields::{Ctx, FType, FieldDef, Val, Values};
use parse::{Ast, RelOp, Rhs, SetItem, Slice, Term};

/// A filter that failed to parse or type-check: byte offset into the expression and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    pub offset: usize,
    pub msg: String,
}

impl FilterError {
    /// 1-based column (in characters) of the error.
    pub fn column(&self, src: &str) -> usize {
        let mut end = self.offset.min(src.len());
        while !src.is_char_boundary(end) {
            end -= 1;
        }
        src[..end].chars().count() + 1
    }
    /// The message with the expression and a caret under the column.
    pub fn render(&self, src: &str) -> String {
        let col = self.column(src);
        format!("column {col}: {}\n    {src}\n    {}^", self.msg, " ".repeat(col - 1))
    }
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.msg)
    }
}

impl std::error::Error for FilterError {}

/// A literal converted to the type of the field it is compared with.
#[derive(Clone, Debug)]
enum Lit {
    U(u64),
    V4 { addr: u32, mask: u32 },
    V6 { addr: u128, mask: u128 },
    Mac([u8; 6]),
    Bytes(Vec<u8>),
}

#[derive(Clone, Copy, Debug)]
struct FRef {
    def: &'static FieldDef,
    layer: Option<u8>,
    slice: Option<(i64, Option<i64>)>,
    /// What the field needs in the frame; when that is missing the field is absent and the
    /// test is decided without reading any value (most rules test fields most frames lack).
    dep: Dep,
}

/// A cheap necessary condition for a field to be present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dep {
    Always,
    Http,
    AppError,
    Tcp,
    Udp,
    Icmp4,
    Icmp6,
    Ip4,
    Ip6,
    Eth,
    Vlan,
    Svlan,
    Arp,
    /// Any of these TCP analysis flags.
    Analysis(u32),
    /// A DNS-family message was dissected (dns.* fields).
    DnsAny,
    /// …of this kind (the protocol names dns, mdns, llmnr).
    DnsKind(crate::analyzers::dns::Kind),
    Krb,
    Pop,
    Dhcp,
}

/// Bits of a frame's [`present`] mask, one per kind of [`Dep`] (every TCP analysis flag shares
/// one bit, every DNS kind another: a guard may let through more than it must, never less).
const BIT_HTTP: u32 = 1;
const BIT_APP_ERROR: u32 = 1 << 1;
const BIT_TCP: u32 = 1 << 2;
const BIT_UDP: u32 = 1 << 3;
const BIT_ICMP4: u32 = 1 << 4;
const BIT_ICMP6: u32 = 1 << 5;
const BIT_IP4: u32 = 1 << 6;
const BIT_IP6: u32 = 1 << 7;
const BIT_ETH: u32 = 1 << 8;
const BIT_VLAN: u32 = 1 << 9;
const BIT_SVLAN: u32 = 1 << 10;
const BIT_ARP: u32 = 1 << 11;
const BIT_ANALYSIS: u32 = 1 << 12;
const BIT_DNS: u32 = 1 << 13;
const BIT_KRB: u32 = 1 << 14;
const BIT_POP: u32 = 1 << 15;
const BIT_DHCP: u32 = 1 << 16;
/// Present in most frames: a guard of these alone saves little.
const BITS_COMMON: u32 = BIT_TCP | BIT_UDP | BIT_IP4 | BIT_IP6 | BIT_ETH;

/// What of the filters' dependencies a frame has, as [`Filter::guard`] bits: computed once per
/// frame for all the counters, so a counter whose filter needs what the frame lacks (DNS,
/// HTTP, a TCP analysis flag…) is skipped in two instructions instead of evaluated.
pub fn present(c: &Ctx<'_, '_>) -> u32 {
    use crate::decode::Transport as T;
    // Straight-line, and the same as `!dep.absent(c)` for each bit (a test holds them equal).
    let (d, app) = (c.d, c.app);
    let bit = |b: bool, v: u32| if b { v } else { 0 };
    let v4 = |ip: Option<crate::decode::IpHeader>| ip.is_some_and(|i| i.is_v4());
    let v6 = |ip: Option<crate::decode::IpHeader>| ip.is_some_and(|i| !i.is_v4());
    let (tcp, udp, icmp4, icmp6) = match d.transport {
        T::Tcp(_) => (true, false, false, false),
        T::Udp(_) => (false, true, false, false),
        T::Icmp(i) => (false, false, !i.v6, i.v6),
        _ => (false, false, false, false),
    };
    let quoted = d.quoted_ports.map(|q| q.proto);
    bit(app.http.is_some(), BIT_HTTP)
        | bit(!app.errors.is_empty(), BIT_APP_ERROR)
        | bit(tcp || quoted == Some(6), BIT_TCP)
        | bit(udp || quoted == Some(17) || d.outer_udp.is_some(), BIT_UDP)
        | bit(icmp4, BIT_ICMP4)
        | bit(icmp6, BIT_ICMP6)
        | bit(v4(d.ip) || v4(d.quoted_ip) || v4(d.outer_ip), BIT_IP4)
        | bit(v6(d.ip) || v6(d.quoted_ip) || v6(d.outer_ip), BIT_IP6)
        | bit(d.eth_dst.is_some(), BIT_ETH)
        | bit(d.vlan_count > 0, BIT_VLAN)
        | bit(d.svlan_count > 0, BIT_SVLAN)
        | bit(d.net_type == Some(0x0806), BIT_ARP)
        | bit(c.tcp.flags.0 != 0, BIT_ANALYSIS)
        | bit(app.dns.is_some(), BIT_DNS)
        | bit(app.krb.is_some(), BIT_KRB)
        | bit(app.pop.is_some(), BIT_POP)
        | bit(app.dhcp.is_some(), BIT_DHCP)
}

/// [`present`] as the definition says it: each dependency's own test (the oracle of the
/// differential tests; not for the hot path).
#[doc(hidden)]
pub fn present_by_deps(c: &Ctx<'_, '_>) -> u32 {
    let mut m = 0;
    for (dep, bit) in [
        (Dep::Http, BIT_HTTP),
        (Dep::AppError, BIT_APP_ERROR),
        (Dep::Tcp, BIT_TCP),
        (Dep::Udp, BIT_UDP),
        (Dep::Icmp4, BIT_ICMP4),
        (Dep::Icmp6, BIT_ICMP6),
        (Dep::Ip4, BIT_IP4),
        (Dep::Ip6, BIT_IP6),
        (Dep::Eth, BIT_ETH),
        (Dep::Vlan, BIT_VLAN),
        (Dep::Svlan, BIT_SVLAN),
        (Dep::Arp, BIT_ARP),
        (Dep::Analysis(u32::MAX), BIT_ANALYSIS),
        (Dep::DnsAny, BIT_DNS),
        (Dep::Krb, BIT_KRB),
        (Dep::Pop, BIT_POP),
        (Dep::Dhcp, BIT_DHCP),
    ] {
        if !dep.absent(c) {
            m |= bit;
        }
    }
    m
}

/// A filter's guard: the frame must have at least one of these bits of [`present`] for the
/// filter to match (0: no such bound). Sound because a test of an absent field is false
/// (`Exists`, `Cmp` on a field or its length), an `And` needs every side (any side's guard
/// will do: the rarest is taken), an `Or` needs one side (the union, when every side has one).
fn guard(n: &Node) -> u32 {
    let operand = |o: &Operand| match o {
        Operand::Field(f) | Operand::Len(f) => f.dep.bit(),
        Operand::Count(_) => 0,
    };
    match n {
        Node::ExistsFast(d) => d.bit(),
        Node::Exists(f) => f.dep.bit(),
        Node::Cmp { a, b, .. } => match (operand(a), b) {
            (0, CmpRhs::Field(b)) => operand(b),
            (g, _) => g,
        },
        Node::CmpFast { general, .. } | Node::CmpFastVal { general, .. } => guard(general),
        Node::And(v) => v
            .iter()
            .map(guard)
            .filter(|g| *g != 0)
            .min_by_key(|g| ((g & BITS_COMMON != 0) as u32, g.count_ones()))
            .unwrap_or(0),
        Node::Or(v) => {
            let gs: Vec<u32> = v.iter().map(guard).collect();
            if gs.contains(&0) {
                0
            } else {
                gs.iter().fold(0, |a, g| a | g)
            }
        }
        Node::Not(_) => 0,
    }
}

impl Dep {
    /// Its bit in [`present`] (none for `Always`).
    fn bit(self) -> u32 {
        match self {
            Dep::Always => 0,
            Dep::Http => BIT_HTTP,
            Dep::AppError => BIT_APP_ERROR,
            Dep::Tcp => BIT_TCP,
            Dep::Udp => BIT_UDP,
            Dep::Icmp4 => BIT_ICMP4,
            Dep::Icmp6 => BIT_ICMP6,
            Dep::Ip4 => BIT_IP4,
            Dep::Ip6 => BIT_IP6,
            Dep::Eth => BIT_ETH,
            Dep::Vlan => BIT_VLAN,
            Dep::Svlan => BIT_SVLAN,
            Dep::Arp => BIT_ARP,
            Dep::Analysis(_) => BIT_ANALYSIS,
            Dep::DnsAny | Dep::DnsKind(_) => BIT_DNS,
            Dep::Krb => BIT_KRB,
            Dep::Pop => BIT_POP,
            Dep::Dhcp => BIT_DHCP,
        }
    }

    fn of(def: &FieldDef) -> Dep {
        use crate::flow::tcp::TcpFlags;
        let n = def.name;
        if let Some(flag) = n.strip_prefix("tcp.analysis.") {
            return match flag {
                "flags" => Dep::Analysis(u32::MAX),
                "duplicate_ack_num" => Dep::Analysis(TcpFlags::DUPLICATE_ACK),
                f => TcpFlags::by_name(f).map(Dep::Analysis).unwrap_or(Dep::Always),
            };
        }
        let proto = n.split('.').next().unwrap_or(n);
        use crate::analyzers::dns::Kind;
        match n {
            "dns" => return Dep::DnsKind(Kind::Dns),
            "mdns" => return Dep::DnsKind(Kind::Mdns),
            "llmnr" => return Dep::DnsKind(Kind::Llmnr),
            _ => {}
        }
        match proto {
            "dns" => Dep::DnsAny,
            "kerberos" => Dep::Krb,
            "pop" => Dep::Pop,
            "dhcp" => Dep::Dhcp,
            "http" => Dep::Http,
            "app_error" => Dep::AppError,
            "tcp" => Dep::Tcp,
            "udp" => Dep::Udp,
            "icmp" => Dep::Icmp4,
            "icmpv6" => Dep::Icmp6,
            "ip" => Dep::Ip4,
            "ipv6" => Dep::Ip6,
            "eth" => Dep::Eth,
            "vlan" => Dep::Vlan,
            "ieee8021ad" => Dep::Svlan,
            "arp" => Dep::Arp,
            _ => Dep::Always,
        }
    }

    #[inline]
    fn absent(self, c: &Ctx<'_, '_>) -> bool {
        use crate::decode::Transport as T;
        let d = c.d;
        match self {
            Dep::Always => false,
            Dep::Http => c.app.http.is_none(),
            Dep::AppError => c.app.errors.is_empty(),
            Dep::Tcp => !matches!(d.transport, T::Tcp(_)) && d.quoted_ports.is_none_or(|q| q.proto != 6),
            Dep::Udp => {
                !matches!(d.transport, T::Udp(_))
                    && d.quoted_ports.is_none_or(|q| q.proto != 17)
                    && d.outer_udp.is_none()
            }
            Dep::Icmp4 => !matches!(d.transport, T::Icmp(i) if !i.v6),
            Dep::Icmp6 => !matches!(d.transport, T::Icmp(i) if i.v6),
            Dep::Ip4 => {
                !d.ip.is_some_and(|i| i.is_v4())
                    && !d.quoted_ip.is_some_and(|i| i.is_v4())
                    && !d.outer_ip.is_some_and(|i| i.is_v4())
            }
            Dep::Ip6 => {
                d.ip.is_none_or(|i| i.is_v4())
                    && d.quoted_ip.is_none_or(|i| i.is_v4())
                    && d.outer_ip.is_none_or(|i| i.is_v4())
            }
            Dep::Eth => d.eth_dst.is_none(),
            Dep::Vlan => d.vlan_count == 0,
            Dep::Svlan => d.svlan_count == 0,
            Dep::Arp => d.net_type != Some(0x0806),
            Dep::Analysis(bits) => c.tcp.flags.0 & bits == 0,
            Dep::DnsAny => c.app.dns.is_none(),
            Dep::DnsKind(k) => c.app.dns.is_none_or(|d| d.kind != k),
            Dep::Krb => c.app.krb.is_none(),
            Dep::Pop => c.app.pop.is_none(),
            Dep::Dhcp => c.app.dhcp.is_none(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Operand {
    Field(FRef),
    Len(FRef),
    Count(FRef),
}

impl Operand {
    fn ftype(&self) -> FType {
        match self {
            Operand::Field(f) if f.slice.is_some() => FType::Bytes,
            Operand::Field(f) => f.def.ftype,
            Operand::Len(_) | Operand::Count(_) => FType::UInt,
        }
    }
}

#[derive(Debug)]
enum CmpRhs {
    Lit(Lit),
    Set(Vec<(Lit, Option<Lit>)>),
    Field(Operand),
    Regex(regex::bytes::Regex),
}

#[derive(Debug)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Exists(FRef),
    /// Presence test answered by the frame's structure alone (protocols, TCP analysis flags).
    ExistsFast(Dep),
    Cmp {
        a: Operand,
        op: RelOp,
        b: CmpRhs,
    },
    /// Single-valued number compared with a constant; the general `Cmp` is the fallback for
    /// frames with ICMP-quoted headers (more occurrences).
    CmpFast {
        get: fields::FastU64,
        op: RelOp,
        lit: u64,
        general: Box<Node>,
    },
    /// Same for a single-valued address field.
    CmpFastVal {
        get: fields::FastVal,
        op: RelOp,
        lit: Lit,
        general: Box<Node>,
    },
}

/// A compiled display filter.
#[derive(Debug)]
pub struct Filter {
    root: Node,
    text: String,
    /// See [`guard`].
    guard: u32,
}

impl std::fmt::Debug for FieldDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

fn err(at: usize, msg: impl Into<String>) -> FilterError {
    FilterError { offset: at, msg: msg.into() }
}

fn looks_like_field(w: &str) -> bool {
    w.contains('.') && w.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && w.split('.').all(|p| !p.is_empty())
        || w.chars().all(|c| c.is_ascii_lowercase() || c == '_') && w.len() > 2
}

fn unknown_field(w: &str, at: usize) -> FilterError {
    match fields::nearest(w) {
        Some(n) => err(at, format!("unknown field or protocol \"{w}\" (did you mean \"{n}\"?)")),
        None => err(at, format!("unknown field or protocol \"{w}\"")),
    }
}

impl Filter {
    /// Parses and type-checks `text`.
    pub fn compile(text: &str) -> Result<Filter, FilterError> {
        let ast = parse::Parser::new(text, |w| fields::lookup(w).is_some())?.parse()?;
        let root = compile(&ast)?;
        let guard = guard(&root);
        Ok(Filter { root, text: text.to_string(), guard })
    }

    /// Whether a frame with the dependencies `present` (see [`present`]) could match: when not,
    /// [`Filter::matches`] is false for it.
    #[inline]
    pub fn could_match(&self, present: u32) -> bool {
        self.guard == 0 || self.guard & present != 0
    }

    /// Whether the filter has a guard at all (else [`Filter::could_match`] is always true).
    pub fn guarded(&self) -> bool {
        self.guard != 0
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, c: &Ctx<'_, '_>) -> bool {
        eval(&self.root, c)
    }
}

fn fref(t: &Term) -> Result<FRef, FilterError> {
    let Term::Field { name, layer, slice, start, .. } = t else {
        return Err(err(t.start(), "expected a field"));
    };
    let def = fields::lookup(name).ok_or_else(|| unknown_field(name, *start))?;
    let slice = match slice {
        Some(Slice::Range(o, l)) => {
            if !def.ftype.is_bytes_like() {
                return Err(err(*start, format!("\"{name}\" is a {}: it cannot be sliced", def.ftype.name())));
            }
            if def.ftype == FType::Proto && def.name != "frame" {
                return Err(err(
                    *start,
                    format!("slicing the protocol \"{name}\" is not supported (slice a field, or frame)"),
                ));
            }
            Some((*o, *l))
        }
        None => None,
    };
    Ok(FRef { def, layer: *layer, slice, dep: Dep::of(def) })
}

fn operand(t: &Term) -> Result<Operand, FilterError> {
    match t {
        Term::Field { .. } => Ok(Operand::Field(fref(t)?)),
        Term::Func { name, arg, start, .. } => {
            let f = fref(arg)?;
            match name.as_str() {
                "len" => {
                    if !f.def.ftype.is_bytes_like() && f.slice.is_none() {
                        return Err(err(
                            *start,
                            format!("len() needs a string or bytes field, not a {}", f.def.ftype.name()),
                        ));
                    }
                    Ok(Operand::Len(f))
                }
                "count" => Ok(Operand::Count(f)),
                other => Err(err(*start, format!("unknown function \"{other}\" (known: len, count)"))),
            }
        }
        Term::Word { text, start, .. } if looks_like_field(text) => Err(unknown_field(text, *start)),
        Term::Word { text, start, .. } => {
            Err(err(*start, format!("\"{text}\" is a value: the left side must be a field or a function")))
        }
        Term::Str { start, .. } => Err(err(*start, "a string cannot stand on the left side: put a field there")),
    }
}

fn parse_uint(w: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(b) = w.strip_prefix("0b").or_else(|| w.strip_prefix("0B")) {
        (b, 2)
    } else if w.len() > 1 && w.starts_with('0') {
        (&w[1..], 8)
    } else {
        (w, 10)
    };
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

fn parse_hex_bytes(w: &str) -> Option<Vec<u8>> {
    let seps = [':', '.', '-'];
    let parts: Vec<&str> = if w.contains(seps) { w.split(seps).collect() } else { vec![w] };
    let mut out = Vec::new();
    for p in parts {
        if p.is_empty() {
            return None;
        }
        if p.len() % 2 == 1 && p.len() > 1 {
            return None;
        }
        if p.len() == 1 {
            out.push(u8::from_str_radix(p, 16).ok()?);
            continue;
        }
        for i in (0..p.len()).step_by(2) {
            out.push(u8::from_str_radix(p.get(i..i + 2)?, 16).ok()?);
        }
    }
    (!out.is_empty()).then_some(out)
}

fn parse_mac(w: &str, at: usize) -> Result<[u8; 6], FilterError> {
    let bytes = parse_hex_bytes(w).ok_or_else(|| err(at, format!("\"{w}\" is not a valid Ethernet address")))?;
    match bytes.len() {
        6 => Ok([bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]]),
        n if n < 6 => Err(err(at, format!("\"{w}\" contains too few bytes to be a valid Ethernet address"))),
        _ => Err(err(at, format!("\"{w}\" contains too many bytes to be a valid Ethernet address"))),
    }
}

fn prefix_mask32(bits: u32) -> u32 {
    if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    }
}

fn prefix_mask128(bits: u32) -> u128 {
    if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    }
}

/// "addr/len" → (addr, len); a bare address is a /max.
fn split_prefix(text: &str, max: u32, at: usize) -> Result<(&str, u32), FilterError> {
    match text.split_once('/') {
        None => Ok((text, max)),
        Some((a, b)) => match b.parse::<u32>() {
            Ok(bits) if bits <= max => Ok((a, bits)),
            _ => Err(err(at, format!("\"{text}\" has an invalid prefix length"))),
        },
    }
}

/// Converts a literal term for a field of type `ty`, for relation `op`.
fn literal(t: &Term, ty: FType, op: RelOp) -> Result<Lit, FilterError> {
    let at = t.start();
    // A bit mask on a bytes value is a byte string.
    let ty = if op == RelOp::BitAnd && matches!(ty, FType::Ether) { FType::Bytes } else { ty };
    if matches!(op, RelOp::Contains) {
        return match t {
            Term::Str { bytes, .. } => Ok(Lit::Bytes(bytes.clone())),
            Term::Word { text, .. } if ty == FType::Str => Ok(Lit::Bytes(text.as_bytes().to_vec())),
            Term::Word { text, .. } => parse_hex_bytes(text).map(Lit::Bytes).ok_or_else(|| {
                err(at, format!("\"{text}\" is not a valid byte string (write it as \"text\" or 47:45:54)"))
            }),
            _ => Err(err(at, "contains needs a value on the right")),
        };
    }
    match (t, ty) {
        (Term::Word { text, .. }, FType::UInt) => {
            parse_uint(text).map(Lit::U).ok_or_else(|| err(at, format!("\"{text}\" is not a valid number")))
        }
        (Term::Word { text, .. }, FType::Bool) => match text.as_str() {
            "True" | "TRUE" => Ok(Lit::U(1)),
            "False" | "FALSE" => Ok(Lit::U(0)),
            "true" | "false" => Err(err(at, format!("\"{text}\" is not a valid boolean (write True or False)"))),
            _ => parse_uint(text)
                .map(|v| Lit::U((v != 0) as u64))
                .ok_or_else(|| err(at, format!("\"{text}\" is not a valid boolean"))),
        },
        (Term::Word { text, .. }, FType::Ipv4) => {
            let (a, bits) = split_prefix(text, 32, at)?;
            let addr: Ipv4Addr = a.parse().map_err(|_| err(at, format!("\"{text}\" is not a valid IPv4 address")))?;
            let mask = prefix_mask32(bits);
            Ok(Lit::V4 { addr: u32::from(addr) & mask, mask })
        }
        (Term::Word { text, .. }, FType::Ipv6) => {
            let (a, bits) = split_prefix(text, 128, at)?;
            let addr: Ipv6Addr = a.parse().map_err(|_| err(at, format!("\"{text}\" is not a valid IPv6 address")))?;
            let mask = prefix_mask128(bits);
            Ok(Lit::V6 { addr: u128::from(addr) & mask, mask })
        }
        (Term::Word { text, .. }, FType::Ether) => Ok(Lit::Mac(parse_mac(text, at)?)),
        (Term::Word { text, .. }, FType::Str) => Ok(Lit::Bytes(text.as_bytes().to_vec())),
        (Term::Word { text, .. }, FType::Bytes | FType::Proto) => parse_hex_bytes(text)
            .map(Lit::Bytes)
            .ok_or_else(|| err(at, format!("\"{text}\" is not a valid byte string"))),
        (Term::Str { bytes, .. }, FType::Str | FType::Bytes | FType::Proto) => Ok(Lit::Bytes(bytes.clone())),
        (Term::Str { .. }, ty) => Err(err(at, format!("a {} cannot be written as a quoted string", ty.name()))),
        _ => Err(err(at, "expected a value")),
    }
}

fn compatible(a: FType, b: FType) -> bool {
    a == b
        || (a.is_bytes_like() && b.is_bytes_like() && !matches!(a, FType::Proto) && !matches!(b, FType::Proto))
        || matches!((a, b), (FType::Bool, FType::UInt) | (FType::UInt, FType::Bool))
}

fn swap(op: RelOp) -> RelOp {
    match op {
        RelOp::Lt => RelOp::Gt,
        RelOp::Le => RelOp::Ge,
        RelOp::Gt => RelOp::Lt,
        RelOp::Ge => RelOp::Le,
        o => o,
    }
}

fn compile(ast: &Ast) -> Result<Node, FilterError> {
    Ok(match ast {
        Ast::Or(v) => Node::Or(v.iter().map(compile).collect::<Result<_, _>>()?),
        Ast::And(v) => Node::And(v.iter().map(compile).collect::<Result<_, _>>()?),
        Ast::Not(a) => Node::Not(Box::new(compile(a)?)),
        Ast::Test { lhs, rel: None } => match lhs {
            Term::Field { slice: None, .. } => {
                let f = fref(lhs)?;
                // For protocol names and analysis flags the dependency is exactly the presence
                // (not for a protocol's parts: `http.request` is less than `http`).
                let whole = !f.def.name.contains('.') || matches!(f.dep, Dep::Analysis(_));
                let exact = (f.def.ftype == FType::Proto && f.def.name != "frame" && f.layer.is_none())
                    && whole
                    && !matches!(f.dep, Dep::Always);
                if exact {
                    Node::ExistsFast(f.dep)
                } else {
                    Node::Exists(f)
                }
            }
            Term::Field { start, .. } => return Err(err(*start, "a slice needs a comparison (e.g. frame[0] == 45)")),
            Term::Func { start, .. } => return Err(err(*start, "a function needs a comparison (e.g. len(x) > 3)")),
            Term::Word { text, start, .. } if looks_like_field(text) => return Err(unknown_field(text, *start)),
            Term::Word { text, start, .. } => {
                return Err(err(*start, format!("\"{text}\" is neither a field nor a protocol name")))
            }
            Term::Str { start, .. } => return Err(err(*start, "a string alone is not a test")),
        },
        Ast::Test { lhs, rel: Some((op, op_at, rhs)) } => {
            // A value on the left and a field on the right: turn it around.
            let (lhs, op, rhs) = match (lhs, rhs) {
                (Term::Word { .. } | Term::Str { .. }, Rhs::Term(r @ (Term::Field { .. } | Term::Func { .. })))
                    if !matches!(op, RelOp::Contains | RelOp::Matches | RelOp::BitAnd) =>
                {
                    (r, swap(*op), Rhs::Term(lhs.clone()))
                }
                (l, r) => (l, *op, r.clone()),
            };
            let a = operand(lhs)?;
            let ty = a.ftype();
            let lhs_at = lhs.start();
            if ty == FType::Proto
                && !(matches!(a, Operand::Field(f) if f.def.name == "frame"))
                && !matches!(a, Operand::Count(_))
            {
                return Err(err(
                    lhs_at,
                    format!("\"{}\" is a protocol: test it alone, or compare one of its fields", lhs_name(lhs)),
                ));
            }
            match op {
                RelOp::Matches => {
                    if !ty.is_bytes_like() {
                        return Err(err(*op_at, format!("matches needs a string or bytes field, not a {}", ty.name())));
                    }
                    let Rhs::Term(Term::Str { bytes, start, .. }) = &rhs else {
                        return Err(err(*op_at, "matches needs a quoted regular expression on the right"));
                    };
                    let pat = std::str::from_utf8(bytes).map_err(|_| err(*start, "the pattern is not valid UTF-8"))?;
                    let re = regex::bytes::RegexBuilder::new(pat)
                        .case_insensitive(true)
                        .unicode(false)
                        .size_limit(1 << 20)
                        .build()
                        .or_else(|_| {
                            regex::bytes::RegexBuilder::new(pat).case_insensitive(true).size_limit(1 << 20).build()
                        })
                        .map_err(|e| {
                            err(
                                *start,
                                format!("invalid regular expression: {}", e.to_string().lines().last().unwrap_or("")),
                            )
                        })?;
                    Node::Cmp { a, op, b: CmpRhs::Regex(re) }
                }
                RelOp::Contains if !ty.is_bytes_like() => {
                    return Err(err(*op_at, format!("contains needs a string or bytes field, not a {}", ty.name())))
                }
                RelOp::BitAnd if !matches!(ty, FType::UInt | FType::Bool | FType::Bytes | FType::Ether) => {
                    return Err(err(*op_at, format!("\"&\" needs a number or bytes field, not a {}", ty.name())))
                }
                _ => match &rhs {
                    Rhs::Set(items, _) => {
                        let mut set = Vec::with_capacity(items.len());
                        for it in items {
                            set.push(match it {
                                SetItem::One(t) => (literal(t, ty, op)?, None),
                                SetItem::Range(lo, hi) => {
                                    if !matches!(ty, FType::UInt | FType::Ipv4 | FType::Ipv6) {
                                        return Err(err(
                                            lo.start(),
                                            format!("a range needs a number or address field, not a {}", ty.name()),
                                        ));
                                    }
                                    (literal(lo, ty, op)?, Some(literal(hi, ty, op)?))
                                }
                            });
                        }
                        Node::Cmp { a, op, b: CmpRhs::Set(set) }
                    }
                    Rhs::Term(t @ (Term::Field { .. } | Term::Func { .. })) => {
                        let b = operand(t)?;
                        if !compatible(ty, b.ftype()) {
                            return Err(err(
                                t.start(),
                                format!(
                                    "\"{}\" is a {} and cannot be compared with a {}",
                                    lhs_name(t),
                                    b.ftype().name(),
                                    ty.name()
                                ),
                            ));
                        }
                        if op == RelOp::Contains {
                            return Err(err(t.start(), "contains needs a value on the right"));
                        }
                        Node::Cmp { a, op, b: CmpRhs::Field(b) }
                    }
                    Rhs::Term(t) => {
                        let lit = literal(t, ty, op)?;
                        let simple_op = matches!(
                            op,
                            RelOp::Eq
                                | RelOp::AllNe
                                | RelOp::AnyNe
                                | RelOp::Lt
                                | RelOp::Le
                                | RelOp::Gt
                                | RelOp::Ge
                                | RelOp::BitAnd
                        );
                        let fast = match (&a, &lit) {
                            (Operand::Field(f), Lit::U(v)) if f.layer.is_none() && f.slice.is_none() && simple_op => {
                                fields::fast_u64(f.def.name).map(|g| (g, *v))
                            }
                            _ => None,
                        };
                        let fast_val = match &a {
                            Operand::Field(f) if f.layer.is_none() && f.slice.is_none() && simple_op => {
                                fields::fast_val(f.def.name)
                            }
                            _ => None,
                        };
                        let general = Node::Cmp { a, op, b: CmpRhs::Lit(lit.clone()) };
                        match (fast, fast_val) {
                            (Some((get, lit)), _) => Node::CmpFast { get, op, lit, general: Box::new(general) },
                            (None, Some(get)) => Node::CmpFastVal { get, op, lit, general: Box::new(general) },
                            (None, None) => general,
                        }
                    }
                },
            }
        }
    })
}

fn lhs_name(t: &Term) -> String {
    match t {
        Term::Field { name, .. } | Term::Func { name, .. } => name.clone(),
        Term::Word { text, .. } => text.clone(),
        Term::Str { .. } => "string".into(),
    }
}

// ---- evaluation ----

/// A value after slicing: bytes borrowed from the frame, or up to 16 bytes of an address.
#[derive(Clone, Copy)]
enum EVal<'a> {
    U(u64),
    V4(u32),
    V6(u128),
    Mac([u8; 6]),
    Bytes(&'a [u8]),
    Inline([u8; 16], u8),
}

impl<'a> EVal<'a> {
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            EVal::Bytes(b) => Some(b),
            EVal::Inline(a, n) => Some(&a[..*n as usize]),
            EVal::Mac(m) => Some(m),
            _ => None,
        }
    }
}

fn slice_bytes(b: &[u8], off: i64, len: Option<i64>) -> Option<&[u8]> {
    let n = b.len() as i64;
    let start = if off < 0 { n + off } else { off };
    if start < 0 || start > n {
        return None;
    }
    let end = match len {
        Some(l) => start.checked_add(l)?,
        None => n,
    };
    if end > n || end < start {
        return None;
    }
    let s = &b[start as usize..end as usize];
    (!s.is_empty()).then_some(s)
}

fn gather<'a>(f: &FRef, c: &Ctx<'_, 'a>, out: &mut Values<'a>) {
    (f.def.get)(c, out);
}

/// Calls `each` for every value of the operand, stopping when it returns true; returns whether
/// it did. `count` tells how many values there were.
fn each_value<'a>(a: &Operand, c: &Ctx<'_, 'a>, mut each: impl FnMut(EVal<'_>) -> bool) -> (bool, usize) {
    let (f, kind) = match a {
        Operand::Field(f) => (f, 0),
        Operand::Len(f) => (f, 1),
        Operand::Count(f) => (f, 2),
    };
    let mut vals = Values::new();
    gather(f, c, &mut vals);
    let layer_ok = |l: u8| f.layer.is_none_or(|want| want == l);
    if kind == 2 {
        let n = vals.iter().filter(|(l, _)| layer_ok(*l)).count();
        return (each(EVal::U(n as u64)), 1);
    }
    let mut count = 0;
    for (l, v) in vals.iter() {
        if !layer_ok(*l) {
            continue;
        }
        let ev = match (v, f.slice) {
            (Val::U(u), None) => EVal::U(*u),
            (Val::V4(a), None) => EVal::V4(u32::from_be_bytes(*a)),
            (Val::V6(a), None) => EVal::V6(u128::from_be_bytes(*a)),
            (Val::Mac(m), None) => EVal::Mac(*m),
            (Val::Bytes(b), None) => EVal::Bytes(b),
            (Val::Bytes(b), Some((o, len))) => match slice_bytes(b, o, len) {
                Some(s) => EVal::Bytes(s),
                None => continue,
            },
            (Val::U(_), Some(_)) => continue,
            (other, Some((o, len))) => {
                let mut buf = [0u8; 16];
                let Some(n) = other.with_bytes(|b| match slice_bytes(b, o, len) {
                    Some(s) => {
                        buf[..s.len()].copy_from_slice(s);
                        Some(s.len())
                    }
                    None => None,
                }) else {
                    continue;
                };
                let Some(n) = n else { continue };
                EVal::Inline(buf, n as u8)
            }
        };
        let ev = if kind == 1 {
            let len = match ev {
                EVal::V4(_) => 4,
                EVal::V6(_) => 16,
                EVal::Mac(_) => 6,
                EVal::U(_) => 0,
                _ => ev.bytes().map(|b| b.len()).unwrap_or(0),
            };
            EVal::U(len as u64)
        } else {
            ev
        };
        count += 1;
        if each(ev) {
            return (true, count);
        }
    }
    (false, count)
}

fn ord_lit(v: &EVal<'_>, lit: &Lit) -> Option<std::cmp::Ordering> {
    match (v, lit) {
        (EVal::U(a), Lit::U(b)) => Some(a.cmp(b)),
        (EVal::V4(a), Lit::V4 { addr, mask }) => {
            if *mask != u32::MAX && (a & mask) == *addr {
                Some(std::cmp::Ordering::Equal)
            } else {
                Some(a.cmp(addr))
            }
        }
        (EVal::V6(a), Lit::V6 { addr, mask }) => {
            if *mask != u128::MAX && (a & mask) == *addr {
                Some(std::cmp::Ordering::Equal)
            } else {
                Some(a.cmp(addr))
            }
        }
        (EVal::Mac(m), Lit::Mac(l)) => Some(m.cmp(l)),
        (v, Lit::Bytes(l)) => v.bytes().map(|b| b.cmp(l.as_slice())),
        _ => None,
    }
}

fn ord_vals(a: &EVal<'_>, b: &EVal<'_>) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (EVal::U(x), EVal::U(y)) => Some(x.cmp(y)),
        (EVal::V4(x), EVal::V4(y)) => Some(x.cmp(y)),
        (EVal::V6(x), EVal::V6(y)) => Some(x.cmp(y)),
        _ => Some(a.bytes()?.cmp(b.bytes()?)),
    }
}

fn rel_holds(op: RelOp, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        RelOp::Eq => o == Equal,
        RelOp::AllNe | RelOp::AnyNe => o != Equal,
        RelOp::Lt => o == Less,
        RelOp::Le => o != Greater,
        RelOp::Gt => o == Greater,
        RelOp::Ge => o != Less,
        _ => false,
    }
}

fn test_lit(op: RelOp, v: &EVal<'_>, lit: &Lit) -> bool {
    match op {
        RelOp::Contains => match (v.bytes(), lit) {
            (Some(h), Lit::Bytes(n)) => n.is_empty() || h.windows(n.len()).any(|w| w == n.as_slice()),
            _ => false,
        },
        RelOp::BitAnd => match (v, lit) {
            (EVal::U(a), Lit::U(b)) => a & b != 0,
            (v, Lit::Bytes(m)) => v.bytes().is_some_and(|b| b.iter().zip(m).any(|(x, y)| x & y != 0)),
            _ => false,
        },
        _ => ord_lit(v, lit).is_some_and(|o| rel_holds(op, o)),
    }
}

fn in_set(v: &EVal<'_>, set: &[(Lit, Option<Lit>)]) -> bool {
    set.iter().any(|(lo, hi)| match hi {
        None => ord_lit(v, lo) == Some(std::cmp::Ordering::Equal),
        Some(hi) => {
            ord_lit(v, lo).is_some_and(|o| o != std::cmp::Ordering::Less)
                && ord_lit(v, hi).is_some_and(|o| o != std::cmp::Ordering::Greater)
        }
    })
}

/// The field an operand reads, unless it is `count()` (which is 0, not absent, for a missing
/// field).
fn absent(a: &Operand, c: &Ctx<'_, '_>) -> bool {
    match a {
        Operand::Field(f) | Operand::Len(f) => f.dep.absent(c),
        Operand::Count(_) => false,
    }
}

fn eval(n: &Node, c: &Ctx<'_, '_>) -> bool {
    match n {
        Node::ExistsFast(dep) => !dep.absent(c),
        Node::CmpFast { get, op, lit, general } => {
            // Several IP layers (an ICMP quote, a tunnel): the fast single-layer read is not it.
            if c.d.quoted_ip.is_some() || c.d.outer_ip.is_some() {
                return eval(general, c);
            }
            match get(c) {
                None => false,
                Some(v) => match op {
                    RelOp::Eq => v == *lit,
                    RelOp::AllNe | RelOp::AnyNe => v != *lit,
                    RelOp::Lt => v < *lit,
                    RelOp::Le => v <= *lit,
                    RelOp::Gt => v > *lit,
                    RelOp::Ge => v >= *lit,
                    RelOp::BitAnd => v & lit != 0,
                    _ => eval(general, c),
                },
            }
        }
        Node::CmpFastVal { get, op, lit, general } => {
            // Several IP layers (an ICMP quote, a tunnel): the fast single-layer read is not it.
            if c.d.quoted_ip.is_some() || c.d.outer_ip.is_some() {
                return eval(general, c);
            }
            match get(c) {
                None => false,
                Some(v) => {
                    let ev = match v {
                        Val::U(u) => EVal::U(u),
                        Val::V4(a) => EVal::V4(u32::from_be_bytes(a)),
                        Val::V6(a) => EVal::V6(u128::from_be_bytes(a)),
                        Val::Mac(m) => EVal::Mac(m),
                        Val::Bytes(b) => EVal::Bytes(b),
                    };
                    test_lit(*op, &ev, lit)
                }
            }
        }
        Node::Exists(f) if f.dep.absent(c) => false,
        Node::Cmp { a, .. } if absent(a, c) => false,
        Node::Cmp { b: CmpRhs::Field(b), .. } if absent(b, c) => false,
        Node::And(v) => v.iter().all(|n| eval(n, c)),
        Node::Or(v) => v.iter().any(|n| eval(n, c)),
        Node::Not(a) => !eval(a, c),
        Node::Exists(f) => {
            let mut vals = Values::new();
            gather(f, c, &mut vals);
            let present = vals.iter().any(|(l, _)| f.layer.is_none_or(|w| w == *l));
            present
        }
        Node::Cmp { a, op, b } => match b {
            CmpRhs::Regex(re) => each_value(a, c, |v| v.bytes().is_some_and(|b| re.is_match(b))).0,
            CmpRhs::Set(set) => each_value(a, c, |v| in_set(&v, set)).0,
            CmpRhs::Lit(lit) => {
                if *op == RelOp::AllNe {
                    // all_ne: at least one value, and none equal.
                    let (found_eq, count) = each_value(a, c, |v| !test_lit(RelOp::AllNe, &v, lit));
                    count > 0 && !found_eq
                } else {
                    each_value(a, c, |v| test_lit(*op, &v, lit)).0
                }
            }
            CmpRhs::Field(bop) => {
                if *op == RelOp::AllNe {
                    let mut any_eq = false;
                    let mut pairs = 0;
                    each_value(a, c, |x| {
                        each_value(bop, c, |y| {
                            pairs += 1;
                            any_eq |= ord_vals(&x, &y) == Some(std::cmp::Ordering::Equal);
                            any_eq
                        });
                        any_eq
                    });
                    pairs > 0 && !any_eq
                } else {
                    each_value(a, c, |x| each_value(bop, c, |y| ord_vals(&x, &y).is_some_and(|o| rel_holds(*op, o))).0)
                        .0
                }
            }
        },
    }
}

#[cfg(test)]
mod tests;
