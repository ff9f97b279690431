//! The spool on a real executor and a real filesystem: group commit, in-place status, deletion,
//! deferral, and recovery after a "crash" (dropping everything without finishing).

use std::path::PathBuf;
use std::rc::Rc;

use glommio::LocalExecutorBuilder;
use mxguard_spool::{Meta, MessageData, RcptStatus, Spool};

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("mxguard-spool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn meta(spool: &Spool, n: usize) -> Meta {
    Meta {
        id: spool.next_id(),
        arrival_unix_ms: 1,
        client: "127.0.0.1".into(),
        helo: "c".into(),
        proto: "ESMTP".into(),
        mail_from: format!("s{n}@b.example"),
        rcpts: vec!["a@example.test".into(), "b@example.test".into()],
        status: vec![RcptStatus::Pending; 2],
        ..Meta::default()
    }
}

fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::default()
        .io_memory(256 << 10)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

fn files(root: &std::path::Path, sub: &str) -> Vec<PathBuf> {
    walk(&root.join(sub))
}

fn walk(p: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn concurrent_stores_share_one_commit_and_recover() {
    let root = tmp("group");
    let r2 = root.clone();
    run(move || async move {
        let spool = Spool::open(&r2, 0, Box::new(|| true), Box::new(|| 256), Box::new(|| 1 << 20)).unwrap();
        glommio::spawn_local(spool.clone().run_committer()).detach();
        let mut tasks = Vec::new();
        for n in 0..50 {
            let s = spool.clone();
            tasks.push(glommio::spawn_local(async move {
                let m = meta(&s, n);
                let data = MessageData { head: b"Received: test\r\n".to_vec(), body: format!("Subject: {n}\r\n\r\nbody {n}\r\n").into_bytes() };
                let (loc, back) = s.store(m.clone(), data).await.unwrap();
                assert_eq!(back.body, format!("Subject: {n}\r\n\r\nbody {n}\r\n").into_bytes(), "handed back uncopied");
                (m, loc)
            }));
        }
        let mut stored = Vec::new();
        for t in tasks {
            stored.push(t.await);
        }
        let segs: Vec<_> = files(&r2, "queue").into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).collect();
        assert_eq!(segs.len(), 1, "50 concurrent stores share one segment: {segs:?}");
        assert!(stored.iter().all(|(_, l)| Rc::ptr_eq(&l.file, &stored[0].1.file)));
        // Deliver half completely, one recipient of a quarter; leave the rest.
        for (i, (m, loc)) in stored.iter().enumerate() {
            let data = spool.read(loc).unwrap();
            assert!(data.body.starts_with(b"Received: test\r\nSubject: "));
            if i % 2 == 0 {
                spool.set_status(loc, 0, RcptStatus::Delivered).unwrap();
                spool.set_status(loc, 1, RcptStatus::Bounced).unwrap();
                spool.finish(loc).unwrap();
            } else if i % 4 == 1 {
                spool.set_status(loc, 0, RcptStatus::Delivered).unwrap();
                spool.set_retry(loc, 2, 12345).unwrap();
            }
            let _ = m;
        }
        // The marks reach the files first: the detached committer keeps a reference to the
        // spool, so its mark thread would otherwise still be writing when the next run recovers
        // (a real crash may lose the last marks: those messages are delivered again, not lost).
        spool.stop_marks();
        // "Crash": everything in memory is dropped here.
    });
    let r3 = root.clone();
    run(move || async move {
        let spool = Spool::open(&r3, 0, Box::new(|| true), Box::new(|| 256), Box::new(|| 1 << 20)).unwrap();
        let mut found = spool.recover(0, 1).unwrap();
        found.sort_by_key(|r| r.meta.mail_from.clone());
        assert_eq!(found.len(), 25, "exactly the unfinished messages");
        for r in &found {
            let n: usize = r.meta.mail_from[1..r.meta.mail_from.find('@').unwrap()].parse().unwrap();
            assert_eq!(n % 2, 1);
            if n % 4 == 1 {
                assert_eq!(r.meta.status, vec![RcptStatus::Delivered, RcptStatus::Pending]);
                assert_eq!((r.meta.attempts, r.meta.next_attempt_unix), (2, 12345));
            } else {
                assert_eq!(r.meta.status, vec![RcptStatus::Pending; 2]);
            }
            let data = spool.read(&r.location).unwrap();
            assert_eq!(data.body, format!("Received: test\r\nSubject: {n}\r\n\r\nbody {n}\r\n").into_bytes());
        }
        // Recovery split across two cores covers each message once.
        let a = spool.recover(0, 2).unwrap().len();
        let b = spool.recover(1, 2).unwrap().len();
        assert_eq!(a + b, 25);
        for r in &found {
            spool.finish(&r.location).unwrap();
        }
        spool.settled().await;
        let left: Vec<_> = files(&r3, "queue").into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).collect();
        assert!(left.is_empty(), "a finished sealed segment is recycled or deleted: {left:?}");
        assert!(r3.join("queue/c0/spare.s").exists(), "recycled as the spare");
    });
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn deferral_moves_a_message_out_of_its_batch() {
    let root = tmp("defer");
    let r2 = root.clone();
    run(move || async move {
        let spool = Spool::open(&r2, 0, Box::new(|| true), Box::new(|| 256), Box::new(|| 1 << 20)).unwrap();
        glommio::spawn_local(spool.clone().run_committer()).detach();
        let s1 = spool.clone();
        let s2 = spool.clone();
        let t1 = glommio::spawn_local(async move { let m = meta(&s1, 1); (s1.store(m.clone(), MessageData { head: vec![], body: b"one\r\n".to_vec() }).await.unwrap(), m) });
        let t2 = glommio::spawn_local(async move { let m = meta(&s2, 2); (s2.store(m.clone(), MessageData { head: vec![], body: b"two\r\n".to_vec() }).await.unwrap(), m) });
        let (((l1, d1), m1), ((l2, _), _)) = (t1.await, t2.await);
        assert!(Rc::ptr_eq(&l1.file, &l2.file), "both in one batch");
        let (moved, _) = spool.move_to_deferred(l1, &m1, d1).await.unwrap();
        assert!(moved.solo);
        assert!(moved.file.path().starts_with(r2.join("deferred")));
        spool.finish(&l2).unwrap();
        assert_eq!(spool.read(&moved).unwrap().body, b"one\r\n");
        let found = spool.recover(0, 1).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].meta.id, m1.id);
    });
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn torn_file_keeps_intact_records_and_a_copy() {
    let root = tmp("torn");
    let r2 = root.clone();
    run(move || async move {
        let spool = Spool::open(&r2, 0, Box::new(|| false), Box::new(|| 256), Box::new(|| 1 << 20)).unwrap();
        glommio::spawn_local(spool.clone().run_committer()).detach();
        let mut tasks = Vec::new();
        for n in 0..3 {
            let s = spool.clone();
            tasks.push(glommio::spawn_local(async move {
                let m = meta(&s, n);
                s.store(m, MessageData { head: vec![], body: vec![b'x'; 1000] }).await.unwrap().0
            }));
        }
        let mut locs = Vec::new();
        for t in tasks {
            locs.push(t.await);
        }
        assert!(locs.iter().all(|l| Rc::ptr_eq(&l.file, &locs[0].file)), "one segment");
        // Cut the last record in half, as a crash during the write would.
        let last = locs.last().unwrap();
        let path = last.file.path().to_path_buf();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(last.message_offset + 10).unwrap();
    });
    let r3 = root.clone();
    run(move || async move {
        let spool = Spool::open(&r3, 0, Box::new(|| false), Box::new(|| 256), Box::new(|| 1 << 20)).unwrap();
        let found = spool.recover(0, 1).unwrap();
        assert_eq!(found.len(), 2, "the two intact records survive");
        for r in &found {
            assert_eq!(spool.read(&r.location).unwrap().body.len(), 1000);
        }
    });
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn segments_rotate_recycle_and_never_resurrect_old_records() {
    let root = tmp("rotate");
    let r2 = root.clone();
    run(move || async move {
        let spool = Spool::open(&r2, 0, Box::new(|| true), Box::new(|| 1), Box::new(|| 1 << 20)).unwrap();
        glommio::spawn_local(spool.clone().run_committer()).detach();
        // 40 messages of 100 KB, one per commit, in 1 MiB segments: several segments.
        let mut kept = Vec::new();
        for n in 0..40 {
            let m = meta(&spool, n);
            let (loc, _) = spool.store(m.clone(), MessageData { head: vec![], body: vec![b'a' + (n % 26) as u8; 100_000] }).await.unwrap();
            if n % 10 == 9 {
                kept.push((m, loc));
            } else {
                spool.finish(&loc).unwrap();
            }
        }
        let segs = files(&r2, "queue").into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).count();
        assert!(segs >= 4, "kept messages pin their segments only: {segs}");
        // Write more, so recycled segments (holding old records) are reused.
        for n in 40..70 {
            let m = meta(&spool, n);
            let (loc, _) = spool.store(m, MessageData { head: vec![], body: vec![b'z'; 100_000] }).await.unwrap();
            spool.finish(&loc).unwrap();
        }
        // "Crash" now (the marks written first, as in the test above).
        spool.stop_marks();
        let _ = kept;
    });
    let r3 = root.clone();
    run(move || async move {
        let spool = Spool::open(&r3, 0, Box::new(|| true), Box::new(|| 1), Box::new(|| 1 << 20)).unwrap();
        let found = spool.recover(0, 1).unwrap();
        let mut names: Vec<String> = found.iter().map(|r| r.meta.mail_from.clone()).collect();
        names.sort();
        let mut want: Vec<String> = [9, 19, 29, 39].iter().map(|n| format!("s{n}@b.example")).collect();
        want.sort();
        // Messages finished in the active segment were marked done in place; finished ones in
        // recycled segments must not come back from their old epoch.
        assert_eq!(names, want);
        for r in &found {
            let n: usize = r.meta.mail_from[1..r.meta.mail_from.find('@').unwrap()].parse().unwrap();
            assert_eq!(spool.read(&r.location).unwrap().body, vec![b'a' + (n % 26) as u8; 100_000]);
        }
    });
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn recovery_never_touches_the_active_segment() {
    let root = tmp("active");
    let r2 = root.clone();
    run(move || async move {
        let spool = Spool::open(&r2, 0, Box::new(|| true), Box::new(|| 256), Box::new(|| 1 << 20)).unwrap();
        glommio::spawn_local(spool.clone().run_committer()).detach();
        spool.prepare().await.unwrap();
        // The fresh segment holds no record yet; a recovery scan must leave it alone.
        assert!(spool.recover(0, 1).unwrap().is_empty());
        let m = meta(&spool, 1);
        let (loc, _) = spool.store(m, MessageData { head: vec![], body: b"kept\r\n".to_vec() }).await.unwrap();
        assert!(loc.file.path().exists(), "the active segment is still on disk");
    });
    let r3 = root.clone();
    run(move || async move {
        let spool = Spool::open(&r3, 0, Box::new(|| true), Box::new(|| 256), Box::new(|| 1 << 20)).unwrap();
        let found = spool.recover(0, 1).unwrap();
        assert_eq!(found.len(), 1, "the message stored after the first scan survives a restart");
        assert_eq!(spool.read(&found[0].location).unwrap().body, b"kept\r\n");
    });
    std::fs::remove_dir_all(&root).unwrap();
}

/// Many writers at once, sizes on both sides of the own-file threshold, messages finished while
/// others are still being committed, segments rotating, recycling and becoming spares under the
/// writers: after a "crash", recovery finds exactly the unfinished messages, each byte intact.
/// Three seeds, so the interleavings differ from run to run of the loop, not from run to run of
/// the test.
#[test]
fn stress_many_writers_rotation_and_recovery() {
    for seed in [0x9E37_79B9u64, 0x85EB_CA6B, 0xC2B2_AE35] {
        let root = tmp(&format!("stress-{seed:x}"));
        let r2 = root.clone();
        let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, Vec<u8>)>::new()));
        let k2 = kept.clone();
        run(move || async move {
            let batch = std::rc::Rc::new(std::cell::Cell::new(1usize));
            let b2 = batch.clone();
            let spool = Spool::open(&r2, 0, Box::new(|| true), Box::new(move || b2.get()), Box::new(|| 1 << 20)).unwrap();
            glommio::spawn_local(spool.clone().run_committer()).detach();
            let mut tasks = Vec::new();
            for w in 0..24u64 {
                let (s, kept, batch) = (spool.clone(), k2.clone(), batch.clone());
                tasks.push(glommio::spawn_local(async move {
                    let mut x = seed ^ (w + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
                    let mut next = move || {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x
                    };
                    for n in 0..25u64 {
                        batch.set(1 + (next() % 64) as usize); // the knob changes under the writers
                        // Mostly small, some over half a segment (a file of their own).
                        let size = if next() % 10 == 0 { 500_000 + (next() % 300_000) as usize } else { 64 + (next() % 20_000) as usize };
                        let fill = (next() % 251) as u8;
                        let body: Vec<u8> = (0..size).map(|i| fill.wrapping_add(i as u8)).collect();
                        let mut m = meta(&s, (w * 100 + n) as usize);
                        m.mail_from = format!("w{w}n{n}@b.example");
                        let (loc, back) = s.store(m.clone(), MessageData { head: vec![], body }).await.unwrap();
                        if next() % 3 == 0 {
                            kept.lock().unwrap().push((m.mail_from, back.body));
                        } else {
                            s.set_status(&loc, 0, RcptStatus::Delivered).unwrap();
                            s.set_status(&loc, 1, RcptStatus::Delivered).unwrap();
                            s.finish(&loc).unwrap();
                        }
                        if next() % 4 == 0 {
                            glommio::yield_if_needed().await;
                        }
                    }
                }));
            }
            for t in tasks {
                t.await;
            }
            spool.stop_marks();
        });
        let r3 = root.clone();
        let want = kept.lock().unwrap().clone();
        run(move || async move {
            let spool = Spool::open(&r3, 0, Box::new(|| true), Box::new(|| 64), Box::new(|| 1 << 20)).unwrap();
            let found = spool.recover(0, 1).unwrap();
            let mut got: Vec<(String, Vec<u8>)> =
                found.iter().map(|r| (r.meta.mail_from.clone(), spool.read(&r.location).unwrap().body)).collect();
            got.sort();
            let mut want = want;
            want.sort();
            assert_eq!(got.len(), want.len(), "seed {seed:x}: exactly the unfinished messages");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0, w.0, "seed {seed:x}");
                assert!(g.1 == w.1, "seed {seed:x}: {} read back different bytes", g.0);
            }
        });
        std::fs::remove_dir_all(&root).unwrap();
    }
}
