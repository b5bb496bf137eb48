//! What a container's record costs on the start path: `Store::open` + `create_container` (the
//! record and its writable-layer directories), `trash_container` (the rename `--rm` does on the
//! way out) and `empty_trash` (deleting what was trashed, off the start path).
//!
//! `cargo bench --bench store`. The filesystem decides these costs (an ext4 mounted with
//! `discard` makes every `rmdir` wait for the disk), so the store lives beside the real store's
//! default location (`/var/lib`) when that is writable, in a temporary directory of its own.
//! Rows are `store/<step>`; only the named step is timed, its setup and clean-up are not.

use criterion::{criterion_group, criterion_main, Criterion};
use isolab_container::image::{Store, DEFAULT_HOME};
use std::path::Path;
use std::time::{Duration, Instant};

/// A store with a one-file image `app`, next to where the real store lives.
fn store_with_image() -> (tempfile::TempDir, Store) {
    let parent = Path::new(DEFAULT_HOME)
        .parent()
        .unwrap_or(Path::new("/tmp"));
    let home = tempfile::tempdir_in(parent)
        .or_else(|_| tempfile::tempdir())
        .expect("a temporary store home");
    let store = Store::open(&home.path().join("home")).expect("open the store");
    let src = tempfile::tempdir().expect("a temporary image source");
    std::fs::write(src.path().join("keep"), "keep").expect("write the image's file");
    store.import(src.path(), "app").expect("import the image");
    (home, store)
}

/// The three steps of a container record's life that the start and exit paths pay for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `Store::open` + `create_container`, as `isolab container run` does them.
    Create,
    /// `trash_container`: the rename that takes the record out of sight.
    Trash,
    /// `empty_trash`: deleting the trashed record.
    EmptyTrash,
}

/// `n` full create → trash → empty-trash cycles, returning the time spent in `timed` only.
fn cycles(store: &Store, n: u64, timed: Step) -> Duration {
    let mut total = Duration::ZERO;
    let mut step = |which: Step, f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        if which == timed {
            total += t.elapsed();
        }
    };
    for _ in 0..n {
        let mut created = None;
        step(Step::Create, &mut || {
            let opened = Store::open(store.home()).expect("open the store");
            created = Some(opened.create_container("app", None).expect("create"));
        });
        let id = created.expect("created above").id;
        step(Step::Trash, &mut || {
            store.trash_container(&id).expect("trash");
        });
        step(Step::EmptyTrash, &mut || {
            store.empty_trash().expect("empty the trash");
        });
    }
    total
}

fn store(c: &mut Criterion) {
    let (_home, store) = store_with_image();
    let mut group = c.benchmark_group("store");
    for (name, timed) in [
        ("open+create_container", Step::Create),
        ("trash_container", Step::Trash),
        ("empty_trash", Step::EmptyTrash),
    ] {
        group.bench_function(name, |b| b.iter_custom(|n| cycles(&store, n, timed)));
    }
    group.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
