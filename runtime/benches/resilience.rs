//! Timeout + retry + circuit breaker around a no-op call, against tower's
//! Retry and Timeout layers around the same call, in the same run.

use std::future::{ready, Ready};
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use orchestr8_runtime::agent::AgentError;
use orchestr8_runtime::policy::Policy;
use orchestr8_runtime::resilience::{self, CircuitBreaker};
use orchestr8_runtime::CancellationToken;
use tower::retry::{Policy as TowerPolicy, RetryLayer};
use tower::timeout::TimeoutLayer;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

#[inline(never)]
async fn noop(x: u64) -> Result<u64, AgentError> {
    Ok(black_box(x))
}

/// Up to 3 attempts, no backoff: the cheapest tower retry policy.
#[derive(Clone)]
struct Attempts(usize);

impl<E> TowerPolicy<u64, u64, E> for Attempts {
    type Future = Ready<()>;
    fn retry(&mut self, _req: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => None,
            Err(_) if self.0 > 1 => {
                self.0 -= 1;
                Some(ready(()))
            }
            Err(_) => None,
        }
    }
    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let policy = Policy::default();
    let breaker = CircuitBreaker::new("noop", "1", policy.circuit_breaker);
    let token = CancellationToken::new();
    const N: u64 = 10_000;

    let mut group = c.benchmark_group("resilience");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(criterion::Throughput::Elements(N));

    group.bench_function("bare_call", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..N {
                    black_box(noop(i).await.unwrap());
                }
            })
        })
    });
    group.bench_function("orchestr8_timeout_retry_breaker", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..N {
                    let r = resilience::call(&policy, Some(&breaker), &token, &(), |_| noop(i)).await;
                    black_box(r.unwrap());
                }
            })
        })
    });
    group.bench_function("orchestr8_timeout_retry", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..N {
                    let r = resilience::call(&policy, None, &token, &(), |_| noop(i)).await;
                    black_box(r.unwrap());
                }
            })
        })
    });
    group.bench_function("tower_retry_timeout", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut svc = ServiceBuilder::new()
                    .layer(RetryLayer::new(Attempts(3)))
                    .layer(TimeoutLayer::new(Duration::from_secs(30)))
                    .service(service_fn(noop));
                for i in 0..N {
                    let r = svc.ready().await.unwrap().call(i).await;
                    black_box(r.unwrap());
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
