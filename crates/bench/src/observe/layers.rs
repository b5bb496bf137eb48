//! C9, copy-on-write layers: overlayfs puts a container's writes in its upper dir and leaves
//! the image's read-only layers untouched, so a commit is one new layer; and a start on many
//! stacked layers costs little more than on one.

use super::{conclude, observation, write_file, Captured, Target};
use crate::environment::NotMeasured;
use crate::schema::{ClaimId, Observation};
use std::path::{Path, PathBuf};

/// C9: writes land in the container's upper dir, the image's layers stay as they were, and
/// `isolab image commit` makes exactly one new layer that a new container sees.
pub fn copy_on_write(target: Result<&Target, NotMeasured>) -> Vec<Observation> {
    let upper = observation(
        ClaimId::C9,
        "writes-stay-in-upper-layer",
        "isolab-cli-container",
        "a file written in a container appears in its writable upper dir and in no image layer",
    );
    let commit = observation(
        ClaimId::C9,
        "commit-adds-one-layer",
        "isolab-cli-container",
        "`isolab image commit` makes an image with one more layer, whose containers see the file",
    );
    match target.and_then(cow_run) {
        Ok((in_upper, one_more, evidence)) => vec![
            conclude(upper, Ok((in_upper, evidence.clone()))),
            conclude(commit, Ok((one_more, evidence))),
        ],
        Err(e) => vec![conclude(upper, Err(e.clone())), conclude(commit, Err(e))],
    }
}

/// Runs the copy-on-write sequence; returns (file only in upper, commit added one layer and
/// its container sees the file, evidence).
fn cow_run(t: &Target) -> Result<(bool, bool, String), NotMeasured> {
    let pid = std::process::id();
    let (name, image) = (format!("bench-cow-{pid}"), format!("bench-cow-{pid}"));
    let mut evidence = Vec::new();
    let mut step = |args: &[&str]| -> Result<Captured, NotMeasured> {
        let c = t.isolab(args)?;
        evidence.push(c.evidence.clone());
        Ok(c)
    };
    let result = (|| {
        let run = step(&[
            "container",
            "run",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "echo cow > /cow.txt",
        ])?;
        if run.code != 0 {
            return Err(NotMeasured::Misbehaved(format!(
                "the writing container failed: {}",
                run.evidence
            )));
        }
        let id = std::fs::read_link(t.home.join("names").join(&name))
            .map_err(NotMeasured::io(format!("finding container {name}")))?;
        let upper = t.home.join("containers").join(&id).join("upper/cow.txt");
        let in_layers = std::fs::read_dir(t.home.join("layers"))
            .map_err(NotMeasured::io("reading the layer store"))?
            .flatten()
            .any(|l| l.path().join("cow.txt").exists());
        let base = layer_count(&step(&["image", "inspect", "busybox"])?.stdout)?;
        step(&["image", "commit", &name, &image])?;
        let committed = layer_count(&step(&["image", "inspect", &image])?.stdout)?;
        let read = step(&[
            "container",
            "run",
            "--rm",
            "--image",
            &image,
            "--",
            "cat",
            "/cow.txt",
        ])?;
        Ok((
            upper.exists() && !in_layers,
            committed == base + 1 && read.stdout.trim() == "cow",
        ))
    })();
    let _ = t.isolab(&["container", "rm", &name]);
    let _ = t.isolab(&["image", "rm", &image]);
    result.map(|(a, b)| (a, b, evidence.join("\n")))
}

fn layer_count(inspect_json: &str) -> Result<usize, NotMeasured> {
    let v: serde_json::Value = serde_json::from_str(inspect_json)
        .map_err(NotMeasured::json("isolab image inspect printed no JSON"))?;
    v.get("layers")
        .and_then(|l| l.as_array())
        .map(Vec::len)
        .ok_or_else(|| NotMeasured::NoReading("isolab image inspect shows no layers".into()))
}

/// Start-ups per layer count in [`start_with_layers`].
const LAYER_STARTS: usize = 5;

/// C9: the same container started on 1, 8 and 32 stacked read-only layers (the bench rootfs
/// at the bottom, each layer above adding one file), through isolab's library in-process;
/// the medians are the observation's figures.
pub fn start_with_layers(
    base: crate::environment::IsolabContainer<'_>,
    scratch: &Path,
) -> Observation {
    let mut o = start_with_layers_unmeasured();
    let mut evidence = Vec::new();
    let mut base = Some(base);
    let result = (|| {
        for n in [1usize, 8, 32] {
            let mut c = base
                .take()
                .ok_or_else(|| NotMeasured::Misbehaved("no container".into()))?;
            c.upper_layers = make_layers(scratch, n - 1)?;
            crate::environment::Environment::prepare(&mut c)?;
            let mut us = Vec::with_capacity(LAYER_STARTS);
            for i in 0..LAYER_STARTS {
                us.push(
                    c.run_as(&format!("bench-layers-{}-{n}-{i}", std::process::id()))?
                        .0,
                );
            }
            let median = crate::stats::median(&us).unwrap_or(0.0);
            o.figures
                .insert(format!("start_median_us_{n}_layers"), median);
            evidence.push(format!(
                "{n} layers: {LAYER_STARTS} starts, median {median:.0} µs"
            ));
            base = Some(c);
        }
        Ok::<_, NotMeasured>(())
    })();
    let _ = std::fs::remove_dir_all(scratch.join("observe-layers"));
    conclude(o, result.map(|()| (true, evidence.join("\n"))))
}

/// [`start_with_layers`]'s observation before it ran.
pub fn start_with_layers_unmeasured() -> Observation {
    observation(
        ClaimId::C9,
        "starts-on-32-layers",
        "isolab-engine-container-overlay",
        "a container starts on an image of 32 stacked layers (start-up medians for 1, 8 and 32 \
         layers in the figures; in-process, where the time goes)",
    )
}

/// `count` one-file layer directories under `scratch`.
fn make_layers(scratch: &Path, count: usize) -> Result<Vec<PathBuf>, NotMeasured> {
    (0..count)
        .map(|k| {
            let dir = scratch.join("observe-layers").join(format!("layer-{k}"));
            write_file(
                &dir.join(format!("layer-{k}.txt")),
                &format!("{k}\n"),
                0o644,
            )?;
            Ok(dir)
        })
        .collect()
}
