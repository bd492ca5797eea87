//! The `Disk` contract, written once and run against `FsDisk` (in a temporary directory) and
//! `SimDisk`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::env::{Disk, FsDisk, SimDisk};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Runs `check` on a fresh FsDisk and a fresh SimDisk, each with an existing empty directory.
fn on_both(check: fn(&dyn Disk, &Path)) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let fs = FsDisk::new();
    fs.create_dir_all(&root).unwrap();
    check(&fs, &root);

    let sim = SimDisk::new();
    let root = PathBuf::from("/sim/data");
    sim.create_dir_all(&root).unwrap();
    check(&sim, &root);
}

fn read_all(disk: &dyn Disk, path: &Path) -> Vec<u8> {
    let f = disk.open(path, false).unwrap();
    let mut buf = vec![0u8; usize::try_from(f.len().unwrap()).unwrap()];
    assert_eq!(f.read_at(0, &mut buf).unwrap(), buf.len());
    buf
}

#[test]
fn create_append_read_and_len() {
    on_both(|disk, root| {
        let path = root.join("a");
        let mut f = disk.create_new(&path).unwrap();
        assert_eq!(f.len().unwrap(), 0);
        f.append(b"hello").unwrap();
        f.append(b" world").unwrap();
        assert_eq!(f.len().unwrap(), 11);
        let mut buf = [0u8; 5];
        assert_eq!(f.read_at(6, &mut buf).unwrap(), 5);
        assert_eq!(&buf, b"world");
        let mut big = [0u8; 32];
        assert_eq!(
            f.read_at(8, &mut big).unwrap(),
            3,
            "never reads past the end"
        );
        assert_eq!(&big[..3], b"rld");
        assert_eq!(f.read_at(11, &mut big).unwrap(), 0, "0 at EOF");
        assert_eq!(f.read_at(1000, &mut big).unwrap(), 0, "0 past EOF");
        f.sync_data().unwrap();
        f.sync_all().unwrap();
        disk.sync_dir(root).unwrap();
        assert_eq!(read_all(disk, &path), b"hello world");
    });
}

#[test]
fn create_new_refuses_an_existing_file() {
    on_both(|disk, root| {
        let path = root.join("a");
        drop(disk.create_new(&path).unwrap());
        let err = disk.create_new(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("a"), "{err}");
    });
}

#[test]
fn open_missing_file_is_not_found_and_names_the_path() {
    on_both(|disk, root| {
        let path = root.join("missing");
        let err = disk.open(&path, false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("missing"), "{err}");
        assert!(disk.remove(&path).is_err());
        assert!(disk.rename(&path, &root.join("x")).is_err());
    });
}

#[test]
fn reopened_file_appends_at_the_end_and_read_only_refuses_writes() {
    on_both(|disk, root| {
        let path = root.join("a");
        disk.create_new(&path).unwrap().append(b"ab").unwrap();
        let mut w = disk.open(&path, true).unwrap();
        w.append(b"cd").unwrap();
        assert_eq!(read_all(disk, &path), b"abcd");
        let mut r = disk.open(&path, false).unwrap();
        assert!(r.append(b"x").is_err());
        assert_eq!(read_all(disk, &path), b"abcd");
    });
}

#[test]
fn truncate_cuts_and_appends_continue_at_the_new_end() {
    on_both(|disk, root| {
        let path = root.join("a");
        let mut f = disk.create_new(&path).unwrap();
        f.append(b"abcdef").unwrap();
        f.truncate(2).unwrap();
        assert_eq!(f.len().unwrap(), 2);
        f.append(b"XY").unwrap();
        f.sync_data().unwrap();
        assert_eq!(read_all(disk, &path), b"abXY");
    });
}

#[test]
fn list_gives_regular_files_sorted() {
    on_both(|disk, root| {
        assert!(disk.list(root).unwrap().is_empty());
        for name in ["b", "c", "a"] {
            disk.create_new(&root.join(name)).unwrap();
        }
        disk.create_dir_all(&root.join("sub/deeper")).unwrap();
        assert!(disk.exists(&root.join("sub/deeper")).unwrap());
        assert_eq!(disk.list(root).unwrap(), ["a", "b", "c"]);
        assert!(disk.list(&root.join("sub")).unwrap().is_empty());
        assert!(disk.list(&root.join("nope")).is_err());
    });
}

#[test]
fn rename_replaces_the_target_and_keeps_open_handles_working() {
    on_both(|disk, root| {
        let (a, b) = (root.join("a"), root.join("b"));
        let mut fa = disk.create_new(&a).unwrap();
        fa.append(b"new").unwrap();
        disk.create_new(&b).unwrap().append(b"old").unwrap();
        disk.rename(&a, &b).unwrap();
        disk.sync_dir(root).unwrap();
        assert!(!disk.exists(&a).unwrap());
        assert_eq!(disk.list(root).unwrap(), ["b"]);
        fa.append(b"+").unwrap();
        assert_eq!(read_all(disk, &b), b"new+");
    });
}

#[test]
fn remove_deletes_the_entry_but_not_an_open_handle() {
    on_both(|disk, root| {
        let a = root.join("a");
        let mut f = disk.create_new(&a).unwrap();
        f.append(b"x").unwrap();
        assert!(disk.exists(&a).unwrap());
        disk.remove(&a).unwrap();
        disk.sync_dir(root).unwrap();
        assert!(!disk.exists(&a).unwrap());
        assert!(disk.list(root).unwrap().is_empty());
        let mut buf = [0u8; 1];
        assert_eq!(f.read_at(0, &mut buf).unwrap(), 1);
        // The name is free again.
        drop(disk.create_new(&a).unwrap());
        assert_eq!(disk.open(&a, false).unwrap().len().unwrap(), 0);
    });
}

#[test]
fn second_lock_is_refused_until_the_first_is_dropped() {
    on_both(|disk, root| {
        let first = disk.lock(root).unwrap();
        let err = disk.lock(root).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        assert!(err.to_string().contains("LOCK"), "{err}");
        drop(first);
        let again = disk.lock(root).unwrap();
        assert_eq!(disk.list(root).unwrap(), [batpak::env::LOCK_FILE_NAME]);
        drop(again);
        assert!(disk.lock(&root.join("nope")).is_err());
    });
}

#[test]
fn create_dir_all_is_idempotent_and_nested() {
    on_both(|disk, root| {
        let deep = root.join("x/y/z");
        disk.create_dir_all(&deep).unwrap();
        disk.create_dir_all(&deep).unwrap();
        assert!(disk.exists(&deep).unwrap());
        disk.create_new(&deep.join("f")).unwrap();
        disk.sync_dir(&deep).unwrap();
        assert_eq!(disk.list(&deep).unwrap(), ["f"]);
        assert!(!disk.exists(&root.join("x/nope")).unwrap());
    });
}
