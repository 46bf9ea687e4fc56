//! The comparison plot: grouped bars (median) with min/max whiskers, one group per scenario and
//! traffic, one colour per system; drawn with `plotters` to SVG and to PNG. Both need a TrueType
//! font (`fonts-dejavu-core` on Debian): the PNG to render its text, the SVG to lay it out.

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// One bar.
#[derive(Debug, Clone)]
pub struct Bar {
    pub series: String,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

/// Bars side by side under one label.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub bars: Vec<Bar>,
}

/// The whole chart.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub y_label: String,
    /// Every series, in legend (and colour) order.
    pub series: Vec<String>,
    pub groups: Vec<Group>,
}

const SIZE: (u32, u32) = (1200, 600);

fn colour(i: usize) -> RGBColor {
    const P: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(120, 120, 120),
    ];
    P[i % P.len()]
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("plot: {e:?}");
    root.fill(&WHITE).map_err(e)?;
    let n = chart.groups.len().max(1);
    let top = chart
        .groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.max))
        .fold(0.0_f64, f64::max)
        .max(0.1)
        * 1.15;
    let names: Vec<String> = chart.groups.iter().map(|g| g.name.clone()).collect();
    let mut c = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n as f64, 0.0..top)
        .map_err(e)?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            // Labels sit at the group centres (k + 0.5).
            let k = (x - 0.5).round();
            if (x - 0.5 - k).abs() < 1e-6 && k >= 0.0 {
                names.get(k as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(&chart.y_label)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    // Bars of a group sit side by side, centred on the group; a series keeps its colour.
    let slots = chart
        .groups
        .iter()
        .map(|g| g.bars.len())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let width = 0.8 / slots;
    for (si, series) in chart.series.iter().enumerate() {
        let col = colour(si);
        let mut rects = Vec::new();
        let mut whiskers = Vec::new();
        for (gi, g) in chart.groups.iter().enumerate() {
            let Some(k) = g.bars.iter().position(|b| &b.series == series) else {
                continue;
            };
            let b = &g.bars[k];
            let start = gi as f64 + 0.5 - width * g.bars.len() as f64 / 2.0;
            let x0 = start + width * k as f64;
            let x1 = x0 + width * 0.9;
            let xm = (x0 + x1) / 2.0;
            rects.push(Rectangle::new([(x0, 0.0), (x1, b.median)], col.filled()));
            whiskers.push(PathElement::new(
                vec![(xm, b.min), (xm, b.max)],
                BLACK.stroke_width(2),
            ));
            for y in [b.min, b.max] {
                let q = width * 0.2;
                whiskers.push(PathElement::new(
                    vec![(xm - q, y), (xm + q, y)],
                    BLACK.stroke_width(2),
                ));
            }
        }
        if rects.is_empty() {
            continue;
        }
        c.draw_series(rects)
            .map_err(e)?
            .label(series.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], col.filled()));
        c.draw_series(whiskers).map_err(e)?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

pub fn write_svg(path: &Path, chart: &Chart) -> Result<()> {
    // The SVG's text is the viewer's to render, but plotters measures it for the layout.
    register_font()?;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    draw(&root, chart).with_context(|| format!("draw {}", path.display()))
}

/// Fonts tried for the PNG's text, in order.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

static FONT: Once = Once::new();

fn register_font() -> Result<()> {
    let mut result = Ok(());
    FONT.call_once(|| {
        let Some(bytes) = FONTS.iter().find_map(|p| std::fs::read(p).ok()) else {
            result = Err(anyhow!(
                "no TrueType font for the PNG's text (tried {}; apt-get install fonts-dejavu-core)",
                FONTS.join(", ")
            ));
            return;
        };
        // The font lives as long as the process: plotters keeps a 'static reference.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
            result = Err(anyhow!("the font file is not a valid TrueType font"));
        }
    });
    result
}

pub fn write_png(path: &Path, chart: &Chart) -> Result<()> {
    register_font()?;
    {
        let root = BitMapBackend::new(path, SIZE).into_drawing_area();
        draw(&root, chart).with_context(|| format!("draw {}", path.display()))?;
    }
    if !path.exists() {
        bail!("{} was not written", path.display());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chart() -> Chart {
        Chart {
            title: "t".into(),
            y_label: "Mpps".into(),
            series: vec!["a".into(), "b".into()],
            groups: vec![
                Group {
                    name: "l2 udp1".into(),
                    bars: vec![
                        Bar {
                            series: "a".into(),
                            min: 0.5,
                            median: 0.6,
                            max: 0.7,
                        },
                        Bar {
                            series: "b".into(),
                            min: 1.0,
                            median: 1.1,
                            max: 1.2,
                        },
                    ],
                },
                Group {
                    name: "antrea udp1".into(),
                    bars: vec![Bar {
                        series: "a".into(),
                        min: 0.4,
                        median: 0.5,
                        max: 0.55,
                    }],
                },
            ],
        }
    }

    #[test]
    fn svg_and_png_are_written() {
        let dir = std::env::temp_dir().join(format!("xvsb-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let svg = dir.join("c.svg");
        write_svg(&svg, &chart()).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("<svg") && text.trim_end().ends_with("</svg>"));
        assert!(text.contains("l2 udp1"));
        let png = dir.join("c.png");
        write_png(&png, &chart()).unwrap();
        let img = image::open(&png).unwrap();
        assert_eq!((img.width(), img.height()), SIZE);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
