//! PNG versions of our SVG plots (for slides, papers and viewers without SVG), rendered by
//! resvg with the system's fonts. The SVGs name the generic `sans-serif`, which fontdb maps to
//! Arial unless told otherwise; on a machine without Arial the first installed sans family
//! (DejaVu Sans on Debian) stands in, so labels are drawn rather than dropped.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result, bail};
use resvg::{tiny_skia, usvg};

/// Pixels per SVG unit in the PNGs: 2× for print-quality figures.
pub const PNG_SCALE: f32 = 2.0;

/// The system's fonts, loaded once per process (scanning them takes tens of milliseconds).
fn fonts() -> Arc<usvg::fontdb::Database> {
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = usvg::fontdb::Database::new();
            db.load_system_fonts();
            let has = |name: &str| {
                db.faces()
                    .any(|f| f.families.iter().any(|(family, _)| family == name))
            };
            let sans = [
                "Arial",
                "Helvetica",
                "Liberation Sans",
                "DejaVu Sans",
                "Noto Sans",
            ]
            .into_iter()
            .find(|name| has(name))
            .map(str::to_string)
            .or_else(|| {
                db.faces()
                    .next()
                    .and_then(|f| f.families.first().map(|(n, _)| n.clone()))
            });
            match sans {
                Some(family) => db.set_sans_serif_family(family),
                None => tracing::warn!("no fonts installed: PNG plots are drawn without text"),
            }
            Arc::new(db)
        })
        .clone()
}

/// Renders an SVG document to PNG bytes at `scale` pixels per SVG unit.
pub fn svg_to_png(svg: &str, scale: f32) -> Result<Vec<u8>> {
    let options = usvg::Options {
        fontdb: fonts(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options).context("parsing the SVG")?;
    let size = tree.size();
    let (w, h) = (
        (size.width() * scale).ceil() as u32,
        (size.height() * scale).ceil() as u32,
    );
    let Some(mut pixmap) = tiny_skia::Pixmap::new(w, h) else {
        bail!("an SVG of {w} × {h} pixels cannot be rendered");
    };
    // a white page: transparent PNGs read badly in dark viewers and slides
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().context("encoding the PNG")
}

/// Writes `svg` to `path` as a PNG (atomically).
pub fn write_png(path: &Path, svg: &str) -> Result<()> {
    let png =
        svg_to_png(svg, PNG_SCALE).with_context(|| format!("rendering {}", path.display()))?;
    crate::store::write_atomic(path, &png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_svg_becomes_a_png_of_twice_its_size_with_its_colours() {
        let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20" font-family="sans-serif"><rect x="0" y="0" width="20" height="20" fill="#ff0000"/><text x="22" y="15" font-size="12">ab</text></svg>"##;
        let png = svg_to_png(svg, 2.0).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let pixmap = tiny_skia::Pixmap::decode_png(&png).unwrap();
        assert_eq!((pixmap.width(), pixmap.height()), (80, 40));
        let at = |x: u32, y: u32| pixmap.pixel(x, y).unwrap();
        let red = at(10, 10);
        assert_eq!((red.red(), red.green(), red.blue()), (255, 0, 0));
        // outside the square: the white page
        let white = at(78, 2);
        assert_eq!((white.red(), white.green(), white.blue()), (255, 255, 255));
        assert!(svg_to_png("not svg", 1.0).is_err());
    }
}
