//! The chart of docs/benchmarks.md: caller cost and end-to-end throughput per SDK, as SVG
//! (horizontal bars, each labelled with the SDK and its value).

use plotters::prelude::*;

/// One SDK's bars.
pub struct Bar {
    /// SDK name.
    pub label: String,
    /// Median caller cost, ns per event.
    pub caller_ns: f64,
    /// End-to-end events per second.
    pub events_per_s: f64,
}

const OURS: RGBColor = RGBColor(0, 114, 178);
const PEER: RGBColor = RGBColor(160, 160, 160);

/// Draws two panels (caller ns/event on a log scale, lower is better; events/s, higher is
/// better) into an SVG file at `path`.
///
/// # Errors
///
/// When the file cannot be written.
pub fn draw(path: &str, bars: &[Bar]) -> Result<(), Box<dyn std::error::Error>> {
    let height = 80 + 34 * u32::try_from(bars.len()).unwrap_or(8);
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    panel(
        &left,
        "caller cost, ns per event (log scale; lower is better)",
        bars,
        |b| b.caller_ns,
        |v| format!("{v:.0} ns"),
        true,
    )?;
    panel(
        &right,
        "end to end, events per second (higher is better)",
        bars,
        |b| b.events_per_s,
        |v| format!("{:.0}k/s", v / 1000.0),
        false,
    )?;
    root.present()?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    bars: &[Bar],
    value: impl Fn(&Bar) -> f64,
    text: impl Fn(f64) -> String,
    log: bool,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let n = bars.len() as f64;
    let max = bars.iter().map(&value).fold(1.0, f64::max);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(24)
        .y_label_area_size(4);
    if log {
        let lo = bars
            .iter()
            .map(&value)
            .fold(f64::INFINITY, f64::min)
            .max(1.0)
            / 2.0;
        let mut c = builder.build_cartesian_2d((lo..max * 40.0).log_scale(), 0.0..n)?;
        c.configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(6)
            .draw()?;
        draw_bars(&mut c, bars, &value, &text, lo, |v| v * 1.15)
    } else {
        let mut c = builder.build_cartesian_2d(0.0..max * 1.9, 0.0..n)?;
        c.configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(6)
            .x_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
            .draw()?;
        draw_bars(&mut c, bars, &value, &text, 0.0, |v| v + max * 0.03)
    }
}

/// One bar per SDK, top to bottom, each followed by its name and value.
fn draw_bars<DB, X>(
    c: &mut ChartContext<'_, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    bars: &[Bar],
    value: &impl Fn(&Bar) -> f64,
    text: &impl Fn(f64) -> String,
    base: f64,
    after: impl Fn(f64) -> f64,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
{
    let n = bars.len() as f64;
    for (i, b) in bars.iter().enumerate() {
        let top = n - i as f64;
        let v = value(b);
        let color = if b.label.starts_with("eventwire") {
            OURS
        } else {
            PEER
        };
        c.draw_series(std::iter::once(Rectangle::new(
            [(base, top - 0.8), (v, top - 0.2)],
            color.filled(),
        )))?;
        c.draw_series(std::iter::once(Text::new(
            format!("{}  {}", b.label, text(v)),
            (after(v), top - 0.58),
            ("sans-serif", 13).into_font(),
        )))?;
    }
    Ok(())
}
