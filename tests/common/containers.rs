//! Container fixtures: a remote HSM is `p11-kit server` exporting a SoftHSM2 token from a container
//! of the base image (`scripts/base-image`: SoftHSM2, p11-kit), started with testcontainers, so that a test kills,
//! pauses and restarts the HSM through the container API, as an HSM host on the network dies or
//! freezes. The token is a host temporary directory ([`Token`]) bind-mounted at the same path in
//! every container: config and socket paths mean the same on both sides, the host can open the
//! token natively beside the containers, and several servers can export one token.
//!
//! Every container test starts with [`available`]: without a Docker engine it fails and says why.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use testcontainers::core::{AccessMode, ExecCommand, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::{Set, Signet, Token, config, free_port, repo};

pub const P11_KIT_CLIENT: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so";

/// Why no Docker engine can be used at `host` (`DOCKER_HOST` form; `None`: the environment's), or
/// `None` when one answers.
pub fn engine_problem(host: Option<&str>) -> Option<String> {
    let mut cmd = Command::new("timeout");
    cmd.args(["20", "docker", "version", "--format", "{{.Server.Version}}"]);
    if let Some(h) = host {
        cmd.env("DOCKER_HOST", h);
    }
    let shown = host
        .map(str::to_string)
        .or_else(|| std::env::var("DOCKER_HOST").ok())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
    match cmd.output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "no Docker engine answers at {shown}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run the docker client: {e}")),
    }
}

/// Whether this container test can run. With an engine: `true`. Without one the test fails with
/// the reason, unless `SIGNET_SKIP_CONTAINERS=1` (a developer machine without Docker; CI never
/// sets it): then the reason goes to stderr, past the harness's capture, and the test returns
/// `false` to end itself.
pub fn available(test: &str) -> bool {
    let Some(problem) = engine_problem(None) else {
        return true;
    };
    if std::env::var("SIGNET_SKIP_CONTAINERS").as_deref() == Ok("1") {
        // Straight to stderr: the test harness captures `eprintln!` of passing tests.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: {problem} (SIGNET_SKIP_CONTAINERS=1)"
        );
        return false;
    }
    panic!(
        "{test} needs a Docker engine, and {problem}.\n\
         `SIGNET_SETUP_TESTS=1 source scripts/setup` installs docker.io and starts dockerd; on a \
         developer machine without Docker, SIGNET_SKIP_CONTAINERS=1 skips the container tests."
    );
}

/// Runs a build script of the repository that prints an image reference; its last line.
pub fn build_image(script: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(repo().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let image = stdout.lines().last().unwrap_or_default();
    let (name, tag) = image
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{script} printed no image reference: {stdout}"));
    (name.to_string(), tag.to_string())
}

/// The SoftHSM2 + p11-kit image, built once per test binary (a no-op when its recipe is unchanged).
fn fixture_image() -> &'static (String, String) {
    static IMAGE: OnceLock<(String, String)> = OnceLock::new();
    IMAGE.get_or_init(|| build_image("scripts/base-image", &[]))
}

/// Waits until something accepts connections on the Unix socket `path`.
pub async fn wait_for_socket(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while UnixStream::connect(path).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what}: nothing listens on {} after 30 s",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One `p11-kit server` exporting a token on `<token dir>/<name>.sock`, in a container of its own.
/// Several servers may export one token (each is killed, paused and restarted on its own).
pub struct P11Server {
    container: ContainerAsync<GenericImage>,
    pub socket: PathBuf,
}

impl P11Server {
    /// Starts a server any local user of the host may connect to.
    pub async fn start(token: &Token, name: &str) -> P11Server {
        Self::start_for(token, name, None).await
    }

    /// Starts a server; with `uid`, only that user may connect (p11-kit chowns the socket to it and
    /// checks each peer's credentials), as for a Signet container running as that user.
    pub async fn start_for(token: &Token, name: &str, uid: Option<u32>) -> P11Server {
        let (image, tag) = fixture_image();
        let dir = token.dir.path();
        let socket = dir.join(format!("{name}.sock"));
        let mut access = String::new();
        if let Some(uid) = uid {
            // Let that user reach the socket; the token files themselves stay root's (0600).
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
                .expect("chmod token dir");
            access = format!(
                "grep -q '^client:' /etc/passwd || {{ echo 'client:x:{uid}:{uid}::/:/bin/false' \
                 >>/etc/passwd; echo 'client:x:{uid}:' >>/etc/group; }}; "
            );
            access.push_str("set -- -u client -g client; ");
        }
        let script = format!(
            "{access}exec p11-kit server -f \"$@\" --provider /usr/lib/softhsm/libsofthsm2.so \
             -n '{}' 'pkcs11:token={}'",
            socket.display(),
            token.label
        );
        let path = dir.to_str().expect("UTF-8 temp dir");
        let container = GenericImage::new(image.as_str(), tag.as_str())
            .with_entrypoint("/bin/sh")
            .with_cmd(["-c", script.as_str()])
            .with_network("host")
            .with_mount(Mount::bind_mount(path, path))
            .with_env_var("SOFTHSM2_CONF", token.conf().to_str().expect("UTF-8 path"))
            .start()
            .await
            .unwrap_or_else(|e| panic!("start the {name} p11-kit server container: {e}"));
        let server = P11Server { container, socket };
        server.wait_listening().await;
        server
    }

    /// `P11_KIT_SERVER_ADDRESS` for a client of this server.
    pub fn address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }

    pub fn container(&self) -> &ContainerAsync<GenericImage> {
        &self.container
    }

    async fn wait_listening(&self) {
        wait_for_socket(&self.socket, "p11-kit server").await;
    }

    /// A dead HSM: `docker stop -t 0` (SIGKILL to every process of the container, the
    /// per-connection `p11-kit-remote` processes included). The stale socket refuses connections.
    pub async fn kill(&self) {
        self.container
            .stop_with_timeout(Some(0))
            .await
            .expect("stop the p11-kit server container");
    }

    /// Starts the killed container again and waits until its server listens.
    pub async fn restart(&self) {
        self.container
            .start()
            .await
            .expect("start the p11-kit server container again");
        self.wait_listening().await;
    }

    /// A hung HSM: every process of the container frozen (cgroup freezer), no signal involved.
    pub async fn pause(&self) {
        self.container.pause().await.expect("docker pause");
    }

    pub async fn unpause(&self) {
        self.container.unpause().await.expect("docker unpause");
    }

    /// Runs a command in the container; its stdout.
    pub async fn exec(&self, cmd: &[&str]) -> String {
        let mut r = self
            .container
            .exec(ExecCommand::new(cmd.iter().copied()))
            .await
            .expect("docker exec");
        String::from_utf8_lossy(&r.stdout_to_vec().await.expect("exec output")).into_owned()
    }
}

/// A read-only bind mount of one host file.
pub fn mount_file_ro(host: &Path, container: &str) -> Mount {
    Mount::bind_mount(host.to_str().expect("UTF-8 path"), container)
        .with_access_mode(AccessMode::ReadOnly)
}

/// The standard test [`config`] for a token reached through `p11-kit-client.so`, with `op_timeout`.
pub fn remote_config(
    token: &Token,
    dir: &Path,
    port: u16,
    sets: &[Set<'_>],
    op_timeout: Duration,
) -> String {
    config(token, dir, port, sets)
        .replace(
            &format!("module = \"{}\"", super::SOFTHSM),
            &format!("module = \"{P11_KIT_CLIENT}\""),
        )
        .replace(
            "op_timeout = \"5s\"",
            &format!("op_timeout = \"{}ms\"", op_timeout.as_millis()),
        )
}

/// `token` exported by a `p11-kit server` container, and Signet (on the host) serving `sets`
/// through `p11-kit-client.so` with `op_timeout`.
pub async fn serve_remote(
    token: &Token,
    dir: &Path,
    sets: &[Set<'_>],
    op_timeout: Duration,
) -> (P11Server, Signet) {
    let hsm = P11Server::start(token, "hsm").await;
    let port = free_port();
    let cfg = remote_config(token, dir, port, sets, op_timeout);
    let signet = Signet::start_with_env(
        token,
        dir,
        port,
        &cfg,
        &[("P11_KIT_SERVER_ADDRESS", &hsm.address())],
    )
    .await;
    (hsm, signet)
}
