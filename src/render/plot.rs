//! Charts as self-contained SVG (plotters' SVG backend: text is SVG `<text>`, no fonts needed).

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::commands::simulate::Sweep;
use loopvel_sim::SimReport;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A chart with seconds, shares or sweep values on both axes.
pub(crate) type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One named line in the palette's `i`-th colour, with its legend entry.
pub(crate) fn draw_line(chart: &mut Chart, name: &str, i: usize, points: Vec<(f64, f64)>) -> Result<(), String> {
    let c = color(i);
    chart
        .draw_series(LineSeries::new(points, c.stroke_width(2)))
        .map_err(err)?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    Ok(())
}

/// The legend box, on a white background.
pub(crate) fn draw_legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, position: SeriesLabelPosition) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

pub(crate) fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("cannot draw the chart: {e:?}")
}

/// Success-by-time curves of every model and policy on one chart.
pub fn curves(report: &SimReport, scenario: &str) -> Result<String, String> {
    let end = report.all().filter_map(|(_, r)| r.curve.last().map(|p| p[0])).fold(0.0, f64::max).max(1e-3);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 590)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Share of runs green by time — {scenario} ({} runs each)", report.runs),
                ("sans-serif", 20),
            )
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..end, 0f64..100f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time since the run started (s)")
            .y_desc("runs passed (% of all runs)")
            .draw()
            .map_err(err)?;
        for (i, (name, r)) in report.all().enumerate() {
            let points: Vec<(f64, f64)> =
                (0..=400).map(|j| end * j as f64 / 400.0).map(|t| (t, 100.0 * r.share_passed_by(t))).collect();
            draw_line(&mut chart, name, i, points)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(err)?;
    }
    Ok(add_caption(svg, "How to read it: the higher a curve at a time, the more runs had all tests passing by then; where a curve levels off is its pass rate within the budget."))
}

/// Put a one-line caption under the chart.
fn add_caption(svg: String, caption: &str) -> String {
    let Some(end) = svg.rfind("</svg>") else {
        return svg;
    };
    let text = format!(
        "<text x=\"16\" y=\"582\" font-family=\"sans-serif\" font-size=\"12\" fill=\"#444\">{}</text>\n",
        caption.replace('&', "&amp;").replace('<', "&lt;")
    );
    format!("{}{}{}", &svg[..end], text, &svg[end..])
}

/// A sweep: one axis → mean time to pass of each model along it; two axes → a map of winners.
pub fn sweep(sweep: &Sweep) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 590)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        match sweep.axes.as_slice() {
            [axis] => {
                let (lo, hi) = bounds(&axis.values);
                let top = sweep
                    .points
                    .iter()
                    .flat_map(|p| p.mean_time_to_pass_s.values().filter_map(|v| v.as_f64()))
                    .fold(0.0, f64::max)
                    .max(1e-3)
                    * 1.05;
                let mut chart = ChartBuilder::on(&root)
                    .caption(format!("Mean time to pass as {} varies", axis.key), ("sans-serif", 20))
                    .margin(16)
                    .x_label_area_size(48)
                    .y_label_area_size(64)
                    .build_cartesian_2d(lo..hi, 0f64..top)
                    .map_err(err)?;
                chart
                    .configure_mesh()
                    .x_desc(with_unit(&axis.key))
                    .y_desc("mean time to pass (s)")
                    .draw()
                    .map_err(err)?;
                for (i, m) in sweep.models.iter().enumerate() {
                    let points: Vec<(f64, f64)> = sweep
                        .points
                        .iter()
                        .filter_map(|p| p.mean_time_to_pass_s.get(m).and_then(|v| v.as_f64()).map(|y| (p.at[0], y)))
                        .collect();
                    draw_line(&mut chart, m, i, points)?;
                }
                draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
            }
            [ax, ay] => {
                let (x0, x1) = bounds(&ax.values);
                let (y0, y1) = bounds(&ay.values);
                let (dx, dy) = (step(&ax.values), step(&ay.values));
                let mut chart = ChartBuilder::on(&root)
                    .caption("Which model reaches green first (shade: margin over the runner-up)", ("sans-serif", 20))
                    .margin(16)
                    .x_label_area_size(48)
                    .y_label_area_size(64)
                    .build_cartesian_2d(x0 - dx / 2.0..x1 + dx / 2.0, y0 - dy / 2.0..y1 + dy / 2.0)
                    .map_err(err)?;
                chart.configure_mesh().x_desc(with_unit(&ax.key)).y_desc(with_unit(&ay.key)).draw().map_err(err)?;
                for (i, m) in sweep.models.iter().enumerate() {
                    let c = color(i);
                    let cells: Vec<_> = sweep
                        .points
                        .iter()
                        .filter(|p| p.winner.as_deref() == Some(m.as_str()))
                        .map(|p| {
                            // Margin 1× → pale, 4× or more → full colour.
                            let shade = p.margin.map_or(1.0, |r| (r.max(1.0).log2() / 2.0).clamp(0.15, 1.0));
                            Rectangle::new(
                                [(p.at[0] - dx / 2.0, p.at[1] - dy / 2.0), (p.at[0] + dx / 2.0, p.at[1] + dy / 2.0)],
                                c.mix(shade).filled(),
                            )
                        })
                        .collect();
                    chart
                        .draw_series(cells)
                        .map_err(err)?
                        .label(format!("{m} wins"))
                        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
                }
                draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
            }
            _ => return Err("a sweep needs one or two axes".into()),
        }
        root.present().map_err(err)?;
    }
    let caption = if sweep.axes.len() == 1 {
        "How to read it: the lowest line wins at each value; where the lines cross is the break-even."
    } else {
        "How to read it: each cell's colour is the model with the lowest mean time to pass there; pale cells are close calls."
    };
    Ok(add_caption(svg, caption))
}

/// An axis label with the unit its key implies: `loop.test_s (s)`.
fn with_unit(key: &str) -> String {
    let field = key.rsplit('.').next().unwrap_or(key);
    let unit = if field == "tokens_per_s" {
        "tokens/s"
    } else if field.starts_with("usd_per_mtok") {
        "USD per million tokens"
    } else if field.ends_with("_s") {
        "s"
    } else if field.ends_with("_usd") {
        "USD"
    } else if field.ends_with("tokens") {
        "tokens"
    } else if field == "max_turns" {
        "turns"
    } else if field == "max_concurrent" {
        "requests"
    } else if field == "rate_limit_rps" {
        "requests/s"
    } else if field == "tests" {
        "tests"
    } else {
        "share, 0 to 1"
    };
    format!("{key} ({unit})")
}

fn bounds(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, lo + 0.5)
    }
}

fn step(values: &[f64]) -> f64 {
    if values.len() < 2 {
        1.0
    } else {
        ((values[values.len() - 1] - values[0]) / (values.len() - 1) as f64).abs().max(1e-12)
    }
}
