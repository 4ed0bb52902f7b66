"""What KPIs are called, in the languages sqm speaks (English and Simplified Chinese). Pure.

Shared by the board and by the alert engine's default texts, so that a tile and an alert say the
same name for the same figure.

    >>> kpi_label("abandonment_rate", "zh-CN"), kpi_label("no_such_kpi", "en"), lang_of("zh")
    ('放弃率', 'no_such_kpi', 'zh-CN')
"""

from __future__ import annotations

LANGS = ("en", "zh-CN")
DEFAULT_LANG = "en"
_ALIASES = {"en": "en", "en-us": "en", "en-gb": "en", "zh": "zh-CN", "zh-cn": "zh-CN", "zh-hans": "zh-CN",
            "zh-sg": "zh-CN"}

KPI_LABELS: dict[str, dict[str, str]] = {
    "service_level": {"en": "Service level", "zh-CN": "服务水平"},
    "asa_s": {"en": "Avg. speed of answer", "zh-CN": "平均应答时间"},
    "abandonment_rate": {"en": "Abandonment", "zh-CN": "放弃率"},
    "calls_waiting": {"en": "Calls waiting", "zh-CN": "排队来电"},
    "longest_wait_s": {"en": "Longest wait", "zh-CN": "最长等待"},
    "agents_staffed": {"en": "Agents on", "zh-CN": "在岗坐席"},
    "agents_available": {"en": "Agents available", "zh-CN": "空闲坐席"},
    "agents_on_contact": {"en": "Agents on a contact", "zh-CN": "通话中坐席"},
    "agents_after_contact_work": {"en": "Agents in wrap-up", "zh-CN": "话后处理坐席"},
    "agents_away": {"en": "Agents away", "zh-CN": "离开坐席"},
    "longest_available_s": {"en": "Longest available", "zh-CN": "最长空闲"},
    "longest_away_s": {"en": "Longest away", "zh-CN": "最长离开"},
    "longest_after_contact_work_s": {"en": "Longest wrap-up", "zh-CN": "最长话后处理"},
    "calls_waiting_unattended": {"en": "Calls waiting, nobody free", "zh-CN": "排队且无空闲坐席"},
    "traffic_erlangs": {"en": "Traffic (Erlangs)", "zh-CN": "话务量（爱尔兰）"},
    "required_agents": {"en": "Agents needed", "zh-CN": "所需坐席"},
    "staffing_gap": {"en": "Staffing gap", "zh-CN": "人手缺口"},
    "predicted_service_level": {"en": "Predicted service level", "zh-CN": "预测服务水平"},
    "occupancy": {"en": "Occupancy", "zh-CN": "坐席占用率"},
    "calls_offered_forecast": {"en": "Calls expected this quarter hour", "zh-CN": "本时段预计来电"},
    "calls_offered_next": {"en": "Calls next 15 min", "zh-CN": "未来15分钟来电"},
    "required_agents_next": {"en": "Agents needed next 15 min", "zh-CN": "未来15分钟所需坐席"},
    "staffing_gap_next": {"en": "Gap next 15 min", "zh-CN": "未来15分钟人手缺口"},
    "away_share": {"en": "Time away", "zh-CN": "离开时间占比"},
    "first_response_sla_rate": {"en": "First-response SLA", "zh-CN": "首次响应达标率"},
    "backlog": {"en": "Backlog", "zh-CN": "积压工单"},
    "first_response_at_risk": {"en": "At risk", "zh-CN": "即将超时"},
    "first_response_overdue": {"en": "Overdue", "zh-CN": "已超时"},
    "fcr_rate": {"en": "FCR (first contact)", "zh-CN": "首次解决率"},
    "csat": {"en": "CSAT", "zh-CN": "客户满意度"},
    "nps": {"en": "NPS", "zh-CN": "净推荐值"},
    "ces_mean": {"en": "Customer effort", "zh-CN": "客户费力度"},
    "comments": {"en": "Comments", "zh-CN": "评论数"},
    "negative_comment_rate": {"en": "Negative comments", "zh-CN": "负面评论率"},
    "sentiment_mean": {"en": "Comment sentiment", "zh-CN": "评论情感均值"},
    "mismatch_rate": {"en": "Comments contradicting scores", "zh-CN": "评论与评分不符率"},
    "top_topic_comments": {"en": "Comments on the top topic", "zh-CN": "首要话题评论数"},
    "aht_s": {"en": "Avg. handle time", "zh-CN": "平均处理时长"},
    "first_response_mean_s": {"en": "First response (mean)", "zh-CN": "平均首次响应"},
    "resolution_mean_s": {"en": "Resolution (mean)", "zh-CN": "平均解决时长"},
    "tickets_created": {"en": "Tickets created", "zh-CN": "新建工单"},
    "calls_offered": {"en": "Calls offered", "zh-CN": "呼入量"},
    "oldest_unanswered_s": {"en": "Oldest unanswered", "zh-CN": "最久未响应"},
    "first_response_p90_s": {"en": "First response (p90)", "zh-CN": "首次响应（90分位）"},
    "resolution_p90_s": {"en": "Resolution (p90)", "zh-CN": "解决时长（90分位）"},
    "reopen_rate": {"en": "Reopened", "zh-CN": "重开率"},
    "complaint_rate": {"en": "Complaint rate", "zh-CN": "投诉率"},
    "complaint_resolved_24h_rate": {"en": "Complaints resolved in 24 h", "zh-CN": "投诉24小时解决率"},
    "bot_resolution_rate": {"en": "Resolved by bot", "zh-CN": "机器人解决率"},
    "backlog_growth": {"en": "Backlog growth", "zh-CN": "积压增长"},
    "calls_answered": {"en": "Calls answered", "zh-CN": "接通量"},
    "calls_abandoned": {"en": "Calls abandoned", "zh-CN": "放弃量"},
    "survey_responses": {"en": "Survey responses", "zh-CN": "评价数"},
}


def lang_of(tag: str) -> str | None:
    """The supported language a tag names (`zh`, `zh-CN`, `zh-Hans` -> `zh-CN`), else None."""
    return _ALIASES.get(tag.strip().lower())


def kpi_label(kpi: str, lang: str) -> str:
    return KPI_LABELS.get(kpi, {}).get(lang, kpi)
