//! `[approvals]`: the two-person rule (DESIGN.md "HTTP API v1"). The admin actions listed in
//! `require` are held as pending approvals until a different admin client approves them; they
//! expire after `expire`. Revocation is never held (it is the emergency path).

use std::collections::BTreeSet;
use std::time::Duration;

use super::raw::RawApprovals;
use super::validate::{Result, nonzero};

/// How long a pending approval waits for a second admin by default.
const DEFAULT_EXPIRE: &str = "24h";

/// An admin action the two-person rule can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Approvable {
    /// `DELETE .../keys/{kid}`.
    Destroy,
    /// `POST .../keys/import`.
    Import,
    /// `POST .../rotate` with `force: true` (a revocation, even forced, is never held).
    Force,
}

impl Approvable {
    pub fn name(self) -> &'static str {
        match self {
            Self::Destroy => "destroy",
            Self::Import => "import",
            Self::Force => "force",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        [Self::Destroy, Self::Import, Self::Force]
            .into_iter()
            .find(|a| a.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalsConfig {
    /// The actions one admin cannot carry out alone (empty: none, the default).
    pub require: BTreeSet<Approvable>,
    /// How long a pending approval may wait for its second admin.
    pub expire: Duration,
}

impl ApprovalsConfig {
    pub fn requires(&self, action: Approvable) -> bool {
        self.require.contains(&action)
    }
}

pub(super) fn approvals(raw: Option<&RawApprovals>) -> Result<ApprovalsConfig> {
    let mut require = BTreeSet::new();
    for (i, name) in raw
        .map(|r| r.require.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let action = Approvable::from_name(name).ok_or_else(|| {
            (
                format!("approvals.require[{i}]"),
                format!("unknown action `{name}` (known: \"destroy\", \"import\", \"force\")"),
            )
        })?;
        require.insert(action);
    }
    let expire = nonzero(
        "approvals.expire",
        raw.and_then(|r| r.expire.as_deref()),
        DEFAULT_EXPIRE,
    )?;
    Ok(ApprovalsConfig { require, expire })
}
