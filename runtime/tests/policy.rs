//! Policies: built-in defaults, durations, merging, validation; errors and agents.

use std::time::Duration;

use orchestr8_runtime::agent::{AgentContext, DynAgent, ExecutionMeta};
use orchestr8_runtime::policy::{parse_duration, Policy, PolicyError, PolicyField, PolicyOverlay};
use orchestr8_runtime::testing::MockAgent;
use orchestr8_runtime::{AgentError, CancellationToken, ErrorKind, StepError};
use serde_json::{json, Value};

#[test]
fn built_in_defaults_are_the_contracts() {
    let p = Policy::default();
    let v = serde_json::to_value(p).unwrap();
    assert_eq!(
        v,
        json!({
            "timeout": 30000,
            "retry": {"maxAttempts": 3, "initialDelay": 1000, "maxDelay": 10000, "backoffMultiplier": 2.0, "jitter": true},
            "circuitBreaker": {"failureThreshold": 5, "resetTimeout": 60000, "halfOpenRequests": 3},
            "cancelGrace": 5000
        })
    );
    assert!(p.validate().is_ok());
    assert_eq!(serde_json::from_value::<Policy>(v).unwrap(), p, "the wire form reads back");
}

#[test]
fn attempt_timeout_and_cancel_grace_come_from_the_workflow() {
    let default: PolicyOverlay = serde_json::from_value(json!({"attemptTimeout": "2s", "cancelGrace": 0})).unwrap();
    let step: PolicyOverlay = serde_json::from_value(json!({"timeout": "10s", "cancelGrace": "250ms"})).unwrap();
    let p = Policy::resolve([&default, &step]).unwrap();
    assert_eq!(p.attempt_timeout, Some(Duration::from_secs(2)), "inherited from default");
    assert_eq!(p.cancel_grace, Duration::from_millis(250));
    assert_eq!(Policy::resolve([&default]).unwrap().cancel_grace, Duration::ZERO, "0 abandons at once");
    let v = serde_json::to_value(p).unwrap();
    assert_eq!((v["attemptTimeout"].clone(), v["cancelGrace"].clone()), (json!(2000), json!(250)));

    let zero: PolicyOverlay = serde_json::from_value(json!({"attemptTimeout": "0s"})).unwrap();
    let err = Policy::resolve([&zero]).unwrap_err();
    assert_eq!(err, PolicyError::Zero(PolicyField::AttemptTimeout));
    assert_eq!(err.fields()[0].pointer(), "/attemptTimeout");
    let bad: PolicyOverlay = serde_json::from_value(json!({"cancelGrace": "soon"})).unwrap();
    assert!(matches!(
        Policy::resolve([&bad]).unwrap_err(),
        PolicyError::Duration { field: PolicyField::CancelGrace, .. }
    ));
}

#[test]
fn durations_parse_from_integers_and_strings() {
    for (s, ms) in [("250ms", 250), ("30s", 30_000), ("2m", 120_000), ("1h", 3_600_000), ("1500", 1500), (" 5s ", 5000)]
    {
        assert_eq!(parse_duration(s).unwrap(), Duration::from_millis(ms), "{s}");
    }
    for bad in ["", "ms", "1.5s", "-3s", "10 parsecs", "5d", "99999999999999999999h"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    let o: PolicyOverlay =
        serde_json::from_value(json!({"timeout": "2s", "retry": {"initialDelay": 250, "maxDelay": "1m"}})).unwrap();
    let p = Policy::resolve([&o]).unwrap();
    assert_eq!(p.timeout, Duration::from_secs(2));
    assert_eq!(p.retry.initial_delay, Duration::from_millis(250));
    assert_eq!(p.retry.max_delay, Duration::from_secs(60));
    assert!(serde_json::from_value::<PolicyOverlay>(json!({"timeout": -1})).is_err());
    let soon: PolicyOverlay = serde_json::from_value(json!({"timeout": "soon"})).unwrap();
    let err = Policy::resolve([&soon]).unwrap_err();
    assert!(matches!(err, PolicyError::Duration { field: PolicyField::Timeout, .. }), "{err:?}");
    assert!(err.to_string().contains("`soon` is not a duration"), "{err}");
}

#[test]
fn merge_order_is_builtin_default_named_inline() {
    let default: PolicyOverlay =
        serde_json::from_value(json!({"timeout": 20000, "retry": {"maxAttempts": 5, "jitter": false}})).unwrap();
    let named: PolicyOverlay = serde_json::from_value(json!({"timeout": 2000, "retry": {"maxAttempts": 2}})).unwrap();
    let inline: PolicyOverlay = serde_json::from_value(json!({"circuitBreaker": {"failureThreshold": 1}})).unwrap();
    let p = Policy::resolve([&default, &named, &inline]).unwrap();
    assert_eq!(p.timeout, Duration::from_secs(2));
    assert_eq!(p.retry.max_attempts, 2);
    assert!(!p.retry.jitter, "from default, not overridden");
    assert_eq!(p.retry.initial_delay, Duration::from_secs(1), "built-in");
    assert_eq!(p.circuit_breaker.failure_threshold, 1);
    assert_eq!(p.circuit_breaker.half_open_requests, 3);
    assert_eq!(Policy::resolve([]).unwrap(), Policy::default());
}

#[test]
fn unknown_fields_and_impossible_settings_are_rejected() {
    assert!(serde_json::from_value::<PolicyOverlay>(json!({"timeOut": 1})).is_err());
    assert!(serde_json::from_value::<PolicyOverlay>(json!({"retry": {"attempts": 1}})).is_err());
    for (bad, fields) in [
        (json!({"retry": {"maxAttempts": 0}}), vec![PolicyField::MaxAttempts]),
        (json!({"retry": {"backoffMultiplier": 0.5}}), vec![PolicyField::BackoffMultiplier]),
        (json!({"retry": {"initialDelay": 20000}}), vec![PolicyField::InitialDelay, PolicyField::MaxDelay]),
        (json!({"timeout": 0}), vec![PolicyField::Timeout]),
        (json!({"circuitBreaker": {"resetTimeout": "0s"}}), vec![PolicyField::ResetTimeout]),
        (json!({"circuitBreaker": {"halfOpenRequests": 0}}), vec![PolicyField::HalfOpenRequests]),
        (json!({"timeout": "99999999999999999999h"}), vec![PolicyField::Timeout]),
    ] {
        let o: PolicyOverlay = serde_json::from_value(bad.clone()).unwrap();
        let err = Policy::resolve([&o]).unwrap_err();
        assert_eq!(err.fields(), fields, "{bad}: {err}");
        assert!(err.fields().iter().any(|f| f.is_set_in(&o)), "{bad}: the overlay sets a field at fault");
    }
}

#[test]
fn step_error_serialises_as_kind_message_step_attempt() {
    let e = StepError::new(ErrorKind::CircuitOpen, "open", 1).with_step("fetch".into());
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        json!({"kind": "circuit_open", "message": "open", "step": "fetch", "attempt": 1})
    );
    assert_eq!(e.to_string(), "step fetch: circuit_open: open (attempt 1)");
}

#[tokio::test(start_paused = true)]
async fn dyn_agents_run_over_json_with_schemas() {
    let agent: Box<dyn DynAgent> = Box::new(MockAgent::<Value>::new("a", "1.2.3").then_ok(json!({"x": 1})));
    assert_eq!((agent.id(), agent.version()), ("a", "1.2.3"));
    let _ = agent.input_schema();
    let token = CancellationToken::new();
    let meta = ExecutionMeta {
        execution_id: "e".into(),
        correlation_id: "c".into(),
        workflow_id: "w".into(),
        workflow_version: "1".into(),
    };
    let config = json!({"k": "v"});
    let ctx = AgentContext::new(&token, &meta, "s", 1, &config);
    assert_eq!(ctx.config()["k"], "v");
    assert_eq!((ctx.execution_id(), ctx.correlation_id(), ctx.step_id(), ctx.attempt()), ("e", "c", "s", 1));
    assert_eq!(agent.run_json(&ctx, json!({})).await.unwrap(), json!({"x": 1}));

    let e = AgentError::retryable("busy").with_retry_after(Duration::from_secs(3));
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    assert!(!AgentError::fatal("no").is_retryable());
}
