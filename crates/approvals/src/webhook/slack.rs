//! The Slack-compatible webhook: an incoming-webhook message (`text` for notifications,
//! `blocks` for the message) with buttons that open the console on the request, to
//! approve or deny it there with the approver's own sign-in. Slack's incoming webhooks
//! are not signed; the links carry nothing that decides by itself.

use serde_json::json;

use super::{Announcement, Outgoing};

pub fn payload(announcement: &Announcement) -> Outgoing {
    let a = &announcement.approval;
    let who = if a.principal.display_name.is_empty() {
        a.principal.subject.clone()
    } else {
        format!("{} ({})", a.principal.display_name, a.principal.subject)
    };
    let headline = match announcement.event {
        "approval.requested" => format!(
            "Approval {} requested by {who} on {}: {}",
            a.id, a.connection, a.reason
        ),
        "approval.decided" => match &announcement.decision {
            Some(d) => format!(
                "Approval {} {}d by {}: {} (now {})",
                a.id,
                d.verdict.as_str(),
                d.approver.subject,
                d.reason,
                a.status
            ),
            None => format!("Approval {} is {}", a.id, a.status),
        },
        "approval.expired" => format!("Approval {} expired without a decision", a.id),
        _ => format!("Approval {} was withdrawn: the agent's session ended", a.id),
    };
    let statement = if a.parameters.is_empty() {
        a.statement.clone()
    } else {
        let values: Vec<String> = a
            .parameters
            .iter()
            .map(|p| p.as_deref().unwrap_or("NULL").to_string())
            .collect();
        format!("{}\n-- parameters: {}", a.statement, values.join(", "))
    };
    let details = format!(
        "*{headline}*\n```{}```\nMode: {} · needs {} approval(s), has {} · decide by {}\nRule: {}",
        statement.replace("```", "'''"),
        a.mode.as_str(),
        a.min_approvals,
        a.approvals,
        a.expires_at,
        a.rule
    );
    let mut blocks = vec![json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": details },
    })];
    if a.status == sluice_core::ApprovalStatus::Pending {
        blocks.push(json!({
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": { "type": "plain_text", "text": "Approve" },
                    "style": "primary",
                    "url": format!("{}?decide=approve", a.console_url),
                },
                {
                    "type": "button",
                    "text": { "type": "plain_text", "text": "Deny" },
                    "style": "danger",
                    "url": format!("{}?decide=deny", a.console_url),
                },
            ],
        }));
    }
    let body = json!({ "text": headline, "blocks": blocks });
    Outgoing {
        body: serde_json::to_vec(&body).expect("JSON serializes"),
        headers: Vec::new(),
        event: announcement.event,
        approval: a.id.clone(),
    }
}
