//! The agents of the `flaky-dependency` example: a simulated pricing
//! service that fails its first calls, and a cache to fall back on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use orchestr8_macros::agent;
use orchestr8_runtime::codegen::{AgentContext, AgentError};

/// Calls made so far per SKU, standing in for the remote service's state.
static CALLS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

#[agent(
    id = "fetch_price",
    version = "1.0.0",
    input = {
        sku: String,
        /// How many calls the simulated service fails before it answers.
        failuresBeforeSuccess: u32,
    },
    output = { cents: i64, currency: String },
)]
/// Asks the (simulated) pricing service; fails the first N calls with a
/// retryable error. `config.latencyMs` sets its latency.
pub async fn fetch_price(ctx: &AgentContext<'_>, input: FetchPriceInput) -> Result<FetchPriceOutput, AgentError> {
    let latency = ctx.config().get("latencyMs").and_then(|v| v.as_u64()).unwrap_or(0);
    orchestr8_runtime::codegen::tokio::select! {
        _ = orchestr8_runtime::codegen::tokio::time::sleep(Duration::from_millis(latency)) => {}
        _ = ctx.cancellation_token().cancelled() => return Err(AgentError::cancelled()),
    }
    let call = next_call(&input.sku);
    if call <= input.failures_before_success {
        return Err(AgentError::retryable(format!("pricing service unavailable (call {call})")));
    }
    Ok(FetchPriceOutput { cents: price_of(&input.sku), currency: "EUR".into() })
}

#[agent(
    id = "cached_price",
    version = "1.0.0",
    input = { sku: String, live: Option<{ cents: i64, currency: String }> },
    output = { cents: i64, currency: String, source: "live" | "cache" },
)]
/// The live price when there is one, else the cached price.
pub async fn cached_price(_ctx: &AgentContext<'_>, input: CachedPriceInput) -> Result<CachedPriceOutput, AgentError> {
    Ok(match input.live {
        Some(live) => {
            CachedPriceOutput { cents: live.cents, currency: live.currency, source: CachedPriceOutputSource::Live }
        }
        None => CachedPriceOutput {
            cents: price_of(&input.sku) + 50,
            currency: "EUR".into(),
            source: CachedPriceOutputSource::Cache,
        },
    })
}

fn next_call(sku: &str) -> u32 {
    let mut calls = CALLS.lock().unwrap_or_else(|e| e.into_inner());
    let count = calls.get_or_insert_with(HashMap::new).entry(sku.to_owned()).or_default();
    *count += 1;
    *count
}

/// A stable made-up price for a SKU.
fn price_of(sku: &str) -> i64 {
    1000 + sku.bytes().map(i64::from).sum::<i64>() % 500
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_sku() {
        assert_eq!(next_call("test-a"), 1);
        assert_eq!(next_call("test-a"), 2);
        assert_eq!(next_call("test-b"), 1);
        assert_eq!(price_of("x"), price_of("x"));
    }
}
