//! A photo made readable: the paper found and its perspective undone, lighting
//! flattened, scaled to the text size tesseract reads best, deskewed, and
//! (for the second reading) binarised.

use image::{imageops, GrayImage, Luma};

/// How a page is handed to the OCR engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Flattened grey: tesseract thresholds it itself.
    Grey,
    /// Sharpened and binarised here by a local (Sauvola) threshold: better on
    /// blur and on light that varies across the page.
    Binary,
}

/// A page straightened and flattened once, rendered per pass.
pub struct Page {
    flat: GrayImage,
}

impl Page {
    /// Prepares a photo or a rendered scan.
    pub fn new(image: GrayImage) -> Page {
        // Nothing needs more than about 12 megapixels to be read; a larger photo is
        // made that size first, so every step below is bounded.
        let (w, h) = image.dimensions();
        let pixels = w as f64 * h as f64;
        let image = if pixels > 12_000_000.0 {
            let f = (12_000_000.0 / pixels).sqrt();
            let (nw, nh) = (((w as f64 * f) as u32).max(1), ((h as f64 * f) as u32).max(1));
            resize(&image, nw, nh, Kernel::Triangle)
        } else {
            image
        };
        let straightened = match find_paper(&image) {
            Some(quad) => unwarp(&image, &quad),
            None => image,
        };
        // Cleaned before measuring: a shadow's band on every row would read as a page of ink.
        let (flat, letters) = clean(&flatten(&straightened));
        let scaled = scale_for_text(&flat, letters);
        let angle = skew_angle(&scaled);
        let flat = if angle.abs() > 0.15 { rotate(&scaled, -angle) } else { scaled };
        Page { flat: crop_to_text(&clean(&flat).0) }
    }

    /// The grey page scaled by `factor`.
    pub fn magnified(&self, factor: f64) -> GrayImage {
        let (w, h) = self.flat.dimensions();
        let factor = factor.min((16_000_000.0 / (w as f64 * h as f64)).sqrt()).max(1.0);
        resize(&self.flat, (w as f64 * factor) as u32, (h as f64 * factor) as u32, Kernel::CatmullRom)
    }

    /// The grey page turned clockwise by `quarters` quarter turns.
    pub fn turned(&self, quarters: u8) -> GrayImage {
        match quarters % 4 {
            1 => imageops::rotate90(&self.flat),
            2 => imageops::rotate180(&self.flat),
            3 => imageops::rotate270(&self.flat),
            _ => self.flat.clone(),
        }
    }

    /// The page as one pass reads it.
    pub fn render(&self, pass: Pass) -> GrayImage {
        match pass {
            Pass::Grey => self.flat.clone(),
            Pass::Binary => sauvola(&sharpen(&self.flat), 25, 0.25),
        }
    }
}

/// Whitens what is dark but not text: shapes far larger than a letter (the
/// table's edge around the sheet, a shadow's band) and specks of noise. Either
/// would read as letters, or make the OCR engine take the page for a picture.
///
/// Also returns the median height of what is left that looks like letters.
fn clean(image: &GrayImage) -> (GrayImage, Option<f64>) {
    let (w, h) = image.dimensions();
    let shapes = Shapes::of(image, INK);
    let mut out = image.clone();
    let mut heights = Vec::new();
    let mut whiten = vec![false; shapes.runs.len()];
    for (root, shape) in shapes.roots() {
        let (bw, bh) = (shape.max_x - shape.min_x + 1, shape.max_y - shape.min_y + 1);
        // Text is scaled to about 34 pixels a line: nothing of it is this tall.
        let huge = bh > (h / 8).max(140) || (bw > w / 2 && bh > 90);
        let speck = shape.pixels < 6;
        if huge || speck {
            whiten[root] = true;
        } else if bh >= 5 && bw <= bh * 3 {
            heights.push(bh);
        }
    }
    let raw: &mut [u8] = &mut out;
    for (i, run) in shapes.runs.iter().enumerate() {
        if whiten[shapes.root(i)] {
            let at = run.y as usize * w as usize;
            raw[at + run.x0 as usize..at + run.x1 as usize].fill(255);
        }
    }
    heights.sort_unstable();
    let letters = (heights.len() >= 10).then(|| heights[heights.len() / 2] as f64);
    (out, letters)
}

/// What `clean` and `crop_to_text` count as ink.
const INK: u8 = 140;

/// A row's stretch of ink pixels, `x0..x1`.
#[derive(Debug, Clone, Copy)]
struct Run {
    y: u32,
    x0: u32,
    x1: u32,
}

/// A connected shape's extent and size.
#[derive(Debug, Clone, Copy)]
struct Shape {
    min_x: u32,
    max_x: u32,
    min_y: u32,
    max_y: u32,
    pixels: u64,
}

/// The ink's connected shapes (pixels touching left, right, above or below),
/// found by runs: each row's stretches of ink, joined to the stretches they
/// touch in the row above. A few operations per pixel and per stretch, where a
/// flood fill visits every pixel's four neighbours.
struct Shapes {
    runs: Vec<Run>,
    /// Union-find over `runs`: each run's parent, a root is its own.
    parent: Vec<u32>,
    /// Per run, set at its root after `of`.
    shape: Vec<Shape>,
}

impl Shapes {
    fn of(image: &GrayImage, ink: u8) -> Shapes {
        let w = image.width() as usize;
        let mut runs = Vec::new();
        // Where each row's runs begin in `runs`.
        let mut row_start = Vec::with_capacity(image.height() as usize + 1);
        for (y, row) in image.as_raw().chunks(w.max(1)).enumerate() {
            row_start.push(runs.len());
            let mut x = 0;
            while x < row.len() {
                if row[x] >= ink {
                    x += 1;
                    continue;
                }
                let x0 = x;
                while x < row.len() && row[x] < ink {
                    x += 1;
                }
                runs.push(Run { y: y as u32, x0: x0 as u32, x1: x as u32 });
            }
        }
        row_start.push(runs.len());
        let mut shapes = Shapes { parent: (0..runs.len() as u32).collect(), shape: Vec::new(), runs };
        for y in 1..row_start.len().saturating_sub(1) {
            let (above, here) = (row_start[y - 1]..row_start[y], row_start[y]..row_start[y + 1]);
            let (mut a, mut b) = (above.start, here.start);
            while a < above.end && b < here.end {
                let (ra, rb) = (shapes.runs[a], shapes.runs[b]);
                if ra.x0 < rb.x1 && rb.x0 < ra.x1 {
                    shapes.join(a, b);
                }
                // The run ending first touches nothing further on.
                if ra.x1 <= rb.x1 {
                    a += 1;
                } else {
                    b += 1;
                }
            }
        }
        // Parents come before children, so one pass in order points every run at its root.
        for i in 0..shapes.parent.len() {
            shapes.parent[i] = shapes.parent[shapes.parent[i] as usize];
        }
        let mut shape: Vec<Shape> = shapes
            .runs
            .iter()
            .map(|r| Shape { min_x: r.x0, max_x: r.x1 - 1, min_y: r.y, max_y: r.y, pixels: 0 })
            .collect();
        for i in 0..shapes.runs.len() {
            let (root, run) = (shapes.root(i), shapes.runs[i]);
            let s = &mut shape[root];
            s.min_x = s.min_x.min(run.x0);
            s.max_x = s.max_x.max(run.x1 - 1);
            s.min_y = s.min_y.min(run.y);
            s.max_y = s.max_y.max(run.y);
            s.pixels += u64::from(run.x1 - run.x0);
        }
        shapes.shape = shape;
        shapes
    }

    /// The root of run `i`'s shape (after `of`: one step, the trees are flat).
    fn root(&self, i: usize) -> usize {
        self.parent[i] as usize
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] as usize != i {
            // Halving the path as it is walked keeps the trees shallow.
            let grand = self.parent[self.parent[i] as usize];
            self.parent[i] = grand;
            i = grand as usize;
        }
        i
    }

    fn join(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        // The earlier run is the root: every parent comes before its child.
        match ra.cmp(&rb) {
            std::cmp::Ordering::Less => self.parent[rb] = ra as u32,
            std::cmp::Ordering::Greater => self.parent[ra] = rb as u32,
            std::cmp::Ordering::Equal => {}
        }
    }

    /// Each shape once: its root run and its extent.
    fn roots(&self) -> impl Iterator<Item = (usize, Shape)> + '_ {
        (0..self.runs.len()).filter(|&i| self.parent[i] as usize == i).map(|i| (i, self.shape[i]))
    }
}

/// The paper around the text, cut off but for a margin: tesseract's layout
/// analysis costs by the pixel, and an A4 page's margins and empty lower half
/// are a tenth of the time of reading it.
fn crop_to_text(image: &GrayImage) -> GrayImage {
    const MARGIN: u32 = 48;
    let (w, h) = image.dimensions();
    let (mut left, mut top, mut right, mut bottom) = (u32::MAX, u32::MAX, 0, 0);
    for (y, row) in image.as_raw().chunks(w.max(1) as usize).enumerate() {
        // What `clean` left dark is text.
        if let (Some(first), Some(last)) = (row.iter().position(|&v| v < INK), row.iter().rposition(|&v| v < INK)) {
            let y = y as u32;
            (left, right) = (left.min(first as u32), right.max(last as u32));
            (top, bottom) = (top.min(y), bottom.max(y));
        }
    }
    if left > right {
        return image.clone();
    }
    let (x0, y0) = (left.saturating_sub(MARGIN), top.saturating_sub(MARGIN));
    let (x1, y1) = ((right + 1 + MARGIN).min(w), (bottom + 1 + MARGIN).min(h));
    imageops::crop_imm(image, x0, y0, x1 - x0, y1 - y0).to_image()
}

/// Otsu's threshold of a histogram.
fn otsu(image: &GrayImage) -> u8 {
    let mut hist = [0u64; 256];
    for p in image.pixels() {
        hist[p.0[0] as usize] += 1;
    }
    let total: u64 = hist.iter().sum();
    let sum_all: f64 = hist.iter().enumerate().map(|(i, &h)| i as f64 * h as f64).sum();
    let (mut weight_b, mut sum_b, mut best, mut threshold) = (0u64, 0f64, 0f64, 128u8);
    for (t, &h) in hist.iter().enumerate() {
        weight_b += h;
        if weight_b == 0 {
            continue;
        }
        let weight_f = total - weight_b;
        if weight_f == 0 {
            break;
        }
        sum_b += t as f64 * h as f64;
        let mean_b = sum_b / weight_b as f64;
        let mean_f = (sum_all - sum_b) / weight_f as f64;
        let between = weight_b as f64 * weight_f as f64 * (mean_b - mean_f).powi(2);
        if between > best {
            best = between;
            threshold = t as u8;
        }
    }
    threshold
}

/// The paper's four corners (top-left, top-right, bottom-right, bottom-left) in
/// the image's pixels, when it lies on a darker background; `None` when the
/// paper fills the picture (a scan) or nothing paper-like stands out.
fn find_paper(image: &GrayImage) -> Option<[(f64, f64); 4]> {
    let (w, h) = image.dimensions();
    if w < 50 || h < 50 {
        return None;
    }
    let factor = (w.max(h) as f64 / 400.0).max(1.0);
    let (sw, sh) = ((w as f64 / factor) as u32, (h as f64 / factor) as u32);
    if sw < 8 || sh < 8 {
        return None;
    }
    let small = resize(image, sw, sh, Kernel::Triangle);
    // Blurred, text disappears into the paper and the paper stands out as one bright shape.
    let small = imageops::blur(&small, 2.0);
    let t = otsu(&small);
    let (sw, sh) = small.dimensions();
    let mut bright = 0u64;
    let mut border_bright = 0u64;
    let mut border = 0u64;
    let mut corners = [(f64::MAX, 0.0, 0.0), (f64::MIN, 0.0, 0.0), (f64::MIN, 0.0, 0.0), (f64::MAX, 0.0, 0.0)];
    for (x, y, p) in small.enumerate_pixels() {
        let on_border = x < 2 || y < 2 || x + 2 >= sw || y + 2 >= sh;
        if on_border {
            border += 1;
        }
        if p.0[0] <= t {
            continue;
        }
        bright += 1;
        if on_border {
            border_bright += 1;
        }
        let (fx, fy) = (x as f64, y as f64);
        let sum = fx + fy;
        let diff = fx - fy;
        if sum < corners[0].0 {
            corners[0] = (sum, fx, fy);
        }
        if diff > corners[1].0 {
            corners[1] = (diff, fx, fy);
        }
        if sum > corners[2].0 {
            corners[2] = (sum, fx, fy);
        }
        if diff < corners[3].0 {
            corners[3] = (diff, fx, fy);
        }
    }
    let area = (sw * sh) as f64;
    // Paper touching most of the border is a scan, or a photo without background.
    if border == 0 || border_bright as f64 / border as f64 > 0.3 || (bright as f64) < area * 0.15 {
        return None;
    }
    let small_quad = corners.map(|(_, x, y)| (x, y));
    if !edges_stand_out(&small, &small_quad) {
        // The extremes of what is bright are not the sheet's edges (a shadow
        // cut into it, glare on the table): cutting there would cut text off.
        return None;
    }
    let quad = small_quad.map(|(x, y)| ((x + 0.5) * factor, (y + 0.5) * factor));
    let quad_area = polygon_area(&quad);
    // The four extremes must span most of what is bright: otherwise they are not a sheet's corners.
    if quad_area < bright as f64 * factor * factor * 0.8 {
        return None;
    }
    Some(quad)
}

/// Whether each side of `quad` is an edge: brighter just inside than just
/// outside, along most of its length.
fn edges_stand_out(image: &GrayImage, quad: &[(f64, f64); 4]) -> bool {
    let centre = quad.iter().fold((0.0, 0.0), |a, p| (a.0 + p.0 / 4.0, a.1 + p.1 / 4.0));
    (0..4).all(|i| {
        let (a, b) = (quad[i], quad[(i + 1) % 4]);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        // The normal pointing inside, towards the centre.
        let (mut nx, mut ny) = (-dy / len, dx / len);
        let mid = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
        if (centre.0 - mid.0) * nx + (centre.1 - mid.1) * ny < 0.0 {
            nx = -nx;
            ny = -ny;
        }
        let samples = 24;
        let standing = (1..samples)
            .filter(|k| {
                let t = *k as f64 / samples as f64;
                let (px, py) = (a.0 + dx * t, a.1 + dy * t);
                let inside = sample(image, px + nx * 4.0, py + ny * 4.0) as i32;
                let outside = sample_dark(image, px - nx * 4.0, py - ny * 4.0) as i32;
                inside - outside > 20
            })
            .count();
        standing * 10 >= (samples - 1) * 7
    })
}

/// Like [`sample`], but dark outside the image (the table goes on).
fn sample_dark(image: &GrayImage, x: f64, y: f64) -> u8 {
    let (w, h) = image.dimensions();
    if x < 0.0 || y < 0.0 || x >= (w - 1) as f64 || y >= (h - 1) as f64 {
        return 0;
    }
    sample(image, x, y)
}

fn polygon_area(q: &[(f64, f64); 4]) -> f64 {
    let mut a = 0.0;
    for i in 0..4 {
        let (x1, y1) = q[i];
        let (x2, y2) = q[(i + 1) % 4];
        a += x1 * y2 - x2 * y1;
    }
    a.abs() / 2.0
}

/// A projective map of the plane (a homography), as taking a photographed
/// sheet's corners to a rectangle's and back.
#[derive(Debug, Clone, Copy)]
pub struct Projective([f64; 8]);

impl Projective {
    /// The map taking each of `from` to the `to` at the same index, if the
    /// points are in general position.
    pub fn between(from: &[(f64, f64); 4], to: &[(f64, f64); 4]) -> Option<Projective> {
        let mut m = [[0f64; 9]; 8];
        for i in 0..4 {
            let (x, y) = from[i];
            let (u, v) = to[i];
            m[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
            m[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
        }
        // Gaussian elimination with partial pivoting.
        for col in 0..8 {
            let pivot = (col..8).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
            if m[pivot][col].abs() < 1e-12 {
                return None;
            }
            m.swap(col, pivot);
            let pivot_row = m[col];
            for (row, r) in m.iter_mut().enumerate() {
                if row != col {
                    let f = r[col] / pivot_row[col];
                    for (value, p) in r.iter_mut().zip(pivot_row.iter()).skip(col) {
                        *value -= f * p;
                    }
                }
            }
        }
        let mut out = [0f64; 8];
        for (i, o) in out.iter_mut().enumerate() {
            *o = m[i][8] / m[i][i];
        }
        Some(Projective(out))
    }

    /// Where the map takes (x, y); `None` on the line it sends to infinity.
    pub fn apply(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let h = &self.0;
        let d = h[6] * x + h[7] * y + 1.0;
        (d.abs() > 1e-9).then(|| ((h[0] * x + h[1] * y + h[2]) / d, (h[3] * x + h[4] * y + h[5]) / d))
    }
}

/// Samples `image` at (x, y) bilinearly; white outside.
fn sample(image: &GrayImage, x: f64, y: f64) -> u8 {
    let (w, h) = image.dimensions();
    if x < 0.0 || y < 0.0 || x >= (w - 1) as f64 || y >= (h - 1) as f64 {
        return 255;
    }
    let (x0, y0) = (x as usize, y as usize);
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    // Inside by the test above: the pixel and its right and lower neighbours exist.
    let raw = image.as_raw();
    let at = y0 * w as usize + x0;
    let p = |i: usize| raw.get(i).copied().unwrap_or(255) as f64;
    let top = p(at) * (1.0 - fx) + p(at + 1) * fx;
    let bottom = p(at + w as usize) * (1.0 - fx) + p(at + w as usize + 1) * fx;
    // Rounded by adding a half: `round` is a call into libm per pixel on x86-64's
    // baseline; `as u8` saturates what overshoots.
    (top * (1.0 - fy) + bottom * fy + 0.5) as u8
}

/// Fills `out`, rows of `width`, by `fill(y, row)`: bands of rows on every core
/// (the warps and resizes of a 12-megapixel page are a tenth of a second each on one).
fn by_rows<T: Send>(out: &mut [T], width: usize, fill: impl Fn(usize, &mut [T]) + Sync) {
    if width == 0 || out.is_empty() {
        return;
    }
    let height = out.len() / width;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let rows = height.div_ceil(cores).max(1);
    std::thread::scope(|scope| {
        for (band, pixels) in out.chunks_mut(rows * width).enumerate() {
            let fill = &fill;
            scope.spawn(move || {
                for (i, row) in pixels.chunks_exact_mut(width).enumerate() {
                    fill(band * rows + i, row);
                }
            });
        }
    });
}

/// The picture whose pixel (x, y) is `image` at `map(x, y)`, bilinearly.
fn warp(image: &GrayImage, out_w: u32, out_h: u32, map: impl Fn(f64, f64) -> (f64, f64) + Sync) -> GrayImage {
    let mut out = vec![255u8; out_w as usize * out_h as usize];
    by_rows(&mut out, out_w as usize, |y, row| {
        for (x, p) in row.iter_mut().enumerate() {
            let (sx, sy) = map(x as f64, y as f64);
            *p = sample(image, sx, sy);
        }
    });
    GrayImage::from_raw(out_w, out_h, out).unwrap_or_else(|| GrayImage::from_pixel(out_w, out_h, Luma([255])))
}

/// The paper inside `quad`, as a rectangle.
fn unwarp(image: &GrayImage, quad: &[(f64, f64); 4]) -> GrayImage {
    let dist = |a: (f64, f64), b: (f64, f64)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
    let w = ((dist(quad[0], quad[1]) + dist(quad[3], quad[2])) / 2.0).max(1.0);
    let h = ((dist(quad[0], quad[3]) + dist(quad[1], quad[2])) / 2.0).max(1.0);
    let rect = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)];
    let Some(map) = Projective::between(&rect, quad) else { return image.clone() };
    warp(image, w as u32, h as u32, |x, y| map.apply(x, y).unwrap_or((-1.0, -1.0)))
}

/// Divides out the light: the paper's brightness, estimated block by block
/// (the brightest of each block is paper), made white everywhere.
fn flatten(image: &GrayImage) -> GrayImage {
    let (w, h) = image.dimensions();
    let block = (w.max(h) / 40).max(8);
    let (bw, bh) = (w.div_ceil(block), h.div_ceil(block));
    let mut paper = GrayImage::new(bw, bh);
    let raw = image.as_raw();
    for by in 0..bh {
        for bx in 0..bw {
            // A histogram, not a sort: a block of a 12-megapixel page is 10,000 pixels.
            let mut histogram = [0u32; 256];
            let (x0, x1) = ((bx * block) as usize, ((bx + 1) * block).min(w) as usize);
            for y in (by * block)..((by + 1) * block).min(h) {
                let row = y as usize * w as usize;
                for &v in &raw[row + x0..row + x1] {
                    histogram[v as usize] += 1;
                }
            }
            // The 90th percentile: paper, not a speck of glare.
            let count: u32 = histogram.iter().sum();
            let rank = count * 9 / 10;
            let mut seen = 0;
            let v = histogram
                .iter()
                .position(|&n| {
                    seen += n;
                    seen > rank
                })
                .map_or(255, |v| v as u8);
            paper.put_pixel(bx, by, Luma([v.max(1)]));
        }
    }
    let on_paper = paper_blocks(&paper);
    let paper = imageops::blur(&paper, 1.5);
    let paper = resize(&paper, w, h, Kernel::Triangle);
    let mut out = vec![255u8; raw.len()];
    let (wu, paper_raw) = (w as usize, paper.as_raw());
    by_rows(&mut out, wu, |y, row| {
        for (x, o) in row.iter_mut().enumerate() {
            // Off the paper stays white: the table's texture would read as letters.
            if on_paper[(y / block as usize) * bw as usize + x / block as usize] {
                let bg = paper_raw[y * wu + x].max(1) as f64;
                *o = (raw[y * wu + x] as f64 / bg * 255.0).min(255.0) as u8;
            }
        }
    });
    stretch(&GrayImage::from_raw(w, h, out).unwrap_or_else(|| GrayImage::from_pixel(w, h, Luma([255]))))
}

/// Which blocks are paper: those reached from the middle of the picture without
/// crossing a sharp drop in brightness. Light changes slowly across a sheet; the
/// sheet's edge against a table is a cliff.
fn paper_blocks(paper: &GrayImage) -> Vec<bool> {
    let (bw, bh) = paper.dimensions();
    let mut seen = vec![false; (bw * bh) as usize];
    let index = |x: u32, y: u32| (y * bw + x) as usize;
    // Start from the brightest block near the middle (the middle may be a photo's dark print).
    let (cx, cy) = (bw / 2, bh / 2);
    let mut start = (cx, cy);
    for y in cy.saturating_sub(2)..(cy + 3).min(bh) {
        for x in cx.saturating_sub(2)..(cx + 3).min(bw) {
            if paper.get_pixel(x, y).0[0] > paper.get_pixel(start.0, start.1).0[0] {
                start = (x, y);
            }
        }
    }
    let mut stack = vec![start];
    seen[index(start.0, start.1)] = true;
    while let Some((x, y)) = stack.pop() {
        let here = paper.get_pixel(x, y).0[0] as f64;
        let neighbours = [(x.wrapping_sub(1), y), (x + 1, y), (x, y.wrapping_sub(1)), (x, y + 1)];
        for (nx, ny) in neighbours {
            if nx >= bw || ny >= bh || seen[index(nx, ny)] {
                continue;
            }
            let there = paper.get_pixel(nx, ny).0[0] as f64;
            if there >= here * 0.8 || there >= 200.0 {
                seen[index(nx, ny)] = true;
                stack.push((nx, ny));
            }
        }
    }
    // A sheet reached only in a few blocks means the start was not on paper: keep all.
    if seen.iter().filter(|s| **s).count() * 5 < seen.len() {
        return vec![true; seen.len()];
    }
    seen
}

/// Stretches contrast so the darkest ink is black and the paper white.
fn stretch(image: &GrayImage) -> GrayImage {
    let mut hist = [0u64; 256];
    for p in image.pixels() {
        hist[p.0[0] as usize] += 1;
    }
    let total: u64 = hist.iter().sum();
    let mut acc = 0;
    let mut low = 0u8;
    for (i, &c) in hist.iter().enumerate() {
        acc += c;
        if acc * 200 >= total {
            low = i as u8;
            break;
        }
    }
    // A page with little ink keeps its paper white: ink is never lighter than mid-grey.
    let low = low.min(120);
    let high = 245u8;
    let range = (high - low).max(1) as f64;
    let table: Vec<u8> =
        (0..=255u8).map(|v| ((v.saturating_sub(low) as f64 / range) * 255.0).clamp(0.0, 255.0) as u8).collect();
    let mut out = image.clone();
    for p in out.pixels_mut() {
        p.0[0] = table[p.0[0] as usize];
    }
    out
}

/// Scales so a line of a receipt's text or an invoice's is as tall as tesseract
/// reads best: estimated from the heights of the ink's connected rows.
fn scale_for_text(image: &GrayImage, letters: Option<f64>) -> GrayImage {
    let (w, h) = image.dimensions();
    // Letters about 24 pixels tall (capitals of a 34-pixel line).
    let (height, target) = match letters {
        Some(l) => (Some(l), 24.0),
        None => (text_height(image), 34.0),
    };
    let factor = match height {
        Some(hgt) if hgt > 0.0 => (target / hgt).clamp(0.5, 4.0),
        _ => 1.0,
    };
    // Never more than about 12 megapixels out.
    let factor = factor.min((12_000_000.0 / (w as f64 * h as f64)).sqrt());
    if (factor - 1.0).abs() < 0.1 {
        return image.clone();
    }
    resize(image, (w as f64 * factor) as u32, (h as f64 * factor) as u32, Kernel::CatmullRom)
}

/// How [`resize`] weighs the source pixels near a target pixel.
#[derive(Debug, Clone, Copy)]
enum Kernel {
    /// Linear: smooth, for the lighting estimate and for shrinking.
    Triangle,
    /// Cubic (Catmull-Rom): keeps letters' edges sharp when magnifying.
    CatmullRom,
}

impl Kernel {
    fn support(self) -> f64 {
        match self {
            Kernel::Triangle => 1.0,
            Kernel::CatmullRom => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Kernel::Triangle => (1.0 - x).max(0.0),
            Kernel::CatmullRom if x < 1.0 => 1.5 * x * x * x - 2.5 * x * x + 1.0,
            Kernel::CatmullRom if x < 2.0 => -0.5 * x * x * x + 2.5 * x * x - 4.0 * x + 2.0,
            Kernel::CatmullRom => 0.0,
        }
    }

    /// For each of `to` target positions, the first source position it draws
    /// on and the weights of it and those after it (summing to 1).
    fn taps(self, from: u32, to: u32) -> Vec<(usize, Vec<f32>)> {
        let scale = from as f64 / to as f64;
        // Shrinking widens the kernel, so every source pixel is counted.
        let stretch = scale.max(1.0);
        let support = self.support() * stretch;
        (0..to)
            .map(|i| {
                let centre = (i as f64 + 0.5) * scale;
                let first = ((centre - support).floor().max(0.0)) as usize;
                let last = ((centre + support).ceil() as usize).min(from as usize - 1).max(first);
                let mut weights: Vec<f64> =
                    (first..=last).map(|j| self.weight((j as f64 + 0.5 - centre) / stretch)).collect();
                let sum: f64 = weights.iter().sum();
                if sum.abs() < 1e-9 {
                    // Nothing in reach (cannot happen with these kernels): the nearest pixel.
                    weights = (first..=last).map(|j| if j == first { 1.0 } else { 0.0 }).collect();
                } else {
                    weights.iter_mut().for_each(|w| *w /= sum);
                }
                (first, weights.into_iter().map(|w| w as f32).collect())
            })
            .collect()
    }
}

/// Resizes a grey picture to `to_w` x `to_h`: separable, rows then columns, with
/// the weights worked out once per row and column (the `image` crate's generic
/// resize costs half a second on a receipt magnified to 9 megapixels).
fn resize(image: &GrayImage, to_w: u32, to_h: u32, kernel: Kernel) -> GrayImage {
    let (w, h) = image.dimensions();
    let (to_w, to_h) = (to_w.max(1), to_h.max(1));
    if w == 0 || h == 0 {
        return GrayImage::from_pixel(to_w, to_h, Luma([255]));
    }
    let across = kernel.taps(w, to_w);
    let down = kernel.taps(h, to_h);
    let src = image.as_raw();
    let (w, to_w_us) = (w as usize, to_w as usize);
    // Rows first: h rows of to_w values.
    let mut rows = vec![0f32; h as usize * to_w_us];
    by_rows(&mut rows, to_w_us, |y, row| {
        let line = &src[y * w..(y + 1) * w];
        for (out, (first, weights)) in row.iter_mut().zip(&across) {
            *out = weights.iter().zip(&line[*first..]).map(|(wt, &p)| wt * p as f32).sum();
        }
    });
    let mut out = vec![0u8; to_h as usize * to_w_us];
    by_rows(&mut out, to_w_us, |y, row_out| {
        let (first, weights) = &down[y];
        let mut acc = vec![0f32; to_w_us];
        for (k, wt) in weights.iter().enumerate() {
            let row = &rows[(first + k) * to_w_us..(first + k + 1) * to_w_us];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += wt * v;
            }
        }
        for (o, a) in row_out.iter_mut().zip(&acc) {
            // As in `sample`: half added, `as` saturating (Catmull-Rom overshoots).
            *o = (a + 0.5) as u8;
        }
    });
    GrayImage::from_raw(to_w, to_h, out).unwrap_or_else(|| GrayImage::from_pixel(to_w, to_h, Luma([255])))
}

/// The median height of text lines, from the row profile of the ink.
fn text_height(image: &GrayImage) -> Option<f64> {
    let t = otsu(image);
    let (w, h) = image.dimensions();
    let rows: Vec<u32> = (0..h).map(|y| (0..w).filter(|&x| image.get_pixel(x, y).0[0] < t).count() as u32).collect();
    let min_ink = (w / 200).max(2);
    let mut runs = Vec::new();
    let mut start = None;
    for (y, &ink) in rows.iter().enumerate() {
        match (ink >= min_ink, start) {
            (true, None) => start = Some(y),
            (false, Some(s)) => {
                runs.push((y - s) as f64);
                start = None;
            }
            _ => {}
        }
    }
    let mut runs: Vec<f64> = runs.into_iter().filter(|&r| r >= 4.0).collect();
    if runs.len() < 3 {
        return None;
    }
    runs.sort_by(f64::total_cmp);
    Some(runs[runs.len() / 2])
}

/// The angle (degrees, counter-clockwise positive) of the text lines, by the
/// sharpest row profile of the ink over candidate angles.
fn skew_angle(image: &GrayImage) -> f64 {
    let (w, h) = image.dimensions();
    let factor = (w.max(h) as f64 / 1000.0).max(1.0);
    let (sw, sh) = (((w as f64 / factor) as u32).max(1), ((h as f64 / factor) as u32).max(1));
    let small = resize(image, sw, sh, Kernel::Triangle);
    let t = otsu(&small);
    let ink: Vec<(f64, f64)> =
        small.enumerate_pixels().filter(|(_, _, p)| p.0[0] < t).map(|(x, y, _)| (x as f64, y as f64)).collect();
    if ink.len() < 200 {
        return 0.0;
    }
    let rows = (small.height() + small.width()) as usize * 2;
    let score = |deg: f64| -> f64 {
        let (s, c) = deg.to_radians().sin_cos();
        let mut hist = vec![0u32; rows];
        for &(x, y) in &ink {
            let r = (y * c - x * s) + small.width() as f64;
            if r >= 0.0 && (r as usize) < rows {
                hist[r as usize] += 1;
            }
        }
        hist.iter().map(|&v| (v as f64).powi(2)).sum()
    };
    let mut best = (0.0, score(0.0));
    let mut deg = -10.0;
    while deg <= 10.0 {
        let s = score(deg);
        if s > best.1 {
            best = (deg, s);
        }
        deg += 0.5;
    }
    let centre = best.0;
    let mut fine = centre - 0.5;
    while fine <= centre + 0.5 {
        let s = score(fine);
        if s > best.1 {
            best = (fine, s);
        }
        fine += 0.1;
    }
    best.0
}

/// Rotates by `degrees` about the centre, keeping the size.
fn rotate(image: &GrayImage, degrees: f64) -> GrayImage {
    let (w, h) = image.dimensions();
    let (s, c) = degrees.to_radians().sin_cos();
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    warp(image, w, h, |x, y| {
        let (dx, dy) = (x - cx, y - cy);
        (cx + dx * c + dy * s, cy - dx * s + dy * c)
    })
}

/// An unsharp mask: what blur took from the edges, given back.
fn sharpen(image: &GrayImage) -> GrayImage {
    let blurred = imageops::blur(image, 1.5);
    let mut out = image.clone();
    for (p, b) in out.pixels_mut().zip(blurred.pixels()) {
        let v = p.0[0] as f64 + 1.0 * (p.0[0] as f64 - b.0[0] as f64);
        p.0[0] = v.clamp(0.0, 255.0) as u8;
    }
    out
}

/// Sauvola's threshold: ink where a pixel is darker than its neighbourhood's
/// mean less a share of its spread. The window's sums slide along rows and
/// columns, so it costs a few operations a pixel and memory of one row.
fn sauvola(image: &GrayImage, radius: u32, k: f64) -> GrayImage {
    let (w, h) = image.dimensions();
    let (wu, r) = (w as usize, radius as usize);
    let raw = image.as_raw();
    // Sums over the window's rows, per column.
    let mut col_sum = vec![0u64; wu];
    let mut col_sq = vec![0u64; wu];
    let add_row = |y: usize, sign: i64, col_sum: &mut [u64], col_sq: &mut [u64]| {
        for (x, &v) in raw[y * wu..(y + 1) * wu].iter().enumerate() {
            let v = v as u64;
            if sign > 0 {
                col_sum[x] += v;
                col_sq[x] += v * v;
            } else {
                col_sum[x] -= v;
                col_sq[x] -= v * v;
            }
        }
    };
    for y in 0..r.min(h as usize) {
        add_row(y, 1, &mut col_sum, &mut col_sq);
    }
    let mut out = vec![255u8; raw.len()];
    for y in 0..h as usize {
        if y + r < h as usize {
            add_row(y + r, 1, &mut col_sum, &mut col_sq);
        }
        if y > r {
            add_row(y - r - 1, -1, &mut col_sum, &mut col_sq);
        }
        let rows = ((y + r + 1).min(h as usize) - y.saturating_sub(r)) as u64;
        let (mut sum, mut sq) = (0u64, 0u64);
        for x in 0..r.min(wu) {
            sum += col_sum[x];
            sq += col_sq[x];
        }
        for x in 0..wu {
            if x + r < wu {
                sum += col_sum[x + r];
                sq += col_sq[x + r];
            }
            if x > r {
                sum -= col_sum[x - r - 1];
                sq -= col_sq[x - r - 1];
            }
            let n = (((x + r + 1).min(wu) - x.saturating_sub(r)) as u64 * rows) as f64;
            let mean = sum as f64 / n;
            let var = (sq as f64 / n - mean * mean).max(0.0);
            let threshold = mean * (1.0 + k * (var.sqrt() / 128.0 - 1.0));
            if (raw[y * wu + x] as f64) <= threshold {
                out[y * wu + x] = 0;
            }
        }
    }
    GrayImage::from_raw(w, h, out).unwrap_or_else(|| GrayImage::from_pixel(w, h, Luma([255])))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `clean`'s definition: a flood fill from every ink pixel.
    fn clean_by_flood_fill(image: &GrayImage) -> (GrayImage, Option<f64>) {
        let (w, h) = image.dimensions();
        let dark = |x: u32, y: u32| image.get_pixel(x, y).0[0] < 140;
        let mut label = vec![u32::MAX; (w * h) as usize];
        let mut out = image.clone();
        let mut stack = Vec::new();
        let mut members = Vec::new();
        let mut heights = Vec::new();
        for y0 in 0..h {
            for x0 in 0..w {
                let i0 = (y0 * w + x0) as usize;
                if label[i0] != u32::MAX || !dark(x0, y0) {
                    continue;
                }
                label[i0] = 0;
                stack.push((x0, y0));
                members.clear();
                let (mut min_x, mut max_x, mut min_y, mut max_y) = (x0, x0, y0, y0);
                while let Some((x, y)) = stack.pop() {
                    members.push((x, y));
                    min_x = min_x.min(x);
                    max_x = max_x.max(x);
                    min_y = min_y.min(y);
                    max_y = max_y.max(y);
                    for (nx, ny) in [(x.wrapping_sub(1), y), (x + 1, y), (x, y.wrapping_sub(1)), (x, y + 1)] {
                        if nx < w && ny < h {
                            let i = (ny * w + nx) as usize;
                            if label[i] == u32::MAX && dark(nx, ny) {
                                label[i] = 0;
                                stack.push((nx, ny));
                            }
                        }
                    }
                }
                let (bw, bh) = (max_x - min_x + 1, max_y - min_y + 1);
                // Text is scaled to about 34 pixels a line: nothing of it is this tall.
                let huge = bh > (h / 8).max(140) || (bw > w / 2 && bh > 90);
                let speck = members.len() < 6;
                if huge || speck {
                    for &(x, y) in &members {
                        out.put_pixel(x, y, Luma([255]));
                    }
                } else if bh >= 5 && bw <= bh * 3 {
                    heights.push(bh);
                }
            }
        }
        heights.sort_unstable();
        let letters = (heights.len() >= 10).then(|| heights[heights.len() / 2] as f64);
        (out, letters)
    }

    #[test]
    fn cleaning_by_runs_is_cleaning_by_flood_fill() {
        let mut rng = fastrand::Rng::with_seed(17);
        for (w, h) in [(1u32, 1u32), (7, 1), (1, 9), (64, 48), (333, 257), (900, 1300)] {
            let mut img = GrayImage::from_pixel(w, h, Luma([255]));
            // Specks, letters, bars, spirals of touching strokes, a dark frame.
            for _ in 0..(w * h / 40).max(3) {
                let (x, y) = (rng.u32(0..w), rng.u32(0..h));
                let (dw, dh) = (rng.u32(1..12), rng.u32(1..40));
                let v = rng.u8(0..200);
                for yy in y..(y + dh).min(h) {
                    for xx in x..(x + dw).min(w) {
                        img.put_pixel(xx, yy, Luma([v]));
                    }
                }
            }
            if w > 100 {
                for x in 0..w {
                    img.put_pixel(x, 0, Luma([0]));
                    img.put_pixel(x, h - 1, Luma([0]));
                }
                for y in 0..h {
                    img.put_pixel(0, y, Luma([0]));
                }
            }
            assert_eq!(clean(&img), clean_by_flood_fill(&img), "{w} x {h}");
        }
        let blank = GrayImage::from_pixel(30, 20, Luma([255]));
        assert_eq!(clean(&blank), (blank.clone(), None));
    }

    fn page_with_lines(angle: f64) -> GrayImage {
        // Dark bars as text lines on white, rotated.
        let mut img = GrayImage::from_pixel(600, 800, Luma([255]));
        for line in 0..20 {
            for y in (100 + line * 30)..(112 + line * 30) {
                for x in 100..500 {
                    img.put_pixel(x, y, Luma([20]));
                }
            }
        }
        rotate(&img, angle)
    }

    #[test]
    fn skew_is_measured_within_a_fraction_of_a_degree() {
        for angle in [-6.0, -2.5, 0.0, 3.0, 7.5] {
            let measured = skew_angle(&page_with_lines(angle));
            assert!((measured - angle).abs() < 0.35, "rotated {angle}, measured {measured}");
        }
    }

    #[test]
    fn the_page_is_cut_to_its_text_and_a_margin() {
        let mut page = GrayImage::from_pixel(1000, 1400, Luma([255]));
        for (x, y) in [(200, 300), (700, 310), (450, 900)] {
            for dy in 0..20 {
                for dx in 0..60 {
                    page.put_pixel(x + dx, y + dy, Luma([20]));
                }
            }
        }
        let cropped = crop_to_text(&page);
        // Text from (200, 300) to (759, 919), and 48 pixels of paper round it.
        assert_eq!(cropped.dimensions(), (560 + 96, 620 + 96));
        assert_eq!(cropped.get_pixel(48, 48).0[0], 20, "the first text's corner");
        // A blank page, and text at the very edge, are kept as they are.
        let blank = GrayImage::from_pixel(30, 40, Luma([255]));
        assert_eq!(crop_to_text(&blank), blank);
        let mut edge = blank.clone();
        edge.put_pixel(0, 0, Luma([0]));
        edge.put_pixel(29, 39, Luma([0]));
        assert_eq!(crop_to_text(&edge), edge);
    }

    #[test]
    fn a_warp_on_every_core_is_the_warp_on_one() {
        // Heights that do not divide among the cores, a one-row picture, an empty one.
        for (w, h) in [(37u32, 29u32), (5, 1), (1, 7), (0, 4)] {
            let img = GrayImage::from_fn(w, h, |x, y| Luma([((x * 31 + y * 17) % 256) as u8]));
            let shifted = warp(&img, w, h, |x, y| (x + 0.5, y + 0.25));
            let expected = GrayImage::from_fn(w, h, |x, y| Luma([sample(&img, x as f64 + 0.5, y as f64 + 0.25)]));
            assert_eq!(shifted, expected, "{w} x {h}");
        }
    }

    #[test]
    fn resizing_keeps_what_is_drawn_where_it_is() {
        // A black square in the middle of white, magnified and shrunk.
        let mut img = GrayImage::from_pixel(40, 30, Luma([255]));
        for y in 10..20 {
            for x in 15..25 {
                img.put_pixel(x, y, Luma([0]));
            }
        }
        let big = resize(&img, 120, 90, Kernel::CatmullRom);
        assert_eq!(big.dimensions(), (120, 90));
        assert_eq!(big.get_pixel(60, 45).0[0], 0, "the square's middle stays black");
        assert_eq!(big.get_pixel(5, 5).0[0], 255, "the paper stays white");
        assert!(big.get_pixel(42, 45).0[0] > 200 && big.get_pixel(48, 45).0[0] < 30, "the edge stays at x = 45");
        let small = resize(&img, 20, 15, Kernel::Triangle);
        assert_eq!(small.get_pixel(10, 7).0[0], 0);
        assert_eq!(small.get_pixel(1, 1).0[0], 255);
        // Degenerate sizes do not panic.
        assert_eq!(resize(&img, 0, 0, Kernel::CatmullRom).dimensions(), (1, 1));
        assert_eq!(resize(&GrayImage::new(1, 1), 7, 3, Kernel::CatmullRom).dimensions(), (7, 3));
    }

    #[test]
    fn sauvola_thresholds_each_pixel_by_its_own_window() {
        let mut rng = 7u32;
        let img = GrayImage::from_fn(37, 23, |x, y| {
            rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            Luma([((rng >> 16) as u8 / 2).wrapping_add(if (x / 5 + y / 4) % 2 == 0 { 100 } else { 0 })])
        });
        let (radius, k) = (4u32, 0.25);
        let fast = sauvola(&img, radius, k);
        for y in 0..23u32 {
            for x in 0..37u32 {
                // The definition, pixel by pixel.
                let mut values = Vec::new();
                for yy in y.saturating_sub(radius)..(y + radius + 1).min(23) {
                    for xx in x.saturating_sub(radius)..(x + radius + 1).min(37) {
                        values.push(img.get_pixel(xx, yy).0[0] as f64);
                    }
                }
                let n = values.len() as f64;
                let mean = values.iter().sum::<f64>() / n;
                let var = (values.iter().map(|v| v * v).sum::<f64>() / n - mean * mean).max(0.0);
                let threshold = mean * (1.0 + k * (var.sqrt() / 128.0 - 1.0));
                let ink = img.get_pixel(x, y).0[0] as f64 <= threshold;
                assert_eq!(fast.get_pixel(x, y).0[0] == 0, ink, "at ({x}, {y})");
            }
        }
    }

    #[test]
    fn uneven_light_is_flattened() {
        let mut img = GrayImage::new(400, 400);
        for (x, _, p) in img.enumerate_pixels_mut() {
            // Paper from 110 (shadow) to 240 (lit), no ink.
            p.0[0] = (110 + x * 130 / 400) as u8;
        }
        let flat = flatten(&img);
        let left = flat.get_pixel(20, 200).0[0];
        let right = flat.get_pixel(380, 200).0[0];
        assert!(left > 200 && right > 200, "left {left}, right {right}");
    }

    #[test]
    fn the_paper_is_found_on_a_darker_table() {
        let mut img = GrayImage::from_pixel(800, 1000, Luma([60]));
        for y in 100..900 {
            for x in 200..600 {
                img.put_pixel(x, y, Luma([230]));
            }
        }
        let quad = find_paper(&img).expect("paper");
        let (tlx, tly) = quad[0];
        let (brx, bry) = quad[2];
        assert!((tlx - 200.0).abs() < 12.0 && (tly - 100.0).abs() < 12.0, "{quad:?}");
        assert!((brx - 600.0).abs() < 12.0 && (bry - 900.0).abs() < 12.0, "{quad:?}");
        // A scan (paper everywhere) is left alone.
        assert_eq!(find_paper(&GrayImage::from_pixel(800, 1000, Luma([235]))), None);
    }
}
