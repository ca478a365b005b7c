//! `[audit] sink`: where the audit trail is streamed for a SIEM (DESIGN.md "State"), checked at
//! start-up so that a wrong path is a config error naming `audit.sink`, not a sink that is down.

use std::path::PathBuf;

use super::AuditSink;
use super::validate::Result;

/// `[audit] sink`: `"stdout"` or `"file:<path>"` (a path that is not a directory).
pub(super) fn audit_sink(value: Option<&str>) -> Result<Option<AuditSink>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let err = |reason: String| Err(("audit.sink".to_string(), reason));
    if value == "stdout" {
        return Ok(Some(AuditSink::Stdout));
    }
    let Some(path) = value.strip_prefix("file:") else {
        return err(format!(
            "`{value}` is neither \"stdout\" nor \"file:<path>\""
        ));
    };
    if path.trim().is_empty() {
        return err("`file:` needs a path".into());
    }
    if std::path::Path::new(path).is_dir() {
        return err(format!("`{path}` is a directory, not a file"));
    }
    // The sink writes only to a regular file (see `service::audit_sink`): say so at start-up.
    if let Ok(m) = std::fs::symlink_metadata(path)
        && !m.file_type().is_file()
    {
        return err(format!(
            "`{path}` is a symbolic link, FIFO or device, not a regular file"
        ));
    }
    Ok(Some(AuditSink::File(PathBuf::from(path))))
}
