//! The configuration loader: TOML text through `SIGNET_...` overrides and every validation rule.
//! Any text must give a `Config` or a `ConfigError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::from_toml(text, "fuzz.toml", std::iter::empty());
    let env = [("SIGNET_SERVER__MAX_CONNECTIONS".to_string(), "0".to_string())];
    let _ = Config::from_toml(text, "fuzz.toml", env.into_iter());
});
