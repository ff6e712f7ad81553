//! The Slack-compatible webhook: an incoming-webhook message (`text` for notifications,
//! `blocks` for the message) with buttons that open the console on the request, to
//! approve or deny it there with the approver's own sign-in. Slack's incoming webhooks
//! are not signed; the links carry nothing that decides by itself.
//!
//! Everything the agent wrote (the statement, its values, names in the reason, its
//! display name) is either in a `plain_text` block, which Slack does not parse, or has
//! `&`, `<` and `>` escaped, so it cannot plant links or mentions in an approver's
//! channel.

use serde_json::json;

use super::{Announcement, Outgoing};

pub fn payload(announcement: &Announcement) -> Outgoing {
    let a = &announcement.approval;
    let who = if a.principal.display_name.is_empty() {
        escape(&a.principal.subject)
    } else {
        format!(
            "{} ({})",
            escape(&a.principal.display_name),
            escape(&a.principal.subject)
        )
    };
    let headline = match announcement.event {
        "approval.requested" => format!(
            "Approval {} requested by {who} on {}: {}",
            a.id,
            escape(&a.connection),
            escape(&a.reason)
        ),
        "approval.decided" => match &announcement.decision {
            Some(d) => format!(
                "Approval {} {}d by {}: {} (now {})",
                a.id,
                d.verdict.as_str(),
                escape(&d.approver.subject),
                escape(&d.reason),
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
            .enumerate()
            .map(|(i, p)| match p {
                Some(v) => format!("${} = '{}'", i + 1, v.replace('\'', "''")),
                None => format!("${} = NULL", i + 1),
            })
            .collect();
        format!("{}\n-- with {}", a.statement, values.join(", "))
    };
    let details = format!(
        "Mode: {} · needs {} approval(s), has {} · decide by {}\nRule: {}",
        a.mode.as_str(),
        a.min_approvals,
        a.approvals,
        a.expires_at,
        escape(&a.rule)
    );
    let mut blocks = vec![
        json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": format!("*{headline}*") },
        }),
        json!({
            "type": "section",
            "text": { "type": "plain_text", "text": cut(&statement, 2900), "emoji": false },
        }),
        json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": details },
        }),
    ];
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
        signing: None,
        event: announcement.event,
        approval: a.id.clone(),
    }
}

/// Slack's mrkdwn escapes: `&`, `<` and `>` are control characters there (links,
/// mentions), everything else is text.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters (Slack refuses longer text blocks), marked when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max).collect();
    format!("{kept}\n… (cut; the whole statement is in the console)")
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<https://evil/x|Approve> & <!channel>"),
            "&lt;https://evil/x|Approve&gt; &amp; &lt;!channel&gt;"
        );
    }
}
