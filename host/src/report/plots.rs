//! SVG plots of a run, drawn with plotters and written atomically.
//!
//! Text is laid out with plotters' built-in size estimate (no font files are read when
//! drawing); the SVG names the `sans-serif` family and the viewer renders it.
//!
//! Every function validates its input (non-empty, finite values) and returns a one-line error
//! otherwise.

use std::path::Path;

use anyhow::{bail, Context, Result};
use fewshot_core::{
    metrics::RankReport,
    train::{EpochMetrics, SupernetEpoch},
    util::files::write_atomic,
};
use plotters::{
    coord::{
        ranged1d::{DefaultFormatting, KeyPointHint, Ranged},
        types::RangedCoordf64,
        Shift,
    },
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::format_metric;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult<T> = Result<T, DrawingAreaErrorKind<std::io::Error>>;

/// Tableau 10: distinct, print-friendly colours for groups and series.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0xFF, 0x9D, 0xA7),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0xBA, 0xB0, 0xAC),
];

/// Colours of reference lines: black, brown, grey.
const REFERENCE_COLORS: [RGBColor; 3] = [RGBColor(0, 0, 0), RGBColor(0x9C, 0x75, 0x5F), RGBColor(0x80, 0x80, 0x80)];

/// The colour of the `i`-th group or series.
fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

const FONT: &str = "sans-serif";

/// Draws onto an SVG canvas of `size` pixels and writes it atomically to `path`.
fn render(path: &Path, size: (u32, u32), draw: impl FnOnce(&Area) -> DrawResult<()>) -> Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).and_then(|_| draw(&root)).and_then(|_| root.present())
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
    }
    write_atomic(path, svg.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

/// The range of `values` with 5% padding on each side (±1 around a single value).
fn padded_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo == hi {
        return lo - 1.0..hi + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    lo - pad..hi + pad
}

fn check_finite<'a>(what: &str, values: impl IntoIterator<Item = &'a f64>) -> Result<()> {
    if values.into_iter().any(|v| !v.is_finite()) {
        bail!("cannot plot {what}: a value is not a finite number");
    }
    Ok(())
}

/// A named set of (x, y) points, drawn in one colour.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

/// A scatter plot with one colour and legend entry per series.
pub fn scatter(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<()> {
    let all = || series.iter().flat_map(|s| &s.points);
    if all().next().is_none() {
        bail!("cannot plot '{title}': no points");
    }
    check_finite(title, all().flat_map(|(x, y)| [x, y]))?;
    let (xs, ys) = (padded_range(all().map(|p| p.0)), padded_range(all().map(|p| p.1)));
    let total: usize = series.iter().map(|s| s.points.len()).sum();
    // Many points: smaller and more transparent, so dense regions stay readable.
    let (radius, alpha) = if total > 2000 { (2, 0.35) } else { (3, 0.7) };
    render(path, (900, 700), |root| {
        let mut chart = scatter_chart(root, title, (x_label, y_label), (xs, ys), series, (radius, alpha))?;
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

type ScatterChart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A titled chart over `ranges` with labelled axes and one coloured point set per series.
fn scatter_chart<'a, 'b>(
    root: &'a Area<'b>,
    title: &str,
    (x_label, y_label): (&str, &str),
    (xs, ys): (std::ops::Range<f64>, std::ops::Range<f64>),
    series: &[Series],
    (radius, alpha): (i32, f64),
) -> DrawResult<ScatterChart<'a, 'b>> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(65)
        .build_cartesian_2d(xs, ys)?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).label_style((FONT, 14)).axis_desc_style((FONT, 16)).draw()?;
    for (i, s) in series.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, radius, c.mix(alpha).filled())))?
            .label(&s.label)
            .legend(move |(x, y)| Circle::new((x, y), 5, c.filled()));
    }
    Ok(chart)
}

/// Draws the legend of `chart`'s labelled series at `position`.
fn draw_legend<'a, 'b: 'a>(chart: &mut ScatterChart<'a, 'b>, position: SeriesLabelPosition) -> DrawResult<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}

/// Predicted vs ground-truth accuracy, one colour per group, τ-b in the title (overall) and in
/// the legend (within each group, from `report`). `groups` holds one label per architecture
/// (or is `None`); `truth` is on the x axis.
pub fn pred_vs_truth(
    path: &Path,
    truth: &[f64],
    pred: &[f64],
    groups: Option<&[String]>,
    report: &RankReport,
    group_name: &str,
) -> Result<()> {
    let tau = format_metric(report.predictor.overall.kendall_tau_b);
    let title = format!("Predicted vs ground-truth accuracy (Kendall τ-b = {tau}, n = {})", truth.len());
    let points = |member: &dyn Fn(usize) -> bool| -> Vec<(f64, f64)> {
        (0..truth.len()).filter(|&i| member(i)).map(|i| (truth[i], pred[i])).collect()
    };
    let series: Vec<Series> = match groups {
        Some(groups) => report
            .predictor
            .groups
            .iter()
            .map(|g| Series {
                label: format!("{group_name} {} (n = {}, τ-b = {})", g.group, g.metrics.n, format_metric(g.metrics.kendall_tau_b)),
                points: points(&|i| groups[i] == g.group),
            })
            .collect(),
        None => vec![Series { label: format!("all (n = {})", truth.len()), points: points(&|_| true) }],
    };
    scatter(path, &title, "ground-truth accuracy (%)", "predicted accuracy (%)", &series)
}

/// Indices of the Pareto-optimal points for (lower cost, higher value), by increasing cost:
/// no other point is at most as costly and strictly better, or cheaper and as good.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| points[a].0.total_cmp(&points[b].0).then(points[b].1.total_cmp(&points[a].1)));
    let mut front = Vec::new();
    let mut best = f64::NEG_INFINITY;
    for i in order {
        if points[i].1 > best {
            best = points[i].1;
            front.push(i);
        }
    }
    front
}

/// One architecture on the accuracy-vs-cost plot.
#[derive(Clone, Debug)]
pub struct CostPoint {
    /// Cost on the x axis, e.g. MFLOPs at full width.
    pub cost: f64,
    /// Accuracy on the y axis.
    pub accuracy: f64,
    /// Its group (subspace) label, for the colour.
    pub group: String,
}

/// Accuracy vs cost (e.g. FLOPs), coloured per group, with the Pareto front (cheapest for its
/// accuracy) drawn as a staircase over highlighted points.
pub fn accuracy_vs_cost(path: &Path, title: &str, cost_label: &str, points: &[CostPoint]) -> Result<()> {
    if points.is_empty() {
        bail!("cannot plot '{title}': no points");
    }
    check_finite(title, points.iter().flat_map(|p| [&p.cost, &p.accuracy]))?;
    let labels = super::group_labels(points.iter().map(|p| p.group.as_str()));
    let mut series: Vec<Series> = labels
        .iter()
        .map(|label| Series { label: format!("subspace {label}"), points: Vec::new() })
        .collect();
    for p in points {
        let i = labels.iter().position(|l| *l == p.group).expect("label listed");
        series[i].points.push((p.cost, p.accuracy));
    }
    let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.cost, p.accuracy)).collect();
    let front: Vec<(f64, f64)> = pareto_front(&xy).into_iter().map(|i| xy[i]).collect();
    let mut stairs = Vec::with_capacity(front.len() * 2);
    for (i, &(x, y)) in front.iter().enumerate() {
        if i > 0 {
            stairs.push((x, front[i - 1].1));
        }
        stairs.push((x, y));
    }
    let (xs, ys) = (padded_range(xy.iter().map(|p| p.0)), padded_range(xy.iter().map(|p| p.1)));
    let (radius, alpha) = if points.len() > 2000 { (2, 0.3) } else { (3, 0.6) };
    render(path, (900, 700), |root| {
        let mut chart = scatter_chart(root, title, (cost_label, "accuracy (%)"), (xs, ys), &series, (radius, alpha))?;
        chart
            .draw_series(LineSeries::new(stairs.iter().copied(), BLACK.stroke_width(2)))?
            .label(format!("Pareto front ({} architectures)", front.len()))
            .legend(|(x, y)| PathElement::new(vec![(x - 8, y), (x + 8, y)], BLACK.stroke_width(2)));
        chart.draw_series(front.iter().map(|&p| Circle::new(p, 5, BLACK.filled())))?;
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// Bin counts of `values` over `bins` equal bins spanning `range` (the last bin is closed).
fn histogram(values: &[f64], range: (f64, f64), bins: usize) -> Vec<usize> {
    let mut counts = vec![0; bins];
    let width = (range.1 - range.0) / bins as f64;
    for &v in values {
        let bin = if width > 0.0 { ((v - range.0) / width).floor() as usize } else { 0 };
        counts[bin.min(bins - 1)] += 1;
    }
    counts
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// One histogram panel per group (stacked, sharing the x range), e.g. the predicted accuracies
/// within each subspace. `groups` holds (label, values); `bins` equal-width bins.
pub fn group_histograms(path: &Path, title: &str, x_label: &str, groups: &[(String, Vec<f64>)], bins: usize) -> Result<()> {
    if groups.is_empty() || groups.iter().any(|(_, v)| v.is_empty()) {
        bail!("cannot plot '{title}': a group has no values");
    }
    if bins == 0 {
        bail!("cannot plot '{title}': zero bins");
    }
    check_finite(title, groups.iter().flat_map(|(_, v)| v))?;
    let (lo, hi) = groups
        .iter()
        .flat_map(|(_, v)| v)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo == hi { (lo - 1.0, hi + 1.0) } else { (lo, hi) };
    let width = (hi - lo) / bins as f64;
    let panel_height = 220;
    render(path, (900, 60 + panel_height * groups.len() as u32), |root| {
        let root = root.titled(title, (FONT, 22))?;
        for (i, (panel, (label, values))) in root.split_evenly((groups.len(), 1)).iter().zip(groups).enumerate() {
            let counts = histogram(values, (lo, hi), bins);
            let top = (*counts.iter().max().unwrap_or(&1) as f64 * 1.1).ceil().max(1.0) as u32;
            let caption = format!("subspace {label}: n = {}, median {:.2}", values.len(), median(values));
            let mut chart = ChartBuilder::on(panel)
                .caption(caption, (FONT, 16))
                .margin(10)
                .x_label_area_size(if i + 1 == groups.len() { 45 } else { 25 })
                .y_label_area_size(65)
                .build_cartesian_2d(lo..hi, 0..top)?;
            let mut mesh = chart.configure_mesh();
            mesh.y_desc("architectures").label_style((FONT, 13)).axis_desc_style((FONT, 14));
            if i + 1 == groups.len() {
                mesh.x_desc(x_label);
            }
            mesh.draw()?;
            let c = color(i);
            chart.draw_series(counts.iter().enumerate().filter(|(_, &n)| n > 0).map(|(b, &n)| {
                let x0 = lo + b as f64 * width;
                Rectangle::new([(x0, 0), (x0 + width, n as u32)], c.mix(0.8).filled())
            }))?;
        }
        Ok(())
    })
}

/// Training curves from `metrics.jsonl` records: loss (left) and accuracy (right) per epoch,
/// one line per supernet (epochs in which a supernet was not trained are left out). `labels` names the supernets (e.g. subspace labels); missing names
/// become "supernet i".
pub fn training_curves(path: &Path, records: &[EpochMetrics], labels: &[String]) -> Result<()> {
    let supernets = records.iter().map(|r| r.supernets.len()).max().unwrap_or(0);
    if supernets == 0 {
        bail!("cannot plot training curves: no epoch with supernet metrics");
    }
    check_finite("training curves", records.iter().flat_map(|r| &r.supernets).flat_map(|s| [&s.loss, &s.accuracy]))?;
    let name = |k: usize| labels.get(k).cloned().unwrap_or_else(|| format!("supernet {k}"));
    let curve = |k: usize, value: fn(&SupernetEpoch) -> f64| -> Vec<(i64, f64)> {
        records.iter().filter_map(|r| r.supernets.get(k).filter(|s| s.steps > 0).map(|s| (r.epoch as i64, value(s)))).collect()
    };
    let (first, last) = records.iter().fold((usize::MAX, 0), |(lo, hi), r| (lo.min(r.epoch), hi.max(r.epoch)));
    // Whole epochs on the axis, one spare on each side of a single epoch.
    let epochs = if first == last { first as i64 - 1..last as i64 + 1 } else { first as i64..last as i64 };
    render(path, (1200, 520), |root| {
        let root = root.titled("Supernet training", (FONT, 22))?;
        let panels = root.split_evenly((1, 2));
        // Loss falls and accuracy rises: keep each legend clear of the curves' ends.
        type Metric = (&'static str, fn(&SupernetEpoch) -> f64, SeriesLabelPosition);
        let metrics: [Metric; 2] = [
            ("loss", |s| s.loss, SeriesLabelPosition::UpperRight),
            ("accuracy (%)", |s| s.accuracy, SeriesLabelPosition::LowerRight),
        ];
        for (panel, (desc, value, legend)) in panels.iter().zip(metrics) {
            let ys = padded_range(records.iter().flat_map(|r| &r.supernets).filter(|s| s.steps > 0).map(value));
            let mut chart = ChartBuilder::on(panel)
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(60)
                .build_cartesian_2d(epochs.clone(), ys)?;
            chart.configure_mesh().x_desc("epoch").y_desc(desc).label_style((FONT, 13)).axis_desc_style((FONT, 15)).draw()?;
            for k in 0..supernets {
                let (c, points) = (color(k), curve(k, value));
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))?
                    .label(name(k))
                    .legend(move |(x, y)| PathElement::new(vec![(x - 8, y), (x + 8, y)], c.stroke_width(2)));
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
            }
            chart
                .configure_series_labels()
                .position(legend)
                .label_font((FONT, 13))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    })
}

/// A bar chart comparing one value per run (e.g. Kendall τ-b per activation or per splitter),
/// with optional horizontal reference lines (e.g. the τ-b of the params predictor).
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Plot title.
    pub title: String,
    /// What the bars measure.
    pub value_label: String,
    /// (run name, value); `None` is shown as "n/a" without a bar.
    pub bars: Vec<(String, Option<f64>)>,
    /// (name, value) drawn as dashed horizontal lines.
    pub references: Vec<(String, f64)>,
}

/// An axis of `n` categories centred on 0, 1, …, n−1, with a tick at each.
struct Categories(usize);

impl Ranged for Categories {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = (value + 0.5) / self.0 as f64;
        limit.0 + (share * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        (0..self.0).map(|i| i as f64).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        -0.5..self.0 as f64 - 0.5
    }
}

/// Draws a [`Comparison`].
pub fn comparison(path: &Path, plot: &Comparison) -> Result<()> {
    if plot.bars.is_empty() {
        bail!("cannot plot '{}': nothing to compare", plot.title);
    }
    check_finite(&plot.title, plot.bars.iter().filter_map(|(_, v)| v.as_ref()).chain(plot.references.iter().map(|(_, v)| v)))?;
    let values = || plot.bars.iter().filter_map(|(_, v)| *v).chain(plot.references.iter().map(|(_, v)| *v));
    let (lo, hi) = values().fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo == hi { (-1.0, 1.0) } else { (lo, hi) };
    let pad = (hi - lo) * 0.12;
    let ys = (if lo < 0.0 { lo - pad } else { 0.0 })..(if hi > 0.0 { hi + pad } else { 0.0 });
    let n = plot.bars.len();
    let names: Vec<String> = plot.bars.iter().map(|(name, _)| name.clone()).collect();
    let formatter = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-9 && i >= 0.0 { names.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
    };
    render(path, ((260 + 110 * n as u32).max(700), 600), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&plot.title, (FONT, 22))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(65)
            .build_cartesian_2d(Categories(n), ys.clone())?;
        let value_format = |v: &f64| format!("{:.2}", if v.abs() < 1e-9 { 0.0 } else { *v });
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&formatter)
            .y_label_formatter(&value_format)
            .y_desc(plot.value_label.as_str())
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let label_offset = (ys.end - ys.start) * 0.03;
        for (i, (_, value)) in plot.bars.iter().enumerate() {
            let x = i as f64;
            let text = match value {
                Some(v) => {
                    chart.draw_series(std::iter::once(Rectangle::new([(x - 0.3, 0.0), (x + 0.3, *v)], color(i).filled())))?;
                    format_metric(Some(*v))
                }
                None => "n/a".to_string(),
            };
            let y = value.unwrap_or(0.0).max(0.0) + label_offset;
            let style = TextStyle::from((FONT, 15)).pos(Pos::new(HPos::Center, VPos::Bottom));
            chart.draw_series(std::iter::once(Text::new(text, (x, y), style)))?;
        }
        for (r, (name, value)) in plot.references.iter().enumerate() {
            let c = REFERENCE_COLORS[r % REFERENCE_COLORS.len()];
            let line = [(-0.5, *value), (n as f64 - 0.5, *value)];
            chart
                .draw_series(DashedLineSeries::new(line, 10, 6, c.stroke_width(2)))?
                .label(format!("{name} = {}", format_metric(Some(*value))))
                .legend(move |(x, y)| PathElement::new(vec![(x - 10, y), (x + 10, y)], c.stroke_width(2)));
        }
        if !plot.references.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font((FONT, 14))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use fewshot_core::{
        metrics::{rank_report, Predictor},
        util::rng::Rng,
    };

    use super::*;
    use crate::report::test_epoch;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fewshot-plots-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Parses the SVG with a real XML parser and returns the text of its `<text>` elements.
    fn svg_texts(path: &Path) -> Vec<String> {
        let svg = std::fs::read_to_string(path).unwrap();
        let mut texts = Vec::new();
        let mut in_text = false;
        let mut root = None;
        for event in xml::reader::EventReader::from_str(&svg) {
            match event.unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}", path.display())) {
                xml::reader::XmlEvent::StartElement { name, .. } => {
                    root.get_or_insert_with(|| name.local_name.clone());
                    in_text = name.local_name == "text";
                }
                xml::reader::XmlEvent::Characters(t) if in_text => texts.push(t),
                xml::reader::XmlEvent::EndElement { .. } => in_text = false,
                _ => {}
            }
        }
        assert_eq!(root.as_deref(), Some("svg"));
        texts
    }

    fn assert_has(texts: &[String], wanted: &str) {
        assert!(texts.iter().any(|t| t.contains(wanted)), "no text containing '{wanted}' in {texts:?}");
    }

    #[test]
    fn scatter_of_predicted_vs_true_accuracy_per_group() {
        let dir = temp_dir("scatter");
        let mut rng = Rng::new(1);
        let truth: Vec<f64> = (0..300).map(|_| 80.0 + rng.unit() * 14.0).collect();
        let pred: Vec<f64> = truth.iter().map(|t| t - 30.0 + rng.unit() * 8.0).collect();
        let groups: Vec<String> = (0..300).map(|i| (i % 3).to_string()).collect();
        let report = rank_report(&truth, Some(&groups), Predictor { name: "supernet", values: &pred }, &[], &[5.0]);
        let path = dir.join("scatter.svg");
        pred_vs_truth(&path, &truth, &pred, Some(&groups), &report, "subspace").unwrap();
        let texts = svg_texts(&path);
        let tau = format_metric(report.predictor.overall.kendall_tau_b);
        assert_has(&texts, &format!("Predicted vs ground-truth accuracy (Kendall τ-b = {tau}, n = 300)"));
        assert_has(&texts, "subspace 0 (n = 100, τ-b = ");
        assert_has(&texts, "subspace 2 (n = 100");
        assert_has(&texts, "ground-truth accuracy (%)");
        assert_has(&texts, "predicted accuracy (%)");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pareto_front_keeps_the_cheapest_for_each_accuracy() {
        let points = [(10.0, 80.0), (5.0, 70.0), (20.0, 90.0), (15.0, 85.0), (12.0, 79.0), (5.0, 60.0), (20.0, 88.0), (25.0, 90.0)];
        assert_eq!(pareto_front(&points), vec![1, 0, 3, 2]);
        assert!(pareto_front(&[]).is_empty());
    }

    #[test]
    fn accuracy_vs_flops_with_pareto_front() {
        let dir = temp_dir("pareto");
        let mut rng = Rng::new(2);
        let points: Vec<CostPoint> = (0..200)
            .map(|i| {
                let cost = 10.0 + rng.unit() * 200.0;
                CostPoint { cost, accuracy: 70.0 + cost.sqrt() + rng.unit() * 5.0, group: (i % 2).to_string() }
            })
            .collect();
        let path = dir.join("pareto.svg");
        accuracy_vs_cost(&path, "Accuracy vs FLOPs", "MFLOPs (full width)", &points).unwrap();
        let front = pareto_front(&points.iter().map(|p| (p.cost, p.accuracy)).collect::<Vec<_>>()).len();
        let texts = svg_texts(&path);
        assert_has(&texts, "Accuracy vs FLOPs");
        assert_has(&texts, &format!("Pareto front ({front} architectures)"));
        assert_has(&texts, "subspace 0");
        assert_has(&texts, "subspace 1");
        assert_has(&texts, "MFLOPs (full width)");
        assert!(accuracy_vs_cost(&path, "t", "x", &[]).is_err());
        let bad = [CostPoint { cost: f64::NAN, accuracy: 1.0, group: "0".into() }];
        assert_eq!(
            accuracy_vs_cost(&path, "t", "x", &bad).unwrap_err().to_string(),
            "cannot plot t: a value is not a finite number"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn histograms_one_panel_per_subspace() {
        let dir = temp_dir("hist");
        let groups = vec![
            ("0".to_string(), (0..50).map(|i| 60.0 + i as f64 * 0.5).collect::<Vec<f64>>()),
            ("1".to_string(), vec![85.0, 86.0, 86.5, 90.0]),
            ("2".to_string(), vec![91.0]),
        ];
        let path = dir.join("hist.svg");
        group_histograms(&path, "Predicted accuracy per subspace", "predicted accuracy (%)", &groups, 20).unwrap();
        let texts = svg_texts(&path);
        assert_has(&texts, "Predicted accuracy per subspace");
        assert_has(&texts, "subspace 0: n = 50, median 72.25");
        assert_has(&texts, "subspace 1: n = 4, median 86.25");
        assert_has(&texts, "subspace 2: n = 1, median 91.00");
        assert_has(&texts, "predicted accuracy (%)");
        assert_eq!(histogram(&[0.0, 0.5, 1.0, 1.0], (0.0, 1.0), 2), vec![1, 3]);
        assert!(group_histograms(&path, "t", "x", &[("0".into(), vec![])], 10).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn training_curves_per_supernet() {
        let dir = temp_dir("curves");
        let records: Vec<EpochMetrics> = (1..=5)
            .map(|e| {
                let supernets: Vec<(f64, f64, u64)> =
                    (0..3).map(|k| (2.3 / (e as f64 + k as f64), 10.0 * e as f64 + k as f64, 100)).collect();
                test_epoch(e, &supernets)
            })
            .collect();
        let path = dir.join("curves.svg");
        training_curves(&path, &records, &["ENN 0-1".into(), "ENN 2".into()]).unwrap();
        let texts = svg_texts(&path);
        for wanted in ["Supernet training", "loss", "accuracy (%)", "epoch", "ENN 0-1", "ENN 2", "supernet 2"] {
            assert_has(&texts, wanted);
        }
        // A single epoch still draws (points, no lines).
        training_curves(&dir.join("one-epoch.svg"), &records[..1], &[]).unwrap();
        assert_has(&svg_texts(&dir.join("one-epoch.svg")), "supernet 0");
        assert!(training_curves(&path, &[], &[]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn comparison_bars_with_reference_lines() {
        let dir = temp_dir("compare");
        let plot = Comparison {
            title: "Kendall τ-b per activation".into(),
            value_label: "Kendall τ-b".into(),
            bars: vec![("relu".into(), Some(0.61)), ("tanh".into(), Some(0.55)), ("gelu".into(), None)],
            references: vec![("params".into(), 0.5778), ("flops".into(), 0.5778)],
        };
        let path = dir.join("compare.svg");
        comparison(&path, &plot).unwrap();
        let texts = svg_texts(&path);
        for wanted in ["Kendall τ-b per activation", "relu", "tanh", "gelu", "0.6100", "0.5500", "n/a", "params = 0.5778", "flops = 0.5778"] {
            assert_has(&texts, wanted);
        }
        let negative = Comparison { bars: vec![("a".into(), Some(-0.2)), ("b".into(), Some(0.3))], references: vec![], ..plot };
        comparison(&dir.join("negative.svg"), &negative).unwrap();
        assert_has(&svg_texts(&dir.join("negative.svg")), "-0.2000");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
