//! The allow-list (`--network allow`): what it lets through, what it
//! refuses and how it says so, that a command has no other way out, and
//! that a relayed key never enters the container. The outside world is two
//! servers on the engine's bridge (`common/outside.rs`), their names led
//! there by `--resolve`; each promise is checked with a control that shows
//! the test would see the hole.

use std::net::TcpListener;

use crate::common::{
    curl_image, docker, finish, gateway, signal, start_ready_as, test_image, Certificates, Output,
    Outside, Workspace,
};

/// `sandbox run --pull never --image IMAGE ARGS` in `ws`.
fn run_in(ws: &Workspace, image: &str, args: &[&str]) -> Output {
    ws.command()
        .args(["run", "--pull", "never", "--image", image])
        .args(args)
        .output()
        .expect("run sandbox")
        .into()
}

/// [`run_in`] the curl image.
fn run(ws: &Workspace, args: &[&str]) -> Output {
    run_in(ws, curl_image(), args)
}

fn resolve(name: &str) -> String {
    format!("{name}:{}", gateway())
}

/// curl's answer to GET `url`, then ` status=CODE`.
fn curl(url: &str) -> String {
    format!(
        "curl -sS --cacert /work/ca.pem -w ' status=%{{http_code}}\\n' {url}; echo \" exit=$?\""
    )
}

#[test]
fn an_allowed_host_answers_and_a_refused_one_is_explained() {
    let ws = Workspace::new();
    let certs = Certificates::new();
    let outside = Outside::start(&certs, 0);
    let port = outside.http;
    let script = format!(
        "{}; {}",
        curl(&format!("http://allowed.test:{port}/a")),
        curl(&format!("http://denied.test:{port}/b"))
    );
    let allowed = format!("allowed.test:{port}");
    let (r1, r2) = (resolve("allowed.test"), resolve("denied.test"));
    let base = ["--resolve", &r1, "--resolve", &r2, "--allow-host", &allowed];
    let out = run(&ws, &[&base[..], &["-v", "sh", "-c", &script]].concat());
    assert_eq!(out.status, 0, "{out:?}");
    // -v: each decision as it is made.
    for decision in ["egress allowed", "egress refused"] {
        assert!(out.stderr.contains(decision), "{decision}: {out:?}");
    }
    assert!(
        out.stdout
            .contains(&format!("\"host\": \"allowed.test:{port}\"")),
        "the allowed host answers: {out:?}"
    );
    let denied = out.stdout.split("status=200").nth(1).unwrap_or_default();
    for said in [
        "Blocked by sandbox's network policy",
        &format!("denied.test:{port}"),
        "--allow-host denied.test",
        "status=403",
    ] {
        assert!(denied.contains(said), "the refusal says {said:?}: {out:?}");
    }
    let summary = format!("the allow-list refused 1 request: denied.test:{port} (1)");
    assert!(out.stderr.contains(&summary), "{out:?}");

    // Control: the same server answers the other name once it is allowed.
    let also = format!("denied.test:{port}");
    let control = run(
        &ws,
        &[&base[..], &["--allow-host", &also, "sh", "-c", &script]].concat(),
    );
    assert_eq!(
        control.stdout.matches("status=200").count(),
        2,
        "{control:?}"
    );
    assert!(!control.stderr.contains("refused"), "{control:?}");
}

#[test]
fn https_is_decided_by_name_and_never_decrypted() {
    let ws = Workspace::new();
    let certs = Certificates::new();
    std::fs::copy(certs.ca(), ws.path().join("ca.pem")).unwrap();
    let outside = Outside::start(&certs, 0);
    let port = outside.https;
    let script = format!(
        "{}; {}",
        curl(&format!("https://allowed.test:{port}/secure")),
        curl(&format!("https://denied.test:{port}/secure"))
    );
    let allowed = format!("allowed.test:{port}");
    let (r1, r2) = (resolve("allowed.test"), resolve("denied.test"));
    let out = run(
        &ws,
        &[
            "--resolve",
            &r1,
            "--resolve",
            &r2,
            "--allow-host",
            &allowed,
            "sh",
            "-c",
            &script,
        ],
    );
    // The server's certificate, which only the server's key can present,
    // checked by curl against the test's authority: the tunnel is end to end.
    assert!(
        out.stdout.contains("\"scheme\": \"https\"") && out.stdout.contains("status=200"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("CONNECT tunnel failed, response 403"),
        "the refused tunnel: {out:?}"
    );
    assert!(
        out.stderr.contains(&format!("denied.test:{port} (1)")),
        "{out:?}"
    );
}

#[test]
fn a_command_has_no_way_out_but_the_proxy() {
    let ws = Workspace::new();
    let certs = Certificates::new();
    let outside = Outside::start(&certs, 0);
    // A service of the host's on every address, as a developer's database is.
    let host_service = TcpListener::bind("0.0.0.0:0").unwrap();
    let host_port = host_service.local_addr().unwrap().port();
    let gw = gateway();
    let script = format!(
        "try() {{ if nc -w 3 \"$1\" \"$2\" -e /bin/true; then echo \"$3 open\"; else echo \"$3 closed\"; fi; }}\n\
         try {gw} {http} outside-tcp\n\
         try {gw} {host_port} host-port\n\
         try \"$(ip route | awk '/default/ {{print $3}}')\" {host_port} own-gateway\n\
         try 169.254.169.254 80 metadata\n\
         if nslookup pypi.org >/dev/null 2>&1; then echo 'dns open'; else echo 'dns closed'; fi\n",
        http = outside.http
    );
    let closed = run_in(
        &ws,
        test_image(),
        &["--allow-host", "allowed.test", "sh", "-c", &script],
    );
    assert_eq!(closed.status, 0, "{closed:?}");
    for way in ["outside-tcp", "host-port", "own-gateway", "metadata", "dns"] {
        assert!(
            closed.stdout.contains(&format!("{way} closed")),
            "{way} is a way out: {closed:?}"
        );
    }

    // Control: on the open bridge the same probes find the ways out.
    let open = run_in(
        &ws,
        test_image(),
        &["--network", "bridge", "sh", "-c", &script],
    );
    for way in ["outside-tcp", "host-port", "dns"] {
        assert!(
            open.stdout.contains(&format!("{way} open")),
            "the probe for {way} sees nothing: {open:?}"
        );
    }
    drop(host_service);
}

#[test]
fn names_that_lead_to_loopback_or_metadata_are_refused() {
    let ws = Workspace::new();
    let certs = Certificates::new();
    let outside = Outside::start(&certs, 0);
    let port = outside.http;
    let local = format!("localhost:{port}");
    let allowed = format!("allowed.test:{port}");
    let r1 = resolve("allowed.test");
    let script = format!(
        "{}; {}; {}",
        // curl itself never sends localhost to a proxy unless told.
        curl(&format!("--noproxy '' http://localhost:{port}/")),
        curl("http://169.254.169.254/latest/meta-data/"),
        curl(&format!("http://allowed.test:{port}/")),
    );
    let out = run(
        &ws,
        &[
            "--allow-host",
            &local,
            "--allow-host",
            "169.254.169.254",
            "--allow-host",
            &allowed,
            "--resolve",
            &r1,
            "sh",
            "-c",
            &script,
        ],
    );
    assert!(
        out.stdout.contains("127.0.0.1") && out.stdout.contains("loopback"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("169.254.169.254") && out.stdout.contains("link-local"),
        "{out:?}"
    );
    assert_eq!(out.stdout.matches("status=403").count(), 2, "{out:?}");
    // Control: the allow-list itself let them through; the address did not.
    assert_eq!(out.stdout.matches("status=200").count(), 1, "{out:?}");
}

#[test]
fn a_project_file_narrows_the_list_and_cannot_widen_it() {
    let ws = Workspace::new();
    let certs = Certificates::new();
    let outside = Outside::start(&certs, 0);
    let port = outside.http;
    let config = ws.home().join("egress.yaml");
    std::fs::write(
        &config,
        format!(
            "container:\n  network: allow\nnetwork:\n  allow: [allowed.test:{port}, denied.test:{port}]\n  \
             resolve: [\"{}\", \"{}\"]\n",
            resolve("allowed.test"),
            resolve("denied.test")
        ),
    )
    .unwrap();
    let script = format!(
        "{}; {}",
        curl(&format!("http://allowed.test:{port}/")),
        curl(&format!("http://denied.test:{port}/"))
    );
    let with_config = |ws: &Workspace| -> Output {
        ws.command()
            .args([
                "--config",
                config.to_str().unwrap(),
                "run",
                "--pull",
                "never",
            ])
            .args(["--image", curl_image(), "sh", "-c", &script])
            .output()
            .expect("run sandbox")
            .into()
    };
    // Control: the user's list lets both through.
    let both = with_config(&ws);
    assert_eq!(both.stdout.matches("status=200").count(), 2, "{both:?}");

    std::fs::write(
        ws.path().join(".sandbox.yml"),
        format!("network:\n  allow: [allowed.test:{port}]\n"),
    )
    .unwrap();
    let narrowed = with_config(&ws);
    assert_eq!(
        narrowed.stdout.matches("status=200").count(),
        1,
        "{narrowed:?}"
    );
    assert_eq!(
        narrowed.stdout.matches("status=403").count(),
        1,
        "{narrowed:?}"
    );

    std::fs::write(
        ws.path().join(".sandbox.yml"),
        "network:\n  allow: [\"evil.test\"]\n",
    )
    .unwrap();
    let widened = with_config(&ws);
    assert_eq!(widened.status, 125, "{widened:?}");
    assert_eq!(widened.stderr.trim().lines().count(), 1, "{widened:?}");
    assert!(
        widened.stderr.contains("evil.test") && widened.stderr.contains("narrow"),
        "{widened:?}"
    );
    assert!(widened.stdout.is_empty(), "{widened:?}");
}

#[test]
fn the_relay_adds_the_key_that_the_container_never_sees() {
    const KEY: &str = "sk-ant-real-key-0123456789";
    let ws = Workspace::new();
    let certs = Certificates::new();
    // The relay speaks TLS to port 443, as to the real API.
    let _api = Outside::start(&certs, 443);
    let api = resolve("api.anthropic.com");
    let agent = |network: &[&str]| -> Output {
        ws.command()
            .env("ANTHROPIC_API_KEY", KEY)
            .env("SSL_CERT_FILE", certs.ca())
            .args([
                "run",
                "--pull",
                "never",
                "--image",
                curl_image(),
                "--resolve",
                &api,
            ])
            .args(network)
            .arg("claude")
            .output()
            .expect("run sandbox")
            .into()
    };
    let out = agent(&[]);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        out.stdout.contains("key: sandbox-relay-holds-the-real-key"),
        "{out:?}"
    );
    assert!(out.stdout.contains("base: http://egress:8081"), "{out:?}");
    assert!(
        !out.stdout.lines().take(3).any(|l| l.contains(KEY)),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("\n0\n"),
        "the key is nowhere in the environment: {out:?}"
    );
    // What the API received: the real key, over TLS, for its own name.
    for said in [
        format!("\"x-api-key\": \"{KEY}\""),
        "\"host\": \"api.anthropic.com\"".to_string(),
        "\"path\": \"/v1/messages\"".to_string(),
        "\"scheme\": \"https\"".to_string(),
    ] {
        assert!(out.stdout.contains(&said), "the API got {said}: {out:?}");
    }

    // Control: on the open bridge the agent holds the key itself, and the
    // test sees it.
    let open = agent(&["--network", "bridge"]);
    assert!(open.stdout.contains(&format!("key: {KEY}")), "{open:?}");
}

#[test]
fn only_the_run_reaches_its_proxy_and_relays() {
    let ws = Workspace::new();
    let certs = Certificates::new();
    let outside = Outside::start(&certs, 0);
    let port = outside.http;
    let allowed = format!("allowed.test:{port}");
    let r1 = resolve("allowed.test");
    let mut run = ws.command();
    run.args(["run", "--pull", "never", "--image", test_image()])
        .args(["--allow-host", &allowed, "--resolve", &r1])
        .args(["sh", "-c", "echo ready; exec sleep 60"]);
    let child = start_ready_as(run);
    let filter = format!("label=dev.sandbox.workspace={}", ws.path().display());
    let listed = docker(&["ps", "-q", "--no-trunc", "--filter", &filter]).stdout;
    let inspect = |id: &str, format: &str| docker(&["inspect", "-f", format, id]).stdout;
    let (egress, command): (Vec<&str>, Vec<&str>) = listed
        .lines()
        .partition(|id| inspect(id, "{{.Config.User}}").trim() == "65534:65534");
    assert_eq!((egress.len(), command.len()), (1, 1), "{listed}");
    let on_bridge = inspect(egress[0], "{{.NetworkSettings.Networks.bridge.IPAddress}}");
    let request = format!(
        "(printf 'GET http://{allowed}/ HTTP/1.0\\r\\n\\r\\n'; sleep 3) | nc -w 5 \"$0\" 3128; echo end"
    );
    // Any other container on the engine's bridge, as a plain run is.
    let neighbour = docker(&[
        "run",
        "--rm",
        "--label",
        "dev.sandbox.test=1",
        test_image(),
        "sh",
        "-c",
        &request,
        on_bridge.trim(),
    ]);
    // Control: the run itself, by the proxy's name on its closed network.
    let own = docker(&["exec", command[0], "sh", "-c", &request, "egress"]);
    signal(&child, "TERM");
    finish(child);
    assert!(
        own.stdout.contains("200 OK"),
        "the run reaches its proxy: {own:?}"
    );
    assert_eq!(
        neighbour.stdout.trim(),
        "end",
        "a neighbour on the bridge: {neighbour:?}"
    );
}
