//! The audit sink's file: what it opens, creates and cuts.

use super::*;

fn line(seq: i64) -> String {
    format!("{{\"hash\":\"h{seq}\",\"seq\":{seq}}}\n")
}

#[test]
fn a_partial_last_line_is_cut_off_and_the_event_before_it_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path: std::path::PathBuf = dir.path().join("a.jsonl");
    assert_eq!(last_event(&path), Ok(None));
    let whole = line(1) + &line(2);
    std::fs::write(&path, whole.clone() + "{\"seq\":3,\"hash\":\"ab").unwrap();
    assert_eq!(last_event(&path), Ok(Some((2, "h2".into()))));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
    std::fs::write(&path, "{\"seq\":1,\"ha").unwrap();
    assert_eq!(last_event(&path), Ok(None));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    std::fs::write(&path, "not json\n").unwrap();
    assert!(
        last_event(&path)
            .unwrap_err()
            .contains("not an audit event")
    );
}

#[test]
fn a_file_that_is_not_an_audit_trail_is_never_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signet.db");
    // A binary file (a database) whose last byte is not a newline.
    let mut db = b"SQLite format 3\0\x10\x00\n\x01\x02".to_vec();
    db.extend(std::iter::repeat_n(7u8, 100));
    std::fs::write(&path, &db).unwrap();
    assert!(
        last_event(&path)
            .unwrap_err()
            .contains("not an audit event")
    );
    assert_eq!(std::fs::read(&path).unwrap(), db);
    // No newline at all in the last MiB: nothing is known of the line; untouched.
    let big = vec![b'{'; (TAIL + 10) as usize];
    std::fs::write(&path, &big).unwrap();
    assert!(last_event(&path).is_err());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), TAIL + 10);
}

#[test]
fn the_file_is_created_private_and_only_a_regular_file_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    append(&path, line(1).as_bytes()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    append(&path, line(2).as_bytes()).unwrap();
    assert_eq!(last_event(&path), Ok(Some((2, "h2".into()))));

    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "keep\n").unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = append(&link, line(1).as_bytes()).unwrap_err();
    assert!(e.contains("a symbolic link"), "{e}");
    assert!(last_event(&link).unwrap_err().contains("a symbolic link"));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");

    let e = append(dir.path(), line(1).as_bytes()).unwrap_err();
    assert!(e.contains("a directory"), "{e}");

    // A FIFO: refused at once, not an open that waits for a reader.
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let e = append(&fifo, line(1).as_bytes()).unwrap_err();
    assert!(e.contains("not a regular file"), "{e}");
    assert!(
        last_event(&fifo)
            .unwrap_err()
            .contains("not a regular file")
    );
}

#[test]
fn a_failed_write_is_cut_back_but_a_truncated_file_never_grown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, line(1) + "{\"seq\":2,\"ha").unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let len = line(1).len() as u64;
    cut_back(&file, len);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), line(1));
    // `copytruncate` emptied the file between the write's start and its failure.
    file.set_len(0).unwrap();
    cut_back(&file, len);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
}
