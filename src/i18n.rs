//! The words of the dashboard and the mails in English and Japanese (the first users are
//! Japanese branch admins). One table, so a missing translation is a failing test, not an
//! English word on a Japanese page.

pub mod summary;

/// A language the dashboard and the mails speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Ja,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "ja" => Some(Lang::Ja),
            _ => None,
        }
    }

    /// The preferred language of an `Accept-Language` header: the first of en/ja by quality.
    pub fn from_accept_language(h: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in h.split(',').take(32) {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            if let Some(l) = Lang::parse(primary) {
                if best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, l));
                }
            }
        }
        best.map(|(_, l)| l).unwrap_or_default()
    }

    /// The text of `key` in this language; the key itself if the table lacks it (a test makes
    /// sure it does not).
    pub fn t(self, key: &str) -> &'static str {
        match TEXTS.binary_search_by(|(k, _, _)| (*k).cmp(key)) {
            Ok(i) => match self {
                Lang::En => TEXTS[i].1,
                Lang::Ja => TEXTS[i].2,
            },
            Err(_) => {
                debug_assert!(false, "no text for {key:?}");
                "?"
            }
        }
    }
}

/// (key, English, Japanese), sorted by key.
pub const TEXTS: &[(&str, &str, &str)] = &[
    ("ack", "Acknowledge", "確認済みにする"),
    ("acked", "acknowledged", "確認済み"),
    ("active", "active", "発生中"),
    ("active_alerts", "Active alerts", "発生中のアラート"),
    ("alert_n", "alert {}", "アラート {}"),
    ("alerts", "Alerts", "アラート"),
    ("all", "all", "すべて"),
    ("analysed_file", "analysed file", "解析したファイル"),
    ("any", "any", "すべて"),
    ("app_errors", "Application errors", "アプリケーションエラー"),
    ("axis_count", "{unit} per {interval}", "{interval}ごとの{unit}"),
    ("axis_rate", "{unit}, mean per {interval}", "{unit}（{interval}ごとの平均）"),
    ("baseline", "Baseline (7 days before)", "ベースライン (直前7日間)"),
    ("baseline_none", "No baseline yet: pin a capture of normal operation, then diff the others against it.", "ベースラインがありません。正常時のキャプチャを固定し、他のキャプチャと比較してください。"),
    ("baseline_pinned", "Normal baseline", "正常時のベースライン"),
    ("bytes", "Bytes", "バイト"),
    ("bytes_in", "Bytes in", "受信バイト"),
    ("bytes_out", "Bytes out", "送信バイト"),
    ("bytes_per_s", "bytes/s", "バイト/秒"),
    ("bytes_word", "bytes", "バイト数"),
    ("cancel", "Cancel", "キャンセル"),
    ("capture_silent", "No frames on the mirror port since {}: check its cable and the switch's mirror session.", "{} 以降、ミラーポートにフレームがありません。ケーブルとスイッチのミラー設定を確認してください。"),
    ("captured_files", "Capture files", "キャプチャファイル"),
    ("captures", "Captures", "キャプチャ"),
    ("check", "Check and preview", "検査とプレビュー"),
    ("cleared", "cleared", "解消"),
    ("client", "Client", "クライアント"),
    ("clock_unsynced", "The clock is not synchronised; retention waits and times may be wrong", "時刻が同期されていません。保持処理は待機中で、時刻が正しくない可能性があります"),
    ("code", "Code", "コード"),
    ("count", "Count", "件数"),
    ("counter", "Counter", "カウンタ"),
    ("counters", "Counters", "カウンタ"),
    ("days_unit", "days", "日"),
    ("db_size", "Database", "データベース"),
    ("delete", "Delete", "削除"),
    ("delete_confirm", "Delete these {} evidence windows ({})? Their files are removed from the box.", "この {} 個の証拠ウィンドウ ({}) を削除しますか？ ファイルはボックスから削除されます。"),
    ("delete_selected", "Delete selected", "選択したものを削除"),
    ("delete_yes", "Yes, delete", "削除する"),
    ("deleted_n", "{} evidence windows deleted.", "{} 個の証拠ウィンドウを削除しました。"),
    ("diff_against", "Diff against the baseline", "ベースラインと比較"),
    ("diff_count", "{} differences, most important first", "{} 件の差分（重要な順）"),
    ("diff_failure", "failure", "障害時"),
    ("diff_first", "First differing exchange: {}", "最初に異なったやり取り: {}"),
    ("diff_foot", "Made by mirrorwatch diff. Frame numbers are as Wireshark numbers them in each file.", "mirrorwatch diff が作成しました。フレーム番号は各ファイルで Wireshark が付ける番号です。"),
    ("diff_frame", "frame", "フレーム"),
    ("diff_kind_changed_outcome", "changed outcome", "結果の変化"),
    ("diff_kind_error_only_in_failure", "error only in failure", "障害時のみのエラー"),
    ("diff_kind_more_errors", "more errors", "エラー増加"),
    ("diff_kind_only_in_failure", "only in failure", "障害時のみ"),
    ("diff_kind_only_in_normal", "only in normal", "正常時のみ"),
    ("diff_kind_retransmissions", "retransmissions", "再送"),
    ("diff_kind_slower", "slower", "遅延"),
    ("diff_no_differences", "No differences: every service ended its exchanges as in the normal capture.", "差分はありません。すべてのサービスが正常時と同じようにやり取りを終えています。"),
    ("diff_normal", "normal", "正常時"),
    ("diff_not_here", "This exchange did not happen here.", "このやり取りはここでは発生していません。"),
    ("diff_service", "service", "サービス"),
    ("diff_title", "Normal vs failure", "正常時と障害時の比較"),
    ("diff_what", "what", "内容"),
    ("disk", "Disk", "ディスク"),
    ("disk_free", "free", "空き"),
    ("download", "Download", "ダウンロード"),
    ("drops", "Capture drops", "キャプチャ取りこぼし"),
    ("drops_interface", "interface", "インターフェース"),
    ("drops_kernel", "kernel buffer", "カーネルバッファ"),
    ("each_episode", "each episode on its own row", "発生ごとに1行"),
    ("edit", "Edit", "編集"),
    ("episodes", "episodes", "回"),
    ("error", "Error", "エラー"),
    ("errors_found", "Errors", "エラー"),
    ("errors_list", "Errors", "エラー一覧"),
    ("errors_word", "errors", "エラー件数"),
    ("evidence", "Evidence", "証拠"),
    ("evidence_of_alert", "evidence of alert {} ({})", "アラート {} の証拠 ({})"),
    ("evidence_window", "Evidence window", "証拠ウィンドウ"),
    ("evidence_windows", "Evidence windows", "証拠ウィンドウ"),
    ("examples", "Latest messages", "最新のメッセージ"),
    ("export_dropped", "not exported", "未送出"),
    ("export_file", "to the file", "ファイルへ"),
    ("export_syslog", "to syslog", "syslog へ"),
    ("family", "Family", "種別"),
    ("file", "File", "ファイル"),
    ("files", "files", "ファイル"),
    ("filter", "Filter", "絞り込み"),
    ("first_seen", "First seen", "初回"),
    ("fleet_export", "Fleet export", "フリート出力"),
    ("frame", "Frame", "フレーム"),
    ("frames", "frames", "フレーム"),
    ("frames_n", "{} frames", "{} フレーム"),
    ("frames_word", "frames", "フレーム数"),
    ("group", "Group", "グループ"),
    ("groups", "Top groups", "上位グループ"),
    ("history_of", "History of", "履歴:"),
    ("host_pair", "Sender → receiver", "送信元 → 宛先"),
    ("hostname", "Host name", "ホスト名"),
    ("identities", "Identities", "ID"),
    ("ip", "IP address", "IPアドレス"),
    ("key", "Key", "キー"),
    ("last_minute_wall", "last minute", "直近1分間"),
    ("last_packet", "Last packet", "最後のパケット"),
    ("last_seen", "Last seen", "最終"),
    ("last_value", "Last minute", "直近1分"),
    ("login", "Log in", "ログイン"),
    ("login_failed", "Wrong password.", "パスワードが違います。"),
    (
        "login_limited",
        "Too many attempts: try again in a minute.",
        "試行回数が多すぎます。1分後にもう一度お試しください。",
    ),
    ("logout", "Log out", "ログアウト"),
    ("lost", "Lost segments", "欠落セグメント"),
    ("mac", "MAC", "MAC"),
    ("mail_capture_time", "capture time", "キャプチャ時刻"),
    ("mail_client", "client", "クライアント"),
    ("mail_dashboard", "Dashboard", "ダッシュボード"),
    ("mail_footer_alert", "Repeats of this alert are rolled into the digest; no new mail for it until its suppression time has passed.", "このアラートの繰り返しはまとめメールに集約されます。抑制時間が過ぎるまで、このアラートの新しいメールは送られません。"),
    ("mail_footer_daily", "Sent by the daily digest job ([jobs] digest).", "日次ジョブ ([jobs] digest) が送信しました。"),
    ("mail_footer_digest", "One digest per interval: ongoing alerts are summed here instead of one mail each.", "一定間隔ごとに1通: 継続中のアラートは1件ずつではなく、ここにまとめて送られます。"),
    ("mail_how_much", "How much", "量"),
    ("mail_key", "key", "キー"),
    ("mail_lan_retransmissions", "LAN retransmissions", "LAN内の再送"),
    ("mail_new_identities", "New identities", "新しいID"),
    ("mail_ongoing", "still occurring", "継続中"),
    ("mail_server", "server", "サーバー"),
    ("mail_since", "Since", "発生時刻"),
    ("mail_tcp_retransmissions", "TCP retransmissions", "TCP再送"),
    ("mail_user", "user", "ユーザー"),
    ("mail_what", "What", "内容"),
    ("mail_where", "Where", "場所"),
    ("menu", "☰ Menu", "☰ メニュー"),
    ("message", "Message", "メッセージ"),
    ("mode_analysis", "Offline analysis", "オフライン解析"),
    ("mode_daemon", "Live capture", "ライブキャプチャ"),
    ("newest_stored_minute", "newest stored minute", "保存済みの最新の1分間"),
    ("next_page", "older »", "次へ »"),
    ("no_data", "No data in this range.", "この期間のデータはありません。"),
    ("no_password", "No dashboard password is set yet.", "ダッシュボードのパスワードがまだ設定されていません。"),
    ("no_password_how", "Set one on the box with:", "本体で次のコマンドを実行して設定してください:"),
    ("no_password_image", "On the Raspberry Pi image: put the password on the first line of mirrorwatch-password.txt on the SD card's FAT partition (RASPIFIRM) and restart the box.", "Raspberry Pi イメージでは: SD カードの FAT パーティション (RASPIFIRM) に mirrorwatch-password.txt を作り、1 行目にパスワードを書いて本体を再起動してください。"),
    ("none", "None.", "なし。"),
    ("note", "Note", "備考"),
    ("outcome", "Outcome", "結果"),
    ("overview", "Overview", "概要"),
    ("packets", "Packets", "パケット"),
    ("packets_per_s", "packets/s", "パケット/秒"),
    ("page_of", "page {} of {}", "{} / {} ページ"),
    ("password", "Password", "パスワード"),
    (
        "password_file_broken",
        "The dashboard's password file cannot be read: see the daemon's log, then set the password again with `mirrorwatch passwd`.",
        "ダッシュボードのパスワードファイルを読めません。デーモンのログを確認し、`mirrorwatch passwd` でパスワードを設定し直してください。",
    ),
    ("pcap_ring", "pcap ring", "pcap リング"),
    ("periods_against", "Against", "比較対象"),
    ("periods_compare", "Now against another period", "今と別の期間の比較"),
    ("periods_day_before", "the same hours a day earlier", "1日前の同じ時間帯"),
    ("periods_from", "From (UTC)", "開始（UTC）"),
    ("periods_help", "Compares how the exchanges stored for two periods ended (from the store, no capture needed): by default the last hour against the same hour a week earlier.", "保存済みの2つの期間のやり取りの結末を比較します（キャプチャ不要）。既定では直近1時間と1週間前の同じ時間帯を比べます。"),
    ("periods_run", "Compare", "比較"),
    ("periods_to", "To (UTC)", "終了（UTC）"),
    ("periods_week_before", "the same hours a week earlier", "1週間前の同じ時間帯"),
    ("pin", "Pin as baseline", "ベースラインに固定"),
    ("prev_page", "« newer", "« 前へ"),
    ("preview", "Preview", "プレビュー"),
    ("preview_over", "Frames matched over", "一致したフレーム数 対象:"),
    ("preview_range", "over the last", "直近"),
    ("private", "private", "プライベート"),
    ("protocol", "Protocol", "プロトコル"),
    ("range", "Range", "期間"),
    ("rate", "Retransmitted", "再送率"),
    ("realm", "Realm", "レルム"),
    ("retransmissions", "Retransmissions", "再送"),
    ("ring_failing", "writing stopped", "書き込み停止中"),
    ("ring_lost", "frames not kept", "未保存フレーム"),
    ("rows_found", "{} found", "{} 件"),
    ("rule", "Rule", "ルール"),
    ("rules", "Rules", "ルール"),
    ("rules_link", "a link placed on the box (loaded, not edited here)", "本体に置かれたリンク(読み込まれますが、ここでは編集できません)"),
    ("rules_loaded", "Rules in effect", "適用中のルール"),
    ("rules_saved", "Saved; the rules are reloaded.", "保存しました。ルールを再読み込みします。"),
    (
        "rules_saved_analysis",
        "Saved. This dashboard shows a finished analysis: run it again to apply the rules.",
        "保存しました。この画面は完了した解析の結果です。ルールを反映するには再度解析してください。",
    ),
    ("rules_valid", "No errors.", "エラーはありません。"),
    ("save", "Save", "保存"),
    ("search", "Search", "検索"),
    ("search_hint", "user, MAC, IP or host name", "ユーザー、MAC、IP、ホスト名"),
    ("select", "Select", "選択"),
    ("server", "Server", "サーバー"),
    ("sev_critical", "critical", "重大"),
    ("sev_high", "high", "高"),
    ("sev_info", "info", "情報"),
    ("sev_low", "low", "低"),
    ("sev_medium", "medium", "中"),
    ("sev_warning", "warning", "警告"),
    ("severity", "Severity", "重要度"),
    (
        "shared_mac",
        "One MAC, several users (a router or NAT behind the port?)",
        "1つのMACに複数ユーザー (ルーターやNATの疑い)",
    ),
    ("silent", "silent", "無通信"),
    ("since", "Since", "開始"),
    ("source", "Source", "取得元"),
    ("state", "State", "状態"),
    ("store", "Store", "ストア"),
    ("store_failing", "failing", "書き込み失敗中"),
    ("store_holds", "holds", "保持"),
    ("store_ok", "writing", "正常"),
    ("summary", "Summary", "概要"),
    ("suppressed", "suppressed", "抑制中"),
    ("syslog_away", "collector away", "受信側と未接続"),
    ("time", "Time", "時刻"),
    ("time_jumps", "Time jumps", "時刻の飛び"),
    ("times_baseline", "× baseline", "× ベースライン"),
    ("top_users", "Top users by volume", "通信量の多いユーザー"),
    ("total", "Total", "合計"),
    ("traffic", "Traffic", "トラフィック"),
    ("unit_h", "h", "時間"),
    ("unit_min", "min", "分"),
    ("upload", "Upload a capture", "キャプチャをアップロード"),
    ("uploaded", "uploaded", "アップロード"),
    ("user", "User", "ユーザー"),
    ("value", "Value", "値"),
    ("window_pending", "being cut", "作成中"),
    ("window_state", "State", "状態"),
    ("windows_summary", "{} windows, {} kept", "{} 個、保存済み {}"),
    ("wstate_empty", "empty", "空"),
    ("wstate_evicted", "deleted for newer evidence", "新しい証拠のため削除"),
    ("wstate_failed", "failed", "失敗"),
    ("wstate_kept", "kept", "保存済み"),
    ("wstate_pending", "being cut", "切り出し中"),
    ("wstate_skipped", "not kept", "保存せず"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_complete() {
        for w in TEXTS.windows(2) {
            assert!(w[0].0 < w[1].0, "{} before {}", w[0].0, w[1].0);
        }
        for (k, en, ja) in TEXTS {
            assert!(!en.is_empty() && !ja.is_empty(), "{k}");
        }
        assert_eq!(Lang::Ja.t("alerts"), "アラート");
        assert_eq!(Lang::En.t("alerts"), "Alerts");
    }

    #[test]
    fn accept_language_picks_by_quality() {
        assert_eq!(Lang::from_accept_language("ja,en-US;q=0.9,en;q=0.8"), Lang::Ja);
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9,ja;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept_language("fr-FR,ja;q=0.5"), Lang::Ja);
        assert_eq!(Lang::from_accept_language("de"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
    }
}
