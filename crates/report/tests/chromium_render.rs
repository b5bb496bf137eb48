//! A real browser draws the page: headless Chromium renders the fixture report to a PNG, and
//! every chart must put ink on the screen.
//!
//! How "the charts show" is checked without knowing the layout: the page is rendered twice,
//! once as is and once with a style that hides every chart's SVG (same layout, blank boxes).
//! The rows of pixels that differ between the two shots are the charts; they must form one
//! band per chart, each tall enough and with enough non-white pixels to be a drawing rather
//! than an empty frame.
//!
//! Skips, saying why, when no Chromium is installed (`scripts/setup.sh` installs it).

use isolab_report::charts::FIGURE_IDS;
use isolab_report::{write_report, Options};
use std::path::{Path, PathBuf};
use std::process::Command;

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 14_000;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH")?
                .to_str()?
                .split(':')
                .map(|d| Path::new(d).join(name))
                .find(|p| p.is_file())
        })
}

fn screenshot(browser: &Path, page: &Path, png: &Path, profile: &Path) {
    let status = Command::new("timeout")
        .arg("120")
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={WIDTH},{HEIGHT}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run chromium");
    assert!(
        status.success(),
        "chromium failed on {}: {status}",
        page.display()
    );
}

/// RGB rows of a PNG.
fn decode(png: &Path) -> (usize, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(
        channels >= 3,
        "unexpected PNG colour type {:?}",
        info.color_type
    );
    let rgb: Vec<u8> = buf[..info.buffer_size()]
        .chunks(channels)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width as usize, info.height as usize, rgb)
}

/// Vertical bands of rows where the two shots differ: (first row, last row).
fn bands(a: &[u8], b: &[u8], width: usize, height: usize) -> Vec<(usize, usize)> {
    let differs = |y: usize| {
        let row = y * width * 3..(y + 1) * width * 3;
        a[row.clone()] != b[row]
    };
    let mut out: Vec<(usize, usize)> = Vec::new();
    for y in (0..height).filter(|&y| differs(y)) {
        match out.last_mut() {
            // Rows inside one chart can be blank on both shots (margins): join small gaps.
            Some((_, end)) if y - *end <= 12 => *end = y,
            _ => out.push((y, y)),
        }
    }
    out
}

#[test]
fn chromium_renders_every_chart() {
    let Some(browser) = chromium() else {
        eprintln!("SKIP chromium_renders_every_chart: no chromium in PATH (run scripts/setup.sh)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results-pvm.json");
    let index = write_report(&Options {
        inputs: vec![fixture],
        out_dir: dir.path().join("report"),
        criterion_report: None,
    })
    .unwrap();
    let html = std::fs::read_to_string(&index).unwrap();
    let hidden = dir.path().join("report/hidden.html");
    std::fs::write(
        &hidden,
        html.replace(
            "</head>",
            "<style>figure svg { visibility: hidden; }</style></head>",
        ),
    )
    .unwrap();
    let (shot, blank) = (dir.path().join("page.png"), dir.path().join("blank.png"));
    screenshot(&browser, &index, &shot, &dir.path().join("profile-a"));
    screenshot(&browser, &hidden, &blank, &dir.path().join("profile-b"));
    if let Some(keep) = std::env::var_os("ISOLAB_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    let (w, h, page) = decode(&shot);
    let (w2, h2, bare) = decode(&blank);
    assert_eq!((w, h), (w2, h2));
    // The page must end inside the shot, or the last charts would be cut off.
    let last_row = &page[(h - 1) * w * 3..];
    assert!(
        last_row.iter().all(|&c| c > 240),
        "page longer than {HEIGHT} px: raise HEIGHT"
    );
    let found = bands(&page, &bare, w, h);
    eprintln!("chart bands (y ranges): {found:?}");
    assert_eq!(
        found.len(),
        FIGURE_IDS.len(),
        "expected one band per chart: {found:?}"
    );
    for (i, &(y0, y1)) in found.iter().enumerate() {
        assert!(
            y1 - y0 >= 100,
            "chart {} is only {} px tall",
            FIGURE_IDS[i],
            y1 - y0
        );
        // Ink: pixels clearly darker than the white chart background.
        let ink = page[y0 * w * 3..(y1 + 1) * w * 3]
            .chunks(3)
            .filter(|p| p.iter().map(|&c| u32::from(c)).sum::<u32>() < 600)
            .count();
        let area = (y1 - y0 + 1) * w;
        eprintln!("{}: {ink} ink pixels of {area}", FIGURE_IDS[i]);
        assert!(
            ink * 100 >= area,
            "chart {} looks blank: {ink} ink pixels",
            FIGURE_IDS[i]
        );
    }
}
