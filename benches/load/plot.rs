//! The load bench's plots: throughput against p99 (one curve per mode), and for a length sweep,
//! throughput and p99 against input length and against concurrency.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::{Input, Row};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const COLORS: [RGBColor; 8] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];

fn font() -> Result<()> {
    let font = std::env::var("BENCH_FONT").unwrap_or_else(|_| "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into());
    let bytes = std::fs::read(&font).map_err(|e| format!("font {font}: {e} (set BENCH_FONT to a TTF)"))?;
    register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice()))
        .map_err(|_| format!("font {font} is not a usable TTF"))?;
    Ok(())
}

fn short_name(model: &str) -> &str {
    model.trim_end_matches('/').rsplit('/').next().unwrap_or(model)
}

/// Throughput against p99 latency for `input`, one curve per mode, points in concurrency order.
pub fn frontier(path: &str, input: &str, results: &[Row], model: &str) -> Result<()> {
    font()?;
    let points: Vec<&Row> = results.iter().filter(|r| r.input == input).collect();
    if points.is_empty() {
        return Err(format!("no results for input {input}").into());
    }
    let max_rps = points.iter().map(|r| r.rps).fold(1.0, f64::max) * 1.15;
    let (min_p99, max_p99) = points.iter().fold((f64::MAX, 1.0f64), |(lo, hi), r| (lo.min(r.p99_ms), hi.max(r.p99_ms)));
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{}, {input} inputs: throughput vs p99 latency", short_name(model)), ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((min_p99 * 0.7..max_p99 * 1.4).log_scale(), 0.0..max_rps)?;
    chart
        .configure_mesh()
        .x_desc("p99 latency (ms, log scale)")
        .y_desc("throughput (requests/s)")
        .label_style(("sans-serif", 15))
        .draw()?;
    let mut modes: Vec<&str> = points.iter().map(|r| r.mode.as_str()).collect();
    modes.dedup();
    for (i, mode) in modes.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut curve: Vec<&&Row> = points.iter().filter(|r| r.mode == *mode).collect();
        curve.sort_by_key(|r| r.concurrency);
        chart
            .draw_series(LineSeries::new(curve.iter().map(|r| (r.p99_ms, r.rps)), color.stroke_width(2)))?
            .label(*mode)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(curve.iter().map(|r| {
            EmptyElement::at((r.p99_ms, r.rps))
                + Circle::new((0, 0), 4, color.filled())
                + Text::new(format!("c={}", r.concurrency), (6, -14), ("sans-serif", 13))
        }))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// 1.5k, 20, 0.5: short axis labels.
fn compact(v: f64) -> String {
    if v >= 1000.0 {
        format!("{}k", trim(v / 1000.0))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = if v >= 10.0 { format!("{v:.0}") } else { format!("{v:.1}") };
    s.strip_suffix(".0").map_or(s.clone(), str::to_string)
}

/// A named line of (x, y) points; dashed for a reference (model only, FLOP ceiling).
struct Curve {
    name: String,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

/// One panel: `curves` on log-log axes.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    curves: &[Curve],
) -> Result<()> {
    let all: Vec<(f64, f64)> = curves.iter().flat_map(|c| c.points.iter().copied()).filter(|p| p.1 > 0.0).collect();
    let (x_lo, x_hi) = all.iter().fold((f64::MAX, 0f64), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let (y_lo, y_hi) = all.iter().fold((f64::MAX, 0f64), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        // Lengths and concurrencies are powers of two: label the x axis at each.
        .build_cartesian_2d((x_lo * 0.8..x_hi * 1.25).log_scale().base(2.0), (y_lo * 0.7..y_hi * 1.5).log_scale())?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(12)
        .y_labels(20)
        .x_label_formatter(&|v| compact(*v))
        .y_label_formatter(&|v| compact(*v))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, Curve { name, points, dashed }) in curves.iter().enumerate() {
        // Reference curves: dashed, black then grey.
        let color = if *dashed { [BLACK, RGBColor(130, 130, 130)][i % 2] } else { COLORS[i % COLORS.len()] };
        let points: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.1 > 0.0).collect();
        let style = color.stroke_width(if *dashed { 1 } else { 2 });
        let legend = move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style);
        if *dashed {
            chart.draw_series(DashedLineSeries::new(points, 6, 4, style))?.label(name.as_str()).legend(legend);
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style))?.label(name.as_str()).legend(legend);
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The length sweep (inputs `tokens-N`, first mode): `{prefix}-length.png` (throughput and p99
/// against length, a curve per concurrency, with the model-only rate and the f32 FLOP ceiling) and
/// `{prefix}-concurrency.png` (the same against concurrency, a curve per length).
pub fn sweep(
    prefix: &str,
    results: &[Row],
    inputs: &[Input],
    refs: &[(String, serde_json::Value)],
    ceiling: &dyn Fn(usize) -> f64,
    model: &str,
) -> Result<Vec<String>> {
    font()?;
    let swept: Vec<&Input> = inputs.iter().filter(|i| i.kind.starts_with("tokens-")).collect();
    let mode = results
        .iter()
        .find(|r| swept.iter().any(|i| i.kind == r.input))
        .map(|r| r.mode.clone())
        .ok_or("no sweep cells")?;
    let rows: Vec<&Row> = results.iter().filter(|r| r.mode == mode).collect();
    let tokens_of = |kind: &str| swept.iter().find(|i| i.kind == kind).map(|i| i.tokens[0]);
    let mut levels: Vec<usize> = rows.iter().map(|r| r.concurrency).collect();
    levels.sort_unstable();
    levels.dedup();
    let name = short_name(model);

    let by_length = format!("{prefix}-length.png");
    let root = BitMapBackend::new(&by_length, (1400, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(700);
    let per_level = |value: &dyn Fn(&Row) -> f64| -> Vec<Curve> {
        levels
            .iter()
            .map(|&c| {
                let mut points: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| r.concurrency == c)
                    .filter_map(|r| tokens_of(&r.input).map(|t| (t as f64, value(r))))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Curve { name: format!("c={c}"), points, dashed: false }
            })
            .collect()
    };
    let mut throughput = per_level(&|r: &Row| r.tokens_per_s);
    let lengths: Vec<usize> = swept.iter().map(|i| i.tokens[0]).collect();
    let model_only: Vec<(f64, f64)> = swept
        .iter()
        .filter_map(|i| {
            let r = &refs.iter().find(|r| r.0 == i.kind)?.1;
            Some((i.tokens[0] as f64, r["model_only_inputs_per_s"].as_f64()? * i.tokens[0] as f64))
        })
        .collect();
    throughput.push(Curve { name: "model only (no HTTP)".into(), points: model_only, dashed: true });
    let ceiling_points = lengths.iter().map(|&t| (t as f64, ceiling(t))).collect();
    throughput.push(Curve { name: "f32 FLOP ceiling".into(), points: ceiling_points, dashed: true });
    panel(
        &left,
        &format!("{name} ({mode}): throughput vs length"),
        ("input tokens (log)", "tokens/s (log)"),
        &throughput,
    )?;
    panel(
        &right,
        &format!("{name} ({mode}): p99 vs length"),
        ("input tokens (log)", "p99 ms (log)"),
        &per_level(&|r: &Row| r.p99_ms),
    )?;
    root.present()?;

    let by_concurrency = format!("{prefix}-concurrency.png");
    let root = BitMapBackend::new(&by_concurrency, (1400, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(700);
    let per_length = |value: &dyn Fn(&Row) -> f64| -> Vec<Curve> {
        swept
            .iter()
            .map(|i| {
                let points: Vec<(f64, f64)> = levels
                    .iter()
                    .filter_map(|&c| rows.iter().find(|r| r.input == i.kind && r.concurrency == c))
                    .map(|r| (r.concurrency as f64, value(r)))
                    .collect();
                Curve { name: format!("{} tokens", i.tokens[0]), points, dashed: false }
            })
            .collect()
    };
    panel(
        &left,
        &format!("{name} ({mode}): throughput vs concurrency"),
        ("concurrent clients (log)", "requests/s (log)"),
        &per_length(&|r: &Row| r.rps),
    )?;
    panel(
        &right,
        &format!("{name} ({mode}): p99 vs concurrency"),
        ("concurrent clients (log)", "p99 ms (log)"),
        &per_length(&|r: &Row| r.p99_ms),
    )?;
    root.present()?;
    Ok(vec![by_length.clone(), by_concurrency.clone()])
}
