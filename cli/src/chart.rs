//! The SVG chart of `hegpu bench --chart`: images per second of the whole network against the
//! batch size, one line per device and ring degree, both axes logarithmic.

use hegpu::{Error, Result};
use hegpu_cli::bench::Record;
use plotters::prelude::*;
use std::path::Path;

/// One line of the chart: its label and (batch, images per second) points by batch.
type Series = (String, Vec<(f64, f64)>);

/// The network rows of `records` as lines.
fn series(records: &[Record]) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    let drawable =
        |r: &&Record| r.op == "network" && r.per_second.is_finite() && r.per_second > 0.0;
    for r in records.iter().filter(drawable) {
        let device = match r.threads {
            0 => r
                .backend
                .split(" with ")
                .next()
                .unwrap_or(&r.backend)
                .to_string(),
            1 => "CPU, 1 thread".to_string(),
            t => format!("CPU, {t} threads"),
        };
        let label = format!("{device}, N = 2^{}", r.n.trailing_zeros());
        let point = (r.batch as f64, r.per_second);
        match out.iter_mut().find(|(l, _)| *l == label) {
            Some((_, points)) => points.push(point),
            None => out.push((label, vec![point])),
        }
    }
    for (_, points) in &mut out {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

fn drawing(e: impl std::fmt::Display) -> Error {
    Error::Config(format!("drawing the chart: {e}"))
}

/// Writes the chart of the network rows of `records` to `path`; returns the number of lines.
/// An error when there are no network rows.
pub fn network_chart(records: &[Record], path: &Path, title: &str) -> Result<usize> {
    let lines = series(records);
    let points = lines.iter().flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_min, mut y_max) = (0f64, f64::INFINITY, 0f64);
    let mut x_min = f64::INFINITY;
    for &(x, y) in points {
        (x_min, x_max) = (x_min.min(x), x_max.max(x));
        (y_min, y_max) = (y_min.min(y), y_max.max(y));
    }
    if lines.is_empty() {
        return Err(Error::Config(
            "no network rows to chart: run the network section".into(),
        ));
    }
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(drawing)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (x_min / 1.5..x_max * 1.5).log_scale(),
            (y_min / 2.0..y_max * 2.0).log_scale(),
        )
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc("images per batch")
        .y_desc("images per second (server evaluation)")
        .draw()
        .map_err(drawing)?;
    for (i, (label, points)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(drawing)?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(drawing)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(drawing)?;
    root.present().map_err(drawing)?;
    drop(chart);
    drop(root);
    hegpu::files::write_file(path, svg.as_bytes())?;
    Ok(lines.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(threads: usize, n: usize, batch: usize, per_second: f64) -> Record {
        Record {
            op: "network",
            n,
            limbs: 6,
            batch,
            backend: "GPU (test) with CPU (2 threads) as fallback".into(),
            threads,
            per_second,
            unit: "images",
            detail: String::new(),
        }
    }

    #[test]
    fn one_line_per_device_and_degree_with_points_by_batch() {
        let rows = [
            row(1, 8192, 4096, 400.0),
            row(1, 8192, 64, 6.0),
            row(0, 8192, 64, 900.0),
            row(1, 16384, 64, 3.0),
        ];
        let lines = series(&rows);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].0, "CPU, 1 thread, N = 2^13");
        assert_eq!(lines[0].1, vec![(64.0, 6.0), (4096.0, 400.0)]);
        assert_eq!(lines[1].0, "GPU (test), N = 2^13");
    }

    #[test]
    fn writes_an_svg_with_every_line_and_refuses_no_rows() {
        let dir = std::env::temp_dir().join(format!("hegpu-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chart.svg");
        let rows = [row(2, 8192, 64, 12.0), row(2, 8192, 4096, 800.0)];
        assert_eq!(network_chart(&rows, &path, "test").unwrap(), 1);
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("CPU, 2 threads, N = 2^13"));
        assert!(svg.contains("<polyline"), "no line drawn");
        assert!(network_chart(&[], &path, "test").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
