//! Agents that exercise every shape of data the code generator moves.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use orchestr8_macros::agent;
use orchestr8_runtime::codegen::serde_json;
use orchestr8_runtime::codegen::{AgentContext, AgentError};

#[agent(id = "echo", version = "1.0.0", input = { text: String, times: Option<u32> }, output = { text: String, length: u64 })]
/// Repeats the text.
pub async fn echo(_ctx: &AgentContext<'_>, input: EchoInput) -> Result<EchoOutput, AgentError> {
    let text = input.text.repeat(input.times.unwrap_or(1) as usize);
    Ok(EchoOutput { length: text.chars().count() as u64, text })
}

#[agent(
    id = "profile",
    version = "1.0.0",
    input = { name: String },
    output = {
        name: String,
        age: i64,
        tags: Vec<String>,
        address: { city: String, zip: Option<String> },
        tier: "free" | "pro" | "team",
        score: f64,
    },
)]
/// A made-up profile.
pub async fn profile(_ctx: &AgentContext<'_>, input: ProfileInput) -> Result<ProfileOutput, AgentError> {
    Ok(ProfileOutput {
        age: input.name.len() as i64 * 10,
        tags: vec!["a".into(), "b".into()],
        address: ProfileOutputAddress { city: "Lyon".into(), zip: None },
        tier: ProfileOutputTier::Pro,
        score: 0.5,
        name: input.name,
    })
}

#[agent(
    id = "describe",
    version = "1.0.0",
    input = {
        person: { name: String, city: String, tier: "free" | "pro" | "team" | "enterprise" },
        tags: Vec<String>,
        note: Option<String>,
        score: f64,
        count: i32,
    },
    output = { summary: String },
)]
/// Describes a person.
pub async fn describe(_ctx: &AgentContext<'_>, input: DescribeInput) -> Result<DescribeOutput, AgentError> {
    let tier = match input.person.tier {
        DescribeInputPersonTier::Free => "free",
        DescribeInputPersonTier::Pro => "pro",
        DescribeInputPersonTier::Team => "team",
        DescribeInputPersonTier::Enterprise => "enterprise",
    };
    Ok(DescribeOutput {
        summary: format!(
            "{} from {} ({tier}), tags {}, note {}, score {}, count {}",
            input.person.name,
            input.person.city,
            input.tags.join("+"),
            input.note.as_deref().unwrap_or("-"),
            input.score,
            input.count
        ),
    })
}

static CALLS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

#[agent(id = "flaky", version = "1.0.0", input = { failFirst: u32, key: String }, output = { ok: bool, calls: u32 })]
/// Fails its first calls with a retryable error.
pub async fn flaky(_ctx: &AgentContext<'_>, input: FlakyInput) -> Result<FlakyOutput, AgentError> {
    let calls = {
        let mut map = CALLS.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.get_or_insert_with(HashMap::new).entry(input.key).or_default();
        *n += 1;
        *n
    };
    if calls <= input.fail_first {
        return Err(AgentError::retryable(format!("call {calls} fails")));
    }
    Ok(FlakyOutput { ok: true, calls })
}

#[agent(id = "boom", version = "1.0.0", input = {}, output = { never: String })]
/// Always fails for good.
pub async fn boom(_ctx: &AgentContext<'_>, _input: BoomInput) -> Result<BoomOutput, AgentError> {
    Err(AgentError::fatal("boom"))
}

#[agent(id = "join", version = "1.0.0", input = { parts: Vec<String>, sep: Option<String> }, output = { joined: String })]
/// Joins strings.
pub async fn join(_ctx: &AgentContext<'_>, input: JoinInput) -> Result<JoinOutput, AgentError> {
    Ok(JoinOutput { joined: input.parts.join(input.sep.as_deref().unwrap_or(",")) })
}

#[agent(id = "limits", version = "1.0.0", input = { level: u8, count: u32, ratio: f32, low: i8, big: i64 }, output = { text: String })]
/// Reports its bounded numbers.
pub async fn limits(_ctx: &AgentContext<'_>, input: LimitsInput) -> Result<LimitsOutput, AgentError> {
    Ok(LimitsOutput { text: format!("{} {} {} {} {}", input.level, input.count, input.ratio, input.low, input.big) })
}

/// An amount of money: a type of the agent crate's own, which declarations name.
#[derive(
    Debug,
    Clone,
    PartialEq,
    orchestr8_runtime::codegen::serde::Serialize,
    orchestr8_runtime::codegen::serde::Deserialize,
    orchestr8_runtime::codegen::schemars::JsonSchema,
)]
#[serde(crate = "orchestr8_runtime::codegen::serde")]
#[schemars(crate = "orchestr8_runtime::codegen::schemars")]
pub struct Money {
    /// Hundredths of the currency.
    pub cents: i64,
    /// An ISO 4217 code.
    pub currency: String,
}

#[agent(id = "price", version = "1.0.0", input = { sku: String }, output = { total: Money, discount: Option<Money> })]
/// Prices an article.
pub async fn price(_ctx: &AgentContext<'_>, input: PriceInput) -> Result<PriceOutput, AgentError> {
    Ok(PriceOutput { total: Money { cents: 100 * input.sku.len() as i64, currency: "EUR".into() }, discount: None })
}

#[agent(
    id = "keep",
    version = "1.0.0",
    input = { data: serde_json::Value, items: Option<Vec<serde_json::Value>> },
    output = { data: serde_json::Value },
)]
/// Returns the JSON it is given (found by compiler/tests/generated_workflows.rs).
pub async fn keep(_ctx: &AgentContext<'_>, input: KeepInput) -> Result<KeepOutput, AgentError> {
    Ok(KeepOutput { data: input.data })
}

#[agent(
    id = "tally",
    version = "1.0.0",
    input = { counts: BTreeMap<String, u32> },
    output = { counts: BTreeMap<String, u32>, small: u8 },
)]
/// Returns the counts it is given, and a small number (found by compiler/tests/generated_workflows.rs).
pub async fn tally(_ctx: &AgentContext<'_>, input: TallyInput) -> Result<TallyOutput, AgentError> {
    Ok(TallyOutput { small: input.counts.len().min(255) as u8, counts: input.counts })
}

#[agent(id = "settings", version = "1.0.0", input = { opts: { note: Option<String> } }, output = { note: String })]
/// Reads optional settings (found by compiler/tests/generated_workflows.rs).
pub async fn settings(_ctx: &AgentContext<'_>, input: SettingsInput) -> Result<SettingsOutput, AgentError> {
    Ok(SettingsOutput { note: input.opts.note.unwrap_or_default() })
}

#[agent(
    id = "people",
    version = "1.0.0",
    input = {},
    output = { people: Vec<{ name: String }>, rows: Vec<Vec<i64>>, small: u8, wide: f64, data: serde_json::Value },
)]
/// Data whose shapes differ from `notes`' input (found by a review).
pub async fn people(_ctx: &AgentContext<'_>, _input: PeopleInput) -> Result<PeopleOutput, AgentError> {
    Ok(PeopleOutput {
        people: vec![PeopleOutputPeopleItem { name: "Ada".into() }],
        rows: vec![vec![1, 2], vec![3]],
        small: 7,
        wide: 0.5,
        data: serde_json::json!({ "note": null }),
    })
}

#[agent(
    id = "notes",
    version = "1.0.0",
    input = { items: Vec<{ note: Option<String> }>, rows: Vec<Vec<u8>>, size: usize, ratio: f32, note: Option<String> },
    output = { text: String },
)]
/// Describes what it is given.
pub async fn notes(_ctx: &AgentContext<'_>, input: NotesInput) -> Result<NotesOutput, AgentError> {
    Ok(NotesOutput {
        text: format!(
            "{} items, rows {:?}, size {}, ratio {}, note {:?}",
            input.items.len(),
            input.rows,
            input.size,
            input.ratio,
            input.note
        ),
    })
}

/// A currency: a `Copy` type of the crate's own.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    orchestr8_runtime::codegen::serde::Serialize,
    orchestr8_runtime::codegen::serde::Deserialize,
    orchestr8_runtime::codegen::schemars::JsonSchema,
)]
#[serde(crate = "orchestr8_runtime::codegen::serde")]
#[schemars(crate = "orchestr8_runtime::codegen::schemars")]
pub enum Currency {
    /// Euros.
    Eur,
}

#[agent(id = "till", version = "1.0.0", input = {}, output = { cur: Option<Currency> })]
/// The till's currency, when it has one.
pub async fn till(_ctx: &AgentContext<'_>, _input: TillInput) -> Result<TillOutput, AgentError> {
    Ok(TillOutput { cur: Some(Currency::Eur) })
}

/// How urgent something is: an enum of the agent crate's own, which
/// declarations name (the compiler knows it through serde only).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    orchestr8_runtime::codegen::serde::Serialize,
    orchestr8_runtime::codegen::serde::Deserialize,
    orchestr8_runtime::codegen::schemars::JsonSchema,
)]
#[serde(crate = "orchestr8_runtime::codegen::serde", rename_all = "lowercase")]
#[schemars(crate = "orchestr8_runtime::codegen::schemars")]
pub enum Level {
    /// Whenever.
    Low,
    /// Now.
    High,
}

#[agent(id = "grade", version = "1.0.0", input = { text: String }, output = { level: Level })]
/// Grades a text: shouting is urgent.
pub async fn grade(_ctx: &AgentContext<'_>, input: GradeInput) -> Result<GradeOutput, AgentError> {
    let level = if input.text.chars().any(char::is_lowercase) { Level::Low } else { Level::High };
    Ok(GradeOutput { level })
}
