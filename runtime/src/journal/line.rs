//! The journal line writer: an event straight to JSON bytes, the same bytes
//! `serde_json` would write for it, without building values or strings.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{JournalEvent, StateName};

/// What [`JournalEvent::write_line`] keeps from one line to the next: the
/// escaped execution id and the formatted date and time of the current second.
#[derive(Debug, Default)]
pub struct LineCache {
    execution_id: Option<Arc<str>>,
    /// `"seq":` is written first; this is `,"ts":"`… after it comes the time.
    execution_id_json: Vec<u8>,
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS.` of `second`.
    prefix: [u8; 20],
}

/// The last second humantime's RFC 3339 formatting (and ours) handles: 9999-12-31T23:59:59Z.
const MAX_SECS: u64 = 253_402_300_799;

pub(super) fn write(ev: &JournalEvent, out: &mut Vec<u8>, cache: &mut LineCache) {
    out.extend_from_slice(b"{\"seq\":");
    push_u64(out, ev.seq);
    out.extend_from_slice(b",\"ts\":\"");
    push_ts(out, ev.ts, cache);
    out.extend_from_slice(b"\",\"executionId\":");
    let same =
        cache.execution_id.as_ref().is_some_and(|id| Arc::ptr_eq(id, &ev.execution_id) || **id == *ev.execution_id);
    if !same {
        cache.execution_id_json.clear();
        push_str(&mut cache.execution_id_json, &ev.execution_id);
        cache.execution_id = Some(ev.execution_id.clone());
    }
    out.extend_from_slice(&cache.execution_id_json);
    out.extend_from_slice(b",\"event\":\"");
    out.extend_from_slice(ev.event.as_str().as_bytes());
    out.push(b'"');
    if let Some(s) = &ev.step_id {
        out.extend_from_slice(b",\"stepId\":");
        push_str(out, s);
    }
    if let Some(s) = &ev.agent_id {
        out.extend_from_slice(b",\"agentId\":");
        push_str(out, s);
    }
    if let Some(n) = ev.attempt {
        out.extend_from_slice(b",\"attempt\":");
        push_u64(out, n.into());
    }
    if let Some(n) = ev.duration_ms {
        out.extend_from_slice(b",\"durationMs\":");
        push_u64(out, n);
    }
    if let Some(v) = &ev.input {
        out.extend_from_slice(b",\"input\":");
        v.write_to(out);
    }
    if let Some(v) = &ev.output {
        out.extend_from_slice(b",\"output\":");
        v.write_to(out);
    }
    if let Some(e) = &ev.error {
        out.extend_from_slice(b",\"error\":");
        // Rare: serde's own output.
        serde_json::to_writer(&mut *out, &**e).expect("a StepError serialises");
    }
    if let Some(n) = ev.delay_ms {
        out.extend_from_slice(b",\"delayMs\":");
        push_u64(out, n);
    }
    if let Some(s) = ev.state {
        out.extend_from_slice(b",\"state\":\"");
        out.extend_from_slice(state_name(s).as_bytes());
        out.push(b'"');
    }
    if let Some(l) = &ev.labels {
        for (key, v) in [
            (&b",\"workflowId\":"[..], &l.workflow_id),
            (b",\"workflowVersion\":", &l.workflow_version),
            (b",\"definitionHash\":", &l.definition_hash),
            (b",\"correlationId\":", &l.correlation_id),
            (b",\"agentVersion\":", &l.agent_version),
            (b",\"signal\":", &l.signal),
            (b",\"idempotencyKey\":", &l.idempotency_key),
            (b",\"requestHash\":", &l.request_hash),
        ] {
            if let Some(v) = v {
                out.extend_from_slice(key);
                push_str(out, v);
            }
        }
        if let Some(u) = &l.usage {
            out.extend_from_slice(b",\"usage\":");
            serde_json::to_writer(&mut *out, u).expect("usage serialises");
        }
        if let Some(r) = &l.reason {
            out.extend_from_slice(b",\"reason\":");
            push_str(out, r);
        }
    }
    out.extend_from_slice(b"}\n");
}

fn state_name(s: StateName) -> &'static str {
    match s {
        StateName::Pending => "pending",
        StateName::Running => "running",
        StateName::Completed => "completed",
        StateName::Failed => "failed",
        StateName::Cancelled => "cancelled",
        StateName::Executing => "executing",
        StateName::Retrying => "retrying",
        StateName::Succeeded => "succeeded",
        StateName::TimedOut => "timed_out",
        StateName::Skipped => "skipped",
        StateName::Waiting => "waiting",
    }
}

/// A JSON string: copied as is unless something needs escaping.
fn push_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("a string serialises");
    }
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// RFC 3339 UTC with microseconds, as `humantime::format_rfc3339_micros`
/// (which panics outside 1970..=9999; times there are clamped to it).
fn push_ts(out: &mut Vec<u8>, ts: SystemTime, cache: &mut LineCache) {
    let d = ts.duration_since(UNIX_EPOCH).unwrap_or_default().min(Duration::new(MAX_SECS, 999_999_999));
    let secs = d.as_secs();
    if cache.second != Some(secs) {
        cache.prefix = date_time_prefix(secs);
        cache.second = Some(secs);
    }
    out.extend_from_slice(&cache.prefix);
    let mut frac = [b'0'; 7];
    let mut m = d.subsec_micros();
    for i in (0..6).rev() {
        frac[i] = b'0' + (m % 10) as u8;
        m /= 10;
    }
    frac[6] = b'Z';
    out.extend_from_slice(&frac);
}

/// `ts` as the journal writes it.
pub(super) fn format_ts(ts: SystemTime) -> String {
    let mut out = Vec::with_capacity(27);
    push_ts(&mut out, ts, &mut LineCache::default());
    String::from_utf8(out).expect("ASCII")
}

/// `YYYY-MM-DDTHH:MM:SS.` for seconds since the epoch (civil-from-days, H. Hinnant).
fn date_time_prefix(secs: u64) -> [u8; 20] {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut p = *b"0000-00-00T00:00:00.";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            p[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, hh);
    put(14, 2, mm);
    put(17, 2, ss);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_humantime() {
        let mut cache = LineCache::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut samples: Vec<u64> = (0..20_000).map(|_| rng.u64(..=MAX_SECS * 1_000_000)).collect();
        samples.extend([
            0,
            1,
            951_782_400_000_000,
            951_782_400_000_001,
            4_107_542_400_000_000,
            MAX_SECS * 1_000_000 + 999_999,
        ]);
        for micros in samples {
            let ts = UNIX_EPOCH + Duration::from_micros(micros) + Duration::from_nanos(rng.u64(..1000));
            let mut out = Vec::new();
            push_ts(&mut out, ts, &mut cache);
            assert_eq!(String::from_utf8(out).unwrap(), humantime::format_rfc3339_micros(ts).to_string());
        }
    }
}
