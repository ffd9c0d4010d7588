//! The agents of the `ticket-triage` example (the format contract's own).
//! Tickets come from a small in-memory store so the example runs anywhere.

pub mod nlp;

use orchestr8_macros::agent;
use orchestr8_runtime::codegen::{AgentContext, AgentError};

#[agent(
    id = "fetch_ticket",
    version = "1.0.0",
    input = { id: String },
    output = {
        subject: String,
        body: String,
        /// 1 (urgent) to 4 (whenever).
        priority: i64,
        customer: { name: String, tier: "free" | "pro" },
    },
)]
/// Looks a ticket up by id.
pub async fn fetch_ticket(_ctx: &AgentContext<'_>, input: FetchTicketInput) -> Result<FetchTicketOutput, AgentError> {
    let (subject, body, priority) = match input.id.as_str() {
        "T-1" => ("Charged twice", "My invoice shows the same charge twice. This is unacceptable!", 1),
        "T-2" => ("App crashes", "The app crashes when I open settings. Error 500.", 2),
        other => return Err(AgentError::fatal(format!("no ticket {other}"))),
    };
    Ok(FetchTicketOutput {
        subject: subject.into(),
        body: body.into(),
        priority,
        customer: FetchTicketOutputCustomer { name: "Ada".into(), tier: FetchTicketOutputCustomerTier::Pro },
    })
}

#[agent(
    id = "draft_reply",
    version = "1.0.0",
    input = { category: String, opening: String, urgent: bool, angry: Option<bool> },
    output = { text: String },
)]
/// Drafts a reply from the ticket's category and mood.
pub async fn draft_reply(_ctx: &AgentContext<'_>, input: DraftReplyInput) -> Result<DraftReplyOutput, AgentError> {
    let apology = if input.angry == Some(true) { " We are sorry for the trouble." } else { "" };
    let speed = if input.urgent { "today" } else { "within two days" };
    Ok(DraftReplyOutput {
        text: format!("{}{apology} Our {} team will get back to you {speed}.", input.opening, input.category),
    })
}

#[agent(
    id = "check_invoice",
    version = "1.0.0",
    input = { ticket: String },
    output = { duplicate: bool, note: String },
)]
/// Looks for a charge made twice on the ticket's invoice.
pub async fn check_invoice(
    _ctx: &AgentContext<'_>,
    input: CheckInvoiceInput,
) -> Result<CheckInvoiceOutput, AgentError> {
    let duplicate = input.ticket == "T-1";
    let note = if duplicate { "duplicate charge found, refund started" } else { "invoice checked, nothing wrong" };
    Ok(CheckInvoiceOutput { duplicate, note: note.into() })
}

#[agent(
    id = "file_bug",
    version = "1.0.0",
    input = { title: String, priority: i64 },
    output = { issue: String },
)]
/// Files a bug report for engineering.
pub async fn file_bug(_ctx: &AgentContext<'_>, input: FileBugInput) -> Result<FileBugOutput, AgentError> {
    Ok(FileBugOutput { issue: format!("BUG-{} (P{}): {}", 100 + input.priority, input.priority, input.title) })
}
