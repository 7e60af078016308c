//! Builds the application: pool, shared state, middleware and the one route
//! table. `Application::build` binds (port 0 picks a free port, which the
//! tests use) and `run_until_stopped` serves until SIGTERM/SIGINT, letting
//! in-flight requests finish.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpRequest, HttpServer, web};
use anyhow::Context;
use sqlx::PgPool;
use tracing_actix_web::TracingLogger;

use crate::auth::JwtVerifier;
use crate::config::Settings;
use crate::crypto::Keyring;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes;
use crate::service::Services;
use crate::telemetry::{BodyLimit, PhiRootSpan, request_context};

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let production = settings.environment == crate::config::Environment::Production;
        let keyring = Keyring::load(&settings.keys, production).context("loading the keyring")?;
        Self::build_with_keyring(settings, Arc::new(keyring)).await
    }

    /// As `build`, with a keyring already in hand (tests, tools).
    pub async fn build_with_keyring(
        settings: &Settings,
        keyring: Arc<Keyring>,
    ) -> anyhow::Result<Self> {
        let pool = crate::db::pool(&settings.database)?;
        crate::audit::chain::spawn_sealer(
            pool.clone(),
            keyring.clone(),
            std::time::Duration::from_secs(1),
        );
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!("binding {}:{}", settings.server.host, settings.server.port)
            })?;
        let port = listener.local_addr()?.port();
        let server = serve(listener, pool, keyring, settings)?;
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn serve(
    listener: TcpListener,
    pool: PgPool,
    keyring: Arc<Keyring>,
    settings: &Settings,
) -> anyhow::Result<Server> {
    let services = web::Data::new(Services::new(pool.clone(), keyring));
    let verifier = settings.auth.payload_secret.as_ref().map(|secret| {
        web::Data::new(JwtVerifier::new(
            secret,
            settings.auth.user_collections.clone(),
            settings.auth.leeway_secs,
        ))
    });
    let pool = web::Data::new(pool);
    let metrics = web::Data::new(Metrics::default());
    let limit = settings.server.max_body_bytes;
    let max_connections =
        web::Data::new(routes::health::PoolMax(settings.database.max_connections));
    let mut server = HttpServer::new(move || {
        let mut app = App::new();
        if let Some(v) = &verifier {
            app = app.app_data(v.clone());
        }
        app.wrap(TracingLogger::<PhiRootSpan>::new())
            .wrap(from_fn(request_context))
            .app_data(pool.clone())
            .app_data(services.clone())
            .app_data(metrics.clone())
            .app_data(max_connections.clone())
            .app_data(web::Data::new(BodyLimit(limit)))
            .app_data(json_config(limit))
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ApiError::bad_request(format!("Invalid query string: {e}")).into()
            }))
            .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::NotFound.into()))
            .configure(routes::configure)
            .default_service(web::to(not_found))
    })
    .shutdown_timeout(settings.server.shutdown_timeout.as_secs())
    .listen(listener)?;
    if let Some(workers) = settings.server.workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}

/// JSON bodies: size limit, content type and syntax errors in Payload's shape.
fn json_config(limit: usize) -> web::JsonConfig {
    use actix_web::error::JsonPayloadError as E;
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req: &HttpRequest| {
            let api = match &err {
                E::ContentType => {
                    ApiError::UnsupportedMediaType("Content-Type must be application/json.".into())
                }
                E::Overflow { .. } | E::OverflowKnownLength { .. } => ApiError::PayloadTooLarge,
                E::Deserialize(de) if de.is_data() => {
                    // serde's data errors name the field ("unknown field `x`")
                    // but never echo the value.
                    ApiError::invalid(field_of(&de.to_string()), de.to_string())
                }
                E::Deserialize(_) => ApiError::bad_request("The request body is not valid JSON."),
                _ => ApiError::bad_request("The request body could not be read."),
            };
            api.into()
        })
}

/// The field a serde data error speaks of, when it names one.
fn field_of(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .filter(|s| !s.is_empty())
        .unwrap_or("body")
        .to_string()
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
