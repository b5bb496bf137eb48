//! Store tests against the real filesystem and a real overlayfs mount (root only; they skip with
//! a printed reason otherwise). Every test uses its own temporary home, never /var/lib/isolab.

use super::*;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{major, makedev, minor, mknod, Mode, SFlag};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::process::Command;

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("skipped: needs root (chown, mknod, overlayfs)");
        false
    }
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let home = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&home.path().join("home")).expect("open store");
    (home, store)
}

/// Layer dirs and temp leftovers currently under layers/.
fn layer_entries(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(&store.layers)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// An overlay mount that is unmounted when dropped, even when the test panics.
struct OverlayMount(PathBuf);

impl OverlayMount {
    fn new(
        lower_bottom_first: &[PathBuf],
        upper_work: Option<(&Path, &Path)>,
        target: &Path,
    ) -> OverlayMount {
        let lower: Vec<String> = lower_bottom_first
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        let mut opts = format!("lowerdir={}", lower.join(":"));
        if let Some((upper, work)) = upper_work {
            opts += &format!(",upperdir={},workdir={}", upper.display(), work.display());
        }
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        )
        .unwrap_or_else(|e| panic!("mount overlay {opts}: {e}"));
        OverlayMount(target.to_path_buf())
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

#[test]
fn names_are_validated() {
    for good in ["a", "busybox", "my-app_1.2", "0abc", &"x".repeat(64)] {
        assert!(validate_name("image", good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "A",
        "-x",
        ".x",
        "a/b",
        "..",
        "a b",
        "é",
        &"x".repeat(65),
    ] {
        let err = validate_name("image", bad).unwrap_err();
        assert!(
            err.to_string().contains("invalid image name"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn bad_input_gives_clear_errors() {
    let (home, store) = temp_store();
    let err = store.image("nope").unwrap_err();
    assert!(matches!(err, ImageError::NoSuchImage(_)));
    assert!(err.to_string().contains("isolab image ls"), "{err}");
    assert!(err.to_string().contains("isolab image import"), "{err}");

    let err = store
        .import(Path::new("/nonexistent/rootfs"), "x")
        .unwrap_err();
    assert!(matches!(err, ImageError::NoSource(_)), "{err}");

    let err = store.import(home.path(), "itself").unwrap_err();
    assert!(matches!(err, ImageError::UnsupportedSource { .. }), "{err}");

    let src = tempfile::tempdir().unwrap();
    let err = store.import(src.path(), "Bad Name").unwrap_err();
    assert!(matches!(err, ImageError::InvalidName { .. }), "{err}");

    let junk = src.path().join("junk.tar");
    fs::write(&junk, vec![b'x'; 2048]).unwrap();
    let err = store.import(&junk, "junk").unwrap_err();
    assert!(matches!(err, ImageError::UnsupportedSource { .. }), "{err}");

    assert!(matches!(
        store.create_container("nope", None).unwrap_err(),
        ImageError::NoSuchImage(_)
    ));
    assert!(matches!(
        store.container("abcdef").unwrap_err(),
        ImageError::NoSuchContainer(_)
    ));
    assert!(matches!(
        store.remove_image("nope").unwrap_err(),
        ImageError::NoSuchImage(_)
    ));
    // Nothing half-built remains after the failures.
    assert!(
        layer_entries(&store).is_empty(),
        "{:?}",
        layer_entries(&store)
    );
}

#[test]
fn import_dir_preserves_metadata() {
    if !is_root() {
        return;
    }
    let (_home, store) = temp_store();
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    fs::create_dir(s.join("etc")).unwrap();
    fs::write(s.join("etc/secret"), "s3cret").unwrap();
    fs::set_permissions(s.join("etc/secret"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::lchown(s.join("etc/secret"), Some(1234), Some(5678)).unwrap();
    fs::write(s.join("suid"), "x").unwrap();
    std::os::unix::fs::lchown(s.join("suid"), Some(0), Some(0)).unwrap();
    fs::set_permissions(s.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::symlink("etc/secret", s.join("link")).unwrap();
    fs::hard_link(s.join("etc/secret"), s.join("hard")).unwrap();
    mknod(
        &s.join("null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(1, 3),
    )
    .unwrap();
    mknod(
        &s.join("fifo"),
        SFlag::S_IFIFO,
        Mode::from_bits_truncate(0o600),
        0,
    )
    .unwrap();
    xattr::set(s.join("etc/secret"), "user.isolab", b"kept").unwrap();

    let image = store.import(s, "mine").unwrap();
    assert_eq!(image.layers.len(), 1);
    assert_eq!(
        image.size_bytes,
        6 + 1,
        "secret (once, despite the hard link) + suid"
    );
    let l = &image.layers[0];
    let secret = fs::symlink_metadata(l.join("etc/secret")).unwrap();
    assert_eq!(secret.mode() & 0o7777, 0o640);
    assert_eq!((secret.uid(), secret.gid()), (1234, 5678));
    assert_eq!(fs::read_to_string(l.join("etc/secret")).unwrap(), "s3cret");
    assert_eq!(
        fs::symlink_metadata(l.join("suid")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::read_link(l.join("link")).unwrap(),
        PathBuf::from("etc/secret")
    );
    assert_eq!(
        fs::symlink_metadata(l.join("hard")).unwrap().ino(),
        secret.ino()
    );
    let null = fs::symlink_metadata(l.join("null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!((major(null.rdev()), minor(null.rdev())), (1, 3));
    assert!(fs::symlink_metadata(l.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        xattr::get(l.join("etc/secret"), "user.isolab").unwrap(),
        Some(b"kept".to_vec())
    );
    assert_eq!(store.layer_info(&image.layer_ids[0]).unwrap().size_bytes, 7);

    // Same name twice is refused and leaves no extra layer.
    let err = store.import(s, "mine").unwrap_err();
    assert!(matches!(err, ImageError::ImageExists(_)), "{err}");
    assert_eq!(store.list_images().unwrap().len(), 1);
    assert_eq!(layer_entries(&store).len(), 2, "one layer dir + its json");
}

fn tar_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

/// A small rootfs tar as `docker export` would write it.
fn build_tar(w: impl std::io::Write) -> impl std::io::Write {
    let mut b = tar::Builder::new(w);
    let mut h = tar_header(tar::EntryType::Directory, 0o750, 0);
    b.append_data(&mut h, "./", std::io::empty()).unwrap();
    let mut h = tar_header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, "bin/", std::io::empty()).unwrap();
    let mut h = tar_header(tar::EntryType::Regular, 0o755, 5);
    h.set_uid(42);
    b.append_data(&mut h, "bin/tool", &b"hello"[..]).unwrap();
    let mut h = tar_header(tar::EntryType::Symlink, 0o777, 0);
    b.append_link(&mut h, "bin/alias", "tool").unwrap();
    let mut h = tar_header(tar::EntryType::Link, 0o755, 0);
    b.append_link(&mut h, "bin/hard", "bin/tool").unwrap();
    let mut h = tar_header(tar::EntryType::Char, 0o620, 0);
    h.set_device_major(5).unwrap();
    h.set_device_minor(1).unwrap();
    b.append_data(&mut h, "dev/console", std::io::empty())
        .unwrap();
    b.into_inner().unwrap()
}

#[test]
fn import_tar_and_tar_gz() {
    if !is_root() {
        return;
    }
    let (_home, store) = temp_store();
    let src = tempfile::tempdir().unwrap();
    let plain = src.path().join("rootfs.tar");
    build_tar(fs::File::create(&plain).unwrap());
    let gz = src.path().join("rootfs.tgz");
    let enc =
        flate2::write::GzEncoder::new(fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    build_tar(enc);

    for (name, path) in [("plain", &plain), ("gz", &gz)] {
        let image = store.import(path, name).unwrap();
        let l = &image.layers[0];
        assert_eq!(fs::read_to_string(l.join("bin/tool")).unwrap(), "hello");
        let tool = fs::metadata(l.join("bin/tool")).unwrap();
        assert_eq!((tool.mode() & 0o7777, tool.uid()), (0o755, 42), "{name}");
        assert_eq!(
            fs::read_link(l.join("bin/alias")).unwrap(),
            Path::new("tool")
        );
        assert_eq!(fs::metadata(l.join("bin/hard")).unwrap().ino(), tool.ino());
        let console = fs::symlink_metadata(l.join("dev/console")).unwrap();
        assert!(console.file_type().is_char_device(), "{name}");
        assert_eq!((major(console.rdev()), minor(console.rdev())), (5, 1));
        assert_eq!(console.mode() & 0o7777, 0o620);
        assert_eq!(image.size_bytes, 5, "{name}");
        assert_eq!(
            fs::metadata(l).unwrap().mode() & 0o7777,
            0o750,
            "root from ./"
        );
    }
    let names: Vec<String> = store
        .list_images()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["gz", "plain"]);
}

#[test]
fn import_tar_refuses_escaping_entries() {
    let (_home, store) = temp_store();
    let src = tempfile::tempdir().unwrap();
    let outside = src.path().join("evil");
    let archive = src.path().join("evil.tar");
    {
        let mut b = tar::Builder::new(fs::File::create(&archive).unwrap());
        let mut h = tar_header(tar::EntryType::Regular, 0o644, 4);
        // Builder::append_data refuses "..", so write the name into the header by hand, as a
        // hostile archive would.
        let name = b"../../evil";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"boom"[..]).unwrap();
        b.finish().unwrap();
    }
    let err = store.import(&archive, "evil").unwrap_err();
    assert!(matches!(err, ImageError::UnsafeTarEntry { .. }), "{err}");
    assert!(!outside.exists());
    assert!(
        layer_entries(&store).is_empty(),
        "{:?}",
        layer_entries(&store)
    );

    // A symlink pointing out, then a file through it.
    let archive = src.path().join("evil2.tar");
    {
        let mut b = tar::Builder::new(fs::File::create(&archive).unwrap());
        let mut h = tar_header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, "out", src.path()).unwrap();
        let mut h = tar_header(tar::EntryType::Regular, 0o644, 4);
        b.append_data(&mut h, "out/evil", &b"boom"[..]).unwrap();
        b.finish().unwrap();
    }
    let err = store.import(&archive, "evil").unwrap_err();
    assert!(matches!(err, ImageError::UnsafeTarEntry { .. }), "{err}");
    assert!(!outside.exists());
    assert!(layer_entries(&store).is_empty());
}

#[test]
fn default_image_is_busybox_with_sh() {
    if !Path::new(HOST_BUSYBOX).exists() {
        eprintln!("skipped: {HOST_BUSYBOX} missing (install busybox-static)");
        return;
    }
    let (_home, store) = temp_store();
    let image = store.ensure_default_image().unwrap();
    assert_eq!(image.name, DEFAULT_IMAGE);
    let l = &image.layers[0];
    assert_eq!(
        fs::read_link(l.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    // Resolves inside the layer, so it runs when used as a root.
    let sh = fs::canonicalize(l.join("bin/sh")).unwrap();
    assert_eq!(sh, fs::canonicalize(l.join("bin/busybox")).unwrap());
    for dir in ["proc", "sys", "dev", "tmp", "etc", "root"] {
        assert!(l.join(dir).is_dir(), "{dir}");
    }
    assert_eq!(fs::metadata(l.join("tmp")).unwrap().mode() & 0o7777, 0o1777);
    assert!(fs::read_to_string(l.join("etc/passwd"))
        .unwrap()
        .starts_with("root:x:0:0:"));
    let out = Command::new(l.join("bin/sh"))
        .args(["-c", "echo hi"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");

    // A second call finds it; a rebuild replaces the layer and collects the old one.
    assert_eq!(store.ensure_default_image().unwrap(), image);
    let rebuilt = store.rebuild_default_image().unwrap();
    assert_ne!(rebuilt.layer_ids, image.layer_ids);
    assert!(!image.layers[0].exists());
    assert_eq!(layer_entries(&store).len(), 2);
}

#[test]
fn dynamic_busybox_is_refused() {
    let (_home, store) = temp_store();
    // /bin/true is dynamically linked on Debian: it has a PT_INTERP program header.
    let err = busybox::check_static(Path::new("/bin/true")).unwrap_err();
    assert!(err.to_string().contains("dynamically linked"), "{err}");
    assert!(err.to_string().contains("install busybox-static"), "{err}");
    let err = store
        .build_default_image(Path::new("/nonexistent/busybox"))
        .unwrap_err();
    assert!(matches!(err, ImageError::NoBusybox { .. }), "{err}");
    assert!(layer_entries(&store).is_empty());
}

/// An image with `keep`, `gone`, and a directory `d/` holding `d/old`.
fn base_image(store: &Store, name: &str) -> Image {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("keep"), "keep").unwrap();
    fs::write(src.path().join("gone"), "gone").unwrap();
    fs::create_dir(src.path().join("d")).unwrap();
    fs::write(src.path().join("d/old"), "old").unwrap();
    store.import(src.path(), name).unwrap()
}

#[test]
fn commit_freezes_upper_dir_with_whiteouts_and_opaque_dirs() {
    if !is_root() {
        return;
    }
    let (home, store) = temp_store();
    let base = base_image(&store, "base");
    let c = store.create_container("base", Some("builder")).unwrap();
    assert_eq!(c.layers, base.layers);
    {
        let _m = OverlayMount::new(&c.layers, Some((&c.upper, &c.work)), &c.rootfs);
        let r = &c.rootfs;
        assert_eq!(fs::read_to_string(r.join("keep")).unwrap(), "keep");
        fs::write(r.join("new"), "new").unwrap();
        fs::write(r.join("keep"), "changed").unwrap(); // copy-up
        fs::remove_file(r.join("gone")).unwrap(); // whiteout
        fs::remove_dir_all(r.join("d")).unwrap();
        fs::create_dir(r.join("d")).unwrap(); // opaque dir
        fs::write(r.join("d/fresh"), "fresh").unwrap();
    }
    // What overlayfs wrote into the upper dir.
    let gone = fs::symlink_metadata(c.upper.join("gone")).unwrap();
    assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
    assert_eq!(
        xattr::get(c.upper.join("d"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );

    let committed = store
        .commit("builder", "derived", Some("add new, drop gone"))
        .unwrap();
    assert_eq!(committed.parent.as_deref(), Some("base"));
    assert_eq!(committed.created_by, "add new, drop gone");
    assert_eq!(committed.layer_ids.len(), 2);
    assert_eq!(committed.layer_ids[0], base.layer_ids[0]);
    let top = &committed.layers[1];
    let gone = fs::symlink_metadata(top.join("gone")).unwrap();
    assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
    for ns in ["trusted", "user"] {
        assert_eq!(
            xattr::get(top.join("d"), format!("{ns}.overlay.opaque")).unwrap(),
            Some(b"y".to_vec()),
            "{ns}"
        );
    }

    // The new image alone (read-only overlay of its two layers) shows the container's view.
    let view = home.path().join("view");
    fs::create_dir(&view).unwrap();
    {
        let _m = OverlayMount::new(&committed.layers, None, &view);
        assert_eq!(fs::read_to_string(view.join("new")).unwrap(), "new");
        assert_eq!(fs::read_to_string(view.join("keep")).unwrap(), "changed");
        assert!(
            !view.join("gone").exists(),
            "whiteout hides the deleted file"
        );
        assert!(
            !view.join("d/old").exists(),
            "opaque dir hides the old contents"
        );
        assert_eq!(fs::read_to_string(view.join("d/fresh")).unwrap(), "fresh");
    }
    // In a user namespace (mount option `userxattr`), the user.overlay.opaque copy does the job.
    let lower: Vec<String> = committed
        .layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let script = format!(
        "mount -t overlay overlay -o lowerdir={},userxattr {v} && test -f {v}/new && test ! -e {v}/gone && test ! -e {v}/d/old && test -f {v}/d/fresh && echo seen-right",
        lower.join(":"),
        v = view.display()
    );
    match Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .output()
    {
        Ok(out) => assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "seen-right",
            "userxattr view: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("skipped the user-namespace view: no unshare(1): {e}"),
    }

    // The base layer was never touched.
    assert!(base.layers[0].join("gone").is_file());
    assert!(base.layers[0].join("d/old").is_file());
    assert_eq!(
        fs::read_to_string(base.layers[0].join("keep")).unwrap(),
        "keep"
    );

    // Layers shared with `derived` survive removing `base`; the last user frees them.
    store.remove_container("builder").unwrap();
    store.remove_image("base").unwrap();
    assert!(base.layers[0].is_dir());
    store.remove_image("derived").unwrap();
    assert!(
        layer_entries(&store).is_empty(),
        "{:?}",
        layer_entries(&store)
    );
    assert!(mounts_under(home.path()).is_empty());
}

fn mounts_under(dir: &Path) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect()
}

#[test]
fn remove_image_refuses_while_a_container_uses_it() {
    let (_home, store) = temp_store();
    let image = base_image(&store, "app");
    let c = store.create_container("app", None).unwrap();
    let err = store.remove_image("app").unwrap_err();
    assert!(matches!(err, ImageError::ImageInUse { .. }), "{err}");
    assert!(err.to_string().contains(&c.id), "{err}");
    // The refusal left the image usable.
    assert_eq!(store.image("app").unwrap(), image);
    store.remove_container(&c.id).unwrap();
    assert!(!c.dir.exists());
    store.remove_image("app").unwrap();
    assert!(!image.layers[0].exists());
    assert!(matches!(
        store.image("app").unwrap_err(),
        ImageError::NoSuchImage(_)
    ));
}

#[test]
fn container_records_lookup_and_state() {
    let (_home, store) = temp_store();
    base_image(&store, "app");
    let a = store.create_container("app", Some("web")).unwrap();
    for d in [&a.upper, &a.work, &a.rootfs] {
        assert!(d.is_dir());
    }
    assert_eq!(a.id.len(), 12);
    assert!(a.id.bytes().all(|b| b.is_ascii_hexdigit()));
    let err = store.create_container("app", Some("web")).unwrap_err();
    assert!(matches!(err, ImageError::ContainerNameTaken(_)), "{err}");
    let b = store.create_container("app", None).unwrap();

    assert_eq!(store.container("web").unwrap().dirs, a);
    assert_eq!(store.container(&a.id).unwrap().dirs, a);
    assert_eq!(store.container(&b.id[..8]).unwrap().dirs, b);
    let rec = store.container(&a.id).unwrap();
    assert_eq!(rec.state.status, ContainerStatus::Created);
    assert_eq!(rec.config.image, "app");

    let running = ContainerState {
        status: ContainerStatus::Running,
        pid: Some(std::process::id() as i32),
        started_unix_ms: Some(1),
        ..Default::default()
    };
    store.write_state(&a.id, &running).unwrap();
    assert_eq!(store.container("web").unwrap().state, running);
    // Our own pid is alive: removal and commit are refused.
    assert!(matches!(
        store.remove_container("web").unwrap_err(),
        ImageError::ContainerRunning { .. }
    ));
    assert!(matches!(
        store.commit("web", "snap", None).unwrap_err(),
        ImageError::ContainerRunning { .. }
    ));
    let exited = ContainerState {
        status: ContainerStatus::Exited,
        exit_code: Some(3),
        finished_unix_ms: Some(2),
        ..running
    };
    store.write_state(&a.id, &exited).unwrap();
    assert_eq!(store.list_containers().unwrap().len(), 2);
    store.remove_container("web").unwrap();
    assert!(matches!(
        store.container("web").unwrap_err(),
        ImageError::NoSuchContainer(_)
    ));
    // The name is free again.
    let c = store.create_container("app", Some("web")).unwrap();
    assert_ne!(c.id, a.id);
    let ids: Vec<String> = store
        .list_containers()
        .unwrap()
        .into_iter()
        .map(|c| c.dirs.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&b.id) && ids.contains(&c.id));
}

#[test]
fn remove_container_refuses_to_delete_through_a_mount() {
    if !is_root() {
        return;
    }
    let (_home, store) = temp_store();
    base_image(&store, "app");
    let c = store.create_container("app", None).unwrap();
    {
        let _m = OverlayMount::new(&c.layers, Some((&c.upper, &c.work)), &c.rootfs);
        let err = store.remove_container(&c.id).unwrap_err();
        assert!(matches!(err, ImageError::StillMounted(_)), "{err}");
        assert!(c.layers[0].join("keep").is_file(), "nothing deleted");
    }
    // After the unmount, work/work (mode 000, made by overlayfs) goes too.
    assert!(c.work.join("work").exists());
    store.remove_container(&c.id).unwrap();
    assert!(!c.dir.exists());
}

#[test]
fn concurrent_creates_get_distinct_ids_and_one_name_winner() {
    let (_home, store) = temp_store();
    base_image(&store, "app");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                let mut won_name = 0;
                for _ in 0..25 {
                    ids.push(store.create_container("app", None).unwrap().id);
                }
                match store.create_container("app", Some("only-one")) {
                    Ok(_) => won_name += 1,
                    Err(ImageError::ContainerNameTaken(_)) => {}
                    Err(e) => panic!("{e}"),
                }
                (ids, won_name)
            })
        })
        .collect();
    let mut all = std::collections::HashSet::new();
    let mut winners = 0;
    for t in threads {
        let (ids, won) = t.join().unwrap();
        winners += won;
        all.extend(ids);
    }
    assert_eq!(all.len(), 100);
    assert_eq!(winners, 1);
    assert_eq!(store.list_containers().unwrap().len(), 101);
}

#[test]
fn trash_then_empty_trash_removes_leftovers() {
    let (_home, store) = temp_store();
    base_image(&store, "app");
    let c = store.create_container("app", Some("quick")).unwrap();
    let trash = store.trash_container("quick").unwrap();
    assert!(trash.is_dir() && !c.dir.exists());
    assert!(store.list_containers().unwrap().is_empty());
    // The name is free as soon as the container is trashed.
    store.create_container("app", Some("quick")).unwrap();
    // A layer an isolab died building.
    fs::create_dir_all(store.layers.join(".tmp-0123/etc")).unwrap();
    store.empty_trash().unwrap();
    assert!(!trash.exists());
    assert_eq!(
        layer_entries(&store).len(),
        2,
        "only the app layer and its json"
    );
    assert_eq!(store.list_containers().unwrap().len(), 1);
}

#[test]
fn state_transitions_and_liveness() {
    let (_home, store) = temp_store();
    base_image(&store, "app");
    let spec = crate::ContainerSpec::new(crate::RootfsSource::Layers(vec![]), vec!["sh".into()]);
    let c = store
        .create_container_with_spec("app", Some("svc"), Some(&spec))
        .unwrap();
    assert_eq!(store.container("svc").unwrap().status_text(), "created");
    store
        .mark_started(&c.id, std::process::id() as i32)
        .unwrap();
    let rec = store.container("svc").unwrap();
    assert!(rec.is_running(), "this test process is the supervisor");
    assert_eq!(rec.status_text(), "running");
    assert_eq!(rec.config.spec.as_ref().unwrap().args, ["sh"]);
    assert!(rec.state.started_unix_ms.is_some());
    store.mark_exited(&c.id, 7).unwrap();
    let rec = store.container("svc").unwrap();
    assert!(!rec.is_running());
    assert_eq!(rec.status_text(), "exited (7)");
    assert!(rec.state.finished_unix_ms >= rec.state.started_unix_ms);

    // A "running" record whose processes are gone (isolab was SIGKILLed) reads as dead.
    let mut child = Command::new("true").spawn().unwrap();
    let dead_pid = child.id() as i32;
    child.wait().unwrap();
    let stale = ContainerState {
        status: ContainerStatus::Running,
        pid: Some(dead_pid),
        supervisor_pid: Some(dead_pid),
        ..Default::default()
    };
    store.write_state(&c.id, &stale).unwrap();
    let rec = store.container(&c.id).unwrap();
    assert_eq!(rec.status_text(), "dead");
    store.remove_container(&c.id).unwrap();
}

#[test]
fn plain_directory_containers_have_no_image() {
    let (_home, store) = temp_store();
    let c = store.create_container(NO_IMAGE, None).unwrap();
    assert!(c.layers.is_empty());
    assert_eq!(store.container(&c.id).unwrap().image, NO_IMAGE);
    let err = store.commit(&c.id, "snap", None).unwrap_err();
    assert!(matches!(err, ImageError::NotFromImage(_)), "{err}");
    store.remove_container(&c.id).unwrap();
}

#[test]
fn commit_of_user_namespace_container_maps_owners_back() {
    if !is_root() {
        return;
    }
    let (_home, store) = temp_store();
    base_image(&store, "app");
    let mut spec =
        crate::ContainerSpec::new(crate::RootfsSource::Layers(vec![]), vec!["sh".into()]);
    spec.namespaces.insert(crate::Namespace::User);
    spec.id_mapping = Some(crate::IdMapping::default());
    let c = store
        .create_container_with_spec("app", None, Some(&spec))
        .unwrap();
    store.mark_exited(&c.id, 0).unwrap();
    // What a container's root (host uid 100000) and its uid 1000 leave in the upper dir.
    let base = spec.id_mapping.unwrap().host_base;
    fs::write(c.upper.join("by-root"), "r").unwrap();
    std::os::unix::fs::lchown(c.upper.join("by-root"), Some(base), Some(base)).unwrap();
    fs::write(c.upper.join("by-user"), "u").unwrap();
    std::os::unix::fs::lchown(
        c.upper.join("by-user"),
        Some(base + 1000),
        Some(base + 1000),
    )
    .unwrap();
    let image = store.commit(&c.id, "snap", None).unwrap();
    let top = image.layers.last().unwrap();
    let owner = |f: &str| {
        let m = fs::metadata(top.join(f)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("by-root"), (0, 0));
    assert_eq!(owner("by-user"), (1000, 1000));
    assert!(image.created_by.contains(&c.id));
}

#[test]
fn a_run_rm_record_is_one_file_and_goes_away_whole() {
    let (_home, store) = temp_store();
    let image = base_image(&store, "app");
    let before: Vec<_> = fs::read_dir(store.home().join("containers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let c = store
        .ephemeral_container("app", Some("tmp"), &image.layer_ids)
        .unwrap();
    assert!(!c.dir.exists(), "no directory per --rm container");
    assert!(c.rootfs.is_dir(), "the shared in-memory mount point");
    let err = store
        .ephemeral_container("app", Some("tmp"), &[])
        .unwrap_err();
    assert!(matches!(err, ImageError::ContainerNameTaken(_)), "{err}");
    assert!(
        store.container("tmp").is_err(),
        "no record before it starts"
    );

    store
        .record_ephemeral_start(&c, None, std::process::id() as i32)
        .unwrap();
    let rec = store.container("tmp").unwrap();
    assert!(rec.removed_on_exit);
    assert_eq!(rec.status_text(), "running");
    assert_eq!(rec.config.layer_ids, image.layer_ids);
    assert_eq!(store.list_containers().unwrap().len(), 1);
    assert!(store.container(&c.id[..6]).is_ok(), "found by id prefix");
    let err = store.remove_container("tmp").unwrap_err();
    assert!(matches!(err, ImageError::ContainerRunning { .. }), "{err}");

    store.remove_ephemeral(&c).unwrap();
    assert!(store.container("tmp").is_err(), "record and name gone");
    assert!(store.list_containers().unwrap().is_empty());
    let after: Vec<_> = fs::read_dir(store.home().join("containers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
}
