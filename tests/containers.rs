//! The container fixtures themselves: one SoftHSM2 token exported by two `p11-kit server`
//! containers and opened natively by the host, each path usable while the others are killed or
//! frozen (what a failover test builds on); and the message a missing engine gives.

mod common;

use std::process::{Command, Output};

use common::containers::{P11_KIT_CLIENT, P11Server, available, engine_problem};
use common::{PIN, SOFTHSM, Token};

/// `pkcs11-tool --list-objects` through `module`, logged in to the token, with `env`.
fn list_objects(token: &Token, module: &str, env: (&str, &str)) -> Output {
    Command::new("pkcs11-tool")
        .args(["--module", module, "--token-label", &token.label])
        .args([
            "--login",
            "--pin",
            PIN,
            "--list-objects",
            "--type",
            "privkey",
        ])
        .env(env.0, env.1)
        .output()
        .expect("run pkcs11-tool")
}

fn sees_key(out: &Output, label: &str) -> bool {
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains(label)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_two_servers_and_the_host_each_fail_on_their_own() {
    if !available("one_token_two_servers_and_the_host_each_fail_on_their_own") {
        return;
    }
    let token = Token::new("shared");
    let a = P11Server::start(&token, "a").await;
    let b = P11Server::start(&token, "b").await;

    // A key made natively on the host is seen through both servers.
    let made = token.pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--id",
        "01",
        "--label",
        "made-on-host",
    ]);
    assert!(made.status.success(), "{made:?}");
    let via = |s: &P11Server| {
        list_objects(
            &token,
            P11_KIT_CLIENT,
            ("P11_KIT_SERVER_ADDRESS", &s.address()),
        )
    };
    let native = || {
        list_objects(
            &token,
            SOFTHSM,
            ("SOFTHSM2_CONF", token.conf().to_str().unwrap()),
        )
    };
    for (name, out) in [("a", via(&a)), ("b", via(&b))] {
        assert!(sees_key(&out, "made-on-host"), "through {name}: {out:?}");
    }

    // The server is the container's first process, over the bind-mounted token directory.
    let exe = a.exec(&["readlink", "/proc/1/exe"]).await;
    assert_eq!(exe.trim(), "/usr/libexec/p11-kit/p11-kit-server");
    let cmdline = a.exec(&["cat", "/proc/1/cmdline"]).await;
    assert!(
        cmdline.contains(&format!("pkcs11:token={}", token.label)),
        "{cmdline:?}"
    );

    // b frozen: a and the host still answer. (Nothing is asked of b while it is frozen: its
    // callers would wait for ever, which is what Signet's deadlines are for.)
    b.pause().await;
    assert!(sees_key(&via(&a), "made-on-host"));
    assert!(sees_key(&native(), "made-on-host"));
    b.unpause().await;
    assert!(sees_key(&via(&b), "made-on-host"));

    // a dead: its socket refuses; b and the host answer; a restarted answers again.
    a.kill().await;
    let dead = via(&a);
    assert!(!dead.status.success(), "a killed server answered: {dead:?}");
    assert!(sees_key(&via(&b), "made-on-host"));
    assert!(sees_key(&native(), "made-on-host"));
    a.restart().await;
    assert!(sees_key(&via(&a), "made-on-host"));
}

#[test]
fn without_an_engine_the_container_tests_say_why() {
    let problem = engine_problem(Some("unix:///nonexistent/docker.sock"))
        .expect("no engine answers on a socket that does not exist");
    assert!(
        problem.contains("no Docker engine answers at unix:///nonexistent/docker.sock"),
        "{problem}"
    );
}
