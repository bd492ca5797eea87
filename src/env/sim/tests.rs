//! SimDisk-specific behaviour: crash images, fault injection, test helpers.
//! (The contract shared with FsDisk is tested in `tests/env_disk.rs`.)

use super::*;
use crate::env::sim::{CrashImage, CrashOptions};
use crate::env::{Disk, DiskFile};
use std::collections::BTreeSet;
use std::path::Path;

const DIR: &str = "/d";
const FILE: &str = "/d/f";

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// A disk with directory `/d` (durable) and nothing else.
fn disk() -> SimDisk {
    let d = SimDisk::new();
    d.create_dir_all(p(DIR)).unwrap();
    d
}

/// `/d/f` created, its entry synced, holding `durable` durably.
fn disk_with_file(durable: &[u8]) -> (SimDisk, Box<dyn DiskFile>) {
    let d = disk();
    let mut f = d.create_new(p(FILE)).unwrap();
    f.append(durable).unwrap();
    f.sync_data().unwrap();
    d.sync_dir(p(DIR)).unwrap();
    (d, f)
}

/// Content of `path` in each image (None = absent), in enumeration order.
fn contents(images: &[CrashImage], path: &str) -> Vec<Option<Vec<u8>>> {
    images.iter().map(|i| i.disk().read_file(p(path))).collect()
}

#[test]
fn unsynced_appends_give_prefix_torn_and_garbage_images() {
    let (d, mut f) = disk_with_file(b"abc");
    f.append(b"de").unwrap();
    f.append(b"fgh").unwrap();
    let opts = CrashOptions::default();
    let images = d.crash_images(&opts);
    assert_eq!(images.len(), 8, "{images:?}");
    assert_eq!(d.crash_image_count(&opts), 8);

    let got: Vec<Vec<u8>> = contents(&images, FILE)
        .into_iter()
        .map(|c| c.expect("file entry is durable, so it is in every image"))
        .collect();
    let exact: BTreeSet<&[u8]> = [
        &b"abc"[..],
        b"abcd",
        b"abcde",
        b"abcdef",
        b"abcdefg",
        b"abcdefgh",
    ]
    .into_iter()
    .collect();
    let got_exact: BTreeSet<&[u8]> = got
        .iter()
        .map(Vec::as_slice)
        .filter(|c| exact.contains(c))
        .collect();
    assert_eq!(got_exact, exact);
    // The two remaining images are the garbage ones: "abc" + 2 bytes != "de", and
    // "abcde" + 3 bytes != "fgh".
    let garbage: Vec<&Vec<u8>> = got
        .iter()
        .filter(|c| !exact.contains(c.as_slice()))
        .collect();
    assert_eq!(garbage.len(), 2, "{got:?}");
    assert!(garbage
        .iter()
        .any(|c| c.len() == 5 && c.starts_with(b"abc") && &c[3..] != b"de"));
    assert!(garbage
        .iter()
        .any(|c| c.len() == 8 && c.starts_with(b"abcde") && &c[5..] != b"fgh"));
    // Deterministic: a second enumeration gives the same bytes.
    assert_eq!(
        contents(&d.crash_images(&opts), FILE),
        contents(&images, FILE)
    );
}

#[test]
fn synced_bytes_survive_every_image() {
    let (d, mut f) = disk_with_file(b"abc");
    f.append(b"de").unwrap();
    f.sync_data().unwrap();
    f.append(b"xyz").unwrap();
    let images = d.crash_images(&CrashOptions::default());
    // keep 0 (+2 torn, +garbage), keep 1.
    assert_eq!(images.len(), 5);
    for img in &images {
        let c = img.disk().read_file(p(FILE)).unwrap();
        assert!(c.starts_with(b"abcde"), "{}: {c:?}", img.describe());
    }
    f.sync_all().unwrap();
    let images = d.crash_images(&CrashOptions::default());
    assert_eq!(images.len(), 1);
    assert_eq!(contents(&images, FILE), vec![Some(b"abcdexyz".to_vec())]);
    assert_eq!(d.durable_file(p(FILE)).unwrap(), b"abcdexyz");
}

#[test]
fn truncation_is_atomic_in_crash_images() {
    let (d, mut f) = disk_with_file(b"abcdef");
    f.truncate(3).unwrap();
    f.append(b"xy").unwrap();
    assert_eq!(d.read_file(p(FILE)).unwrap(), b"abcxy");
    let got = contents(&d.crash_images(&CrashOptions::default()), FILE);
    let got: Vec<Vec<u8>> = got.into_iter().map(Option::unwrap).collect();
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[0], b"abcdef");
    assert_eq!(got[1], b"abc");
    assert_eq!(got[2], b"abcx");
    assert_eq!(got[3].len(), 5);
    assert_ne!(&got[3][3..], b"xy");
    assert_eq!(got[4], b"abcxy");
}

#[test]
fn unsynced_creation_may_be_lost_with_its_data() {
    let d = disk();
    let mut f = d.create_new(p(FILE)).unwrap();
    f.append(b"x").unwrap();
    f.sync_data().unwrap();
    let images = d.crash_images(&CrashOptions::default());
    assert_eq!(images.len(), 2);
    let got: BTreeSet<Option<Vec<u8>>> = contents(&images, FILE).into_iter().collect();
    assert_eq!(got, [None, Some(b"x".to_vec())].into_iter().collect());
    let lost = images
        .iter()
        .find(|i| i.disk().read_file(p(FILE)).is_none())
        .unwrap();
    assert!(lost.disk().list(p(DIR)).unwrap().is_empty());
    assert!(
        lost.describe().contains("lost [create f]"),
        "{}",
        lost.describe()
    );
    d.sync_dir(p(DIR)).unwrap();
    assert_eq!(d.crash_image_count(&CrashOptions::default()), 1);
}

#[test]
fn unsynced_removal_may_bring_the_file_back_with_durable_content() {
    let (d, mut f) = disk_with_file(b"abc");
    f.append(b"zz").unwrap(); // never synced: comes back without it
    d.remove(p(FILE)).unwrap();
    assert!(!d.exists(p(FILE)).unwrap());
    let got: BTreeSet<Option<Vec<u8>>> = contents(&d.crash_images(&CrashOptions::default()), FILE)
        .into_iter()
        .collect();
    assert!(got.contains(&None));
    assert!(got.contains(&Some(b"abc".to_vec())));
    assert!(got.contains(&Some(b"abczz".to_vec())));
    assert!(got.iter().flatten().all(|c| c.starts_with(b"abc")));
    d.sync_dir(p(DIR)).unwrap();
    let after = contents(&d.crash_images(&CrashOptions::default()), FILE);
    assert!(after.iter().all(Option::is_none), "{after:?}");
}

#[test]
fn unsynced_rename_leaves_old_or_new_name_and_handle_survives() {
    let (d, mut f) = disk_with_file(b"abc");
    d.rename(p(FILE), p("/d/g")).unwrap();
    f.append(b"de").unwrap(); // through the old handle, after the rename
    f.sync_data().unwrap();
    assert_eq!(d.read_file(p("/d/g")).unwrap(), b"abcde");
    assert!(d.read_file(p(FILE)).is_none());
    let images = d.crash_images(&CrashOptions::default());
    assert_eq!(images.len(), 2);
    for img in &images {
        let disk = img.disk();
        let names = disk.list(p(DIR)).unwrap();
        assert!(names == ["f"] || names == ["g"], "{names:?}");
        let name = format!("/d/{}", names[0]);
        assert_eq!(disk.read_file(p(&name)).unwrap(), b"abcde");
    }
}

#[test]
fn rename_replacing_a_file_is_atomic() {
    let (d, _f) = disk_with_file(b"old");
    let mut t = d.create_new(p("/d/tmp")).unwrap();
    t.append(b"new").unwrap();
    t.sync_data().unwrap();
    d.sync_dir(p(DIR)).unwrap();
    d.rename(p("/d/tmp"), p(FILE)).unwrap();
    type Pair = (Option<Vec<u8>>, Option<Vec<u8>>);
    let got: BTreeSet<Pair> = d
        .crash_images(&CrashOptions::default())
        .iter()
        .map(|i| {
            let disk = i.disk();
            (disk.read_file(p(FILE)), disk.read_file(p("/d/tmp")))
        })
        .collect();
    let expected = [
        (Some(b"old".to_vec()), Some(b"new".to_vec())),
        (Some(b"new".to_vec()), None),
    ];
    assert_eq!(got, expected.into_iter().collect());
}

#[test]
fn directory_with_many_pending_ops_enumerates_prefixes_and_all_but_one() {
    let d = disk();
    for i in 0..10 {
        d.create_new(&Path::new(DIR).join(format!("f{i}"))).unwrap();
    }
    let images = d.crash_images(&CrashOptions::default());
    assert_eq!(images.len(), 21);
    assert_eq!(d.crash_image_count(&CrashOptions::default()), 21);
    let lists: Vec<Vec<String>> = images
        .iter()
        .map(|i| i.disk().list(p(DIR)).unwrap())
        .collect();
    let counts: Vec<usize> = lists.iter().map(Vec::len).collect();
    let mut expected: Vec<usize> = (0..=10).collect();
    expected.extend([9; 10]);
    assert_eq!(counts, expected);
    // "All but one": f3 lost, every later creation kept.
    assert!(!lists[14].contains(&"f3".to_owned()) && lists[14].contains(&"f9".to_owned()));
    // A seeded crash keeps or loses each one on its own (one chooser(2) per operation).
    let mut bits = [1, 0, 1, 1, 0, 0, 0, 0, 0, 1].into_iter();
    let image = d.crash_with(&mut |n| {
        assert_eq!(n, 2);
        bits.next().unwrap()
    });
    let kept = image.power_loss_disk().list(p(DIR)).unwrap();
    assert_eq!(kept, ["f0", "f2", "f3", "f9"]);
    // At most 8: every subset.
    let d = disk();
    for i in 0..3 {
        d.create_new(&Path::new(DIR).join(format!("f{i}"))).unwrap();
    }
    let sets: BTreeSet<Vec<String>> = d
        .crash_images(&CrashOptions::default())
        .iter()
        .map(|i| i.disk().list(p(DIR)).unwrap())
        .collect();
    assert_eq!(sets.len(), 8);
    assert!(sets.contains(&vec!["f0".to_owned(), "f2".to_owned()]));
}

/// The case spec/Compaction.tla found (mutant `recovery_unlinks_before_dir_sync`): a rename,
/// then an unlink, neither synced: a power loss may keep the unlink and lose the rename.
#[test]
fn a_power_loss_keeps_a_later_unlink_and_loses_an_earlier_rename() {
    let d = disk();
    d.write_file_durably(p("/d/old"), b"old").unwrap();
    d.write_file_durably(p("/d/seg"), b"seg").unwrap();
    let mut t = d.create_new(p("/d/seg.tmp")).unwrap();
    t.append(b"new").unwrap();
    t.sync_all().unwrap();
    d.rename(p("/d/seg.tmp"), p("/d/seg")).unwrap();
    d.remove(p("/d/old")).unwrap();
    assert_eq!(d.pending_dir_ops(), 3);
    let outcomes: BTreeSet<(Vec<String>, Option<Vec<u8>>)> = d
        .crash_images(&CrashOptions::default())
        .iter()
        .map(|i| {
            let after = i.power_loss_disk();
            (after.list(p("/d")).unwrap(), after.read_file(p("/d/seg")))
        })
        .collect();
    // The unlink kept, the rename (and the creation) lost: the old segment's content.
    assert!(
        outcomes.contains(&(vec!["seg".to_owned()], Some(b"seg".to_vec()))),
        "{outcomes:?}"
    );
    // And by a seeded power loss: create kept, rename lost, remove kept.
    let mut picks = [0b101usize].into_iter();
    let after = d.power_loss(&mut |n| {
        assert_eq!(n, 8);
        picks.next().unwrap()
    });
    assert_eq!(after.list(p("/d")).unwrap(), ["seg", "seg.tmp"]);
    assert_eq!(after.read_file(p("/d/seg")).unwrap(), b"seg");
}

#[test]
fn image_count_is_the_product_over_files_and_directories() {
    let d = disk();
    let mut a = d.create_new(p("/d/a")).unwrap(); // dir op 1
    let mut b = d.create_new(p("/d/b")).unwrap(); // dir op 2
    a.append(b"xy").unwrap(); // a: keep0, torn1, garbage, keep1 = 4
    b.append(b"z").unwrap(); // b: keep0, garbage, keep1 = 3
    assert_eq!(d.crash_image_count(&CrashOptions::default()), 4 * 4 * 3);
    assert_eq!(d.crash_images(&CrashOptions::default()).len(), 48);
}

#[test]
fn subsets_mode_leaves_a_hole_for_a_dropped_middle_append() {
    let (d, mut f) = disk_with_file(b"ab");
    f.append(b"cd").unwrap();
    f.append(b"ef").unwrap();
    let prefix = d.crash_image_count(&CrashOptions::default());
    assert_eq!(prefix, 7);
    let opts = CrashOptions {
        subsets: true,
        ..CrashOptions::default()
    };
    let images = d.crash_images(&opts);
    assert_eq!(images.len(), 8);
    let got: Vec<Vec<u8>> = contents(&images, FILE)
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert!(got.contains(&b"ab\0\0ef".to_vec()), "{got:?}");
    assert!(got.contains(&b"abcdef".to_vec()));
    // Over the limit: prefixes only.
    let few = CrashOptions {
        subsets: true,
        max_subset_ops: 1,
    };
    assert_eq!(d.crash_image_count(&few), 7);
}

#[test]
fn transient_fault_fails_exactly_one_op_without_effect() {
    let d = disk(); // op 0: create_dir_all
    assert_eq!(d.op_count(), 1);
    let mut f = d.create_new(p(FILE)).unwrap(); // op 1
    d.fail_at(2, FaultKind::Transient);
    let err = f.append(b"lost").unwrap_err(); // op 2
    assert_eq!(err.kind(), io::ErrorKind::Other);
    assert_eq!(
        err.to_string(),
        "simulated I/O fault at op 2: append /d/f",
        "message names the op index, op and path"
    );
    assert_eq!(
        d.read_file(p(FILE)).unwrap(),
        b"",
        "a failed append writes nothing"
    );
    f.append(b"kept").unwrap(); // op 3
    assert_eq!(d.read_file(p(FILE)).unwrap(), b"kept");
    assert_eq!(d.op_count(), 4);
}

#[test]
fn persistent_fault_kills_the_disk_from_that_op_on() {
    let (d, mut f) = disk_with_file(b"abc"); // ops 0..=4
    assert_eq!(d.op_count(), 5);
    assert_eq!(d.sync_count(), 2);
    assert_eq!(d.sync_op_indices(), vec![3, 4]);
    f.append(b"d").unwrap(); // op 5
    d.fail_at(6, FaultKind::Persistent);
    let err = f.sync_data().unwrap_err(); // op 6
    assert_eq!(
        err.to_string(),
        "simulated I/O fault at op 6: sync_data /d/f"
    );
    let err = d.exists(p(FILE)).unwrap_err(); // op 7
    assert_eq!(err.to_string(), "simulated I/O fault at op 7: exists /d/f");
    assert!(d.create_new(p("/d/g")).is_err());
    assert!(f.append(b"e").is_err());
    assert_eq!(
        d.read_file(p(FILE)).unwrap(),
        b"abcd",
        "nothing changes after the cut"
    );
    assert_eq!(d.sync_count(), 2, "failed syncs are not persistence points");
    assert_eq!(d.crash_image_count(&CrashOptions::default()), 3);
    d.clear_faults();
    f.sync_data().unwrap();
    assert_eq!(d.durable_file(p(FILE)).unwrap(), b"abcd");
}

#[test]
fn crash_with_chooser_selects_a_specific_image() {
    let (d, mut f) = disk_with_file(b"abc");
    f.append(b"de").unwrap();
    f.append(b"fgh").unwrap();
    let all = contents(&d.crash_images(&CrashOptions::default()), FILE);
    for (i, want) in all.iter().enumerate() {
        let mut asked = Vec::new();
        let img = d.crash_with(&mut |n| {
            asked.push(n);
            i + n // taken modulo n
        });
        assert_eq!(asked, vec![8], "only units with a choice are asked");
        assert_eq!(&img.disk().read_file(p(FILE)), want, "{}", img.describe());
    }
    let durable = d.crash_with(&mut |_| 0);
    assert_eq!(durable.disk().read_file(p(FILE)).unwrap(), b"abc");
    let last = d.crash_with(&mut |n| n - 1);
    assert_eq!(last.disk().read_file(p(FILE)).unwrap(), b"abcdefgh");
}

#[test]
fn image_disk_is_independent_and_keeps_unsynced_bytes_unsynced() {
    let (d, mut f) = disk_with_file(b"abc");
    f.append(b"de").unwrap();
    d.fail_at(100, FaultKind::Persistent);
    let _lock = d.lock(p(DIR)).unwrap();
    let img = d.crash_with(&mut |n| n - 1);
    let disk = img.disk();
    assert_eq!(disk.op_count(), 0);
    assert_eq!(disk.read_file(p(FILE)).unwrap(), b"abcde");
    assert_eq!(
        disk.durable_file(p(FILE)).unwrap(),
        b"abc",
        "what survived a crash unsynced is still unsynced"
    );
    assert!(!disk.is_all_durable());
    assert_eq!(disk.crash_image_count(&CrashOptions::default()), 4);
    // The power-loss reading of the same image: everything that survived is durable.
    let lost_power = img.power_loss_disk();
    assert_eq!(lost_power.durable_file(p(FILE)).unwrap(), b"abcde");
    assert!(lost_power.is_all_durable());
    assert_eq!(lost_power.crash_image_count(&CrashOptions::default()), 1);
    let _img_lock = disk.lock(p(DIR)).unwrap(); // a crash image holds no locks
    let mut g = disk.open(p(FILE), true).unwrap();
    g.append(b"XX").unwrap();
    disk.create_new(p("/d/new")).unwrap();
    assert_eq!(d.read_file(p(FILE)).unwrap(), b"abcde");
    assert!(!d.exists(p("/d/new")).unwrap());
    f.append(b"YY").unwrap();
    assert_eq!(disk.read_file(p(FILE)).unwrap(), b"abcdeXX");
    // A second disk from the same image starts from the image again.
    assert_eq!(img.disk().read_file(p(FILE)).unwrap(), b"abcde");
    assert_eq!(
        img.disk().files(),
        vec![PathBuf::from("/d/LOCK"), PathBuf::from(FILE)]
    );
    // A prefix image keeps the prefix unsynced too.
    let first = img_with(&d, 1);
    assert_eq!(first.disk().read_file(p(FILE)).unwrap(), b"abcd");
    assert_eq!(first.disk().durable_file(p(FILE)).unwrap(), b"abc");
}

/// The image of `d` whose single unit with a choice takes choice `k`.
fn img_with(d: &SimDisk, k: usize) -> CrashImage {
    d.crash_with(&mut |_| k)
}

#[test]
fn process_crash_keeps_the_page_cache_unsynced_and_kills_the_old_handles() {
    let (d, mut f) = disk_with_file(b"abc");
    f.append(b"de").unwrap();
    let lock = d.lock(p(DIR)).unwrap();
    let d2 = d.process_crash();
    // The old process is gone: its handles fail, its lock is released.
    let err = f.append(b"zz").unwrap_err();
    assert!(err.to_string().contains("process that is gone"), "{err}");
    assert!(d.exists(p(FILE)).is_err());
    let lock2 = d2
        .lock(p(DIR))
        .expect("the dead process's lock is released");
    drop(lock); // a dead process's lock drop does not release the new holder's lock
    assert_eq!(
        d2.lock(p(DIR)).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    drop(lock2);
    drop(f);
    // The next process reads the unsynced bytes; they are still not durable.
    let g = d2.open(p(FILE), true).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(g.read_at(0, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"abcde");
    assert_eq!(d2.durable_file(p(FILE)).unwrap(), b"abc");
    // A power loss now may still lose them; the durable outcome does.
    let d3 = d2.power_loss(&mut |_| 0);
    assert_eq!(d3.read_file(p(FILE)).unwrap(), b"abc");
    assert!(
        g.read_at(0, &mut buf).is_err(),
        "the power loss killed g's process"
    );
    // Had the second process synced them, every power loss would keep them.
    let (d, mut f) = disk_with_file(b"abc");
    f.append(b"de").unwrap();
    let d2 = d.process_crash();
    d2.open(p(FILE), true).unwrap().sync_data().unwrap();
    for k in 0..4 {
        let img = d2.crash_with(&mut |_| k);
        assert_eq!(img.power_loss_disk().read_file(p(FILE)).unwrap(), b"abcde");
    }
}

#[test]
fn power_loss_composes_over_sessions_and_makes_survivors_durable() {
    let (d, mut f) = disk_with_file(b"abc");
    f.append(b"de").unwrap();
    f.append(b"fg").unwrap();
    // Keep the first unsynced append only.
    let d2 = d.power_loss(&mut |_| 1);
    assert_eq!(d2.read_file(p(FILE)).unwrap(), b"abcd");
    assert!(
        d2.is_all_durable(),
        "what survived a power loss is on the platter"
    );
    let mut g = d2.open(p(FILE), true).unwrap();
    g.append(b"X").unwrap();
    let d3 = d2.process_crash();
    assert_eq!(d3.read_file(p(FILE)).unwrap(), b"abcdX");
    let d4 = d3.power_loss(&mut |_| 0);
    assert_eq!(d4.read_file(p(FILE)).unwrap(), b"abcd");
    assert!(
        d4.op_count() > d.op_count() - 1,
        "one disk, one operation count"
    );
}

#[test]
fn process_crash_fault_kills_the_process_at_that_operation() {
    let (d, mut f) = disk_with_file(b"abc");
    f.append(b"de").unwrap();
    d.fail_next("sync_data", FaultKind::ProcessCrash);
    assert!(f.sync_data().is_err());
    assert!(f.append(b"x").is_err(), "the process is gone");
    let d2 = d.process_crash();
    assert_eq!(d2.read_file(p(FILE)).unwrap(), b"abcde");
    assert_eq!(d2.durable_file(p(FILE)).unwrap(), b"abc");
}

#[test]
fn a_failed_sync_marks_its_pages_clean_so_a_retry_proves_nothing() {
    for drop_pages in [false, true] {
        let (d, mut f) = disk_with_file(b"abc");
        f.append(b"de").unwrap();
        let fault = Fault::new(FaultKind::Transient);
        d.fail_next(
            "sync_data",
            if drop_pages {
                fault.drop_pages()
            } else {
                fault
            },
        );
        let err = f.sync_data().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        let os = std::error::Error::source(err.get_ref().unwrap()).unwrap();
        assert_eq!(
            os.to_string(),
            io::Error::from_raw_os_error(EIO).to_string()
        );
        let seen = d.read_file(p(FILE)).unwrap();
        if drop_pages {
            assert_eq!(seen, b"abc\0\0", "dropped pages read back from the platter");
        } else {
            assert_eq!(seen, b"abcde", "kept pages still read back");
        }
        f.sync_data().expect("the retry succeeds");
        assert_eq!(
            d.durable_file(p(FILE)).unwrap(),
            b"abc",
            "but the pages it failed to write never reach the platter"
        );
        assert_eq!(d.crash_image_count(&CrashOptions::default()), 1);
        assert!(!d.is_all_durable());
        // A later write is persisted at its offset; the lost pages stay a hole.
        f.append(b"f").unwrap();
        f.sync_data().unwrap();
        assert_eq!(d.durable_file(p(FILE)).unwrap(), b"abc\0\0f");
        // The next process still reads the cached pages (kept) and can cut them away.
        let d2 = d.process_crash();
        assert_eq!(d2.read_file(p(FILE)).unwrap(), [&seen[..], b"f"].concat());
        let mut g = d2.open(p(FILE), true).unwrap();
        g.truncate(3).unwrap();
        g.sync_data().unwrap();
        assert!(d2.is_all_durable());
        assert_eq!(d2.durable_file(p(FILE)).unwrap(), b"abc");
    }
}

#[test]
fn disk_full_and_short_writes() {
    let (d, mut f) = disk_with_file(b"abc");
    d.fail_next("append", Fault::new(FaultKind::Transient).no_space());
    let err = f.append(b"defg").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    assert!(
        err.to_string().starts_with("simulated disk full at op"),
        "{err}"
    );
    let os = std::error::Error::source(err.get_ref().unwrap()).unwrap();
    assert_eq!(
        os.to_string(),
        io::Error::from_raw_os_error(ENOSPC).to_string()
    );
    assert_eq!(d.read_file(p(FILE)).unwrap(), b"abc", "nothing written");
    d.fail_next(
        "append",
        Fault::new(FaultKind::Transient).no_space().short_write(2),
    );
    assert!(f.append(b"defg").is_err());
    assert_eq!(d.read_file(p(FILE)).unwrap(), b"abcde", "a prefix written");
    assert_eq!(d.durable_file(p(FILE)).unwrap(), b"abc");
    // A short write never writes the whole buffer.
    d.fail_next("append", Fault::new(FaultKind::Transient).short_write(99));
    assert!(f.append(b"xy").is_err());
    assert_eq!(d.read_file(p(FILE)).unwrap(), b"abcdex");
    f.append(b"!").unwrap();
    assert_eq!(d.read_file(p(FILE)).unwrap(), b"abcdex!");
}

#[test]
fn op_names_and_named_faults() {
    let (d, mut f) = disk_with_file(b"abc");
    assert_eq!(
        d.op_names(),
        vec![
            "create_dir_all",
            "create_new",
            "append",
            "sync_data",
            "sync_dir"
        ]
    );
    d.fail_next("sync_data", FaultKind::Transient);
    d.fail_next("sync_data", FaultKind::Transient);
    f.append(b"x").unwrap();
    assert!(f.sync_data().is_err());
    assert!(f.sync_data().is_err());
    f.sync_data().unwrap();
    assert_eq!(d.op_names().len() as u64, d.op_count());
}

#[test]
fn lock_is_exclusive_per_directory_and_released_on_drop() {
    let d = disk();
    let l = d.lock(p(DIR)).unwrap();
    let clone = d.clone();
    let err = clone.lock(p(DIR)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert!(err.to_string().contains("/d/LOCK"), "{err}");
    d.create_dir_all(p("/e")).unwrap();
    let _other = d.lock(p("/e")).unwrap();
    drop(l);
    let _again = clone.lock(p(DIR)).unwrap();
}

#[test]
fn fixture_helpers_write_and_corrupt_durably() {
    let d = SimDisk::new();
    d.write_file_durably(p("/x/y/seg"), b"hello").unwrap();
    assert_eq!(d.crash_image_count(&CrashOptions::default()), 1);
    assert_eq!(d.durable_file(p("/x/y/seg")).unwrap(), b"hello");
    d.corrupt(p("/x/y/seg"), 1, b'A').unwrap();
    assert_eq!(d.read_file(p("/x/y/seg")).unwrap(), b"hAllo");
    assert!(d.corrupt(p("/x/y/seg"), 5, 0).is_err());
    assert!(d.corrupt(p("/x/y/none"), 0, 0).is_err());
    let mut f = d.open(p("/x/y/seg"), true).unwrap();
    f.append(b"!").unwrap();
    d.corrupt(p("/x/y/seg"), 0, b'J').unwrap();
    assert_eq!(d.read_file(p("/x/y/seg")).unwrap(), b"JAllo!");
    assert_eq!(d.durable_file(p("/x/y/seg")).unwrap(), b"JAllo");
    d.write_file_durably(p("/x/y/seg"), b"new").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(f.read_at(0, &mut buf).unwrap(), 3, "same inode, new bytes");
    assert_eq!(d.files(), vec![PathBuf::from("/x/y/seg")]);
    assert!(d.durable_file(p("/x/y/none")).is_none());
}

#[test]
fn durable_file_ignores_an_unsynced_entry() {
    let d = disk();
    let mut f = d.create_new(p(FILE)).unwrap();
    f.append(b"a").unwrap();
    f.sync_data().unwrap();
    assert!(d.durable_file(p(FILE)).is_none());
    assert_eq!(d.read_file(p(FILE)).unwrap(), b"a");
    d.sync_dir(p(DIR)).unwrap();
    assert_eq!(d.durable_file(p(FILE)).unwrap(), b"a");
}

#[test]
fn torn_cuts_are_deduplicated_and_strictly_inside() {
    assert_eq!(crash::torn_cuts(1), Vec::<usize>::new());
    assert_eq!(crash::torn_cuts(2), vec![1]);
    assert_eq!(crash::torn_cuts(3), vec![1, 2]);
    assert_eq!(crash::torn_cuts(10), vec![1, 5, 9]);
}

#[test]
fn removed_inode_is_freed_after_sync_dir_and_last_handle_drop() {
    let (d, f) = disk_with_file(b"abc");
    let inodes = || d.state.lock().files.len();
    assert_eq!(inodes(), 1);
    d.remove(p(FILE)).unwrap();
    d.sync_dir(p(DIR)).unwrap();
    assert_eq!(inodes(), 1, "an open handle keeps the inode");
    let mut buf = [0u8; 3];
    assert_eq!(f.read_at(0, &mut buf).unwrap(), 3);
    drop(f);
    assert_eq!(inodes(), 0);
    // Not freed while a pending removal may still be lost.
    let (d, f) = disk_with_file(b"abc");
    drop(f);
    d.remove(p(FILE)).unwrap();
    assert_eq!(d.state.lock().files.len(), 1);
    assert_eq!(d.crash_image_count(&CrashOptions::default()), 2);
}

#[test]
fn only_the_image_keeping_everything_shows_pages_a_failed_sync_left_cached() {
    let (d, mut f) = disk_with_file(b"abc");
    f.append(b"de").unwrap();
    d.fail_next("sync_data", FaultKind::Transient);
    assert!(f.sync_data().is_err());
    f.append(b"f").unwrap();
    let images = d.crash_images(&CrashOptions::default());
    // Pending: the one append of "f" (at offset 5): lost, torn? (1 byte: no), garbage, kept.
    assert_eq!(images.len(), 3, "{images:?}");
    let exact = d.crash_with(&mut |n| n - 1);
    assert_eq!(exact.disk().read_file(p(FILE)).unwrap(), b"abcdef");
    assert_eq!(exact.disk().durable_file(p(FILE)).unwrap(), b"abc");
    // A power loss drops the page cache: the cached-but-clean "de" is gone, and a surviving
    // later write lands after a hole.
    assert_eq!(
        exact.power_loss_disk().read_file(p(FILE)).unwrap(),
        b"abc\0\0f"
    );
    let lost = d.crash_with(&mut |_| 0);
    assert_eq!(lost.disk().read_file(p(FILE)).unwrap(), b"abc");
    assert_eq!(lost.power_loss_disk().read_file(p(FILE)).unwrap(), b"abc");
}
