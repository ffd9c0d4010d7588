//! The `orchestr8 eval` chart: per task × dimension, box plots of the
//! Markdown (control) and JSON (test) arms' scores, as one standalone SVG.
//!
//! Scores that are not finite (NaN, ±inf) are ignored: they are not scores,
//! and are left out of every statistic and of n. Finite scores outside
//! 0..=100 are clamped to the axis so the drawing stays inside its cell.
//! Output is deterministic: no hashing, and every number has 1 decimal.

use std::fmt::Write as _;

/// One task × dimension cell of the chart.
pub struct Distribution<'a> {
    pub task: &'a str,
    pub dimension: &'a str,
    /// Markdown arm scores, 0..=100.
    pub control: &'a [f64],
    /// JSON arm scores, 0..=100.
    pub test: &'a [f64],
}

/// How an arm is drawn. Colours are Okabe–Ito (colour-blind safe); the
/// solid vs hatched fill and solid vs dashed outline keep them apart in
/// greyscale too.
struct Arm {
    name: &'static str,
    legend: &'static str,
    fill: &'static str,
    stroke: &'static str,
    dash: &'static str,
}

const ARMS: [Arm; 2] = [
    Arm { name: "Markdown", legend: "Markdown (control)", fill: "#E69F00", stroke: "#7A4F00", dash: "none" },
    Arm { name: "JSON", legend: "JSON (test)", fill: "url(#o8-hatch)", stroke: "#0072B2", dash: "4 2" },
];

const FONT: &str = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif";
const LABEL_W: f64 = 170.0; // row-label column
const AXIS_W: f64 = 28.0; // tick labels
const CELL_W: f64 = 180.0;
const ROW_H: f64 = 172.0;
const PLOT_PAD: f64 = 12.0; // gap between a row's top and its plot
const PLOT_H: f64 = 130.0;
const HEAD_H: f64 = 104.0; // title, legend, key, column headers
const BOX_W: f64 = 36.0;
const MIN_W: f64 = 420.0; // so the legend and key always fit
const CHAR_W: f64 = 8.0; // generous mean glyph width at 12px bold, for truncation
const TICKS: [f64; 5] = [0.0, 25.0, 50.0, 75.0, 100.0];

/// Writing to a `String` cannot fail, so the `fmt::Result` is dropped.
macro_rules! w {
    ($($t:tt)*) => {{ let _ = write!($($t)*); }};
}

/// Summary of one arm's scores; quartiles interpolate linearly between
/// order statistics (R type 7 / numpy's default).
#[derive(Debug, PartialEq)]
struct Stats {
    n: usize,
    min: f64,
    q1: f64,
    median: f64,
    q3: f64,
    max: f64,
    mean: f64,
}

impl Stats {
    fn of(scores: &[f64]) -> Option<Stats> {
        let mut v: Vec<f64> = scores.iter().filter(|x| x.is_finite()).map(|x| x.clamp(0.0, 100.0)).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let pos = p * (v.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        };
        let (n, mean) = (v.len(), v.iter().sum::<f64>() / v.len() as f64);
        Some(Stats { n, min: v[0], q1: q(0.25), median: q(0.5), q3: q(0.75), max: v[n - 1], mean })
    }
}

/// XML-escapes text and attribute values. Control characters XML 1.0
/// forbids (even as references) become U+FFFD so the document stays valid.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Shortens `s` to at most `max` chars, ending in "…" when cut; counts chars,
/// not bytes, so multi-byte names are never split mid-character.
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let head: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", head.trim_end())
}

fn plot_top(row: usize) -> f64 {
    HEAD_H + row as f64 * ROW_H + PLOT_PAD
}

/// The y coordinate of score `v` in row `row` (100 at the top).
fn y_of(row: usize, v: f64) -> f64 {
    plot_top(row) + (100.0 - v) / 100.0 * PLOT_H
}

fn col_x(col: usize) -> f64 {
    LABEL_W + AXIS_W + col as f64 * CELL_W
}

/// Index of `s` in `seen`, appending it if new: first-seen order, no hashing.
fn slot<'a>(seen: &mut Vec<&'a str>, s: &'a str) -> usize {
    seen.iter().position(|x| *x == s).unwrap_or_else(|| {
        seen.push(s);
        seen.len() - 1
    })
}

/// The chart as a standalone SVG document: rows = tasks (in the order first
/// seen), columns = dimensions (in the order first seen), a box plot per arm
/// in each cell. Repeated task × dimension cells are merged; a missing one
/// is drawn as two empty arms.
pub fn svg(title: &str, cells: &[Distribution<'_>]) -> String {
    let (mut tasks, mut dims) = (Vec::new(), Vec::new());
    let mut placed = Vec::with_capacity(cells.len());
    for c in cells {
        placed.push((slot(&mut tasks, c.task), slot(&mut dims, c.dimension), c));
    }
    // grid[row * ncols + col][arm] = that arm's scores, duplicates merged.
    let mut grid: Vec<[Vec<f64>; 2]> = vec![[Vec::new(), Vec::new()]; tasks.len() * dims.len()];
    for (r, c, d) in placed {
        let g = &mut grid[r * dims.len() + c];
        g[0].extend_from_slice(d.control);
        g[1].extend_from_slice(d.test);
    }

    let width = (col_x(dims.len()) + 12.0).max(MIN_W);
    let height = HEAD_H + tasks.len().max(1) as f64 * ROW_H + 8.0;
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    w!(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.1}\" height=\"{height:.1}\" ");
    w!(o, "viewBox=\"0 0 {width:.1} {height:.1}\" font-family=\"{FONT}\" font-size=\"12\">\n");
    w!(o, "<title>{}</title>\n<defs>{HATCH}</defs>\n", esc(title));
    o.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n");
    let title_chars = ((width - 24.0) / 10.0) as usize; // 16px bold glyphs are wider
    text(&mut o, 12.0, 24.0, r#" font-size="16" font-weight="bold""#, &esc(&fit(title, title_chars)));

    // Legend swatches are drawn exactly like the boxes, so they read the same in greyscale.
    for (i, arm) in ARMS.iter().enumerate() {
        let x = 12.0 + i as f64 * 170.0;
        w!(o, "<rect x=\"{x:.1}\" y=\"38.0\" width=\"14\" height=\"14\"{}/>", arm.style());
        text(&mut o, x + 20.0, 50.0, "", &esc(arm.legend));
    }
    let key = "box = quartiles · thick line = median · whiskers = min–max · ◇ = mean";
    text(&mut o, 12.0, 72.0, r##" font-size="11" fill="#555""##, key);

    let header_chars = ((CELL_W - 8.0) / CHAR_W) as usize;
    for (c, dim) in dims.iter().enumerate() {
        let at = col_x(c) + CELL_W / 2.0;
        text(&mut o, at, HEAD_H - 8.0, r#" text-anchor="middle" font-weight="bold""#, &labelled(dim, header_chars));
    }
    if tasks.is_empty() {
        text(&mut o, 12.0, HEAD_H + 20.0, r##" fill="#666""##, "no data");
    }

    let label_chars = ((LABEL_W - 16.0) / CHAR_W) as usize;
    for (r, task) in tasks.iter().enumerate() {
        let (top, mid) = (plot_top(r), plot_top(r) + PLOT_H / 2.0);
        text(&mut o, 12.0, mid + 4.0, r#" font-weight="bold""#, &labelled(task, label_chars));
        for t in TICKS {
            let tick = r##" text-anchor="end" font-size="10" fill="#555""##;
            text(&mut o, col_x(0) - 4.0, y_of(r, t) + 3.5, tick, &format!("{t:.0}"));
        }
        for (c, dim) in dims.iter().enumerate() {
            let (left, right) = (col_x(c) + 4.0, col_x(c) + CELL_W - 4.0);
            let plot = format!("width=\"{:.1}\" height=\"{PLOT_H:.1}\" fill=\"#F7F7F7\" stroke=\"#BBB\"", right - left);
            w!(o, "<rect x=\"{left:.1}\" y=\"{top:.1}\" {plot}/>\n");
            for t in TICKS {
                line(&mut o, (left, y_of(r, t)), (right, y_of(r, t)), r##" stroke="#DDD""##);
            }
            for (a, arm) in ARMS.iter().enumerate() {
                let cx = col_x(c) + CELL_W * if a == 0 { 0.3 } else { 0.7 };
                let stats = Stats::of(&grid[r * dims.len() + c][a]);
                let small = r##" text-anchor="middle" font-size="11" fill="#444""##;
                let what = format!("{} · {} · {}", esc(task), esc(dim), arm.name);
                match &stats {
                    Some(s) => draw_box(&mut o, r, cx, arm, s, &what),
                    None => text(&mut o, cx, mid + 4.0, &format!("{small} font-style=\"italic\""), "no answers"),
                }
                text(&mut o, cx, top + PLOT_H + 16.0, small, &format!("n={}", stats.map_or(0, |s| s.n)));
            }
        }
    }
    o.push_str("</svg>\n");
    o
}

/// Diagonal hatching for the test arm's boxes: a light blue ground keeps the
/// median line readable, the dark stripes survive greyscale printing.
const HATCH: &str = concat!(
    r##"<pattern id="o8-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">"##,
    r##"<rect width="6" height="6" fill="#D6E8F5"/>"##,
    r##"<line x1="0" y1="0" x2="0" y2="6" stroke="#0072B2" stroke-width="2.5"/></pattern>"##
);

impl Arm {
    fn style(&self) -> String {
        let Arm { fill, stroke, dash, .. } = self;
        format!(" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\" stroke-dasharray=\"{dash}\"")
    }
}

/// A `<text>` at (x, y); `extra` is further attributes, `body` already-escaped markup.
fn text(o: &mut String, x: f64, y: f64, extra: &str, body: &str) {
    w!(o, "<text x=\"{x:.1}\" y=\"{y:.1}\"{extra}>{body}</text>\n");
}

fn line(o: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), extra: &str) {
    w!(o, "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\"{extra}/>\n");
}

/// A label cut to `max` chars, with the full name as a hover `<title>`.
fn labelled(full: &str, max: usize) -> String {
    format!("<title>{}</title>{}", esc(full), esc(&fit(full, max)))
}

/// One arm's box plot, grouped under a `<title>` so the whole glyph has the
/// tooltip; `what` is the escaped "TASK · DIMENSION · ARM".
fn draw_box(o: &mut String, row: usize, cx: f64, arm: &Arm, s: &Stats, what: &str) {
    let y = |v| y_of(row, v);
    let (l, r) = (cx - BOX_W / 2.0, cx + BOX_W / 2.0);
    let (n, mean, median, q1, q3) = (s.n, s.mean, s.median, s.q1, s.q3);
    w!(o, "<g class=\"box\"><title>{what}: n={n}, mean={mean:.1}, ");
    w!(o, "median={median:.1}, q1={q1:.1}, q3={q3:.1}</title>\n");
    // One whisker line min..max; the opaque box then covers its middle.
    let ink = r##" stroke="#333" stroke-width="1.5""##;
    line(o, (cx, y(s.max)), (cx, y(s.min)), ink);
    for v in [s.min, s.max] {
        line(o, (cx - 8.0, y(v)), (cx + 8.0, y(v)), ink);
    }
    let (top, h, style) = (y(q3), y(q1) - y(q3), arm.style());
    w!(o, "<rect x=\"{l:.1}\" y=\"{top:.1}\" width=\"{BOX_W:.1}\" height=\"{h:.1}\"{style}/>\n");
    line(o, (l, y(median)), (r, y(median)), r##" class="median" stroke="#000" stroke-width="3""##);
    let (m, d) = (y(mean), 5.0);
    let diamond = format!("M{cx:.1} {:.1}L{:.1} {m:.1}L{cx:.1} {:.1}L{:.1} {m:.1}Z", m - d, cx + d, m + d, cx - d);
    w!(o, "<path d=\"{diamond}\" fill=\"#fff\" stroke=\"#000\"/></g>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell<'a>(task: &'a str, dimension: &'a str, control: &'a [f64], test: &'a [f64]) -> Distribution<'a> {
        Distribution { task, dimension, control, test }
    }

    /// Tiny well-formedness check: tags nest and every `&` starts an entity.
    fn well_formed(svg: &str) -> bool {
        let mut stack = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            let Some(j) = rest[i..].find('>').map(|j| i + j) else { return false };
            let tag = &rest[i + 1..j];
            rest = &rest[j + 1..];
            if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
                continue;
            }
            match tag.strip_prefix('/') {
                Some(name) if stack.pop() != Some(name) => return false,
                Some(_) => {}
                None => stack.push(tag.split_whitespace().next().unwrap_or("")),
            }
        }
        let entities = ["amp;", "lt;", "gt;", "quot;", "apos;"];
        stack.is_empty() && svg.match_indices('&').all(|(i, _)| entities.iter().any(|e| svg[i + 1..].starts_with(e)))
    }

    /// The first numeric attribute `name` in `s`.
    fn num(s: &str, name: &str) -> f64 {
        let v = &s[s.find(&format!(" {name}=\"")).unwrap() + name.len() + 3..];
        v[..v.find('"').unwrap()].parse().unwrap()
    }

    /// Attribute `name` of the last `<tag ...>` opened before the end of `marker`.
    fn attr(svg: &str, marker: &str, tag: &str, name: &str) -> f64 {
        let end = svg.find(marker).expect("marker present") + marker.len();
        num(&svg[svg[..end].rfind(&format!("<{tag} ")).unwrap()..], name)
    }

    #[test]
    fn well_formed_and_escaped() {
        let out = svg("A & B", &[cell("a<b & \"c\"", "it's", &[50.0, 60.0], &[70.0])]);
        assert!(well_formed(&out));
        assert!(out.contains("a&lt;b &amp; &quot;c&quot;") && out.contains("it&apos;s"));
        assert!(!out.contains("a<b") && !out.contains("A & B"));
        assert!(out.contains("viewBox=\"0 0 ") && out.contains("width=\"") && out.contains("sans-serif"));
        assert!(well_formed(&svg("\u{1}x", &[cell("t\u{0}", "d", &[], &[])])));
    }

    #[test]
    fn deterministic() {
        let cells =
            [cell("t1", "structure", &[10.0, 55.5, 90.0], &[33.3]), cell("t2", "constraints", &[1.0], &[2.0, 3.0])];
        assert_eq!(svg("x", &cells), svg("x", &cells));
    }

    #[test]
    fn empty_arm_says_no_answers() {
        let out = svg("x", &[cell("t", "d", &[80.0], &[])]);
        assert_eq!(out.matches("no answers").count(), 1);
        assert!(out.contains("n=0") && out.contains("n=1"));
        assert!(out.contains("t · d · Markdown: n=1, mean=80.0, median=80.0, q1=80.0, q3=80.0"));
    }

    #[test]
    fn rows_and_columns_in_first_seen_order() {
        let s = [50.0];
        let cells = [
            cell("zeta", "structure", &s, &s),
            cell("alpha", "completeness", &s, &s),
            cell("zeta", "completeness", &s, &s),
        ];
        let out = svg("x", &cells);
        assert!(attr(&out, ">zeta<", "text", "y") < attr(&out, ">alpha<", "text", "y"));
        assert!(attr(&out, ">structure<", "text", "x") < attr(&out, ">completeness<", "text", "x"));
        // alpha × structure was never given: both arms are empty.
        assert_eq!(out.matches("no answers").count(), 2);
    }

    #[test]
    fn all_hundreds_put_the_median_at_the_top() {
        let out = svg("x", &[cell("t", "d", &[100.0; 4], &[0.0, 0.0])]);
        let medians: Vec<_> =
            out.split("<line ").filter(|l| l.contains("class=\"median\"")).map(|l| num(l, "y1")).collect();
        assert_eq!(medians, [y_of(0, 100.0), y_of(0, 0.0)]);
        assert_eq!(y_of(0, 100.0), plot_top(0));
    }

    #[test]
    fn quartiles_interpolate_and_bad_scores_are_handled() {
        let s = Stats::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.q1, s.median, s.q3, s.mean), (1.75, 2.5, 3.25, 2.5));
        let s = Stats::of(&[f64::NAN, f64::INFINITY, 150.0, -5.0, f64::NEG_INFINITY]).unwrap();
        assert_eq!((s.n, s.min, s.max), (2, 0.0, 100.0));
        assert_eq!(Stats::of(&[f64::NAN]), None);
        assert!(well_formed(&svg("x", &[cell("t", "d", &[f64::NAN, 1e300], &[-1e300])])));
    }

    #[test]
    fn long_names_are_truncated_with_full_title() {
        let long = "summarise the quarterly financial report for the board";
        let out = svg("x", &[cell(long, "d", &[1.0], &[2.0])]);
        assert!(out.contains(&format!("<title>{long}</title>summarise the quar…</text>")));
        assert_eq!(fit("ab", 2), "ab");
        assert_eq!(fit("éééé", 3), "éé…");
    }
}
