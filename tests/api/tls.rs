//! TLS to PostgreSQL for real: a cluster of the test's own with TLS on (a
//! certificate signed by a CA made here), the gateway verifying it
//! (verify-full) directly and through PgBouncer, which verifies PostgreSQL's
//! certificate itself and requires TLS of the gateway (deploy/pgbouncer.ini's
//! TLS lines). A CA that did not sign the server's certificate is refused.

use std::path::Path;
use std::process::Command;

use serde_json::json;
use sqlx::Connection;

use crate::cluster::OwnCluster;
use crate::helpers::{Remote, TestApp, http_client, json, start_server, test_settings};

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        crate::helpers::output_text(&out)
    );
}

/// A CA, and a server certificate it signs for 127.0.0.1 (ECDSA P-256).
fn certificates(dir: &Path, ca_name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509"])
        .args(ec)
        .args(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"])
        .args(["-subj", &format!("/CN={ca_name}")]));
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .current_dir(dir)
        .arg("req")
        .args(ec)
        .args(["-keyout", "server.key", "-out", "server.csr"])
        .args(["-subj", "/CN=127.0.0.1"]));
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    ]));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    // The cluster and PgBouncer run as postgres when the tests run as root
    // (deploy/pg.sh); PostgreSQL wants its key owned by the server's user.
    if unsafe { libc::geteuid() } == 0 {
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir));
    }
}

async fn submission_round_trip(app: &Remote<'_>) {
    let who = Some(("tls-patient", &[][..]));
    let res = app
        .caller(who)
        .post(
            "/api/symptom-submissions",
            &json!({"symptoms": [{"name": "Cough", "severity": 2, "onset": "2026-02-01"}],
                    "notes": "over TLS"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = json(res).await["doc"]["id"].as_str().unwrap().to_string();
    let read = json(
        app.caller(who)
            .get(&format!("/api/symptom-submissions/{id}"))
            .await,
    )
    .await;
    assert_eq!(read["notes"], "over TLS");
}

/// Every session of `user` open on the server is encrypted, and there is one.
async fn all_encrypted(admin: &str, user: &str) {
    let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
    let (sessions, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.usename = $1",
    )
    .bind(user)
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert!(sessions > 0, "no session of {user}");
    assert_eq!(sessions, encrypted, "{user}: sessions in the clear");
}

#[tokio::test]
async fn the_gateway_verifies_postgresql_and_pgbouncer_over_tls() {
    let base = std::env::temp_dir().join(format!("phi-tls-{}", uuid::Uuid::new_v4().simple()));
    let tls = base.join("tls");
    certificates(&tls, "phi-test-ca");
    let cluster = OwnCluster::start(&base.join("pg"), true);
    let data = Path::new(&cluster.env("PHI_PG_DIR")).join("data");
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .unwrap();
    use std::io::Write;
    writeln!(
        conf,
        "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'",
        tls.join("server.pem").display(),
        tls.join("server.key").display()
    )
    .unwrap();
    drop(conf);
    cluster.pg("stop");
    cluster.pg("start");
    cluster.migrated("phi").await;
    let ca = tls.join("ca.pem");
    let ca_s = ca.to_str().unwrap();
    let admin = cluster.admin("phi");
    let client = http_client();

    // Directly: verify-full against the CA.
    let direct = start_server(test_settings(
        &cluster.app("phi"),
        &[
            ("DATABASE_TLS_MODE", "verify-full"),
            ("DATABASE_CA_FILE", ca_s),
        ],
    ))
    .await;
    submission_round_trip(&TestApp::at(&direct, &client)).await;
    all_encrypted(&admin, "phi_app").await;
    // The CA's expiry, read at each scrape (the CA here is valid 2 days).
    let text = crate::helpers::scrape(&client, &direct).await;
    let series = format!("phi_tls_ca_not_after_timestamp_seconds{{file=\"{ca_s}\"}} ");
    let not_after: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap();
    let in_two_days = chrono::Utc::now().timestamp() + 2 * 86_400;
    assert!((not_after - in_two_days).abs() < 300, "{not_after}");

    // A CA that did not sign the server's certificate: no connection, a
    // 503, never a fall back to the clear.
    let other = base.join("other-ca");
    certificates(&other, "some-other-ca");
    let refused = start_server(test_settings(
        &cluster.app("phi"),
        &[
            ("DATABASE_TLS_MODE", "verify-full"),
            ("DATABASE_CA_FILE", other.join("ca.pem").to_str().unwrap()),
            ("DATABASE_ACQUIRE_TIMEOUT_SECS", "2"),
        ],
    ))
    .await;
    let res = TestApp::at(&refused, &client)
        .caller(Some(("tls-patient", &[])))
        .get("/api/symptom-submissions")
        .await;
    assert_eq!(res.status(), 503);

    // Through PgBouncer: TLS from the gateway (PgBouncer's certificate,
    // verified by the gateway) and to PostgreSQL (verified by PgBouncer).
    let out = Command::new("bash")
        .arg(crate::cluster::root().join("deploy/pgbouncer.sh"))
        .arg("start")
        .arg(cluster.dir_str())
        .env("PHI_PGBOUNCER_TLS_DIR", &tls)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        crate::helpers::output_text(&out)
    );
    let bouncer_dir = Path::new(&cluster.env("PHI_PG_DIR")).join("pgbouncer");
    let ini = std::fs::read_to_string(bouncer_dir.join("pgbouncer.ini")).unwrap();
    assert!(
        ini.lines().any(|l| l == "server_tls_sslmode = verify-full")
            && ini.lines().any(|l| l == "client_tls_sslmode = require"),
        "{ini}"
    );
    let port = std::fs::read_to_string(bouncer_dir.join("port")).unwrap();
    let via = cluster.app("phi").replace(
        &format!(":{}/", cluster.port()),
        &format!(":{}/", port.trim()),
    );
    // In the clear, PgBouncer refuses the gateway.
    let plain = sqlx::PgConnection::connect(&format!("{via}?sslmode=disable")).await;
    assert!(plain.is_err(), "PgBouncer let a client in without TLS");
    let pooled = start_server(test_settings(
        &via,
        &[
            ("DATABASE_POOLER", "true"),
            ("DATABASE_TLS_MODE", "verify-full"),
            ("DATABASE_CA_FILE", ca_s),
        ],
    ))
    .await;
    submission_round_trip(&TestApp::at(&pooled, &client)).await;
    all_encrypted(&admin, "phi_app").await;
    let _ = Command::new("bash")
        .arg(crate::cluster::root().join("deploy/pgbouncer.sh"))
        .arg("stop")
        .arg(cluster.dir_str())
        .output();
    drop(cluster);
    let _ = std::fs::remove_dir_all(base);
}
