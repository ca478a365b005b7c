//! The Signet container image (`scripts/image`, here packaging the binary under test): started
//! with testcontainers as its unprivileged user, config and PIN file mounted, healthy by its own
//! health check, signing through SoftHSM2 in a second container (the p11-kit socket shared through
//! a bind mount); the JWT verifies against the JWKS the container publishes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::containers::{P11Server, available, build_image, mount_file_ro, remote_config};
use common::*;
use serde_json::json;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_signs_through_a_softhsm_container_and_its_jwks_verifies_the_jwt() {
    if !available("the_image_signs_through_a_softhsm_container_and_its_jwks_verifies_the_jwt") {
        return;
    }
    let tag = format!("{}-test", env!("CARGO_PKG_VERSION"));
    let (name, tag) = build_image(
        "scripts/image",
        &[
            "--binary",
            env!("CARGO_BIN_EXE_signet"),
            "--tag",
            &format!("signet:{tag}"),
        ],
    );
    let user = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Config.User}}"])
        .arg(format!("{name}:{tag}"))
        .output()
        .expect("docker image inspect");
    let user = String::from_utf8_lossy(&user.stdout).trim().to_string();
    let uid: u32 = user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("the image runs as a numeric user, not {user:?}"));
    assert_ne!(uid, 0, "the image runs as root");

    // SoftHSM in its own container, reachable by the image's user only.
    let token = Token::new("image");
    let hsm = P11Server::start_for(&token, "hsm", Some(uid)).await;

    // Config and PIN file as a deployment mounts them; the store in the image's state directory.
    let host = tempfile::tempdir().unwrap();
    let port = free_port();
    let sets = [
        set("at", "access_token", "ES256"),
        set("id", "id_token", "PS256"),
    ];
    let cfg = remote_config(
        &token,
        std::path::Path::new("/var/lib/signet"),
        port,
        &sets,
        Duration::from_secs(5),
    )
    .replace(
        "pin_env = \"SIGNET_HSM_PIN\"",
        "pin_file = \"/run/secrets/hsm-pin\"",
    );
    let config_path = host.path().join("signet.toml");
    std::fs::write(&config_path, &cfg).unwrap();
    let pin_path = host.path().join("hsm-pin");
    std::fs::write(&pin_path, format!("{PIN}\n")).unwrap();
    std::os::unix::fs::chown(&pin_path, Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(&pin_path, std::fs::Permissions::from_mode(0o400)).unwrap();

    let dir = token.dir.path().to_str().unwrap();
    let signet = GenericImage::new(name.as_str(), tag.as_str())
        .with_wait_for(WaitFor::healthcheck())
        .with_network("host")
        .with_mount(mount_file_ro(&config_path, "/etc/signet/signet.toml"))
        .with_mount(mount_file_ro(&pin_path, "/run/secrets/hsm-pin"))
        .with_mount(Mount::bind_mount(dir, dir))
        .with_env_var("P11_KIT_SERVER_ADDRESS", hsm.address())
        .with_env_var(
            "SIGNET_HEALTH_URL",
            format!("http://127.0.0.1:{port}/healthz"),
        )
        .with_startup_timeout(Duration::from_secs(120))
        .start()
        .await;
    let signet = match signet {
        Ok(c) => c,
        Err(e) => panic!("the Signet container did not become healthy: {e}"),
    };
    let logs = || async {
        String::from_utf8_lossy(&signet.stderr_to_vec().await.unwrap_or_default()).into_owned()
    };

    // Healthy is not ready: wait for the key sets to get their first keys.
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the container is not ready:\n{}",
            logs().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let jwks: serde_json::Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (set, alg) in [("at", "ES256"), ("id", "PS256")] {
        let now = now();
        let claims = json!({"iss": ISSUER, "sub": "alice", "aud": "client-1", "iat": now,
            "exp": now + 300, "jti": "j-1", "client_id": "client-1"});
        let url = format!("{base}/v1/key-sets/{set}/sign/jwt");
        let (status, body) =
            post_json(&http, &url, Some(SIGNER_TOKEN), &json!({"claims": claims})).await;
        assert_eq!(status, 200, "{body}\n{}", logs().await);
        assert_eq!(body["alg"], alg);
        let (header, payload) = verify_jwt(body["jwt"].as_str().unwrap(), &jwks);
        assert_eq!(header["kid"], body["kid"]);
        assert_eq!(payload["sub"], "alice");
    }

    // The service runs as the image's user.
    let mut id = signet
        .exec(testcontainers::core::ExecCommand::new(["id", "-u"]))
        .await
        .unwrap();
    let id = String::from_utf8_lossy(&id.stdout_to_vec().await.unwrap()).into_owned();
    assert_eq!(id.trim(), uid.to_string());
}
