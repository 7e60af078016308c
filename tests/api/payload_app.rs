//! A real Payload app in the loop (issue 24): examples/payload-app, the real
//! `payload` and `@payloadcms/db-postgres` on a database of its own in the
//! test cluster, with `@phi-gateway/payload` installed from the tarball
//! `npm pack` makes. Users log in through Payload's own REST API (Payload's
//! `handleEndpoints` on node:http) and call this gateway with the tokens
//! Payload issued: none is signed by the test. Then Payload's admin panel
//! (Next.js, `next build` and `next start`) is logged into through its own form in Chromium, and
//! the plugin's views are read there. Node's test runner drives it
//! (examples/payload-app/test/app.test.ts).

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{PAYLOAD_SECRET, output_text, spawn_app_with};
use crate::testdb::TestDb;

/// The app's origin as Payload knows it (its `serverURL` and `csrf`), the
/// one the gateway honours Payload's cookie from, and where the test serves
/// Payload's admin panel (`next start`): a free port.
fn app_origin() -> String {
    format!("http://127.0.0.1:{}", crate::helpers::free_port())
}

/// The screenshots the example app's tests keep: the plugin's pages, and its
/// views in Payload's admin panel.
const SHOTS: [&str; 7] = [
    "who-has-seen-my-record.png",
    "shared-with-me.png",
    "consents-patient.png",
    "consents-practitioner.png",
    "admin-shared-with-me.png",
    "admin-consents-practitioner.png",
    "admin-my-access-report.png",
];

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/payload-app")
}

async fn run(mut cmd: Command) -> (bool, String) {
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("npm runs");
    (out.status.success(), output_text(&out))
}

#[tokio::test]
async fn a_real_payload_app_logs_users_in_and_the_gateway_takes_its_tokens() {
    assert!(
        example().join("node_modules/payload").exists(),
        "examples/payload-app/node_modules is missing: run the tests with deploy/test.sh (it runs npm ci there)"
    );
    // The package as it would be published, packed and installed.
    let mut setup = Command::new("npm");
    setup
        .current_dir(example())
        .args(["run", "--silent", "setup"]);
    let (ok, out) = {
        let _building = crate::helpers::client_build_lock().lock().await;
        run(setup).await
    };
    assert!(
        ok,
        "packing and installing @phi-gateway/payload failed:\n{out}"
    );
    assert!(out.contains("installed phi-gateway-payload-"), "{out}");

    let origin = app_origin();
    let app = spawn_app_with(&[
        ("PHI_CSRF_ORIGINS", origin.as_str()),
        ("PHI_TOKEN_LEEWAY_SECS", "0"),
    ])
    .await;
    // Payload's own database: empty, its adapter makes its tables.
    let payload_db = TestDb::empty().await;
    // The pages' screenshots, kept where a human can look at them.
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    for name in SHOTS {
        std::fs::remove_file(shots.join(name)).ok();
    }
    let mut test = Command::new("npm");
    test.current_dir(example())
        .args(["test", "--silent"])
        .env("DATABASE_URI", payload_db.admin_url())
        .env("PAYLOAD_SECRET", PAYLOAD_SECRET)
        .env("PHI_GATEWAY_URL", format!("{}/api", app.address))
        .env("PAYLOAD_PUBLIC_SERVER_URL", &origin)
        .env("NEXT_TELEMETRY_DISABLED", "1")
        // Short, so that the test sees a Payload token expire.
        .env("PAYLOAD_TOKEN_EXPIRATION", "25")
        .env("NODE_ENV", "test")
        .env("SCREENSHOT_DIR", &shots);
    let (ok, out) = run(test).await;
    assert!(ok, "the Payload app's tests failed:\n{out}");
    assert!(
        out.contains("# pass 3") && out.contains("# fail 0"),
        "{out}"
    );
    for name in SHOTS {
        let png = std::fs::read(shots.join(name)).unwrap_or_default();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name}: a screenshot of the page ({} bytes)",
            png.len()
        );
    }
}
