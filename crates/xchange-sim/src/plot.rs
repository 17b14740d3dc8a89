//! Charts of simulation results, written as SVG and PNG (feature `plots`).
//!
//! Two charts: mean completion time against offered load ([`completion_vs_load`]) and
//! load balance per policy ([`load_balance`]). Each is drawn twice from the same code,
//! once per backend, to `<stem>.svg` and `<stem>.png`.
//!
//! Text is laid out with DejaVu Sans, embedded from `assets/` and registered with
//! plotters' `ab_glyph` font table, so neither fontconfig nor freetype is needed and the
//! output does not depend on the fonts of the machine that draws it.

use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::element::{Circle, Cross, EmptyElement, PathElement, Rectangle, Text, TriangleMarker};
use plotters::prelude::{
    BitMapBackend, ChartBuilder, DrawingArea, DrawingAreaErrorKind, DrawingBackend, IntoDrawingArea,
    SVGBackend, SeriesLabelPosition,
};
use plotters::series::LineSeries;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{
    BLACK, Color, FontStyle, IntoFont, RGBColor, TRANSPARENT, TextStyle, WHITE, register_font,
};

use crate::SimError;

/// One policy's curve: mean completion time (seconds) at each offered load.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadCurve {
    /// The policy's name, shown in the legend.
    pub policy: String,
    /// `(offered load, mean completion time in seconds)`, in any order.
    pub points: Vec<(f64, f64)>,
}

/// One policy's load balance.
#[derive(Debug, Clone, PartialEq)]
pub struct Balance {
    /// The policy's name, shown under its bars.
    pub policy: String,
    /// Jain's fairness index of the per-agent load, in `0..=1` (1 is perfectly even).
    pub jain: f64,
    /// Coefficient of variation (standard deviation over mean) of the per-agent load.
    pub cov: f64,
}

/// Chart size in pixels (the SVG uses the same units).
const SIZE: (u32, u32) = (900, 560);
/// The family name plotters' own defaults ask for, so that every piece of text, including
/// any left at its default style, finds the bundled font.
const FAMILY: &str = "sans-serif";
/// Blank border around each chart, in pixels.
const MARGIN: u32 = 18;
/// Width of the bar chart's y label area: also enters the room left for policy names.
const BALANCE_Y_AREA: u32 = 70;
const TITLE_PX: f64 = 24.0;
const DESC_PX: f64 = 18.0;
const LABEL_PX: f64 = 15.0;
/// Smallest size policy names may shrink to before they are shortened.
const MIN_LABEL_PX: f64 = 11.0;
const VALUE_PX: f64 = 12.0;
/// Okabe–Ito colours: distinguishable with the common colour-vision deficiencies. Their
/// yellow is left out, as it is unreadable on white.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];
/// Marker shapes, cycled with a period prime to the palette's so that two curves never
/// share both colour and shape, and curves stay apart when printed in grey.
const SHAPES: usize = 4;

static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Writes `<stem>.svg` and `<stem>.png`: mean completion time against load, one line (with
/// markers and a legend entry) per policy. Returns the paths written.
///
/// Points of a curve may come in any order; they are joined in order of load. Every curve
/// needs at least one point, and every value must be finite with a non-negative time.
pub fn completion_vs_load(title: &str, curves: &[LoadCurve], stem: &Path) -> Result<Vec<PathBuf>, SimError> {
    let fail = |reason: String| plot_error(stem, reason);
    if curves.is_empty() {
        return Err(fail("no curves to draw".into()));
    }
    for c in curves {
        if c.points.is_empty() {
            return Err(fail(format!("curve {:?} has no points", c.policy)));
        }
        if let Some(&(x, y)) = c.points.iter().find(|&&(x, y)| !x.is_finite() || !y.is_finite() || y < 0.0) {
            return Err(fail(format!(
                "curve {:?} has a point that cannot be drawn: load {x}, time {y} (need finite values and time >= 0)",
                c.policy
            )));
        }
    }
    let curves: Vec<LoadCurve> = curves
        .iter()
        .map(|c| {
            let mut points = c.points.clone();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            LoadCurve { policy: c.policy.clone(), points }
        })
        .collect();
    write_both(&CompletionChart { title, curves: &curves }, stem)
}

/// Writes `<stem>.svg` and `<stem>.png`: per policy, Jain's fairness index and the
/// coefficient of variation as two bars side by side on one dimensionless axis, with a
/// legend. Returns the paths written.
///
/// Needs at least one row; Jain's index must lie in `0..=1` and the coefficient of
/// variation must be finite and non-negative.
pub fn load_balance(title: &str, rows: &[Balance], stem: &Path) -> Result<Vec<PathBuf>, SimError> {
    let fail = |reason: String| plot_error(stem, reason);
    if rows.is_empty() {
        return Err(fail("no policies to draw".into()));
    }
    for r in rows {
        // A small tolerance: an index computed in floating point can land just above 1.
        if !(r.jain.is_finite() && (0.0..=1.0 + 1e-9).contains(&r.jain)) {
            return Err(fail(format!("policy {:?}: Jain's index {} is not in 0..=1", r.policy, r.jain)));
        }
        if !(r.cov.is_finite() && r.cov >= 0.0) {
            return Err(fail(format!(
                "policy {:?}: coefficient of variation {} is not finite and >= 0",
                r.policy, r.cov
            )));
        }
    }
    write_both(&BalanceChart { title, rows }, stem)
}

/// A chart that can be drawn on any plotters backend, so that the SVG and the PNG come
/// from one piece of drawing code.
trait Chart {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>;
}

fn write_both(chart: &impl Chart, stem: &Path) -> Result<Vec<PathBuf>, SimError> {
    ensure_font().map_err(|reason| plot_error(stem, reason))?;
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| plot_error(dir, e.to_string()))?;
    }
    let svg = with_suffix(stem, "svg");
    let png = with_suffix(stem, "png");
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        chart.draw(&root).and_then(|()| root.present()).map_err(|e| plot_error(&svg, e.to_string()))?;
    }
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        chart.draw(&root).and_then(|()| root.present()).map_err(|e| plot_error(&png, e.to_string()))?;
    }
    Ok(vec![svg, png])
}

/// Appends the extension rather than replacing one, so a stem such as `fig.load-0.9`
/// keeps its last part.
fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut name = OsString::from(stem.as_os_str());
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

fn plot_error(path: &Path, reason: String) -> SimError {
    SimError::Plot { path: path.display().to_string(), reason }
}

/// Registers the bundled font once per process; plotters keeps it in a global table.
fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()) {
        Ok(())
    } else {
        Err("the bundled DejaVu Sans font could not be parsed".into())
    }
}

fn font(px: f64) -> TextStyle<'static> {
    (FAMILY, px).into_font().into()
}

/// Tick labels with at most three decimals and no trailing zeros: plotters' default
/// formatting can print binary noise such as `0.30000000000000004`.
fn tidy(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" { "0".into() } else { s.into() }
}

/// Runs `$body` with `$mark` bound to a function making marker number `$shape` (cycled),
/// centred on the origin of a composed element, in pixels. A macro rather than a function
/// returning a boxed element: plotters composes only `'static` elements, which a boxed one
/// over a generic backend is not.
macro_rules! with_marker {
    ($shape:expr, $color:expr, $mark:ident => $body:block) => {
        match $shape {
            0 => {
                let $mark = move || Circle::new((0, 0), 5, $color.filled());
                $body
            }
            1 => {
                let $mark = move || TriangleMarker::new((0, 0), 7, $color.filled());
                $body
            }
            2 => {
                let $mark = move || Rectangle::new([(-5, -5), (5, 5)], $color.filled());
                $body
            }
            _ => {
                let $mark = move || Cross::new((0, 0), 5, $color.stroke_width(2));
                $body
            }
        }
    };
}

struct CompletionChart<'a> {
    title: &'a str,
    curves: &'a [LoadCurve],
}

impl Chart for CompletionChart<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let all = || self.curves.iter().flat_map(|c| c.points.iter().copied());
        let (x_min, x_max) =
            all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (x, _)| (lo.min(x), hi.max(x)));
        let y_max = all().fold(0.0_f64, |hi, (_, y)| hi.max(y));
        let span = x_max - x_min;
        // With a single load there is no span to take a margin of: use one around the value.
        let margin = if span > 0.0 { span * 0.05 } else { (x_min.abs() * 0.05).max(0.05) };
        // Headroom above the highest point so that it and its marker are not cut by the frame.
        let y_top = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };

        let mut chart = ChartBuilder::on(root)
            .caption(self.title, font(TITLE_PX))
            .margin(MARGIN)
            .x_label_area_size(55)
            .y_label_area_size(80)
            .build_cartesian_2d((x_min - margin)..(x_max + margin), 0.0..y_top)?;
        chart
            .configure_mesh()
            .x_desc("offered load")
            .y_desc("mean completion time (s)")
            .axis_desc_style(font(DESC_PX))
            .label_style(font(LABEL_PX))
            .x_labels(10)
            .y_labels(8)
            .x_label_formatter(&|v| tidy(*v))
            .y_label_formatter(&|v| tidy(*v))
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.15))
            .draw()?;

        for (i, curve) in self.curves.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            with_marker!(i % SHAPES, color, mark => {
                chart
                    .draw_series(LineSeries::new(curve.points.iter().copied(), color.stroke_width(2)))?
                    .label(curve.policy.as_str())
                    .legend(move |(x, y)| {
                        EmptyElement::at((x + 12, y))
                            + PathElement::new(vec![(-12, 0), (12, 0)], color.stroke_width(2))
                            + mark()
                    });
                chart.draw_series(curve.points.iter().map(|&p| EmptyElement::at(p) + mark()))?;
            });
        }

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .margin(12)
            .legend_area_size(36)
            .label_font(font(LABEL_PX))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        Ok(())
    }
}

struct BalanceChart<'a> {
    title: &'a str,
    rows: &'a [Balance],
}

impl Chart for BalanceChart<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let n = self.rows.len();
        let cov_max = self.rows.iter().fold(0.0_f64, |hi, r| hi.max(r.cov));
        // Room above the tallest bar for its value and for the legend in the upper right.
        let y_top = cov_max.max(1.0) * 1.3;
        let jain_color = PALETTE[0];
        let cov_color = PALETTE[1];

        let (names, names_px) = self.fitted_names(root, n)?;
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, font(TITLE_PX))
            .margin(MARGIN)
            .x_label_area_size(45)
            .y_label_area_size(BALANCE_Y_AREA)
            .build_cartesian_2d(Slots { names }, 0.0..y_top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("value (dimensionless)")
            .axis_desc_style(font(DESC_PX))
            .label_style(font(LABEL_PX))
            .x_label_style(font(names_px))
            .y_labels(8)
            .y_label_formatter(&|v| tidy(*v))
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.15))
            .draw()?;

        // Two bars per policy, each a third of the slot wide, with a gap between policies.
        let w = 0.34;
        let value_style = font(VALUE_PX).pos(Pos::new(HPos::Center, VPos::Bottom));
        let bar_px = f64::from(chart.plotting_area().dim_in_pixel().0) / n as f64 * w;
        let values_fit = f64::from(root.estimate_text_size("0.00", &value_style)?.0) + 4.0 <= bar_px;
        let bars = [
            ("Jain's fairness index (1 = even)", jain_color, -w, 0.0),
            ("coefficient of variation (0 = even)", cov_color, 0.0, w),
        ];
        for (k, &(label, color, left, right)) in bars.iter().enumerate() {
            let value = |r: &Balance| if k == 0 { r.jain } else { r.cov };
            chart
                .draw_series(self.rows.iter().enumerate().map(|(i, r)| {
                    let x = i as f64;
                    Rectangle::new([(x + left, 0.0), (x + right, value(r))], color.filled())
                }))?
                .label(label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
            // Values over the bars only where they fit: overlapping numbers help no one,
            // and the axis still tells the height.
            if values_fit {
                chart.draw_series(self.rows.iter().enumerate().map(|(i, r)| {
                    let v = value(r);
                    let at = (i as f64 + (left + right) / 2.0, v + y_top * 0.012);
                    Text::new(format!("{v:.2}"), at, value_style.clone())
                }))?;
            }
        }

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .margin(12)
            .legend_area_size(24)
            .label_font(font(LABEL_PX))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        Ok(())
    }
}

impl BalanceChart<'_> {
    /// Policy names as they fit under their bars, and the font size for them: the size
    /// shrinks first, and only names still too wide at the smallest size are shortened.
    fn fitted_names<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        n: usize,
    ) -> Result<(Vec<String>, f64), DrawingAreaErrorKind<DB::ErrorType>> {
        // The chart is not built yet (its x axis needs these names), so the plotting area's
        // width is worked out from the layout constants; keep a gap between neighbouring names.
        let slot = f64::from(SIZE.0 - 2 * MARGIN - BALANCE_Y_AREA) / n as f64 - 8.0;
        let width = |text: &str, px: f64| -> Result<f64, DrawingAreaErrorKind<DB::ErrorType>> {
            Ok(f64::from(root.estimate_text_size(text, &font(px))?.0))
        };
        let mut px = LABEL_PX;
        loop {
            let mut widest = 0.0_f64;
            for r in self.rows {
                widest = widest.max(width(&r.policy, px)?);
            }
            if widest <= slot || px <= MIN_LABEL_PX {
                break;
            }
            px -= 1.0;
        }
        let mut names = Vec::with_capacity(n);
        for r in self.rows {
            let mut name = r.policy.clone();
            if width(&name, px)? > slot {
                // Cut from the middle: names of related policies tend to share a prefix
                // (`cnp-oneshot`, `cnp-iterated`) and differ at the end.
                let chars: Vec<char> = name.chars().collect();
                for keep in (1..chars.len()).rev() {
                    let head = keep.div_ceil(2);
                    let tail = keep - head;
                    let cut: String = chars[..head]
                        .iter()
                        .chain(['…'].iter())
                        .chain(&chars[chars.len() - tail..])
                        .collect();
                    name = cut;
                    if width(&name, px)? <= slot {
                        break;
                    }
                }
            }
            names.push(name);
        }
        Ok((names, px))
    }
}

/// The x axis of the bar chart: one unit-wide slot per policy, centred on its index, with
/// ticks only at the centres and the policy's name as the label.
struct Slots {
    names: Vec<String>,
}

impl Ranged for Slots {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let frac = (v + 0.5) / self.names.len() as f64;
        limit.0 + (frac * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.names.len()).map(|i| i as f64).collect()
    }

    fn range(&self) -> Range<f64> {
        -0.5..self.names.len() as f64 - 0.5
    }
}

impl ValueFormatter<f64> for Slots {
    fn format_ext(&self, v: &f64) -> String {
        let i = v.round();
        if i >= 0.0 && (v - i).abs() < 1e-6 {
            self.names.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    }
}
