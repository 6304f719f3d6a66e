//! Charts as self-contained SVG (plotters' SVG backend: text is SVG `<text>`, no fonts needed).

use plotters::chart::MeshStyle;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::commands::simulate::Sweep;
use loopvel_sim::SimReport;

/// Font sizes as given to plotters, which writes them ×1/1.24 into the SVG:
/// 16 → 12.9 px tick labels and legend, 18 → 14.5 px axis titles, 22 → 17.7 px
/// title; at least 12 px, readable at 100% zoom.
pub(crate) const LABEL_PT: u32 = 16;
pub(crate) const DESC_PT: u32 = 18;
pub(crate) const TITLE_PT: u32 = 22;

/// Width and height of a chart's SVG; the bottom `CAPTION_H` pixels hold the caption.
const SIZE: (u32, u32) = (960, 620);
const CAPTION_H: u32 = 44;

/// Readable axes: large tick labels, a light grid on the labelled ticks only
/// (no minor lines), at most 8 labels along x and 6 along y.
pub(crate) fn readable<'a, 'b, 'c, X: Ranged, Y: Ranged>(
    m: &'c mut MeshStyle<'a, 'b, X, Y, SVGBackend<'a>>,
) -> &'c mut MeshStyle<'a, 'b, X, Y, SVGBackend<'a>> {
    m.label_style(("sans-serif", LABEL_PT))
        .axis_desc_style(("sans-serif", DESC_PT))
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.12))
        .x_labels(8)
        .y_labels(6)
}

/// A tick label without noise digits: `50`, not `50.0`; `0.25`.
pub(crate) fn tick(v: &f64) -> String {
    loopvel_math::units::sig3(*v)
}

/// How many labels an axis that counts (turns, tests) from `lo` to `hi` may
/// have so that plotters picks a step of 1, 2, 5, 10…: never a fraction.
pub(crate) fn whole_labels(lo: f64, hi: f64) -> usize {
    (((hi - lo).floor() as usize) + 1).clamp(1, 10)
}

/// Tick label of a counting axis: whole numbers only (a fractional tick, if
/// plotters ever made one, stays unlabelled rather than reading "2.5 turns").
pub(crate) fn whole(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

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

/// An area of an SVG being drawn.
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The whole drawing, and the area above the caption.
fn chart_area(svg: &mut String) -> Result<(Area<'_>, Area<'_>), String> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, _) = root.split_vertically(SIZE.1 - CAPTION_H);
    Ok((root, top))
}

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
        .label_font(("sans-serif", LABEL_PT))
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
        let (root, top) = chart_area(&mut svg)?;
        let mut chart = ChartBuilder::on(&top)
            .caption(
                format!(
                    "Share of runs green by time — {scenario} ({} each)",
                    loopvel_math::units::count(report.runs, "run")
                ),
                ("sans-serif", TITLE_PT),
            )
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(72)
            .build_cartesian_2d(0f64..end, 0f64..100f64)
            .map_err(err)?;
        readable(&mut chart.configure_mesh())
            .x_desc("time since the run started (s)")
            .y_desc("runs passed (% of all runs)")
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
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

/// Put a caption of up to two lines under the chart (13 px; about 130 characters a line).
fn add_caption(svg: String, caption: &str) -> String {
    let Some(end) = svg.rfind("</svg>") else {
        return svg;
    };
    let mut text = String::new();
    for (i, line) in super::wrap(caption, 130).lines().take(2).enumerate() {
        text.push_str(&format!(
            "<text x=\"16\" y=\"{}\" font-family=\"sans-serif\" font-size=\"13\" fill=\"#333\">{}</text>\n",
            SIZE.1 - CAPTION_H + 16 + 18 * i as u32,
            line.replace('&', "&amp;").replace('<', "&lt;")
        ));
    }
    format!("{}{}{}", &svg[..end], text, &svg[end..])
}

/// A sweep: one axis → mean time to pass of each model along it, with the
/// table's winner shaded; two axes → a map of winners.
///
/// The chart names the winner the table names: a model whose pass rate is
/// more than the margin below the best cannot win however quick its passes
/// are, so its line is dashed there and says so in the legend, and the band
/// behind the lines takes the winner's colour.
pub fn sweep(sweep: &Sweep) -> Result<String, String> {
    let points = (100.0 * sweep.pass_rate_margin).round();
    let mut svg = String::new();
    {
        let (root, top) = chart_area(&mut svg)?;
        match sweep.axes.as_slice() {
            [axis] => {
                let (lo, hi) = bounds(&axis.values);
                let top_y = sweep
                    .points
                    .iter()
                    .flat_map(|p| p.mean_time_to_pass_s.values().filter_map(|v| v.as_f64()))
                    .fold(0.0, f64::max)
                    .max(1e-3)
                    // Headroom: the legend sits in the top third, above every line.
                    * 1.5;
                let mut chart = ChartBuilder::on(&top)
                    .caption(format!("Mean time to pass as {} varies", axis.key), ("sans-serif", TITLE_PT))
                    .margin(16)
                    .x_label_area_size(56)
                    .y_label_area_size(72)
                    .build_cartesian_2d(lo..hi, 0f64..top_y)
                    .map_err(err)?;
                let counting = counts(&axis.key);
                let mut mesh = chart.configure_mesh();
                readable(&mut mesh)
                    .x_desc(with_unit(&axis.key))
                    .y_desc("mean time to pass (s)")
                    .y_label_formatter(&tick)
                    .x_label_formatter(&tick);
                if counting {
                    mesh.x_labels(whole_labels(lo, hi)).x_label_formatter(&whole);
                }
                mesh.draw().map_err(err)?;
                // The band: each point's share of the axis, in its winner's colour.
                let xs: Vec<f64> = sweep.points.iter().map(|p| p.at[0]).collect();
                for (i, m) in sweep.models.iter().enumerate() {
                    let c = color(i);
                    let cells: Vec<Rectangle<(f64, f64)>> = sweep
                        .points
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.winner.as_deref() == Some(m.as_str()))
                        .map(|(j, p)| {
                            let left = if j == 0 { lo } else { (xs[j - 1] + p.at[0]) / 2.0 };
                            let right = if j + 1 == xs.len() { hi } else { (xs[j + 1] + p.at[0]) / 2.0 };
                            Rectangle::new([(left, 0.0), (right, top_y)], c.mix(0.10).filled())
                        })
                        .collect();
                    if !cells.is_empty() {
                        chart
                            .draw_series(cells)
                            .map_err(err)?
                            .label(format!("shaded: {m} wins here"))
                            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], c.mix(0.25).filled()));
                    }
                }
                for (i, m) in sweep.models.iter().enumerate() {
                    let c = color(i);
                    let pts: Vec<(f64, f64, bool)> = sweep
                        .points
                        .iter()
                        .filter_map(|p| {
                            let y = p.mean_time_to_pass_s.get(m).and_then(|v| v.as_f64())?;
                            Some((p.at[0], y, p.eligible.contains(m)))
                        })
                        .collect();
                    let ever_out = pts.iter().any(|p| !p.2);
                    // Solid where both ends can win, dashed where either cannot.
                    for w in pts.windows(2) {
                        let seg = vec![(w[0].0, w[0].1), (w[1].0, w[1].1)];
                        if w[0].2 && w[1].2 {
                            chart.draw_series(LineSeries::new(seg, c.stroke_width(2))).map_err(err)?;
                        } else {
                            chart.draw_series(DashedLineSeries::new(seg, 8, 6, c.stroke_width(2))).map_err(err)?;
                        }
                    }
                    // Filled dots where the model can win, hollow where it cannot.
                    chart
                        .draw_series(
                            pts.iter().map(|&(x, y, ok)| {
                                Circle::new((x, y), 4, if ok { c.filled() } else { c.stroke_width(2) })
                            }),
                        )
                        .map_err(err)?
                        .label(if ever_out {
                            format!("{m} — dashed: pass rate > {points} points below the best, cannot win")
                        } else {
                            m.clone()
                        })
                        .legend(move |(x, y)| {
                            // Two dashes, or two halves of one solid line.
                            let (a, b) = if ever_out { (7, 13) } else { (10, 10) };
                            EmptyElement::at((x, y))
                                + PathElement::new(vec![(0, 0), (a, 0)], c.stroke_width(2))
                                + PathElement::new(vec![(b, 0), (20, 0)], c.stroke_width(2))
                        });
                }
                draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
            }
            [ax, ay] => {
                let (x0, x1) = bounds(&ax.values);
                let (y0, y1) = bounds(&ay.values);
                let (dx, dy) = (step(&ax.values), step(&ay.values));
                let mut chart = ChartBuilder::on(&top)
                    .caption(
                        "Which model reaches green first (shade: margin over the runner-up)",
                        ("sans-serif", TITLE_PT),
                    )
                    .margin(16)
                    .x_label_area_size(56)
                    .y_label_area_size(72)
                    .build_cartesian_2d(x0 - dx / 2.0..x1 + dx / 2.0, y0 - dy / 2.0..y1 + dy / 2.0)
                    .map_err(err)?;
                let mut mesh = chart.configure_mesh();
                readable(&mut mesh).x_desc(with_unit(&ax.key)).y_desc(with_unit(&ay.key));
                if counts(&ax.key) {
                    mesh.x_labels(whole_labels(x0, x1)).x_label_formatter(&whole);
                }
                if counts(&ay.key) {
                    mesh.y_labels(whole_labels(y0, y1)).y_label_formatter(&whole);
                }
                mesh.draw().map_err(err)?;
                for (i, m) in sweep.models.iter().enumerate() {
                    let c = color(i);
                    let cells: Vec<_> = sweep
                        .points
                        .iter()
                        .filter(|p| p.winner.as_deref() == Some(m.as_str()))
                        .map(|p| {
                            // Margin 1× → pale, 4× or more → full colour; the only
                            // eligible model wins outright (full colour).
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
        format!(
            "How to read it: the shading is the winner at each value, as in the table: the lowest mean time to pass among models whose pass rate is within {points} points of the best. A dashed line is below that bar: it cannot win there, however low it runs."
        )
    } else {
        format!(
            "How to read it: each cell's colour is the winner there (the lowest mean time to pass among models within {points} points of the best pass rate); pale cells are close calls."
        )
    };
    Ok(add_caption(svg, &caption))
}

/// Whether an axis counts things (turns, tests, requests, tokens), so its ticks are whole numbers.
fn counts(key: &str) -> bool {
    let unit = with_unit(key);
    ["(turns)", "(tests)", "(requests)", "(tokens)"].iter().any(|u| unit.ends_with(u))
}

/// An axis label with the unit its key implies: `loop.test_s (s)`.
pub(crate) fn with_unit(key: &str) -> String {
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
    } else if field == "restart_after" {
        "turns without a pass; 0 never"
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
