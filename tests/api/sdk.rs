//! Payload's own REST client against the real gateway: the contract tests
//! of clients/payload (node's test runner driving `@payloadcms/sdk` 3.90.1,
//! installed by deploy/test.sh from the package's lockfile), and the check
//! that the package's OpenAPI snapshot and generated types are current.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{spawn_app, token};

fn package() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/payload")
}

fn node_modules() {
    assert!(
        package().join("node_modules/@payloadcms/sdk").exists(),
        "clients/payload/node_modules is missing: run the tests with deploy/test.sh (it runs npm ci there)"
    );
}

async fn run(cmd: Command) -> (bool, String) {
    let mut cmd = cmd;
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("node runs");
    (out.status.success(), crate::helpers::output_text(&out))
}

#[tokio::test]
async fn the_client_packages_openapi_snapshot_and_types_are_current() {
    node_modules();
    let live = std::env::temp_dir().join(format!(
        "phi-openapi-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(
        &live,
        serde_json::to_string_pretty(&phi_gateway::openapi::document()).unwrap(),
    )
    .unwrap();
    let mut cmd = Command::new("node");
    cmd.current_dir(package())
        .arg("scripts/check-types.mjs")
        .arg(&live);
    let (ok, out) = run(cmd).await;
    std::fs::remove_file(&live).ok();
    assert!(
        ok,
        "{out}\n(regenerate: target/debug/phi-gateway openapi > /tmp/o.json, then in clients/payload \
         copy it to openapi.json normalised and `npm run types`; see clients/payload/README.md)"
    );
}

#[tokio::test]
async fn payloads_sdk_works_against_the_gateway() {
    node_modules();
    let app = spawn_app().await;
    let mut cmd = Command::new("npm");
    cmd.current_dir(package())
        .args(["test", "--silent"])
        .env("GATEWAY_URL", format!("{}/api", app.address))
        .env("PHI_TOKEN_PAT", token("pat", &[]))
        .env("PHI_TOKEN_OTHER", token("other", &[]))
        .env("PHI_TOKEN_DOC", token("doc", &["practitioner"]))
        .env("PHI_TOKEN_EDITOR", token("ed", &["editor"]))
        .env("PHI_TOKEN_ADMIN", token("adm", &["admin"]));
    let (ok, out) = {
        let _building = crate::helpers::client_build_lock().lock().await;
        run(cmd).await
    };
    assert!(ok, "the SDK contract tests failed:\n{out}");
    assert!(out.contains("# fail 0"), "{out}");
}
