//! The audit sink (`[audit] sink`): every event of the store's hash chain streamed as one JSON
//! line (the JSON of `GET /v1/audit`, with `seq`, `prev_hash` and `hash`), in chain order, for a
//! SIEM that can check the chain itself (`signet audit verify --file`).
//!
//! The store stays the source of truth and the sink is fed from it: a background task reads the
//! events after the last seq written (every [`POLL`], in batches of [`BATCH`]), so events written
//! by another replica, or while the sink could not be written, are streamed too. Signing never
//! waits on it. A file sink resumes after the seq of the file's last line at start-up (a partial
//! last line, from a write cut short, is cut off and written again); `stdout` has no memory and
//! streams the whole chain at each start (the SIEM drops seqs it has). A batch that cannot be
//! written (disk full, permission, a directory gone) is cut off the file again, the sink reports
//! `down` in `/readyz` (the replica `degraded`: signing goes on), and the same events are written
//! once it can, none lost and none twice.
//!
//! The file is created with mode 0600 and must be a regular file (a symlink, FIFO or directory is
//! refused and shows in `/readyz`); at start-up its last line must be this store's event of that
//! seq, so a file of another trail is never appended to. Rotation: `copytruncate` or
//! move-and-create both work (the file is opened for each batch); the next file starts mid-chain.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Service;
use super::health::ComponentState;
use crate::config::AuditSink;
use crate::keys::audit_json;
use crate::support::{read, write};

/// How often the task looks for new events.
const POLL: Duration = Duration::from_millis(250);
/// Events read from the store and written at once.
const BATCH: i64 = 500;
/// How much of the end of a file is read to find its last line at start-up.
const TAIL: u64 = 1 << 20;

/// What the sink has done so far (for `/readyz` and `/metrics`).
#[derive(Debug, Clone, Default)]
pub(crate) struct SinkStatus {
    /// The last seq written (0: none).
    pub(crate) written: i64,
    /// The greatest seq read from the store.
    pub(crate) seen: i64,
    /// Since when writing fails, and why.
    pub(crate) down: Option<(i64, String)>,
}

/// The sink's writing end, owned by its task.
pub(super) struct SinkWriter {
    sink: AuditSink,
    /// The last seq in the sink, once known (a file's is read from its last line).
    position: Option<i64>,
}

impl SinkWriter {
    pub(super) fn new(sink: AuditSink) -> Self {
        let position = match sink {
            AuditSink::Stdout => Some(0),
            AuditSink::File(_) => None,
        };
        Self { sink, position }
    }

    /// Runs `f` on a blocking thread (file and stdout writes block).
    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| format!("the sink's writer failed: {e}"))?
    }

    async fn write(&mut self, lines: String, last: i64) -> Result<(), String> {
        let sink = self.sink.clone();
        Self::blocking(move || match sink {
            AuditSink::Stdout => {
                let mut out = std::io::stdout().lock();
                (out.write_all(lines.as_bytes()).and_then(|()| out.flush()))
                    .map_err(|e| format!("stdout: {e}"))
            }
            AuditSink::File(path) => append(&path, lines.as_bytes()),
        })
        .await?;
        self.position = Some(last);
        Ok(())
    }
}

/// Opens the sink's file to append (`write`) or to read its end (`read`), creating it with mode
/// 0600 (it holds the audit trail). Anything but a regular file is refused before it is opened:
/// a symlink (it could point the service's writes, and the cut of a partial last line, at any
/// file the service may write), a directory, a FIFO (an open for writing would block the task
/// until a reader comes) or a device.
fn open_sink(path: &Path, read: bool) -> Result<File, String> {
    let shown = |e: std::io::Error| format!("{}: {e}", path.display());
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => {}
        Ok(m) => {
            let what = if m.file_type().is_symlink() {
                "a symbolic link"
            } else if m.is_dir() {
                "a directory"
            } else {
                "not a regular file (a FIFO, socket or device)"
            };
            return Err(format!(
                "{} is {what}; the audit sink writes only to a regular file",
                path.display()
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !read => {}
        Err(e) => return Err(shown(e)),
    }
    let mut options = std::fs::OpenOptions::new();
    if read {
        options.read(true).write(true);
    } else {
        options.append(true).create(true);
    }
    options.mode(0o600);
    let file = options.open(path).map_err(shown)?;
    if !file.metadata().map_err(shown)?.file_type().is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    Ok(file)
}

/// Appends `bytes` to `path` and syncs; on failure, cuts the file back to where it was.
fn append(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let shown = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = open_sink(path, false)?;
    let len = file.metadata().map_err(shown)?.len();
    match file.write_all(bytes).and_then(|()| file.sync_data()) {
        Ok(()) => Ok(()),
        Err(e) => {
            cut_back(&file, len);
            Err(shown(e))
        }
    }
}

/// Cuts what a failed write left past `len` off `file`. Only ever shrinks it: a file truncated
/// meanwhile (logrotate's `copytruncate`) is not grown back to `len` with zero bytes.
fn cut_back(file: &File, len: u64) {
    if file.metadata().is_ok_and(|m| m.len() > len) {
        let _ = file.set_len(len);
    }
}

/// The seq and hash of an audit event's JSON line, if it is one.
fn event_of(line: &[u8]) -> Option<(i64, String)> {
    let v = serde_json::from_slice::<serde_json::Value>(line).ok()?;
    Some((
        v.get("seq")?.as_i64()?,
        v.get("hash")?.as_str()?.to_string(),
    ))
}

/// The seq and hash of the file's last line (`None` if there is no file or no line). A last
/// line without its newline was cut short: it is cut off, to be written again, but only from a
/// file whose last whole line is an audit event (or that has no whole line and starts like one):
/// anything else is refused untouched.
fn last_event(path: &Path) -> Result<Option<(i64, String)>, String> {
    let shown = |e: std::io::Error| format!("{}: {e}", path.display());
    if let Err(e) = std::fs::symlink_metadata(path) {
        return match e.kind() {
            std::io::ErrorKind::NotFound => Ok(None),
            _ => Err(shown(e)),
        };
    }
    let mut file = open_sink(path, true)?;
    let meta = file.metadata().map_err(shown)?;
    if meta.permissions().mode() & 0o007 != 0 {
        tracing::warn!(path = %path.display(), "the audit sink's file can be read by anyone: chmod o-rwx it");
    }
    let len = meta.len();
    let start = len.saturating_sub(TAIL);
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(start)).map_err(shown)?;
    file.read_to_end(&mut tail).map_err(shown)?;
    let complete = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let not_ours = || {
        format!(
            "{}: the last line is not an audit event with a `seq` and `hash`; not appending to it",
            path.display()
        )
    };
    let last = match tail[..complete]
        .split(|b| *b == b'\n')
        .rev()
        .find(|l| !l.is_empty())
    {
        Some(line) => Some(event_of(line).ok_or_else(not_ours)?),
        None if start > 0 => return Err(not_ours()),
        None => None,
    };
    if complete < tail.len() {
        if last.is_none() && !tail.starts_with(b"{\"") {
            return Err(not_ours());
        }
        let keep = start + complete as u64;
        tracing::warn!(path = %path.display(), keep, "audit sink: cutting off a partial last line");
        file.set_len(keep).map_err(shown)?;
    }
    Ok(last)
}

impl Service {
    /// Streams what is new, then goes on in the background until the service is dropped.
    pub(super) async fn start_audit_sink(self: &Arc<Self>) {
        let Some(sink) = self.config.audit_sink.clone() else {
            return;
        };
        let mut writer = SinkWriter::new(sink);
        self.audit_sink_round(&mut writer).await;
        let weak: Weak<Service> = Arc::downgrade(self);
        let _task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL).await;
                let Some(service) = weak.upgrade() else {
                    return;
                };
                service.audit_sink_round(&mut writer).await;
            }
        });
    }

    /// The last seq in the sink: a file's is read from its last line once, and that line must be
    /// this store's event of that seq (same hash). A file of another trail (another deployment,
    /// a store restored from an older backup) is refused: appending to it would make a file
    /// that no longer verifies, or skip events.
    async fn sink_position(&self, writer: &mut SinkWriter) -> Result<i64, String> {
        if let Some(p) = writer.position {
            return Ok(p);
        }
        let AuditSink::File(path) = writer.sink.clone() else {
            return Ok(0);
        };
        let shown = path.display().to_string();
        let p = match SinkWriter::blocking(move || last_event(&path)).await? {
            None => 0,
            Some((seq, hash)) => {
                let ours = (self.store.audit_after(seq - 1, 1).await)
                    .map_err(|e| format!("the store cannot be read: {e}"))?;
                match ours.first() {
                    Some(e) if e.seq == seq && e.hash == hash => seq,
                    _ => {
                        return Err(format!(
                            "{shown}: its last line (seq {seq}) is not this store's event {seq}: \
                             the file holds another trail; not appending to it"
                        ));
                    }
                }
            }
        };
        writer.position = Some(p);
        Ok(p)
    }

    /// Writes every event after the sink's position, batch by batch, until none is left or a
    /// write fails.
    async fn audit_sink_round(&self, writer: &mut SinkWriter) {
        let mut after = match self.sink_position(writer).await {
            Ok(p) => p,
            Err(e) => return self.sink_failed(e, None),
        };
        loop {
            // A store that does not answer shows as the store in `/readyz`; try again later.
            let Ok(events) = self.store.audit_after(after, BATCH).await else {
                return;
            };
            let Some(last) = events.last().map(|e| e.seq) else {
                return self.sink_ok(after);
            };
            if events[0].seq != after + 1 {
                let e = format!(
                    "the store's trail goes from seq {after} to {}",
                    events[0].seq
                );
                return self.sink_failed(e, Some(last));
            }
            let lines: String = (events.iter())
                .map(|e| audit_json::to_json(e).to_string() + "\n")
                .collect();
            if let Err(e) = writer.write(lines, last).await {
                return self.sink_failed(e, Some(last));
            }
            after = last;
            self.sink_ok(after);
            if (events.len() as i64) < BATCH {
                return;
            }
        }
    }

    fn sink_ok(&self, written: i64) {
        let mut s = write(&self.audit_sink);
        if let Some((since, _)) = s.down.take() {
            tracing::info!(
                down_since = since,
                written,
                "the audit sink is written again"
            );
        }
        s.written = written;
        s.seen = s.seen.max(written);
    }

    fn sink_failed(&self, error: String, seen: Option<i64>) {
        metrics::counter!("signet_audit_sink_failures_total").increment(1);
        let now = self.now();
        let mut s = write(&self.audit_sink);
        s.seen = s.seen.max(seen.unwrap_or(0));
        if s.down.is_none() {
            tracing::error!(
                error,
                "the audit sink cannot be written; events wait in the store"
            );
        }
        let since = s.down.as_ref().map_or(now, |(since, _)| *since);
        s.down = Some((since, error));
    }

    /// The sink in `/readyz`, if one is configured.
    pub(crate) fn audit_sink_state(&self) -> Option<ComponentState> {
        self.config.audit_sink.as_ref()?;
        Some(match &read(&self.audit_sink).down {
            None => ComponentState::Up,
            Some((_, reason)) => ComponentState::Down {
                reason: reason.clone(),
            },
        })
    }

    /// What the sink has done, if one is configured (for `/metrics`).
    pub(crate) fn audit_sink_status(&self) -> Option<SinkStatus> {
        self.config.audit_sink.as_ref()?;
        Some(read(&self.audit_sink).clone())
    }
}

#[cfg(test)]
#[path = "audit_sink_tests.rs"]
mod tests;
