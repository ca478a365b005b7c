//! Finding a token among the module's slots (by label or serial: SoftHSM's slot ids are random)
//! and describing it for `signet hsm info`.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::slot::Slot;

use super::{BackendConfig, HsmError};

/// What `signet hsm info` shows of a token.
#[derive(Debug, Clone)]
pub struct TokenDescription {
    pub slot: u64,
    pub(crate) label: String,
    pub(crate) manufacturer: String,
    pub(crate) model: String,
    pub(crate) library: String,
    pub(crate) mechanisms: Vec<MechanismType>,
}

/// Finds the configured token; slot ids are random in SoftHSM, so by label or serial only.
pub(super) fn find_token(
    pkcs11: &Pkcs11,
    config: &BackendConfig,
) -> Result<(Slot, TokenDescription), HsmError> {
    let wanted = match (&config.token_label, &config.token_serial) {
        (Some(l), _) => format!("labelled `{l}`"),
        (None, Some(s)) => format!("with serial `{s}`"),
        (None, None) => "(none configured)".to_string(),
    };
    let library = pkcs11
        .get_library_info()
        .map(|i| format!("{} {}", i.manufacturer_id(), i.library_description()))
        .unwrap_or_default();
    let slots = pkcs11
        .get_slots_with_token()
        .map_err(HsmError::call("C_GetSlotList"))?;
    for slot in slots {
        let Ok(info) = pkcs11.get_token_info(slot) else {
            continue;
        };
        let label_ok = config
            .token_label
            .as_deref()
            .is_none_or(|l| info.label().trim() == l);
        let serial_ok = config
            .token_serial
            .as_deref()
            .is_none_or(|s| info.serial_number().trim() == s);
        if label_ok && serial_ok && info.token_initialized() {
            let mechanisms = pkcs11
                .get_mechanism_list(slot)
                .map_err(HsmError::call("C_GetMechanismList"))?;
            let description = TokenDescription {
                slot: slot.id(),
                label: info.label().trim().to_string(),
                manufacturer: info.manufacturer_id().trim().to_string(),
                model: info.model().trim().to_string(),
                library,
                mechanisms,
            };
            return Ok((slot, description));
        }
    }
    Err(HsmError::TokenNotFound(wanted))
}

/// Every token the module shows, for `signet hsm info` before a token is configured.
pub(crate) fn list_tokens(
    module: &std::path::Path,
) -> Result<Vec<(u64, String, String)>, HsmError> {
    let module_err = |source| HsmError::Module {
        path: module.display().to_string(),
        source,
    };
    let pkcs11 = Pkcs11::new(module).map_err(module_err)?;
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(module_err(e)),
    }
    let mut out = Vec::new();
    for slot in pkcs11
        .get_slots_with_token()
        .map_err(HsmError::call("C_GetSlotList"))?
    {
        if let Ok(info) = pkcs11.get_token_info(slot) {
            out.push((
                slot.id(),
                info.label().trim().to_string(),
                info.serial_number().trim().to_string(),
            ));
        }
    }
    Ok(out)
}
