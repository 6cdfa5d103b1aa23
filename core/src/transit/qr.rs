//! QR symbols for transit payloads: module matrix, SVG, PNG and terminal renderings.

use qrcode::{Color, EcLevel, QrCode, Version};

/// A rendered QR symbol (error correction level M).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrImage {
    /// QR version (1-40).
    pub version: u8,
    /// Modules per side, without the quiet zone.
    pub size: u32,
    /// Row-major modules, `true` = dark.
    pub modules: Vec<bool>,
}

/// Encodes `text` at error-correction level M (alphanumeric mode when the text allows it).
pub fn render(text: &str) -> Result<QrImage, String> {
    let code = QrCode::with_error_correction_level(text, EcLevel::M)
        .map_err(|e| format!("QR encoding failed: {e}"))?;
    let version = match code.version() {
        Version::Normal(v) | Version::Micro(v) => v as u8,
    };
    let size = code.width() as u32;
    let modules = code
        .to_colors()
        .into_iter()
        .map(|c| c == Color::Dark)
        .collect();
    Ok(QrImage {
        version,
        size,
        modules,
    })
}

impl QrImage {
    fn dark(&self, x: i64, y: i64) -> bool {
        let n = i64::from(self.size);
        (0..n).contains(&x) && (0..n).contains(&y) && self.modules[(y * n + x) as usize]
    }

    /// An SVG document, at least `min_px` pixels wide, with a 4-module quiet zone.
    pub fn svg(&self, min_px: u32) -> String {
        let side = self.size + 8;
        let scale = min_px.div_ceil(side).max(1);
        let mut path = String::new();
        for y in 0..self.size {
            for x in 0..self.size {
                if self.dark(i64::from(x), i64::from(y)) {
                    path.push_str(&format!("M{} {}h1v1h-1z", x + 4, y + 4));
                }
            }
        }
        let px = side * scale;
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             width=\"{px}\" height=\"{px}\" viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\">\
             <rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>\n"
        )
    }

    /// Text for a terminal with a dark background: two modules per character cell, light modules
    /// drawn as blocks, with a 2-module quiet zone.
    pub fn terminal(&self) -> String {
        let n = i64::from(self.size);
        let mut out = String::new();
        let mut y = -2;
        while y < n + 2 {
            for x in -2..n + 2 {
                let top = !self.dark(x, y);
                let bottom = !self.dark(x, y + 1) && y + 1 < n + 2;
                out.push(match (top, bottom) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            out.push('\n');
            y += 2;
        }
        out
    }

    /// A grayscale PNG, `scale` pixels per module, 4-module quiet zone.
    pub fn png(&self, scale: u32) -> Result<Vec<u8>, String> {
        let scale = scale.clamp(1, 64);
        let quiet = 4;
        let side = (self.size + 2 * quiet) * scale;
        let mut pixels = vec![255u8; (side * side) as usize];
        for y in 0..self.size {
            for x in 0..self.size {
                if self.modules[(y * self.size + x) as usize] {
                    for dy in 0..scale {
                        let row = ((y + quiet) * scale + dy) * side;
                        let start = (row + (x + quiet) * scale) as usize;
                        pixels[start..start + scale as usize].fill(0);
                    }
                }
            }
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
        Ok(out)
    }
}
