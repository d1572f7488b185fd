use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;
use wse_core::config::{JwtAlgorithm, ServerConfig};

use super::*;

const SECRET: &str = "config-test-secret-of-32-bytes-or-more";
const SIGNING_SECRET: &str = "signing-secret-for-tests-of-32-bytes!";

fn cli(args: &[&str]) -> Cli {
    let mut argv = vec!["wse"];
    argv.extend_from_slice(args);
    Cli::try_parse_args(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A fresh directory for this test's files.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wse-config-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load_ok(cli: &Cli, env: &BTreeMap<String, String>) -> Loaded {
    load(cli, env).unwrap_or_else(|e| panic!("{e}"))
}

fn invalid_option(err: LoadError) -> String {
    match err {
        LoadError::Invalid { option, .. } => option,
        other => panic!("expected an invalid option, got {other}"),
    }
}

#[test]
fn defaults_bind_loopback_5007_and_generate_a_dev_secret_and_api_key() {
    let loaded = load_ok(&cli(&[]), &env(&[]));
    let c = &loaded.config;
    assert_eq!((c.server.host.as_str(), c.server.port), ("127.0.0.1", 5007));
    assert!(loaded.jwt_secret_generated && loaded.api_key_generated);
    let jwt = c.server.jwt.as_ref().unwrap();
    assert_eq!(jwt.secret.len(), DEV_SECRET_BYTES);
    assert_eq!(jwt.algorithm, JwtAlgorithm::Hs256);
    let key = c.api_key.as_deref().unwrap();
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!c.client_publish && c.console);
    assert_eq!((c.log_level.as_str(), c.drain_timeout_secs), ("info", 10));
    assert_eq!(c.default_acl(), None);
    // Everything else is the engine's default.
    let engine = ServerConfig {
        jwt: c.server.jwt.clone(),
        ..ServerConfig::default()
    };
    assert_eq!(c.server, engine);
    // Two processes never share a generated secret.
    let again = load_ok(&cli(&[]), &env(&[]));
    assert_ne!(again.config.server.jwt, c.server.jwt);
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
    let dir = temp_dir("precedence");
    let file = write(&dir, "wse.toml", "port = 1111\nmax_connections = 7\n");
    let file = file.to_str().unwrap();
    let port = |args: &[&str], vars: &[(&str, &str)]| load_ok(&cli(args), &env(vars)).config;

    assert_eq!(port(&[], &[]).server.port, 5007);
    assert_eq!(port(&["--config", file], &[]).server.port, 1111);
    let c = port(&["--config", file], &[("WSE_PORT", "2222")]);
    assert_eq!((c.server.port, c.server.max_connections), (2222, 7));
    let c = port(
        &["--config", file, "--port", "3333"],
        &[("WSE_PORT", "2222")],
    );
    assert_eq!((c.server.port, c.server.max_connections), (3333, 7));
    // WSE_CONFIG names the file when --config does not.
    assert_eq!(port(&[], &[("WSE_CONFIG", file)]).server.port, 1111);
}

#[test]
fn secrets_follow_the_same_precedence_between_file_env_and_flag() {
    let dir = temp_dir("secret-precedence");
    let from_toml = write(
        &dir,
        "toml.secret",
        "toml-secret-of-at-least-thirty-two-bytes\n",
    );
    let from_flag = write(
        &dir,
        "flag.secret",
        "flag-secret-of-at-least-thirty-two-bytes\n",
    );
    let toml = write(
        &dir,
        "wse.toml",
        &format!("jwt_secret_file = {:?}\n", from_toml.to_str().unwrap()),
    );
    let secret = |args: &[&str], vars: &[(&str, &str)]| {
        let loaded = load_ok(&cli(args), &env(vars));
        assert!(!loaded.jwt_secret_generated);
        String::from_utf8(loaded.config.server.jwt.unwrap().secret).unwrap()
    };
    let toml = toml.to_str().unwrap();
    let flag = from_flag.to_str().unwrap();
    // The file's trailing newline is not part of the secret.
    assert_eq!(
        secret(&["--config", toml], &[]),
        "toml-secret-of-at-least-thirty-two-bytes"
    );
    assert_eq!(
        secret(&["--config", toml], &[("WSE_JWT_SECRET", SECRET)]),
        SECRET
    );
    assert_eq!(
        secret(
            &["--config", toml, "--jwt-secret-file", flag],
            &[("WSE_JWT_SECRET", SECRET)]
        ),
        "flag-secret-of-at-least-thirty-two-bytes"
    );
}

#[test]
fn secrets_are_never_accepted_as_flag_values() {
    for flag in [
        "--jwt-secret",
        "--jwt-previous-secret",
        "--jwt-private-key",
        "--api-key",
        "--signing-secret",
    ] {
        for args in [vec![flag, SECRET], vec!["serve", flag, SECRET]] {
            let err = load(&cli(&args), &env(&[])).unwrap_err();
            assert_eq!(invalid_option(err), flag, "{args:?}");
        }
    }
    let help = Cli::command_with_env().render_long_help().to_string();
    for refused in [
        "--jwt-secret ",
        "--api-key ",
        "--signing-secret ",
        "REFUSED",
    ] {
        assert!(!help.contains(refused), "{refused} in help");
    }
}

#[test]
fn secrets_are_not_written_inline_in_the_toml_file() {
    for key in [
        "jwt_secret",
        "jwt_previous_secret",
        "jwt_private_key",
        "api_key",
        "signing_secret",
    ] {
        let err = options_from_toml(&format!("{key} = \"{SECRET}\"")).unwrap_err();
        assert!(err.contains(&format!("`{key}`")), "{err}");
        assert!(err.contains("_file"), "{err}");
    }
}

#[test]
fn unknown_toml_keys_are_rejected_naming_the_key() {
    let err = options_from_toml("port = 1\nprot = 2\n").unwrap_err();
    assert!(err.contains("`prot`"), "{err}");
    let err = options_from_toml("[server]\nport = 1\n").unwrap_err();
    assert!(err.contains("`server`"), "{err}");
    let err = options_from_toml("port = \"high\"\n").unwrap_err();
    assert!(err.contains("port"), "{err}");

    let dir = temp_dir("unknown-key");
    let path = write(&dir, "wse.toml", "max_conections = 5\n");
    let err = load(&cli(&["--config", path.to_str().unwrap()]), &env(&[])).unwrap_err();
    assert!(
        matches!(&err, LoadError::Toml { reason, .. } if reason.contains("`max_conections`")),
        "{err}"
    );
}

/// Every option with a non-default value, as the environment spells it and as TOML does.
fn every_option(dir: &std::path::Path) -> Vec<(&'static str, String, String)> {
    let secret = write(dir, "jwt.secret", SECRET);
    let previous = write(
        dir,
        "previous.secret",
        "previous-secret-of-32-bytes-or-more!!",
    );
    let api_key = write(dir, "api.key", "an-api-key-for-tests-0123456789");
    let signing = write(dir, "signing.secret", &format!("{SIGNING_SECRET}\n"));
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let s = |v: &str| v.to_owned();
    let q = |v: &str| format!("{v:?}");
    vec![
        ("host", s("0.0.0.0"), q("0.0.0.0")),
        ("port", s("6001"), s("6001")),
        ("max_connections", s("11"), s("11")),
        ("jwt_algorithm", s("HS256"), q("HS256")),
        ("jwt_issuer", s("iss-x"), q("iss-x")),
        ("jwt_audience", s("aud-x"), q("aud-x")),
        ("jwt_cookie_name", s("tok"), q("tok")),
        ("jwt_key_id", s("kid-1"), q("kid-1")),
        ("jwt_secret_file", path(&secret), q(&path(&secret))),
        (
            "jwt_previous_secret_file",
            path(&previous),
            q(&path(&previous)),
        ),
        // A private key needs RS256/ES256; its reading is covered by the RS256 test.
        ("jwt_private_key_file", String::new(), String::new()),
        ("max_inbound_queue_size", s("12"), s("12")),
        ("recovery_enabled", s("true"), s("true")),
        ("recovery_buffer_size", s("13"), s("13")),
        ("recovery_ttl_secs", s("14"), s("14")),
        ("recovery_max_messages", s("15"), s("15")),
        ("recovery_memory_budget", s("16"), s("16")),
        ("presence_enabled", s("true"), s("true")),
        ("presence_max_data_size", s("17"), s("17")),
        ("presence_max_members", s("18"), s("18")),
        ("rate_limit_capacity", s("19.5"), s("19.5")),
        ("rate_limit_refill", s("20.5"), s("20.5")),
        ("max_message_size", s("21"), s("21")),
        ("ping_interval_secs", s("22"), s("22")),
        ("idle_timeout_secs", s("23"), s("23")),
        ("max_outbound_queue_bytes", s("24"), s("24")),
        ("max_subscriptions_per_connection", s("25"), s("25")),
        (
            "allowed_origins",
            s("https://a.example,https://*.b.example"),
            s(r#"["https://a.example", "https://*.b.example"]"#),
        ),
        ("inbound_rate_capacity", s("26"), s("26")),
        ("inbound_rate_refill", s("27"), s("27")),
        ("inbound_rate_grace_ms", s("28"), s("28")),
        ("send_dedup_window", s("29"), s("29")),
        ("key_rotation_interval_secs", s("30"), s("30")),
        (
            "signed_event_types",
            s("subscription_update,error"),
            s(r#"["subscription_update", "error"]"#),
        ),
        ("signing_secret_file", path(&signing), q(&path(&signing))),
        ("api_key_file", path(&api_key), q(&path(&api_key))),
        ("client_publish", s("true"), s("true")),
        (
            "default_allow",
            s("chat:*,news:*"),
            s(r#"["chat:*", "news:*"]"#),
        ),
        ("default_deny", s("chat:admin"), s(r#"["chat:admin"]"#)),
        ("console", s("false"), s("false")),
        ("log_level", s("debug"), q("debug")),
        ("drain_timeout_secs", s("30"), s("30")),
        (
            "cluster_peers",
            s("10.0.0.2:7100,node-c:7100"),
            s(r#"["10.0.0.2:7100", "node-c:7100"]"#),
        ),
        (
            "cluster_seeds",
            s("10.0.0.9:7100"),
            s(r#"["10.0.0.9:7100"]"#),
        ),
        ("cluster_addr", s("10.0.0.1:7100"), q("10.0.0.1:7100")),
        ("cluster_port", s("7100"), s("7100")),
        ("cluster_bind_host", s("127.0.0.1"), q("127.0.0.1")),
        ("cluster_tls_cert", s("/pki/node.pem"), q("/pki/node.pem")),
        ("cluster_tls_key", s("/pki/node.key"), q("/pki/node.key")),
        ("cluster_tls_ca", s("/pki/ca.pem"), q("/pki/ca.pem")),
    ]
}

fn expect_every_option(loaded: &Loaded) {
    let c = &loaded.config;
    let jwt = c.server.jwt.clone().unwrap();
    assert_eq!(jwt.secret, SECRET.as_bytes());
    assert_eq!(
        jwt.previous_secret.as_deref(),
        Some(&b"previous-secret-of-32-bytes-or-more!!"[..])
    );
    assert_eq!(
        (
            jwt.issuer.as_deref(),
            jwt.audience.as_deref(),
            jwt.cookie_name.as_deref(),
            jwt.key_id.as_deref()
        ),
        (Some("iss-x"), Some("aud-x"), Some("tok"), Some("kid-1"))
    );
    // A struct literal without `..`: a new engine option fails to compile here until added.
    let want = ServerConfig {
        host: "0.0.0.0".into(),
        port: 6001,
        max_connections: 11,
        jwt: Some(jwt),
        max_inbound_queue_size: 12,
        recovery_enabled: true,
        recovery_buffer_size: 13,
        recovery_ttl_secs: 14,
        recovery_max_messages: 15,
        recovery_memory_budget: 16,
        presence_enabled: true,
        presence_max_data_size: 17,
        presence_max_members: 18,
        rate_limit_capacity: 19.5,
        rate_limit_refill: 20.5,
        max_message_size: 21,
        ping_interval_secs: 22,
        idle_timeout_secs: 23,
        max_outbound_queue_bytes: 24,
        max_subscriptions_per_connection: 25,
        allowed_origins: vec!["https://a.example".into(), "https://*.b.example".into()],
        inbound_rate_capacity: 26.0,
        inbound_rate_refill: 27.0,
        inbound_rate_grace_ms: 28,
        send_dedup_window: 29,
        key_rotation_interval_secs: 30,
        signed_event_types: vec!["subscription_update".into(), "error".into()],
        signing_secret: Some(SIGNING_SECRET.as_bytes().to_vec()),
    };
    assert_eq!(c.server, want);
    assert_eq!(
        c.api_key.as_deref(),
        Some("an-api-key-for-tests-0123456789")
    );
    assert!(!loaded.jwt_secret_generated && !loaded.api_key_generated);
    assert!(c.client_publish && !c.console);
    assert_eq!(c.default_allow, ["chat:*", "news:*"]);
    assert_eq!(c.default_deny, ["chat:admin"]);
    assert_eq!((c.log_level.as_str(), c.drain_timeout_secs), ("debug", 30));
    let mut cluster =
        crate::cluster::ClusterConfig::new(vec!["10.0.0.2:7100".into(), "node-c:7100".into()]);
    cluster.seeds = vec!["10.0.0.9:7100".into()];
    cluster.cluster_addr = Some("10.0.0.1:7100".into());
    cluster.cluster_port = Some(7100);
    cluster.bind_host = "127.0.0.1".into();
    cluster.tls = Some(crate::cluster::TlsFiles {
        cert: "/pki/node.pem".into(),
        key: "/pki/node.key".into(),
        ca: "/pki/ca.pem".into(),
    });
    assert_eq!(c.cluster, Some(cluster));
}

#[test]
fn no_cluster_unless_peers_seeds_or_a_port_and_cluster_errors_name_the_option() {
    assert_eq!(load_ok(&cli(&[]), &env(&[])).config.cluster, None);
    let port_only = load_ok(&cli(&["--cluster-port", "7100"]), &env(&[]));
    let c = port_only.config.cluster.expect("a listening-only node");
    assert_eq!(
        (c.cluster_port, c.peers.len(), c.bind_host.as_str()),
        (Some(7100), 0, "0.0.0.0")
    );
    let cases: [(&[&str], &str); 4] = [
        (&["--cluster-addr", "10.0.0.1:7100"], "cluster_addr"),
        (&["--cluster-seeds", "10.0.0.9:7100"], "cluster_addr"),
        (&["--cluster-peers", "no-port"], "cluster_peers"),
        (
            &["--cluster-port", "7100", "--cluster-tls-cert", "/c.pem"],
            "cluster_tls_cert",
        ),
    ];
    for (args, option) in cases {
        let err = load(&cli(args), &env(&[])).unwrap_err();
        assert_eq!(invalid_option(err), option, "{args:?}");
    }
    // The TLS variables are the original's names.
    let tls = load_ok(
        &cli(&["--cluster-port", "7100"]),
        &env(&[
            ("WSE_CLUSTER_TLS_CERT", "/c.pem"),
            ("WSE_CLUSTER_TLS_KEY", "/k.pem"),
            ("WSE_CLUSTER_TLS_CA", "/ca.pem"),
        ]),
    );
    assert!(tls.config.cluster.unwrap().tls.is_some());
}

#[test]
fn the_test_table_covers_every_option() {
    let dir = temp_dir("table");
    let table: Vec<&str> = every_option(&dir).iter().map(|(k, _, _)| *k).collect();
    let names: Vec<String> = option_names().into_iter().map(|o| o.key).collect();
    assert_eq!(table, names);
}

#[test]
fn every_option_is_reachable_from_the_environment() {
    let dir = temp_dir("env");
    let vars: BTreeMap<String, String> = every_option(&dir)
        .into_iter()
        .filter(|(_, v, _)| !v.is_empty())
        .map(|(k, v, _)| (format!("WSE_{}", k.to_ascii_uppercase()), v))
        .collect();
    let loaded = load_ok(&cli(&[]), &vars);
    expect_every_option(&loaded);
    assert!(loaded.unknown_env.is_empty(), "{:?}", loaded.unknown_env);
}

#[test]
fn every_option_is_reachable_from_the_toml_file() {
    let dir = temp_dir("toml");
    let text: String = every_option(&dir)
        .into_iter()
        .filter(|(_, _, t)| !t.is_empty())
        .map(|(k, _, t)| format!("{k} = {t}\n"))
        .collect();
    let path = write(&dir, "wse.toml", &text);
    expect_every_option(&load_ok(
        &cli(&["--config", path.to_str().unwrap()]),
        &env(&[]),
    ));
}

#[test]
fn every_option_is_reachable_from_flags_before_or_after_the_subcommand() {
    let dir = temp_dir("flags");
    let flags: Vec<String> = every_option(&dir)
        .into_iter()
        .filter(|(_, v, _)| !v.is_empty())
        .map(|(k, v, _)| format!("--{}={v}", k.replace('_', "-")))
        .collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    expect_every_option(&load_ok(&cli(&flags), &env(&[])));
    let mut after = vec!["serve"];
    after.extend(&flags);
    expect_every_option(&load_ok(&cli(&after), &env(&[])));
}

#[test]
fn help_documents_every_option_with_its_environment_variable() {
    let help = Cli::command_with_env().render_help().to_string();
    for o in option_names() {
        assert!(
            help.contains(&format!("--{}", o.flag)),
            "--{} missing",
            o.flag
        );
        assert!(help.contains(&o.env), "{} missing", o.env);
    }
    assert!(help.contains("--config"));
    assert!(help.contains("WSE_JWT_SECRET"));
    assert!(help.contains("WSE_SIGNING_SECRET"));
}

#[test]
fn boolean_options_take_a_bare_flag_or_an_explicit_value() {
    let c = load_ok(
        &cli(&[
            "--recovery-enabled",
            "--console=false",
            "--client-publish=true",
        ]),
        &env(&[("WSE_PRESENCE_ENABLED", "true")]),
    )
    .config;
    assert!(c.server.recovery_enabled && c.server.presence_enabled && c.client_publish);
    assert!(!c.console);
    let err = load(&cli(&[]), &env(&[("WSE_CONSOLE", "yes please")])).unwrap_err();
    assert_eq!(invalid_option(err), "WSE_CONSOLE");
}

#[test]
fn an_empty_list_in_the_environment_clears_the_files_list() {
    let dir = temp_dir("lists");
    let path = write(&dir, "wse.toml", "default_allow = [\"chat:*\"]\n");
    let args = cli(&["--config", path.to_str().unwrap()]);
    assert_eq!(load_ok(&args, &env(&[])).config.default_allow, ["chat:*"]);
    let c = load_ok(&args, &env(&[("WSE_DEFAULT_ALLOW", "")])).config;
    assert!(c.default_allow.is_empty());
    let c = load_ok(&cli(&[]), &env(&[("WSE_DEFAULT_DENY", "a:*, b:*")])).config;
    assert_eq!(c.default_deny, ["a:*", "b:*"]);
    assert_eq!(
        c.default_acl(),
        Some(TopicAcl::new(vec![], vec!["a:*".into(), "b:*".into()]))
    );
}

#[test]
fn invalid_values_name_the_option_or_the_variable() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 8] = [
        (&[], &[("WSE_PORT", "high")], "WSE_PORT"),
        (&[], &[("WSE_MAX_CONNECTIONS", "-1")], "WSE_MAX_CONNECTIONS"),
        (&["--ping-interval-secs=60"], &[], "ping_interval_secs"),
        (&["--max-connections=0"], &[], "max_connections"),
        (&["--jwt-algorithm=none"], &[], "jwt_algorithm"),
        (&["--allowed-origins=not a url"], &[], "allowed_origins"),
        (&["--log-level=a=b=c"], &[], "log_level"),
        (&["--drain-timeout-secs=100000"], &[], "drain_timeout_secs"),
    ];
    for (args, vars, option) in cases {
        let err = load(&cli(args), &env(vars)).unwrap_err();
        assert_eq!(invalid_option(err), option, "{args:?} {vars:?}");
    }
    let err = load(&cli(&[]), &env(&[("WSE_JWT_SECRET", "short")])).unwrap_err();
    assert!(err.to_string().starts_with("jwt_secret: "), "{err}");
    let err = load(&cli(&[]), &env(&[("WSE_SIGNING_SECRET", "short")])).unwrap_err();
    assert!(err.to_string().starts_with("signing_secret: "), "{err}");
    let err = load(&cli(&[]), &env(&[("WSE_API_KEY", "short")])).unwrap_err();
    assert_eq!(invalid_option(err), "api_key");
    let err = load(
        &cli(&[]),
        &env(&[("WSE_API_KEY", "has a space in it, sadly")]),
    )
    .unwrap_err();
    assert_eq!(invalid_option(err), "api_key");
}

#[test]
fn a_missing_secret_file_is_an_error_naming_the_option_and_path() {
    let err = load(
        &cli(&["--jwt-secret-file", "/nonexistent/wse.secret"]),
        &env(&[]),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("jwt_secret_file: ") && text.contains("/nonexistent/wse.secret"),
        "{text}"
    );
}

#[test]
fn a_secret_and_its_file_variable_together_are_ambiguous() {
    let err = load(
        &cli(&[]),
        &env(&[
            ("WSE_JWT_SECRET", SECRET),
            ("WSE_JWT_SECRET_FILE", "/tmp/x"),
        ]),
    )
    .unwrap_err();
    assert_eq!(invalid_option(err), "WSE_JWT_SECRET");
}

#[test]
fn rs256_without_a_public_key_is_an_error_not_a_generated_secret() {
    let err = load(&cli(&["--jwt-algorithm=RS256"]), &env(&[])).unwrap_err();
    assert_eq!(invalid_option(err), "jwt_secret");
}

#[test]
fn relative_secret_files_in_the_toml_file_are_relative_to_it() {
    let dir = temp_dir("relative");
    write(&dir, "jwt.secret", SECRET);
    let path = write(&dir, "wse.toml", "jwt_secret_file = \"jwt.secret\"\n");
    let loaded = load_ok(&cli(&["--config", path.to_str().unwrap()]), &env(&[]));
    assert_eq!(loaded.config.server.jwt.unwrap().secret, SECRET.as_bytes());
}

#[test]
fn wse_log_is_an_alias_of_the_log_level_and_unknown_variables_are_reported() {
    let loaded = load_ok(&cli(&[]), &env(&[("WSE_LOG", "warn"), ("WSE_PROT", "1")]));
    assert_eq!(loaded.config.log_level, "warn");
    assert_eq!(loaded.unknown_env, ["WSE_PROT"]);
    let loaded = load_ok(
        &cli(&[]),
        &env(&[("WSE_LOG", "warn"), ("WSE_LOG_LEVEL", "debug")]),
    );
    assert_eq!(loaded.config.log_level, "debug");
}

#[test]
fn the_token_subcommand_parses_its_claims_and_serve_is_the_default() {
    assert!(cli(&[]).command.is_none());
    assert!(matches!(cli(&["serve"]).command, Some(Command::Serve)));
    let parsed = cli(&[
        "token",
        "--sub",
        "alice",
        "--ttl-secs",
        "60",
        "--claim",
        r#"wse_topics={"allow":["chat:*"]}"#,
        "--claim",
        "role=admin",
    ]);
    let Some(Command::Token(t)) = parsed.command else {
        panic!("token expected")
    };
    assert_eq!((t.sub.as_str(), t.ttl_secs), ("alice", 60));
    assert_eq!(
        t.claims,
        [
            ("wse_topics".to_owned(), json!({"allow": ["chat:*"]})),
            ("role".to_owned(), json!("admin")),
        ]
    );
    assert!(
        Cli::try_parse_args(["wse", "token"]).is_err(),
        "--sub is required"
    );
    assert!(Cli::try_parse_args(["wse", "token", "--sub", "a", "--ttl-secs", "0"]).is_err());
    assert!(Cli::try_parse_args(["wse", "token", "--sub", "a", "--claim", "noequals"]).is_err());
}

#[test]
fn debug_output_hides_the_api_key_and_the_secrets() {
    let loaded = load_ok(
        &cli(&[]),
        &env(&[
            ("WSE_API_KEY", "api-key-that-must-stay-hidden"),
            ("WSE_JWT_SECRET", SECRET),
            ("WSE_SIGNING_SECRET", SIGNING_SECRET),
        ]),
    );
    let shown = format!("{:?}", loaded.config);
    assert!(!shown.contains("must-stay-hidden"), "{shown}");
    assert!(!shown.contains("config-test-secret"), "{shown}");
    // `ServerConfig`'s own `Debug` prints the signing secret as a byte list.
    let bytes = format!("{:?}", SIGNING_SECRET.as_bytes());
    let bytes = bytes.trim_matches(|c| c == '[' || c == ']');
    assert!(!shown.contains(bytes), "{shown}");
    assert!(shown.contains("signing_secret: Some(\"<set>\")"), "{shown}");
}

#[test]
fn the_signing_secret_comes_from_its_variable_or_a_file_and_signing_is_off_by_default() {
    let c = load_ok(&cli(&[]), &env(&[])).config;
    assert!(c.server.signed_event_types.is_empty() && c.server.signing_secret.is_none());
    let c = load_ok(
        &cli(&[]),
        &env(&[
            ("WSE_SIGNED_EVENT_TYPES", "subscription_update, error"),
            ("WSE_SIGNING_SECRET", SIGNING_SECRET),
        ]),
    )
    .config;
    assert_eq!(
        c.server.signed_event_types,
        ["subscription_update", "error"]
    );
    assert_eq!(
        c.server.signing_secret.as_deref(),
        Some(SIGNING_SECRET.as_bytes())
    );
    let err = load(
        &cli(&[]),
        &env(&[
            ("WSE_SIGNING_SECRET", SIGNING_SECRET),
            ("WSE_SIGNING_SECRET_FILE", "/tmp/x"),
        ]),
    )
    .unwrap_err();
    assert_eq!(invalid_option(err), "WSE_SIGNING_SECRET");
    // A relative file in the TOML file is relative to it.
    let dir = temp_dir("signing");
    write(&dir, "signing.secret", SIGNING_SECRET);
    let path = write(
        &dir,
        "wse.toml",
        "signing_secret_file = \"signing.secret\"\n",
    );
    let c = load_ok(&cli(&["--config", path.to_str().unwrap()]), &env(&[])).config;
    assert_eq!(
        c.server.signing_secret.as_deref(),
        Some(SIGNING_SECRET.as_bytes())
    );
}
