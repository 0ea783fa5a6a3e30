//! Alert summaries in the reader's language. The alert engine writes each summary once, in
//! English, when the episode begins (the store, the digests and the JSON keep that text); the
//! dashboard and the mails show it in Japanese by recognising the box's own sentence shapes
//! and saying them again. What the wire or the admin wrote inside them (a server's error
//! message, a rule's description, user names) stays as written; a summary of another shape is
//! shown as stored.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::Lang;

/// (English shape, its Japanese rendering from the captures).
type Shape = (Regex, fn(&Captures<'_>) -> String);

fn re(s: &str) -> Regex {
    Regex::new(s).expect("summary shape")
}

/// "5 min" / "1 h" / "30 s" in Japanese.
fn window(w: &str) -> String {
    match w.split_once(' ') {
        Some((n, "min")) => format!("{n}分"),
        Some((n, "h")) => format!("{n}時間"),
        Some((n, "s")) => format!("{n}秒"),
        _ => w.to_string(),
    }
}

fn family(f: &str) -> &str {
    match f {
        "MySQL error" => "MySQL エラー",
        "PostgreSQL error" => "PostgreSQL エラー",
        "SQL Server error" => "SQL Server エラー",
        "Oracle error" => "Oracle エラー",
        "pattern" => "パターン",
        other => other,
    }
}

static SHAPES: LazyLock<Vec<Shape>> = LazyLock::new(|| {
    vec![
        // An application error: "{family} {code} {message} from {server} to {client}".
        (
            re(
                r"^(MySQL error|PostgreSQL error|SQL Server error|Oracle error|HTTP|pattern) (\S+) (.*?)(?: from (\S+))?(?: to (\S+))?$",
            ),
            |c| {
                let mut s = format!("{} {} {}", family(&c[1]), &c[2], &c[3]);
                match (c.get(4), c.get(5)) {
                    (Some(srv), Some(cli)) => s.push_str(&format!("（{} から {} へ）", srv.as_str(), cli.as_str())),
                    (Some(srv), None) => s.push_str(&format!("（{} から）", srv.as_str())),
                    (None, Some(cli)) => s.push_str(&format!("（{} へ）", cli.as_str())),
                    (None, None) => {}
                }
                s
            },
        ),
        (re(r"^MAC (\S+) carries several users \((.*)\): a router or NAT behind the switch\?$"), |c| {
            format!("MAC {} に複数のユーザー ({}): スイッチの先にルーターや NAT があるのでは？", &c[1], &c[2])
        }),
        (re(r"^new identity (.*) on MAC (\S+)$"), |c| format!("MAC {} に新しい ID {}", &c[2], &c[1])),
        // A counter over its baseline or threshold: "{rule} ({key}): {n} in {window} (usual {b}, ×{r})".
        (re(r"^(.*): (\d+) in (\d+ (?:min|h|s)) \(usual ([\d.]+), ×([\d.]+)\)$"), |c| {
            format!("{}: {}で {} (通常 {}、×{})", &c[1], window(&c[3]), &c[2], &c[4], &c[5])
        }),
        (re(r"^(.*): (\d+) in (\d+ (?:min|h|s)), above ([\d.]+)$"), |c| {
            format!("{}: {}で {} (しきい値 {} 超)", &c[1], window(&c[3]), &c[2], &c[4])
        }),
        (
            re(
                r"^the capture lost (\d+) frames \((\d+) in the kernel's capture buffer, (\d+) at the interface\)(?:; (\d+) analysed frames were not kept in the pcap ring)?$",
            ),
            |c| {
                let mut s = format!(
                    "キャプチャが {} フレームを取りこぼしました (カーネルのキャプチャバッファで {}、インターフェースで {})",
                    &c[1], &c[2], &c[3]
                );
                if let Some(r) = c.get(4) {
                    s.push_str(&format!("。解析した {} フレームを pcap リングに保存できませんでした", r.as_str()));
                }
                s
            },
        ),
        (
            re(
                r"^no frame on (\S+) since (\S+) \((\d+) min\): check the mirror port's cable and the switch's mirror session$",
            ),
            |c| {
                format!("{} に {} 以降フレームがありません ({}分): ミラーポートのケーブルとスイッチのミラー設定を確認してください", &c[1], &c[2], &c[3])
            },
        ),
        (re(r"^no frame on (\S+) since the capture began (\d+) min ago$"), |c| {
            format!("{} にキャプチャ開始 ({}分前) からフレームがありません", &c[1], &c[2])
        }),
        (re(r"^the store has refused writes for (\d+) s \((.*)\); (\d+) events held in memory$"), |c| {
            format!(
                "ストアが {} 秒間書き込みを拒否しています ({})。{} 件のイベントをメモリに保持中",
                &c[1], &c[2], &c[3]
            )
        }),
        (re(r"^storage almost full at (.*?): (.*)$"), |c| {
            format!("{} の空き容量がほとんどありません: {}", &c[1], &c[2])
        }),
    ]
});

/// `summary` (as the alert engine wrote it) in `l`.
pub fn summary(l: Lang, summary: &str) -> Cow<'_, str> {
    if l == Lang::En {
        return Cow::Borrowed(summary);
    }
    let (cleared, rest) = match summary.strip_prefix("cleared: ") {
        Some(r) => (true, r),
        None => (false, summary),
    };
    let said = SHAPES.iter().find_map(|(re, say)| re.captures(rest).map(|c| say(&c)));
    match (said, cleared) {
        (Some(s), true) => Cow::Owned(format!("解消: {s}")),
        (Some(s), false) => Cow::Owned(s),
        (None, true) => Cow::Owned(format!("解消: {rest}")),
        (None, false) => Cow::Borrowed(summary),
    }
}

static NOTES: LazyLock<Vec<Shape>> = LazyLock::new(|| {
    vec![
        (re(r"^cut to the ([^;]*) nearest the alert \(evidence_max\)$"), |c| {
            format!("アラートに近い {} に切り詰め (evidence_max)", &c[1])
        }),
        (re(r"^the ring held frames only from ([^;]*)$"), |c| format!("リングには {} 以降のフレームのみ", &c[1])),
        (re(r"^deleted to make room for newer evidence \(half of disk_budget\)$"), |_| {
            "新しい証拠のために削除 (disk_budget の半分)".to_string()
        }),
        (
            re(r"^not kept: evidence already uses half of disk_budget; delete old evidence on the captures page$"),
            |_| "保存せず: 証拠が disk_budget の半分を使用中。キャプチャページで古い証拠を削除してください".to_string(),
        ),
        (re(r"^not cut: (.*)$"), |c| format!("切り出し失敗: {}", &c[1])),
    ]
});

/// An evidence window's note (the ring's "; "-joined remarks) in `l`.
pub fn window_note(l: Lang, note: &str) -> Cow<'_, str> {
    if l == Lang::En {
        return Cow::Borrowed(note);
    }
    // The "not kept" remark has a "; " of its own: try the whole note first.
    if let Some(s) = NOTES.iter().find_map(|(re, say)| re.captures(note).map(|c| say(&c))) {
        return Cow::Owned(s);
    }
    let parts: Vec<String> = note
        .split("; ")
        .map(|p| NOTES.iter().find_map(|(re, say)| re.captures(p).map(|c| say(&c))).unwrap_or_else(|| p.to_string()))
        .collect();
    Cow::Owned(parts.join("。"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_s_own_sentences_are_said_in_japanese() {
        let ja = |s: &str| summary(Lang::Ja, s).into_owned();
        assert_eq!(
            ja("PostgreSQL error 40P01 deadlock detected from 10.77.2.20:5432 to 10.77.1.10"),
            "PostgreSQL エラー 40P01 deadlock detected（10.77.2.20:5432 から 10.77.1.10 へ）"
        );
        assert_eq!(
            ja("A burst of HTTP server errors (10.77.2.20): 9 in 5 min, above 5"),
            "A burst of HTTP server errors (10.77.2.20): 5分で 9 (しきい値 5 超)"
        );
        assert_eq!(
            ja("cleared: MAC 02:00:00:00:01:01 carries several users (alice, carol): a router or NAT behind the switch?"),
            "解消: MAC 02:00:00:00:01:01 に複数のユーザー (alice, carol): スイッチの先にルーターや NAT があるのでは？"
        );
        assert_eq!(
            ja("no frame on eth1 since 2026-12-06T14:02:54Z (7 min): check the mirror port's cable and the switch's mirror session"),
            "eth1 に 2026-12-06T14:02:54Z 以降フレームがありません (7分): ミラーポートのケーブルとスイッチのミラー設定を確認してください"
        );
        assert_eq!(
            ja("LAN retransmissions: 120 in 10 min (usual 3.0, ×40.0)"),
            "LAN retransmissions: 10分で 120 (通常 3.0、×40.0)"
        );
        assert_eq!(
            window_note(Lang::Ja, "the ring held frames only from 2026-06-05T10:00:00Z; cut to the 1.0 MiB nearest the alert (evidence_max)"),
            "リングには 2026-06-05T10:00:00Z 以降のフレームのみ。アラートに近い 1.0 MiB に切り詰め (evidence_max)"
        );
        // Another shape, and English, stay as stored.
        assert_eq!(ja("something the box never says"), "something the box never says");
        assert_eq!(summary(Lang::En, "cleared: x"), "cleared: x");
    }
}
