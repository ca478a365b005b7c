//! The two-person rule (DESIGN.md "HTTP API v1", `[approvals] require`): an admin request of a
//! held kind (`destroy`, `import`, a forced rotation) is checked as far as it can be now (an
//! unknown key set or key, a key in use, a key pair that cannot be imported are refused at once),
//! then stored as a pending approval and answered 202. A different admin client approves it
//! (the stored request is carried out then, as its requester's, and its result returned) or
//! rejects it; the requester may reject (withdraw) their own, never approve it. Approvals expire
//! after `[approvals] expire`. A revocation is never held, even forced: it is the emergency path.
//! The audit trail records `approval_requested`, then `approval_approved` (requester and
//! approver) right before the change itself, or `approval_rejected`, or, once one lapsed
//! undecided, `approval_expired` (with its requester; recorded by the lease holder's scheduler).
//!
//! An approval is carried out only on the state its requester saw: a held import only if the
//! token object is still the key pair (kid) requested, a forced rotation only if the key set's
//! active key (and next key, if it had one) are still those recorded with the request, a
//! destruction only if the key is still destroyable. Otherwise 409 `approval_stale` (or the
//! destruction's own refusal), checked before the approval is marked approved and again under the
//! operator lock when it is carried out.

use serde::Serialize;
use serde_json::{Value, json};

use super::held_keys::{SeenKeys, held_keys};
use super::keygen::SCHEDULER;
use super::{ApprovalRefusal, ImportBy, KeyEntry, Rfc3339, Service, ServiceError};
use crate::config::Approvable;
use crate::keys::{Approval, KeyRecord, NewEvent, StoreError};

/// What an admin request led to: carried out, or held for a second admin.
#[derive(Debug)]
pub(crate) enum Held<T> {
    Done(T),
    Pending(ApprovalView),
}

/// The result of an approved request, as its own route answers it.
#[derive(Debug)]
pub(crate) enum Executed {
    Destroyed(KeyEntry),
    Imported(KeyEntry),
    Rotated(KeyRecord),
}

/// A pending (or decided) approval as `/v1/approvals` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ApprovalView {
    pub(crate) id: String,
    /// `destroy`, `import` or `rotate` (forced).
    pub(crate) action: String,
    pub(crate) key_set: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kid: Option<String>,
    pub(crate) requested_by: String,
    pub(crate) requested_at: Rfc3339,
    pub(crate) expires_at: Rfc3339,
    /// `pending`, `approved`, `rejected` or `expired`.
    pub(crate) status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) decided_at: Option<Rfc3339>,
}

impl ApprovalView {
    fn new(a: &Approval, now: i64) -> Self {
        Self {
            id: a.id.clone(),
            action: a.action.clone(),
            key_set: a.key_set.clone(),
            kid: a.kid.clone(),
            requested_by: a.requested_by.clone(),
            requested_at: Rfc3339(a.requested_at),
            expires_at: Rfc3339(a.expires_at),
            status: a.status_at(now).to_string(),
            decided_by: a.decided_by.clone(),
            decided_at: a.decided_at.map(Rfc3339),
        }
    }
}

/// 16 random bytes, hex: an approval id nobody can guess.
fn new_id() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 16];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| ServiceError::Internal("no random bytes for an approval id"))?;
    Ok(hex::encode(bytes))
}

impl Service {
    /// Stores `request` (`action` on `set`, key `kid`) as a pending approval of `actor`.
    async fn hold(
        &self,
        action: &str,
        set: &str,
        kid: Option<&str>,
        request: Value,
        actor: &str,
    ) -> Result<ApprovalView, ServiceError> {
        let now = self.now();
        let approval = Approval {
            id: new_id()?,
            action: action.into(),
            key_set: set.into(),
            kid: kid.map(str::to_string),
            request: request.to_string(),
            requested_by: actor.into(),
            requested_at: now,
            expires_at: now + self.config.approvals.expire.as_secs() as i64,
            status: "pending".into(),
            decided_by: None,
            decided_at: None,
        };
        let event = NewEvent::new(now, actor, "approval_requested")
            .set(set)
            .detail(json!({
                "approval": approval.id, "action": action, "kid": kid, "request": request,
                "expires_at": approval.expires_at,
            }));
        self.store.add_approval(&approval, &event).await?;
        Ok(ApprovalView::new(&approval, now))
    }

    /// `DELETE .../keys/{kid}` under the two-person rule.
    pub(crate) async fn destroy_or_hold(
        &self,
        set: &str,
        kid: &str,
        actor: &str,
    ) -> Result<Held<KeyEntry>, ServiceError> {
        let cfg = self.key_set(set)?;
        if !self.config.approvals.requires(Approvable::Destroy) {
            return Ok(Held::Done(self.destroy(set, kid, actor).await?));
        }
        self.store_reachable()?;
        self.destroyable(cfg, kid, self.now())?;
        let request = json!({ "kid": kid });
        let held = self.hold("destroy", set, Some(kid), request, actor).await?;
        Ok(Held::Pending(held))
    }

    /// `POST .../keys/import` under the two-person rule.
    pub(crate) async fn import_or_hold(
        &self,
        set: &str,
        by: ImportBy,
        accept_exposed: bool,
        actor: &str,
    ) -> Result<Held<KeyEntry>, ServiceError> {
        let cfg = self.key_set(set)?;
        if !self.config.approvals.requires(Approvable::Import) {
            return Ok(Held::Done(
                self.import(set, by, accept_exposed, actor).await?,
            ));
        }
        self.store_reachable()?;
        let kid = self.check_import(cfg, &by, accept_exposed).await?;
        let mut request = match &by {
            ImportBy::Id(id) => json!({ "id": id }),
            ImportBy::Label(label) => json!({ "label": label }),
        };
        request["accept_exposed_material"] = json!(accept_exposed);
        let held = self.hold("import", set, Some(&kid), request, actor).await?;
        Ok(Held::Pending(held))
    }

    /// `POST .../rotate` under the two-person rule: only a forced rotation is held.
    pub(crate) async fn rotate_or_hold(
        &self,
        set: &str,
        activate_at: Option<i64>,
        force: bool,
        actor: &str,
    ) -> Result<Held<KeyRecord>, ServiceError> {
        self.key_set(set)?;
        if !(force && self.config.approvals.requires(Approvable::Force)) {
            return Ok(Held::Done(
                self.rotate(set, activate_at, force, actor).await?,
            ));
        }
        self.store_reachable()?;
        if activate_at.is_some_and(|at| at < self.now()) {
            return Err(super::Invalid::ActivateAtInPast.into());
        }
        let seen = SeenKeys::of(&self.records(set), self.now());
        let request = json!({
            "activate_at": activate_at, "force": true,
            "active": seen.active, "next": seen.next, "next_activate_at": seen.next_at,
        });
        let held = self.hold("rotate", set, None, request, actor).await?;
        Ok(Held::Pending(held))
    }

    /// Approvals pending now, oldest first.
    pub(crate) async fn pending_approvals(&self) -> Result<Vec<ApprovalView>, ServiceError> {
        let now = self.now();
        let all = self.store.pending_approvals(now).await?;
        Ok(all.iter().map(|a| ApprovalView::new(a, now)).collect())
    }

    /// The approval `id` if it can still be decided at `now`.
    async fn open_approval(&self, id: &str, now: i64) -> Result<Approval, ServiceError> {
        self.store_reachable()?;
        let a = self
            .store
            .approval(id)
            .await?
            .ok_or_else(|| ApprovalRefusal::NotFound(id.to_string()))?;
        match a.status_at(now) {
            "pending" => Ok(a),
            "expired" => Err(ApprovalRefusal::Expired {
                id: a.id,
                at: a.expires_at,
            }
            .into()),
            status => Err(ApprovalRefusal::Decided {
                id: a.id.clone(),
                status: status.to_string(),
            }
            .into()),
        }
    }

    /// Records the decision (`approved`/`rejected`) of `by`; another decision that came first is
    /// `approval_decided`.
    async fn decide(&self, a: &Approval, status: &str, by: &str) -> Result<(), ServiceError> {
        let now = self.now();
        let role = if status == "approved" {
            "approved_by"
        } else {
            "rejected_by"
        };
        let mut event = NewEvent::new(now, by, &format!("approval_{status}")).detail(json!({
            "approval": a.id, "action": a.action, "requested_by": a.requested_by, role: by,
            "request": serde_json::from_str::<Value>(&a.request).unwrap_or(Value::Null),
        }));
        event = match &a.kid {
            Some(kid) => event.key(&a.key_set, kid),
            None => event.set(&a.key_set),
        };
        match self
            .store
            .decide_approval(&a.id, status, by, now, &event)
            .await
        {
            Err(StoreError::Conflict(_)) => Err(ApprovalRefusal::Decided {
                id: a.id.clone(),
                status: "decided".into(),
            }
            .into()),
            r => Ok(r?),
        }
    }

    /// The scheduler's part (lease holder only): records each approval whose time ran out
    /// undecided as `expired`, with an `approval_expired` event naming its requester, so that
    /// the trail says what became of every held request.
    pub(super) async fn expire_lapsed_approvals(&self) -> Result<(), ServiceError> {
        let now = self.now();
        for a in self.store.lapsed_approvals(now).await? {
            let mut event = NewEvent::new(now, SCHEDULER, "approval_expired").detail(json!({
                "approval": a.id, "action": a.action, "requested_by": a.requested_by,
                "expires_at": a.expires_at,
                "request": serde_json::from_str::<Value>(&a.request).unwrap_or(Value::Null),
            }));
            event = match &a.kid {
                Some(kid) => event.key(&a.key_set, kid),
                None => event.set(&a.key_set),
            };
            match self.store.expire_approval(&a.id, now, &event).await {
                Err(StoreError::Conflict(_)) => {} // decided or expired by another replica
                r => r?,
            }
        }
        Ok(())
    }

    /// Approves `id` as `by` (never its requester) and carries out the held request.
    pub(crate) async fn approve(&self, id: &str, by: &str) -> Result<Executed, ServiceError> {
        let a = self.open_approval(id, self.now()).await?;
        if a.requested_by == by {
            return Err(ApprovalRefusal::SelfApproval(a.id).into());
        }
        self.still_doable(&a)?;
        self.decide(&a, "approved", by).await?;
        self.execute(&a).await
    }

    /// Refuses an approval of a change that can no longer be made as requested (the key set's
    /// keys changed, the key was destroyed or is in use again) before it is marked approved.
    /// `execute` checks again, under the operator lock.
    fn still_doable(&self, a: &Approval) -> Result<(), ServiceError> {
        let cfg = self.key_set(&a.key_set)?;
        match (a.action.as_str(), a.kid.as_deref()) {
            ("destroy", Some(kid)) => self.destroyable(cfg, kid, self.now()).map(|_| ()),
            ("rotate", _) => match held_keys(&a.request) {
                Some(seen) => seen.still(&a.id, &self.records(&a.key_set), self.now()),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Rejects `id` as `by` (the requester may withdraw their own).
    pub(crate) async fn reject(&self, id: &str, by: &str) -> Result<ApprovalView, ServiceError> {
        let a = self.open_approval(id, self.now()).await?;
        self.decide(&a, "rejected", by).await?;
        let decided = self.store.approval(id).await?.unwrap_or(a);
        Ok(ApprovalView::new(&decided, self.now()))
    }

    /// Carries out an approved request, as its requester's.
    async fn execute(&self, a: &Approval) -> Result<Executed, ServiceError> {
        let req: Value = serde_json::from_str(&a.request)
            .map_err(|_| ServiceError::Internal("a stored approval's request does not parse"))?;
        let (set, actor) = (a.key_set.as_str(), a.requested_by.as_str());
        let text = |k: &str| req[k].as_str().map(str::to_string);
        match a.action.as_str() {
            "destroy" => {
                let kid = a.kid.as_deref().unwrap_or_default();
                Ok(Executed::Destroyed(self.destroy(set, kid, actor).await?))
            }
            "import" => {
                let by = match (text("id"), text("label")) {
                    (Some(id), _) => ImportBy::Id(id),
                    (None, Some(label)) => ImportBy::Label(label),
                    (None, None) => {
                        return Err(ServiceError::Internal("a held import names no key"));
                    }
                };
                let accept = req["accept_exposed_material"].as_bool().unwrap_or(false);
                let expect = a.kid.as_deref().map(|kid| (a.id.as_str(), kid));
                Ok(Executed::Imported(
                    self.import_expecting(set, by, accept, actor, expect)
                        .await?,
                ))
            }
            "rotate" => {
                let at = req["activate_at"].as_i64();
                let seen = held_keys(&a.request);
                let expect = seen.as_ref().map(|s| (a.id.as_str(), s));
                Ok(Executed::Rotated(
                    self.rotate_expecting(set, at, true, actor, expect).await?,
                ))
            }
            _ => Err(ServiceError::Internal(
                "a stored approval of an unknown action",
            )),
        }
    }
}
