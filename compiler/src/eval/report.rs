//! The report of a run: the statistics per task and dimension and overall,
//! the performance of each arm, as one typed value written as
//! `report.json`, rendered as `report.md`, as the terminal's summary table
//! and as `chart.svg`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::chart::{self, Distribution};
use super::file::Eval;
use super::run::{CallResult, Outcome, Sample};
use super::score::DIMENSIONS;
use super::stats::{self, Method};

/// Significance level of a claim.
pub const ALPHA: f64 = 0.05;
/// Bootstrap resamples of the confidence interval.
pub const RESAMPLES: usize = 10_000;

/// What the run was.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Setup {
    /// The eval's name.
    pub eval: String,
    /// The eval file, as given.
    pub file: String,
    /// The models called, by task order, deduplicated.
    pub models: Vec<String>,
    /// When the run started (UTC, RFC 3339).
    pub started: String,
    /// orchestr8's version.
    pub orchestr8: String,
    /// Pairs per input.
    pub iterations: u32,
    /// Pairs in flight.
    pub concurrency: usize,
    /// The seed of the schedule and the bootstrap.
    pub seed: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// What was run.
    pub setup: Setup,
    /// The arms: control first.
    pub arms: [&'static str; 2],
    /// How the numbers are computed.
    pub method: Methods,
    /// One entry per task.
    pub tasks: Vec<TaskReport>,
    /// Every task's pairs together.
    pub overall: Vec<DimensionReport>,
    /// Latency, throughput, memory and tokens.
    pub performance: Performance,
    /// Whether the run was stopped before every pair ran.
    pub interrupted: bool,
}

/// How the numbers are computed, stated in the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Methods {
    /// What a pair is.
    pub pairing: &'static str,
    /// The significance test.
    pub test: &'static str,
    /// The confidence interval.
    pub interval: &'static str,
    /// The improvement.
    pub improvement: &'static str,
    /// The level of a claim.
    pub alpha: f64,
}

/// One task.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskReport {
    /// Task id.
    pub id: String,
    /// Where its agent comes from.
    pub agent: String,
    /// The model called.
    pub model: String,
    /// Inputs.
    pub inputs: usize,
    /// One entry per dimension.
    pub dimensions: Vec<DimensionReport>,
    /// The share of answers passing each of the task's checks, per arm.
    pub checks: Vec<CheckReport>,
    /// Calls per arm.
    pub calls: [ArmCalls; 2],
}

/// One dimension of one task (or of all).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DimensionReport {
    /// `structure`, `constraints` or `completeness`.
    pub dimension: &'static str,
    /// Pairs compared (both arms ran).
    pub pairs: usize,
    /// Mean score of each arm over those pairs.
    pub means: [f64; 2],
    /// Relative change of the test mean over the control mean, in percent
    /// (null when the control mean is 0).
    pub improvement_percent: Option<f64>,
    /// Mean of test − control.
    pub mean_difference: f64,
    /// 95% bootstrap interval of the mean difference.
    pub ci95: Option<[f64; 2]>,
    /// The signed-rank test (null when every pair scored the same).
    pub wilcoxon: Option<WilcoxonReport>,
    /// The p-value: 1 when every pair scored the same.
    pub p_value: f64,
    /// What may be claimed.
    pub verdict: String,
    /// Whether the difference is significant at [`ALPHA`].
    pub significant: bool,
}

/// The test's numbers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WilcoxonReport {
    /// Pairs with a non-zero difference.
    pub n: usize,
    /// Pairs with a zero difference (dropped).
    pub zeros: usize,
    /// Rank sum of positive differences (test better).
    pub w_plus: f64,
    /// Rank sum of negative differences.
    pub w_minus: f64,
    /// The normal statistic, when used.
    pub z: Option<f64>,
    /// `exact` or `normal`.
    pub method: &'static str,
}

/// One check of a task.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// What it checks.
    pub check: String,
    /// Share of answers passing it, per arm, in percent (null without answers).
    pub pass_percent: [Option<f64>; 2],
}

/// Calls of one arm.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmCalls {
    /// Calls finished.
    pub calls: usize,
    /// Calls that failed (scored 0).
    pub failed: usize,
    /// Answers that did not validate against the output schema (scored as they are).
    pub invalid: usize,
    /// Failures by kind or reason.
    pub failures: BTreeMap<String, usize>,
    /// The first message of each kind of failure.
    pub first_messages: BTreeMap<String, String>,
}

/// How fast, how big.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Performance {
    /// Per arm.
    pub arms: [ArmPerformance; 2],
    /// Calls finished per second of the run's wall time.
    pub throughput_ops_per_s: f64,
    /// The run's wall time.
    pub wall_seconds: f64,
    /// Peak resident memory of the process (null where the OS does not say).
    pub peak_memory_mb: Option<f64>,
}

/// Latency and tokens of one arm.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmPerformance {
    /// Calls.
    pub calls: usize,
    /// Latency percentiles of every call (failed ones too), in ms.
    pub latency_ms: Percentiles,
    /// Input tokens not read from a cache, all calls.
    pub input_tokens: u64,
    /// Input tokens read from the provider's prompt cache, all calls.
    pub cached_input_tokens: u64,
    /// Output tokens, all calls.
    pub output_tokens: u64,
    /// Model calls per answer (1 + repairs).
    pub calls_per_answer: Option<f64>,
}

/// Latency percentiles.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// Builds the report from what the run measured.
pub fn build(eval: &Eval, outcome: &Outcome, setup: Setup, peak_memory_mb: Option<f64>) -> Report {
    let seed = setup.seed;
    let tasks: Vec<TaskReport> = eval
        .tasks
        .iter()
        .enumerate()
        .map(|(t, task)| {
            let samples: Vec<&Sample> = outcome.samples.iter().filter(|s| s.task == t).collect();
            let pairs = pairs(&samples);
            let dimensions = (0..DIMENSIONS.len()).map(|d| dimension(d, &pairs, seed)).collect();
            let checks = task
                .checks
                .iter()
                .enumerate()
                .map(|(c, check)| CheckReport {
                    check: check.label.clone(),
                    pass_percent: [0, 1].map(|arm| {
                        let passed: Vec<f64> = samples
                            .iter()
                            .filter(|s| s.arm == arm)
                            .filter_map(|s| match &s.result {
                                CallResult::Answered { scored, .. } => Some(if scored.checks[c] { 100.0 } else { 0.0 }),
                                CallResult::Failed(_) => None,
                            })
                            .collect();
                        stats::mean(&passed)
                    }),
                })
                .collect();
            let model = setup.models.get(t).cloned().unwrap_or_else(|| task.agent.model.clone());
            TaskReport {
                id: task.id.clone(),
                agent: task.source.clone(),
                model,
                inputs: task.inputs.len(),
                dimensions,
                checks,
                calls: [0, 1].map(|arm| arm_calls(samples.iter().copied().filter(|s| s.arm == arm))),
            }
        })
        .collect();
    let all: Vec<&Sample> = outcome.samples.iter().collect();
    let all_pairs = pairs(&all);
    let overall = (0..DIMENSIONS.len()).map(|d| dimension(d, &all_pairs, seed)).collect();
    let wall = outcome.wall.as_secs_f64();
    let performance = Performance {
        arms: [0, 1].map(|arm| arm_performance(outcome.samples.iter().filter(|s| s.arm == arm))),
        throughput_ops_per_s: if wall > 0.0 { outcome.samples.len() as f64 / wall } else { 0.0 },
        wall_seconds: wall,
        peak_memory_mb,
    };
    let mut models = setup.models.clone();
    models.dedup();
    Report {
        setup: Setup { models, ..setup },
        arms: super::run::ARMS.map(super::run::arm_name),
        method: Methods {
            pairing: "a pair is the two arms' answers to the same input in the same iteration, run back to back in a random order; pairs run in a shuffled order",
            test: "two-sided Wilcoxon signed-rank test on the pairs' differences (JSON − Markdown): zero differences dropped (Wilcoxon's method), tied |differences| given their average rank; exact p-value for up to 50 pairs without zeros or ties (or up to 13 with them), else the normal approximation with tie correction and no continuity correction (as scipy.stats.wilcoxon)",
            interval: "95% percentile bootstrap of the mean difference, 10000 resamples of the pairs, seeded",
            improvement: "(JSON mean − Markdown mean) / Markdown mean × 100",
            alpha: ALPHA,
        },
        tasks,
        overall,
        performance,
        interrupted: outcome.interrupted,
    }
}

/// Scores of a pair's two arms, per dimension: `[control, test]`.
type Pair = [[f64; 3]; 2];

/// A pair's key: task, input, iteration.
type PairKey = (usize, usize, u32);

/// The pairs where both arms finished; a failed call scores 0.
fn pairs(samples: &[&Sample]) -> Vec<Pair> {
    let mut by_key: BTreeMap<PairKey, [Option<[f64; 3]>; 2]> = BTreeMap::new();
    for s in samples {
        let scores = [0, 1, 2].map(|d| s.scores().get(d));
        by_key.entry((s.task, s.input, s.iteration)).or_default()[s.arm] = Some(scores);
    }
    by_key.into_values().filter_map(|[c, t]| Some([c?, t?])).collect()
}

fn dimension(d: usize, pairs: &[Pair], seed: u64) -> DimensionReport {
    let control: Vec<f64> = pairs.iter().map(|p| p[0][d]).collect();
    let test: Vec<f64> = pairs.iter().map(|p| p[1][d]).collect();
    let diffs: Vec<f64> = pairs.iter().map(|p| p[1][d] - p[0][d]).collect();
    let means = [stats::mean(&control).unwrap_or(0.0), stats::mean(&test).unwrap_or(0.0)];
    let improvement = stats::improvement_percent(means[0], means[1]);
    let wilcoxon = stats::wilcoxon_signed_rank(&diffs);
    let p_value = wilcoxon.as_ref().map_or(1.0, |w| w.p_value);
    // The test's direction (which arm's ranks dominate) and the means' must
    // agree for a claim: a few failed calls (scored 0) can pull the mean
    // one way while most pairs go the other.
    let ranks = wilcoxon.as_ref().map(|w| w.w_plus - w.w_minus).unwrap_or(0.0);
    let agree = (ranks > 0.0 && means[1] > means[0]) || (ranks < 0.0 && means[1] < means[0]);
    let significant = wilcoxon.is_some() && p_value < ALPHA && agree;
    let verdict = verdict(pairs.len(), means, improvement, p_value, wilcoxon.is_some(), agree);
    DimensionReport {
        dimension: DIMENSIONS[d],
        pairs: pairs.len(),
        means,
        improvement_percent: improvement,
        mean_difference: stats::mean(&diffs).unwrap_or(0.0),
        ci95: stats::bootstrap_mean_ci(&diffs, RESAMPLES, 0.95, seed.wrapping_add(d as u64)).map(|(lo, hi)| [lo, hi]),
        wilcoxon: wilcoxon.map(|w| WilcoxonReport {
            n: w.n,
            zeros: w.zeros,
            w_plus: w.w_plus,
            w_minus: w.w_minus,
            z: w.z,
            method: match w.method {
                Method::Exact => "exact",
                Method::Normal => "normal",
            },
        }),
        p_value,
        verdict,
        significant,
    }
}

fn verdict(pairs: usize, means: [f64; 2], improvement: Option<f64>, p: f64, tested: bool, agree: bool) -> String {
    if pairs == 0 {
        return "no pairs: nothing to compare".into();
    }
    if !tested {
        return "no difference: every pair scored the same; no claim".into();
    }
    let change = match improvement {
        Some(x) => format!("{x:+.1}%"),
        None => format!("{:+.1} points", means[1] - means[0]),
    };
    if p >= ALPHA {
        return format!("not significant ({change}, {}); no claim", p_phrase(p));
    }
    if !agree {
        return format!(
            "inconsistent: the ranks differ ({}) but the means do not agree with them ({change}); no claim",
            p_phrase(p)
        );
    }
    if means[1] >= means[0] {
        format!("JSON better: {change} ({})", p_phrase(p))
    } else {
        format!("JSON worse: {change} ({})", p_phrase(p))
    }
}

/// The p-value for tables: `0.0047`, or `<0.0001`.
fn p_text(p: f64) -> String {
    if p < 0.0001 {
        "<0.0001".into()
    } else {
        format!("{p:.4}")
    }
}

/// The p-value in a sentence: `p = 0.0047`, or `p < 0.0001`.
fn p_phrase(p: f64) -> String {
    if p < 0.0001 {
        "p < 0.0001".into()
    } else {
        format!("p = {p:.4}")
    }
}

fn arm_calls<'a>(samples: impl Iterator<Item = &'a Sample>) -> ArmCalls {
    let mut calls = ArmCalls::default();
    for s in samples {
        calls.calls += 1;
        match &s.result {
            CallResult::Answered { valid, .. } => calls.invalid += usize::from(!valid),
            CallResult::Failed(e) => {
                calls.failed += 1;
                let why = e.reason.clone().unwrap_or_else(|| e.kind.as_str().to_owned());
                *calls.failures.entry(why.clone()).or_default() += 1;
                calls.first_messages.entry(why).or_insert_with(|| e.message.clone());
            }
        }
    }
    calls
}

fn arm_performance<'a>(samples: impl Iterator<Item = &'a Sample>) -> ArmPerformance {
    let mut latencies = Vec::new();
    let mut out = ArmPerformance::default();
    let mut made = Vec::new();
    for s in samples {
        out.calls += 1;
        latencies.push(s.latency.as_secs_f64() * 1000.0);
        out.input_tokens += s.usage.input_tokens + s.usage.cache_creation_input_tokens;
        out.cached_input_tokens += s.usage.cache_read_input_tokens;
        out.output_tokens += s.usage.output_tokens;
        if let CallResult::Answered { calls, .. } = &s.result {
            made.push(f64::from(*calls));
        }
    }
    out.latency_ms = Percentiles {
        p50: stats::percentile(&latencies, 50.0),
        p95: stats::percentile(&latencies, 95.0),
        p99: stats::percentile(&latencies, 99.0),
    };
    out.calls_per_answer = stats::mean(&made);
    out
}

/// Every answer's scores of one task and dimension, per arm (failed calls as 0).
fn distributions(outcome: &Outcome, task: usize, d: usize) -> [Vec<f64>; 2] {
    [0, 1].map(|arm| {
        outcome.samples.iter().filter(|s| s.task == task && s.arm == arm).map(|s| s.scores().get(d)).collect()
    })
}

/// The chart: per task and dimension, both arms' score distributions.
pub fn svg(report: &Report, outcome: &Outcome) -> String {
    let scores: Vec<Vec<[Vec<f64>; 2]>> = (0..report.tasks.len())
        .map(|t| (0..DIMENSIONS.len()).map(|d| distributions(outcome, t, d)).collect())
        .collect();
    let mut cells = Vec::new();
    for (t, task) in report.tasks.iter().enumerate() {
        for (d, dimension) in DIMENSIONS.iter().enumerate() {
            let [control, test] = &scores[t][d];
            cells.push(Distribution { task: &task.id, dimension, control, test });
        }
    }
    let title =
        format!("{}: Markdown (control) vs JSON (test) prompts, {}", report.setup.eval, report.setup.models.join(", "));
    chart::svg(&title, &cells)
}

fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), |x| format!("{x:.1}"))
}

fn ci(c: Option<[f64; 2]>) -> String {
    c.map_or_else(|| "n/a".into(), |[lo, hi]| format!("[{lo:+.1}, {hi:+.1}]"))
}

fn row(out: &mut String, task: &str, d: &DimensionReport) {
    let _ = writeln!(
        out,
        "| {task} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {} |",
        d.dimension,
        d.pairs,
        d.means[0],
        d.means[1],
        d.improvement_percent.map_or_else(|| "n/a".into(), |x| format!("{x:+.1}%")),
        ci(d.ci95),
        p_text(d.p_value),
        d.verdict
    );
}

const TABLE_HEAD: &str = "| task | dimension | pairs | Markdown | JSON | improvement | 95% CI of difference | p | verdict |\n| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |\n";

/// The summary table (Markdown): every task's dimensions, then overall.
pub fn summary(report: &Report) -> String {
    let mut out = String::from(TABLE_HEAD);
    for task in &report.tasks {
        for d in &task.dimensions {
            row(&mut out, &task.id, d);
        }
    }
    for d in &report.overall {
        row(&mut out, "**overall**", d);
    }
    out
}

/// The performance table (Markdown).
pub fn performance(report: &Report) -> String {
    let p = &report.performance;
    let mut out = String::from(
        "| arm | calls | latency p50 (ms) | p95 (ms) | p99 (ms) | input tokens | cached input tokens | output tokens | model calls per answer |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (name, a) in ["Markdown", "JSON"].iter().zip(&p.arms) {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
            a.calls,
            num(a.latency_ms.p50),
            num(a.latency_ms.p95),
            num(a.latency_ms.p99),
            a.input_tokens,
            a.cached_input_tokens,
            a.output_tokens,
            a.calls_per_answer.map_or_else(|| "n/a".into(), |x| format!("{x:.2}"))
        );
    }
    let _ = writeln!(
        out,
        "\nThroughput {:.2} calls/s over {:.1} s; peak memory {} MB.",
        p.throughput_ops_per_s,
        p.wall_seconds,
        num(p.peak_memory_mb)
    );
    out
}

/// `report.md`.
pub fn markdown(report: &Report) -> String {
    let s = &report.setup;
    let mut out = format!("# Prompt eval: {}\n\n", s.eval);
    let _ = writeln!(
        out,
        "Markdown prompts (control) against JSON prompts (test) on {}; {} iteration(s) per input, concurrency {}, seed {}; started {}, orchestr8 {}, eval file `{}`.\n",
        s.models.join(", "),
        s.iterations,
        s.concurrency,
        s.seed,
        s.started,
        s.orchestr8,
        s.file
    );
    if report.interrupted {
        out.push_str("**The run was interrupted: the numbers cover the pairs that finished.**\n\n");
    }
    out.push_str("## Adherence\n\nMean scores (0-100) over the pairs where both arms ran; a failed call scores 0.\n\n");
    out.push_str(&summary(report));
    out.push_str("\n![score distributions](chart.svg)\n\n## Performance\n\n");
    out.push_str(&performance(report));
    out.push_str("\n## Tasks\n");
    for task in &report.tasks {
        let _ = writeln!(
            out,
            "\n### {}\n\nAgent: {} (model {}), {} inputs.\n",
            task.id, task.agent, task.model, task.inputs
        );
        out.push_str("| arm | calls | failed | invalid answers | failures |\n| --- | ---: | ---: | ---: | --- |\n");
        for (name, c) in ["Markdown", "JSON"].iter().zip(&task.calls) {
            let failures: Vec<String> = c.failures.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            let _ = writeln!(out, "| {name} | {} | {} | {} | {} |", c.calls, c.failed, c.invalid, failures.join(", "));
        }
        let mut said: BTreeMap<&str, &str> = BTreeMap::new();
        for c in &task.calls {
            for (why, message) in &c.first_messages {
                said.entry(why).or_insert(message);
            }
        }
        for (why, message) in said {
            let _ = writeln!(out, "\n- first `{why}`: {}", message.replace('\n', " "));
        }
        if !task.checks.is_empty() {
            out.push_str("\n| check | Markdown pass % | JSON pass % |\n| --- | ---: | ---: |\n");
            for c in &task.checks {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    c.check.replace('|', "\\|"),
                    num(c.pass_percent[0]),
                    num(c.pass_percent[1])
                );
            }
        }
    }
    let m = &report.method;
    let _ = write!(
        out,
        "\n## Method\n\n- Scores: structure, constraints and completeness, each 0-100 per answer (see `orchestr8 eval --help`).\n- Pairs: {}.\n- Test: {}.\n- Interval: {}.\n- Improvement: {}.\n- A difference is claimed only where p < {}.\n",
        m.pairing, m.test, m.interval, m.improvement, m.alpha
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(diffs: &[(f64, f64)]) -> Vec<Pair> {
        diffs.iter().map(|&(c, t)| [[c; 3], [t; 3]]).collect()
    }

    #[test]
    fn a_claim_needs_the_ranks_and_the_means_to_agree() {
        // 19 pairs +5 and one -95 (a failed JSON call): equal means, ranks
        // strongly positive: no claim either way.
        let mut data = vec![(90.0, 95.0); 19];
        data.push((95.0, 0.0));
        let d = dimension(1, &pairs(&data), 0);
        assert!(d.p_value < 0.001 && !d.significant, "{d:?}");
        assert!(d.verdict.starts_with("inconsistent"), "{}", d.verdict);
        // 18 pairs +5 and two -100: the mean says worse, the ranks better.
        let mut data = vec![(90.0, 95.0); 18];
        data.extend([(100.0, 0.0), (100.0, 0.0)]);
        let d = dimension(1, &pairs(&data), 0);
        assert!(!d.significant && d.verdict.starts_with("inconsistent"), "{d:?}");
        // Agreement: claimed, with the p-value in words.
        let d = dimension(1, &pairs(&vec![(50.0, 100.0); 20]), 0);
        assert!(d.significant, "{d:?}");
        assert!(
            d.verdict.starts_with("JSON better: +100.0% (p < 0.0001)")
                || d.verdict.starts_with("JSON better: +100.0% (p = "),
            "{}",
            d.verdict
        );
    }
}
