"""The board's words and number formats in English and Simplified Chinese. Pure.

    >>> pick_lang("zh-CN", None), pick_lang(None, "zh-TW,zh;q=0.9,en;q=0.5"), pick_lang(None, "fr")
    ('zh-CN', 'zh-CN', 'en')
    >>> fmt(0.8534, "ratio", "en"), fmt(95.0, "seconds", "en"), fmt(3725.0, "seconds", "zh-CN")
    ('85.3%', '1m 35s', '1小时02分')
"""

from __future__ import annotations

from stream.labels import KPI_LABELS, LANGS, kpi_label

__all__ = ["KPI_LABELS", "LANGS", "kpi_label"]

WORDS: dict[str, dict[str, str]] = {
    "title": {"en": "Service board", "zh-CN": "服务监控大屏"},
    "all": {"en": "All", "zh-CN": "全部"},
    "team": {"en": "Team", "zh-CN": "团队"}, "agent": {"en": "Agent", "zh-CN": "坐席"},
    "queue": {"en": "Queue", "zh-CN": "队列"}, "channel": {"en": "Channel", "zh-CN": "渠道"},
    "tier": {"en": "Tier", "zh-CN": "客户等级"}, "window": {"en": "Window", "zh-CN": "时间窗口"},
    "target": {"en": "target", "zh-CN": "目标"}, "of_target": {"en": "of target", "zh-CN": "达成"},
    "vs_yesterday": {"en": "vs yesterday", "zh-CN": "较昨日"},
    "vs_last_week": {"en": "vs last week", "zh-CN": "较上周"},
    "ok": {"en": "OK", "zh-CN": "正常"}, "warning": {"en": "Warning", "zh-CN": "警告"},
    "critical": {"en": "Critical", "zh-CN": "严重"}, "no_data": {"en": "no data", "zh-CN": "无数据"},
    "queues": {"en": "Queues", "zh-CN": "队列状态"}, "waiting": {"en": "Waiting", "zh-CN": "排队"},
    "longest": {"en": "Longest", "zh-CN": "最长等待"}, "sl": {"en": "SL", "zh-CN": "服务水平"},
    "abandoned": {"en": "Aband.", "zh-CN": "放弃率"},
    "agents_free": {"en": "Agents", "zh-CN": "坐席"},
    "agents_free_title": {"en": "available / staffed · needed (Erlang C)", "zh-CN": "空闲/在岗 · 需要（Erlang C）"},
    "agent_grid": {"en": "Agents", "zh-CN": "坐席状态"}, "agents_on": {"en": "on", "zh-CN": "在岗"},
    "agents_free_now": {"en": "available", "zh-CN": "空闲"},
    "no_agents": {"en": "No agent events yet", "zh-CN": "暂无坐席数据"},
    "outlook": {"en": "Next 2 hours", "zh-CN": "未来 2 小时"},
    "outlook_chart": {"en": "Actual and forecast per quarter hour, the last 2 hours and the next 2",
                      "zh-CN": "每 15 分钟的实际与预测：过去 2 小时与未来 2 小时"},
    "forecast_error": {"en": "error 24 h", "zh-CN": "24 小时误差"},
    "actual": {"en": "actual", "zh-CN": "实际"}, "forecast": {"en": "forecast", "zh-CN": "预测"},
    "quarter": {"en": "From", "zh-CN": "时段"}, "expected": {"en": "Expected", "zh-CN": "预计"},
    "needed": {"en": "Need / on", "zh-CN": "需 / 在岗"},
    "needed_title": {"en": "Agents Erlang C needs for the expected calls / agents on now (not offline); "
                           "▲ when the need exceeds those on minus those away",
                     "zh-CN": "按预计来电量所需坐席 / 当前在岗坐席（未下线）；所需超过在岗减离开时显示 ▲"},
    "no_forecast": {"en": "No forecast yet: it is made every minute from the history",
                    "zh-CN": "暂无预测：每分钟根据历史数据生成"},
    "state_available": {"en": "Available", "zh-CN": "空闲"},
    "state_on_contact": {"en": "On contact", "zh-CN": "通话中"},
    "state_after_contact_work": {"en": "Wrap-up", "zh-CN": "话后处理"}, "state_away": {"en": "Away", "zh-CN": "离开"},
    "state_offline": {"en": "Offline", "zh-CN": "离线"},
    "reason_break": {"en": "break", "zh-CN": "休息"}, "reason_lunch": {"en": "lunch", "zh-CN": "午餐"},
    "reason_training": {"en": "training", "zh-CN": "培训"}, "reason_meeting": {"en": "meeting", "zh-CN": "会议"},

    "tickets": {"en": "Most urgent tickets", "zh-CN": "最紧急工单"}, "due": {"en": "due in", "zh-CN": "剩余"},
    "overdue_by": {"en": "overdue by", "zh-CN": "已超时"}, "age": {"en": "age", "zh-CN": "已等待"},
    "responded": {"en": "answered", "zh-CN": "已响应"},
    "rank_teams": {"en": "Teams", "zh-CN": "团队排名"}, "rank_agents": {"en": "Agents", "zh-CN": "坐席排名"},
    "alerts": {"en": "Firing alerts", "zh-CN": "告警"}, "ack": {"en": "Acknowledge", "zh-CN": "确认"},
    "acked_by": {"en": "acknowledged by", "zh-CN": "已确认："}, "no_alerts": {"en": "No alerts", "zh-CN": "无告警"},
    "comments": {"en": "Low-score and negative comments", "zh-CN": "低分与负面评价"},
    "no_comments": {"en": "None", "zh-CN": "暂无"},
    "voice": {"en": "What customers say", "zh-CN": "客户在说什么"},
    "no_topics": {"en": "No recurring complaint", "zh-CN": "暂无集中反映的问题"},
    "topic_comments": {"en": "Comments on", "zh-CN": "话题评论："},
    "all_comments": {"en": "show all", "zh-CN": "全部评论"},
    "vs_before": {"en": "vs the window before", "zh-CN": "较上一时段"},
    "label_negative": {"en": "negative", "zh-CN": "负面"}, "label_neutral": {"en": "neutral", "zh-CN": "中性"},
    "label_positive": {"en": "positive", "zh-CN": "正面"},
    "mismatch": {"en": "contradicts the score", "zh-CN": "与评分不符"},
    "no_tickets": {"en": "No open tickets", "zh-CN": "无未结工单"},
    "updated": {"en": "Updated", "zh-CN": "更新于"}, "stale": {"en": "no update for", "zh-CN": "未更新已"},
    "sound": {"en": "Sound on critical", "zh-CN": "严重告警提示音"}, "theme": {"en": "Theme", "zh-CN": "主题"},
    "dark": {"en": "Dark", "zh-CN": "深色"}, "light": {"en": "Light", "zh-CN": "浅色"},
    "language": {"en": "Language", "zh-CN": "语言"}, "show": {"en": "Show", "zh-CN": "显示"},
    "connecting": {"en": "connecting", "zh-CN": "连接中"}, "back": {"en": "All scopes", "zh-CN": "返回全部"},
    "count": {"en": "n", "zh-CN": "样本"},
    "now": {"en": "now", "zh-CN": "当前"}, "at_firing": {"en": "when it fired", "zh-CN": "触发时"},
    "at_ack": {"en": "at ack", "zh-CN": "确认时"},
    "verdict_waiting": {"en": "checking in 15 min", "zh-CN": "15分钟后复核"},
    "verdict_recovered": {"en": "recovered", "zh-CN": "已恢复"},
    "verdict_improved": {"en": "improving", "zh-CN": "好转"},
    "verdict_not_improved": {"en": "not improving", "zh-CN": "未见好转"},
    "alert_on": {"en": "alert", "zh-CN": "告警"}, "live": {"en": "live", "zh-CN": "实时"},
    "more_alerts": {"en": "more firing alerts: see /v1/alerts", "zh-CN": "条告警未显示：见 /v1/alerts"},
    "signin": {"en": "To acknowledge alerts, sign in once with an admin key: /board/login",
               "zh-CN": "如需确认告警，请用管理员密钥登录一次：/board/login"},
    "signin_title": {"en": "Sign in", "zh-CN": "登录"},
    "signin_why": {"en": "This board needs a key: a read key for a wall screen, an admin key to acknowledge alerts.",
                   "zh-CN": "查看本看板需要密钥：大屏使用只读密钥，确认告警需要管理员密钥。"},
    "signin_key": {"en": "Key", "zh-CN": "密钥"},
    "signin_button": {"en": "Sign in", "zh-CN": "登录"},
    "signin_note": {"en": "The key is not kept in this browser: it keeps a signed session instead, renewed each time "
                            "the board is opened.",
                    "zh-CN": "浏览器不会保存密钥本身，只保存一个签名会话；每次打开看板时自动续期。"},
    "signin_bad": {"en": "This key is not valid (revoked, or mistyped).", "zh-CN": "密钥无效（已吊销或输入有误）。"},
    "signin_url_key": {"en": "Keys are no longer accepted in the address: type the key in below (it would stay in "
                                "the browser's history).",
                       "zh-CN": "地址中的密钥已不再接受：请在下方输入密钥（否则它会留在浏览器历史记录中）。"},
    "signin_cross_site": {"en": "Sign-in refused: the form must be sent from this page.",
                          "zh-CN": "登录被拒绝：必须从本页面提交表单。"},
}


def pick_lang(query: str | None, accept_language: str | None) -> str:
    """`?lang=` when it names a supported language, else the first Chinese or English entry of
    Accept-Language, else English."""
    if query in LANGS:
        return query
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "en"


def word(key: str, lang: str) -> str:
    return WORDS[key][lang]


def duration(seconds: float, lang: str) -> str:
    s = int(round(seconds))
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    if lang == "zh-CN":
        return f"{h}小时{m:02d}分" if h else f"{m}分{sec:02d}秒" if m else f"{sec}秒"
    return f"{h}h {m:02d}m" if h else f"{m}m {sec:02d}s" if m else f"{sec}s"


def fmt(value: float | None, unit: str, lang: str) -> str:
    """A KPI value for people: ratios as percentages, seconds as durations, counts as integers."""
    if value is None:
        return "–"
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "seconds":
        return duration(value, lang)
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) < 100 else f"{value:,.0f}"


def fmt_change(delta: float | None, unit: str) -> str:
    """A change as people read it: +2.1 pt for ratios, +35s for durations, +3 for counts."""
    if delta is None:
        return "–"
    sign = "+" if delta > 0 else "−" if delta < 0 else "±"
    d = abs(delta)
    if unit == "ratio":
        return f"{sign}{d * 100:.1f} pt"
    if unit == "seconds":
        return f"{sign}{d:.0f}s"
    return f"{sign}{d:,.0f}" if unit == "count" else f"{sign}{d:.1f}"
