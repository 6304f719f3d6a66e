//! The report's charts, as inline SVG: every chart has a title, axes with
//! units, a legend and a one-line caption saying how to read it.

use plotters::prelude::*;

use crate::render::plot::{
    color, draw_legend, draw_line, err, readable, tick, whole, whole_labels, Chart as Chart2d, TITLE_PT,
};
use loopvel_analysis::summary::ModelSummary;

/// One chart and its caption.
pub struct Chart {
    /// The SVG document.
    pub svg: String,
    /// How to read it, one line.
    pub caption: String,
}

const SIZE: (u32, u32) = (960, 540);

/// All charts with their element ids, in page order (pass@k by time only
/// when some run passed).
pub fn all(models: &[ModelSummary]) -> Result<Vec<(&'static str, Chart)>, String> {
    let mut charts = vec![("chart-km", km_by_time(models)?)];
    if let Some(c) = pass_k_by_time(models)? {
        charts.push(("chart-passk", c));
    }
    charts.extend([
        ("chart-fit", fit_check(models)?),
        ("chart-score", score_by_turn(models)?),
        ("chart-time", time_split(models)?),
        ("chart-pareto", pareto(models)?),
    ]);
    Ok(charts)
}

/// pass@k within a wall-clock budget T as a curve over T: per model, one
/// loop (k = 1, faint) and k loops started together (k the most every task
/// allows, solid). Evaluated at every passing time, so the steps are the data's.
pub fn pass_k_by_time(models: &[ModelSummary]) -> Result<Option<Chart>, String> {
    use loopvel_analysis::passk::pass_at_k_within;
    let mut times = crate::render::report::passing_times(models);
    times.retain(|t| t.is_finite());
    times.sort_by(f64::total_cmp);
    times.dedup();
    // At most 400 points (evenly spaced in rank): each is a pass over every run,
    // and a chart 960 pixels wide shows no more.
    if times.len() > 400 {
        let n = times.len();
        times = (0..400).map(|i| times[(i * (n - 1)) / 399]).collect();
    }
    let Some(&last) = times.last() else { return Ok(None) };
    let end = last.max(1e-3) * 1.05;
    let curve = |m: &ModelSummary, k: u64| -> Vec<(f64, f64)> {
        let points = times.iter().filter_map(|&t| Some((t, 100.0 * pass_at_k_within(&m.task_times, k, t)?)));
        steps(points, end)
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "pass@k within a wall-clock budget (k loops started together, any green by then)",
                ("sans-serif", TITLE_PT),
            )
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..end, 0f64..100f64)
            .map_err(err)?;
        readable(&mut chart.configure_mesh())
            .x_desc("wall-clock budget (s)")
            .y_desc("tasks green by then (%, mean over tasks)")
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw()
            .map_err(err)?;
        for (i, m) in models.iter().enumerate() {
            let Some(k_max) = m.pass_k.last().map(|p| p.k) else { continue };
            let faint = color(i).mix(0.45);
            chart
                .draw_series(LineSeries::new(curve(m, 1), faint.stroke_width(2)))
                .map_err(err)?
                .label(format!("{}, k = 1", m.model))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], faint.stroke_width(2)));
            if k_max > 1 {
                draw_line(&mut chart, &format!("{}, k = {k_max}", m.model), i, curve(m, k_max))?;
            }
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(err)?;
    }
    Ok(Some(Chart {
        svg,
        caption: "How to read it: at a budget T, the share of tasks (mean over tasks, unbiased from each task's runs) on which one loop (faint) or k loops started together (solid) had all tests passing by T. Where the solid line rises above the faint one, running k loops at once buys speed, not only a higher pass rate.".into(),
    }))
}

/// Per task, the difference in pass rate between the two compared models
/// (A − B, percentage points), one bar per task.
pub fn compare_bars(c: &loopvel_analysis::compare::Comparison) -> Result<Option<Chart>, String> {
    if c.tasks.is_empty() {
        return Ok(None);
    }
    let n = c.tasks.len();
    let height = (120 + 28 * n as u32).max(240);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let label_width = c.tasks.iter().map(|t| t.task.chars().count()).max().unwrap_or(4).clamp(4, 40) as u32 * 9;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("Pass rate by task: {} − {} (percentage points)", c.a, c.b), ("sans-serif", TITLE_PT))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(label_width + 16)
            .build_cartesian_2d(-100f64..100f64, (0..n).into_segmented())
            .map_err(err)?;
        let names: Vec<String> = c.tasks.iter().map(|t| t.task.clone()).collect();
        chart
            .configure_mesh()
            .label_style(("sans-serif", crate::render::plot::LABEL_PT))
            .axis_desc_style(("sans-serif", crate::render::plot::DESC_PT))
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.12))
            .x_labels(9)
            .y_labels(n)
            .x_desc(format!("{} − {} pass rate (percentage points)", c.a, c.b))
            .y_label_formatter(&|y: &SegmentValue<usize>| match y {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_formatter(&tick)
            .draw()
            .map_err(err)?;
        for (i, t) in c.tasks.iter().enumerate() {
            let d = 100.0 * t.pass_rate_diff;
            let fill = if d >= 0.0 { color(0) } else { color(1) };
            let mut bar =
                Rectangle::new([(0.0, SegmentValue::Exact(i)), (d, SegmentValue::Exact(i + 1))], fill.filled());
            bar.set_margin(5, 5, 0, 0);
            chart.draw_series(std::iter::once(bar)).map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(Some(Chart {
        svg,
        caption: format!(
            "How to read it: a bar to the right is a task {a} passed more often than {b}, to the left one {b} passed more often; no bar, a tie. {a} passes more often on {am} tasks, {b} on {bm}, tied on {tied} (exact sign test p = {p:.3}).",
            a = c.a, b = c.b, am = c.a_more, bm = c.b_more, tied = c.tied, p = c.sign_test_p
        ),
    }))
}

/// A shaded band between an upper and a lower line.
fn draw_band(chart: &mut Chart2d, hi: &[(f64, f64)], lo: &[(f64, f64)], fill: RGBAColor) -> Result<(), String> {
    let polygon: Vec<(f64, f64)> = hi.iter().copied().chain(lo.iter().rev().copied()).collect();
    chart.draw_series(std::iter::once(Polygon::new(polygon, fill.filled()))).map_err(err)?;
    Ok(())
}

/// Step points of a right-continuous step curve starting at (0, 0).
fn steps(points: impl Iterator<Item = (f64, f64)>, end: f64) -> Vec<(f64, f64)> {
    let mut out = vec![(0.0, 0.0)];
    let mut last = 0.0;
    for (t, y) in points {
        out.push((t, last));
        out.push((t, y));
        last = y;
    }
    out.push((end, last));
    out
}

/// Success by time: Kaplan–Meier with the Greenwood band, every model on one chart.
pub fn km_by_time(models: &[ModelSummary]) -> Result<Chart, String> {
    let end = models.iter().flat_map(|m| m.km.last().map(|p| p[0])).fold(0.0, f64::max).max(1e-3) * 1.02;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Runs passed by time (Kaplan–Meier, shaded: 95% band)", ("sans-serif", TITLE_PT))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..end, 0f64..100f64)
            .map_err(err)?;
        readable(&mut chart.configure_mesh())
            .x_desc("time since the run started (s)")
            .y_desc("runs passed (% of runs)")
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw()
            .map_err(err)?;
        for (i, m) in models.iter().enumerate() {
            let lo = steps(m.km_band.iter().map(|p| (p[0], 100.0 * p[1])), end);
            let hi = steps(m.km_band.iter().map(|p| (p[0], 100.0 * p[2])), end);
            draw_band(&mut chart, &hi, &lo, color(i).mix(0.15))?;
            draw_line(&mut chart, &m.model, i, steps(m.km.iter().map(|p| (p[0], 100.0 * p[1])), end))?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(err)?;
    }
    Ok(Chart {
        svg,
        caption: "How to read it: the higher a line at a time, the more runs had all tests passing by then; runs that stopped without passing count up to when they stopped (censored). Where bands overlap, the data cannot tell the models apart there.".into(),
    })
}

/// The fitted pass model against the observed Kaplan–Meier by turn.
pub fn fit_check(models: &[ModelSummary]) -> Result<Chart, String> {
    let max_turn = models.iter().map(|m| m.hazard.len()).max().unwrap_or(1).max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Fitted model (dots) against what happened (line, 95% band), by turn", ("sans-serif", TITLE_PT))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..max_turn + 0.5, 0f64..100f64)
            .map_err(err)?;
        readable(&mut chart.configure_mesh())
            .x_desc("turn")
            .y_desc("runs passed (% of runs)")
            .x_labels(whole_labels(0.0, max_turn + 0.5))
            .x_label_formatter(&whole)
            .y_label_formatter(&tick)
            .draw()
            .map_err(err)?;
        for (i, m) in models.iter().enumerate() {
            let end = max_turn + 0.5;
            let lo = steps(m.km_turns.iter().map(|p| (p[0], 100.0 * p[2])), end);
            let hi = steps(m.km_turns.iter().map(|p| (p[0], 100.0 * p[3])), end);
            draw_band(&mut chart, &hi, &lo, color(i).mix(0.12))?;
            draw_line(
                &mut chart,
                &format!("{} observed", m.model),
                i,
                steps(m.km_turns.iter().map(|p| (p[0], 100.0 * p[1])), end),
            )?;
            if let (Some(pf), Some(pr), Some(c)) = (m.fit.p_first, m.fit.p_retry, m.fit.ceiling) {
                let fitted = loopvel_math::hazard::PassModel { p_first: pf.value, p_retry: pr.value, ceiling: c.value };
                let c_i = color(i);
                chart
                    .draw_series(
                        (1..=max_turn as u32).map(|n| {
                            Circle::new((f64::from(n), 100.0 * fitted.pass_by_turn(n)), 5, c_i.stroke_width(2))
                        }),
                    )
                    .map_err(err)?
                    .label(format!("{} fitted", m.model))
                    .legend(move |(x, y)| Circle::new((x + 10, y), 5, c_i.stroke_width(2)));
            }
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(err)?;
    }
    Ok(Chart {
        svg,
        caption: "How to read it: dots are ceiling·(1 − (1 − p_first)(1 − p_retry)^(n−1)) from the fitted parameters; dots inside the band mean the model describes these runs; dots outside it mean it does not (models with too few passes have no dots).".into(),
    })
}

/// Score by turn: median and the 10–90% band of the share of tests passing.
pub fn score_by_turn(models: &[ModelSummary]) -> Result<Chart, String> {
    let max_turn = models.iter().map(|m| m.score_by_turn.len()).max().unwrap_or(1).max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Score by turn (line: median; shaded: 10th–90th percentile of runs)", ("sans-serif", TITLE_PT))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(64)
            .build_cartesian_2d(1f64..max_turn.max(1.5), 0f64..100f64)
            .map_err(err)?;
        readable(&mut chart.configure_mesh())
            .x_desc("turn")
            .y_desc("tests passing (% of the task's tests)")
            .x_labels(whole_labels(1.0, max_turn.max(1.5)))
            .x_label_formatter(&whole)
            .y_label_formatter(&tick)
            .draw()
            .map_err(err)?;
        for (i, m) in models.iter().enumerate() {
            let hi: Vec<(f64, f64)> = m.score_by_turn.iter().map(|r| (f64::from(r.turn), 100.0 * r.p90)).collect();
            let lo: Vec<(f64, f64)> = m.score_by_turn.iter().map(|r| (f64::from(r.turn), 100.0 * r.p10)).collect();
            draw_band(&mut chart, &hi, &lo, color(i).mix(0.12))?;
            let median: Vec<(f64, f64)> =
                m.score_by_turn.iter().map(|r| (f64::from(r.turn), 100.0 * r.median)).collect();
            draw_line(&mut chart, &m.model, i, median)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(err)?;
    }
    Ok(Chart {
        svg,
        caption: "How to read it: a steep rise is a loop that compounds (each turn fixes much of what is left); a flat line is a model repeating itself. A run that already stopped keeps its last score (100% once passed).".into(),
    })
}

/// Where a turn's time goes: stacked bars per model.
pub fn time_split(models: &[ModelSummary]) -> Result<Chart, String> {
    const PARTS: [(&str, RGBColor); 4] = [
        ("model call", RGBColor(31, 119, 180)),
        ("tests", RGBColor(255, 127, 14)),
        ("harness overhead", RGBColor(127, 127, 127)),
        ("retry wait", RGBColor(214, 39, 40)),
    ];
    let values: Vec<[f64; 4]> = models
        .iter()
        .map(|m| {
            let t = &m.time_split;
            [t.model_s.value, t.test_s.value, t.overhead_s.value, t.retry_wait_s.value]
        })
        .collect();
    let widest = values.iter().map(|v| v.iter().sum::<f64>()).fold(0.0, f64::max).max(1e-3) * 1.1;
    let n = models.len().max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Where a turn's time goes (mean seconds per turn)", ("sans-serif", TITLE_PT))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(140)
            .build_cartesian_2d(0f64..widest, -0.5f64..n - 0.5)
            .map_err(err)?;
        let names: Vec<String> = models.iter().map(|m| m.model.clone()).collect();
        readable(&mut chart.configure_mesh())
            .x_desc("mean time per turn (s)")
            .x_label_formatter(&tick)
            .y_desc("model")
            .y_labels(models.len().max(1))
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .disable_y_mesh()
            .draw()
            .map_err(err)?;
        for (p, (name, c)) in PARTS.iter().enumerate() {
            let bars: Vec<Rectangle<(f64, f64)>> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let start: f64 = v[..p].iter().sum();
                    let y = i as f64;
                    Rectangle::new([(start, y - 0.3), (start + v[p], y + 0.3)], c.filled())
                })
                .collect();
            let c = *c;
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], c.filled()));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(err)?;
    }
    Ok(Chart {
        svg,
        caption: "How to read it: a faster model only shrinks the blue part; when the orange part (tests) is the larger one, the tests bound the loop and model speed cannot even halve the turn.".into(),
    })
}

/// A model's place on the Pareto chart: palette index, model, time (s) and
/// its interval, cost (USD) and its interval.
type ParetoPoint<'a> = (usize, &'a ModelSummary, f64, [f64; 2], f64, [f64; 2]);

/// Cost per solved task against mean time to pass, with 95% intervals: the Pareto view.
pub fn pareto(models: &[ModelSummary]) -> Result<Chart, String> {
    let points: Vec<ParetoPoint> = models
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let t = m.mean_time_to_pass_s?;
            let tci = m.mean_time_to_pass_ci.unwrap_or([t, t]);
            let c = m.usd_per_solved?;
            Some((i, m, t, tci, c.value, c.ci.unwrap_or([c.value, c.value])))
        })
        .collect();
    let x_max = points.iter().map(|p| p.3[1]).fold(0.0, f64::max).max(1e-3) * 1.15;
    let y_max = points.iter().map(|p| p.5[1]).fold(0.0, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Cost against time to pass (lines: 95% intervals)", ("sans-serif", TITLE_PT))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(err)?;
        readable(&mut chart.configure_mesh())
            .x_desc("mean time to pass (s)")
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .y_desc("cost per solved task (USD)")
            .draw()
            .map_err(err)?;
        for (i, m, t, tci, c, cci) in points {
            let col = color(i);
            chart
                .draw_series(std::iter::once(Circle::new((t, c), 6, col.filled())))
                .map_err(err)?
                .label(m.model.clone())
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, col.filled()));
            chart
                .draw_series([
                    PathElement::new(vec![(tci[0], c), (tci[1], c)], col.stroke_width(2)),
                    PathElement::new(vec![(t, cci[0]), (t, cci[1])], col.stroke_width(2)),
                ])
                .map_err(err)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(err)?;
    }
    Ok(Chart {
        svg,
        caption: "How to read it: lower left is better (faster and cheaper); a model that is both slower and dearer than another is dominated. Models with no passes are not shown; free local models sit on the zero line.".into(),
    })
}
