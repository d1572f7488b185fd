//! The real `wse` binary: help, token minting, serving, signing its replies, the SIGTERM and
//! SIGINT drains, and the README's "Run" flow with the published Python client.

mod common;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wse_core::WallClock;
use wse_core::crypto::{SigningKey, verify};
use wse_runtime::standalone::config::option_names;

use support::Ws;

const SECRET: &str = "wse-bin-test-secret-of-32-bytes-or-more";
const API_KEY: &str = "wse-bin-test-api-key-0123456789";
const SIGNING_SECRET: &str = "wse-bin-test-signing-secret-of-32-bytes";
const WAIT: Duration = Duration::from_secs(10);

/// `wse` with no `WSE_*` variable inherited from the test's environment.
fn wse() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wse"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WSE_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn stderr_file(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wse-bin-{}-{test}.log", std::process::id()))
}

/// Sends `signal` (`TERM`, `INT`) to the child with `kill(1)`.
fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

/// A child process that is killed when dropped, so a failing test leaves nothing running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the child to exit, at most `WAIT`.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wse did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn help_lists_every_option_and_exits_zero() {
    let out = wse().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for o in option_names() {
        assert!(help.contains(&format!("--{}", o.flag)), "--{}", o.flag);
        assert!(help.contains(&o.env), "{}", o.env);
    }
    for word in [
        "--config",
        "serve",
        "token",
        "WSE_JWT_SECRET",
        "WSE_API_KEY",
    ] {
        assert!(help.contains(word), "{word}");
    }
}

#[test]
fn token_without_a_configured_secret_fails_with_a_clear_error() {
    let out = wse().args(["token", "--sub", "alice"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("WSE_JWT_SECRET"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_configuration_error_names_the_option_and_exits_2() {
    let out = wse().env("WSE_PORT", "high").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("WSE_PORT"), "{err}");
    let out = wse().args(["--jwt-secret", SECRET]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("WSE_JWT_SECRET"), "{err}");
}

#[tokio::test]
async fn sigterm_drains_clients_with_4300_and_exits_zero() {
    signal_drains_clients_with_4300_and_exits_zero("TERM").await;
}

#[tokio::test]
async fn sigint_drains_clients_with_4300_and_exits_zero() {
    signal_drains_clients_with_4300_and_exits_zero("INT").await;
}

/// Starts `wse` with configured secrets, connects a client with a token from `wse token`, sends
/// `signal` and expects the client closed with 4300, then a clean exit that printed no secret.
async fn signal_drains_clients_with_4300_and_exits_zero(signal: &str) {
    let port = free_port();
    let log = stderr_file(&format!("sig{signal}"));
    let mut child = KillOnDrop(
        configured_wse(port)
            .env("WSE_DRAIN_TIMEOUT_SECS", "5")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut ws = connect_when_up(port, &minted_token("alice"), &log).await;

    send_signal(&child.0, signal);
    let code = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, Some(4300));
    drop(ws);
    let exit = wait_exit(&mut child.0);
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(exit.success(), "{exit:?}\n{stderr}");
    // Configured secrets are not announced as generated, nor printed.
    assert!(!stderr.contains("development secret"), "{stderr}");
    assert!(
        !stderr.contains(API_KEY) && !stderr.contains(SECRET),
        "{stderr}"
    );
}

#[tokio::test]
async fn configured_signing_signs_the_binarys_own_replies() {
    let port = free_port();
    let log = stderr_file("signing");
    let mut child = KillOnDrop(
        configured_wse(port)
            .env("WSE_SIGNED_EVENT_TYPES", "subscription_update")
            .env("WSE_SIGNING_SECRET", SIGNING_SECRET)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut ws = connect_when_up(port, &minted_token("alice"), &log).await;
    let request =
        r#"{"c":"WSE","t":"subscription_update","p":{"action":"subscribe","topics":["news"]}}"#;
    ws.send(Message::text(request)).await.unwrap();
    let ack = loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        // JSON in a text or a binary frame, as the server chose.
        let v: serde_json::Value = match msg {
            Message::Text(text) => serde_json::from_str(&text).unwrap(),
            Message::Binary(bytes) => serde_json::from_slice(&bytes).unwrap(),
            _ => continue,
        };
        if v["t"] == "subscription_update" {
            break v;
        }
    };
    assert_eq!(ack["p"]["success_topics"], serde_json::json!(["news"]));
    let key = SigningKey::from_shared_secret(SIGNING_SECRET.as_bytes()).unwrap();
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let now = WallClock::from_unix_micros(u64::try_from(micros).unwrap());
    verify(&key, ack.as_object().unwrap(), now, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}: {ack}"));
    drop(ws);
    send_signal(&child.0, "TERM");
    assert!(wait_exit(&mut child.0).success());
}

/// `wse` on `port` with the test's JWT secret and API key, logging at `info`.
fn configured_wse(port: u16) -> Command {
    let mut cmd = wse();
    cmd.env("WSE_PORT", port.to_string())
        .env("WSE_JWT_SECRET", SECRET)
        .env("WSE_API_KEY", API_KEY)
        .env("WSE_LOG", "info")
        .stdout(Stdio::null());
    cmd
}

/// A token for `sub` from `wse token` with the test's JWT secret.
fn minted_token(sub: &str) -> String {
    let out = wse()
        .env("WSE_JWT_SECRET", SECRET)
        .args(["token", "--sub", sub, "--ttl-secs", "120"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A client of the `wse` on `port` (which binds shortly after starting), past `server_ready`;
/// panics with the server's log after `WAIT`.
async fn connect_when_up(port: u16, token: &str, log: &Path) -> Ws {
    let deadline = Instant::now() + WAIT;
    let mut ws = loop {
        let mut req = format!("ws://127.0.0.1:{port}/wse")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Cookie", format!("access_token={token}").parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => break ws,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!(
                "cannot connect: {e}\n{}",
                std::fs::read_to_string(log).unwrap()
            ),
        }
    };
    let ready = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Text(ready) = ready else {
        panic!("expected server_ready, got {ready:?}")
    };
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["t"], "server_ready");
    ws
}

#[test]
fn without_secrets_the_server_announces_a_dev_token_and_an_api_key() {
    let port = free_port();
    let log = stderr_file("generated");
    let mut child = wse()
        .env("WSE_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let stderr = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("listening") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    send_signal(&child, "TERM");
    let exit = wait_exit(&mut child);
    assert!(stderr.contains("development secret"), "{stderr}");
    assert!(
        stderr.contains("development token for \"dev-user\""),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP API key"), "{stderr}");
    assert!(exit.success(), "{exit:?}");
}

/// The README's "Run" section, as a user follows it: `wse` without configuration, the printed
/// token and API key pasted into the environment, the Python snippet (the published
/// `wse-client`) in the background, and the `curl` publish once it printed `subscribed`. The
/// snippet and the publish request are taken from README.md itself; only the port is changed
/// (to a free one), so the test cannot collide with anything on 5007.
#[test]
fn the_readme_run_flow_shows_the_published_headline() {
    let readme = Readme::load();
    let py = common::python();
    let port = free_port();
    let log = stderr_file("readme");
    let mut wse = KillOnDrop(
        wse()
            .env("WSE_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let announced = wait_for_log(&log, "listening");
    let token = printed_value(&announced, "development token for \"dev-user\"");
    let api_key = printed_value(&announced, "HTTP API key");

    let snippet = readme
        .snippet
        .replace(README_ADDR, &format!("127.0.0.1:{port}"));
    let mut client = Command::new(py);
    client
        .arg("-")
        .env("TOKEN", &token)
        .env("WSE_API_KEY", &api_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut client = KillOnDrop(client.spawn().unwrap());
    client
        .0
        .stdin
        .take()
        .unwrap()
        .write_all(snippet.as_bytes())
        .unwrap();
    let lines = line_channel(client.0.stdout.take().unwrap());
    let stderr = client.0.stderr.take().unwrap();
    let client_stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });

    let printed = wait_for_line(&lines, |l| l == "subscribed", WAIT);
    assert!(
        printed.is_some(),
        "the snippet never printed `subscribed`\n{}",
        stop_client(client, client_stderr)
    );
    // `subscribe()` returns once the request is sent, not acknowledged. A person reads
    // `subscribed` and types the curl command seconds later; the test waits instead until the
    // server counts the subscriber (milliseconds), which is what those seconds guarantee.
    let deadline = Instant::now() + WAIT;
    while subscribers(port, &api_key, "news") != 1 {
        assert!(Instant::now() < deadline, "the subscription never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }

    let (status, reply) = http(
        port,
        "POST",
        &readme.publish_path,
        &api_key,
        &readme.publish_body,
    );
    assert_eq!((status, reply.as_str()), (200, r#"{"ok":true}"#));
    let headline = wait_for_line(
        &lines,
        |l| l.contains("headline") && l.contains("hello"),
        Duration::from_secs(15),
    );
    let client_log = stop_client(client, client_stderr);
    assert!(
        headline.is_some(),
        "the snippet did not print the headline\n{client_log}"
    );

    send_signal(&wse.0, "TERM");
    let exit = wait_exit(&mut wse.0);
    assert!(exit.success(), "{exit:?}");
}

/// The address the README's commands use (the default).
const README_ADDR: &str = "127.0.0.1:5007";

/// What the test takes from the README's "Run" section.
struct Readme {
    /// The Python heredoc's body.
    snippet: String,
    /// The `curl -d` body.
    publish_body: String,
    /// The path of the `curl` URL.
    publish_path: String,
}

impl Readme {
    fn load() -> Readme {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let text = std::fs::read_to_string(path).unwrap();
        let run = text
            .split_once("## Run\n")
            .and_then(|(_, rest)| rest.split_once("\n## "))
            .expect("README has a Run section")
            .0;
        let snippet = run
            .split_once("python3 - <<'PY' &")
            .and_then(|(_, rest)| rest.split_once('\n'))
            .and_then(|(_, rest)| rest.split_once("\nPY\n"))
            .expect("the Run section has the Python heredoc")
            .0;
        assert!(snippet.contains(README_ADDR), "{snippet}");
        let curl = &run[run
            .find("curl -s")
            .expect("the Run section has a curl command")..];
        assert!(
            curl.contains("Authorization: apikey $WSE_API_KEY"),
            "{curl}"
        );
        let publish_body = curl
            .split_once("-d '")
            .and_then(|(_, rest)| rest.split_once('\''))
            .expect("curl -d '<json>'")
            .0;
        let url = format!("http://{README_ADDR}");
        let publish_path = curl
            .split_once(url.as_str())
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .expect("the curl URL");
        Readme {
            snippet: format!("{snippet}\n"),
            publish_body: publish_body.to_owned(),
            publish_path: publish_path.to_owned(),
        }
    }
}

/// The log's text once it contains `marker`; panics with the log after `WAIT`.
fn wait_for_log(log: &Path, marker: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap();
        if text.contains(marker) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {marker:?} in time:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value `wse` printed after `label` (`wse: <label> (…): <value>`).
fn printed_value(log: &str, label: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("{label:?} not printed:\n{log}"));
    let (_, value) = line.rsplit_once(": ").expect("label: value");
    value.trim().to_owned()
}

/// The lines of `out`, read on a thread.
fn line_channel(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line matching `wanted` within `timeout`; `None` on a timeout or end of output.
fn wait_for_line(
    lines: &mpsc::Receiver<String>,
    wanted: impl Fn(&str) -> bool,
    timeout: Duration,
) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let line = lines.recv_timeout(left).ok()?;
        if wanted(&line) {
            return Some(line);
        }
    }
}

/// Kills the client and returns what it wrote on stderr (for failure messages).
fn stop_client(mut client: KillOnDrop, stderr: std::thread::JoinHandle<String>) -> String {
    let _ = client.0.kill();
    let _ = client.0.wait();
    stderr.join().unwrap_or_default()
}

/// Subscribers of `topic` according to `GET /api/info`.
fn subscribers(port: u16, api_key: &str, topic: &str) -> u64 {
    let (status, body) = http(port, "GET", "/api/info", api_key, "");
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    info["topics"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["topic"] == topic)
        .and_then(|t| t["subscribers"].as_u64())
        .unwrap_or(0)
}

/// One HTTP/1.1 request with the API key (what `curl` sends); the status and the body.
fn http(port: u16, method: &str, path: &str, api_key: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: apikey {api_key}\r\n\
         Connection: close\r\n"
    );
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    stream
        .write_all(format!("{head}\r\n{body}").as_bytes())
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("a complete reply");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, body.to_owned())
}

/// Two `wse` processes with only one knowing the other (CONTRACT D14) form a cluster; a
/// publish through node 1's HTTP API reaches a client subscribed on node 2, with the stamp node
/// 1 gave it.
#[tokio::test]
async fn two_wse_nodes_form_a_cluster_and_an_http_publish_reaches_the_other_node() {
    // Four distinct ports: held open together while they are chosen.
    let held: Vec<std::net::TcpListener> = (0..4)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    drop(held);
    let (p1, p2, c1, c2) = (ports[0], ports[1], ports[2], ports[3]);
    let (log1, log2) = (stderr_file("cluster-1"), stderr_file("cluster-2"));
    let spawn = |port: u16, cport: u16, peers: &str, log: &Path| {
        let mut cmd = configured_wse(port);
        cmd.env("WSE_RECOVERY_ENABLED", "true")
            .env("WSE_CLUSTER_PORT", cport.to_string())
            .env("WSE_CLUSTER_BIND_HOST", "127.0.0.1")
            .env("WSE_CLUSTER_ADDR", format!("127.0.0.1:{cport}"))
            .env("WSE_CLUSTER_PEERS", peers)
            .stderr(std::fs::File::create(log).unwrap());
        KillOnDrop(cmd.spawn().unwrap())
    };
    let mut n1 = spawn(p1, c1, &format!("127.0.0.1:{c2}"), &log1);
    let mut n2 = spawn(p2, c2, "", &log2);
    // Both processes serve before anything is asked of them (a cold start can be slow).
    drop(connect_when_up(p1, &minted_token("alice"), &log1).await);
    let mut ws = connect_when_up(p2, &minted_token("bob"), &log2).await;
    let request =
        r#"{"c":"WSE","t":"subscription_update","p":{"action":"subscribe","topics":["news"]}}"#;
    ws.send(Message::text(request)).await.unwrap();
    // Until the link is up and node 2's interest reached node 1, a publish is not routed; keep
    // publishing (bounded) until the client sees one.
    let deadline = Instant::now() + WAIT;
    let got = loop {
        assert!(
            Instant::now() < deadline,
            "no routed message\n{}\n{}",
            std::fs::read_to_string(&log1).unwrap(),
            std::fs::read_to_string(&log2).unwrap()
        );
        let (status, body) = http(
            p1,
            "POST",
            "/api/publish",
            API_KEY,
            r#"{"topic":"news","data":{"t":"headline","p":{"h":"across"}}}"#,
        );
        assert_eq!(status, 200, "{body}");
        let next = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
        if let Ok(Some(Ok(Message::Text(t)))) = next {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["t"] == "headline" {
                break v;
            }
        }
    };
    assert_eq!(got["p"]["h"], "across");
    assert_eq!(
        got["tp"], "news",
        "the origin's recovery stamp travels: {got}"
    );
    let (_, info) = http(p1, "GET", "/api/info", API_KEY, "");
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        info["cluster"]["peers"][0]["address"],
        format!("127.0.0.1:{c2}")
    );
    drop(ws);
    for n in [&mut n1, &mut n2] {
        send_signal(&n.0, "TERM");
        assert!(wait_exit(&mut n.0).success());
    }
}
