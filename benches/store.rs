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

fn store(c: &mut Criterion) {
    let (_home, store) = store_with_image();
    let mut group = c.benchmark_group("store");
    group.bench_function("open+create_container", |b| {
        b.iter_custom(|n| {
            let mut timed = Duration::ZERO;
            for _ in 0..n {
                let t = Instant::now();
                let opened = Store::open(store.home()).expect("open the store");
                let created = opened.create_container("app", None).expect("create");
                timed += t.elapsed();
                store.trash_container(&created.id).expect("trash");
            }
            store.empty_trash().expect("empty the trash");
            timed
        })
    });
    group.bench_function("trash_container", |b| {
        b.iter_custom(|n| {
            let mut timed = Duration::ZERO;
            for _ in 0..n {
                let created = store.create_container("app", None).expect("create");
                let t = Instant::now();
                store.trash_container(&created.id).expect("trash");
                timed += t.elapsed();
            }
            store.empty_trash().expect("empty the trash");
            timed
        })
    });
    group.bench_function("empty_trash", |b| {
        b.iter_custom(|n| {
            let mut timed = Duration::ZERO;
            for _ in 0..n {
                let created = store.create_container("app", None).expect("create");
                store.trash_container(&created.id).expect("trash");
                let t = Instant::now();
                store.empty_trash().expect("empty the trash");
                timed += t.elapsed();
            }
            timed
        })
    });
    group.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
