//! Builds the application: pools, shared state, background upkeep,
//! middleware and the one route table. `Application::build` binds (port 0
//! picks a free port, which the tests use) and `run_until_stopped` serves
//! until SIGTERM/SIGINT, letting in-flight requests finish.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::store::Db;

use crate::apikeys::ApiKeys;
use crate::audit::anchor::Anchor;
use crate::audit::refusals::{self, Refusals};
use crate::audit::sealer::Sealer;
use crate::audit::signing::SigningKeys;
use crate::auth::{AuthState, CookieAuth, JwtVerifier};
use crate::config::Settings;
use crate::crypto::{Keyring, KeyringHandle};
use crate::error::ApiError;
use crate::extract::BodyLimits;
use crate::metrics::Metrics;
use crate::routes;
use crate::service::Services;
use crate::service::export::Exporter;
use crate::telemetry::{PhiRootSpan, request_context};

pub struct Application {
    port: u16,
    server: Server,
    /// The operations listener (`PHI_METRICS_ADDR`), if configured.
    ops: Option<(u16, Server)>,
    pub keyring: Arc<KeyringHandle>,
    /// The service's metrics (the keyring's reloads are counted there).
    pub metrics: Arc<Metrics>,
    /// Refusals counted since the last flush are written when serving
    /// stops, not lost with the process.
    refusals: Arc<Refusals>,
    audit_pool: Db,
    /// The background tasks (sealer, refusal flusher, analytics refresh,
    /// the keyring's comparison while the database is away): stopped when
    /// serving stops.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let keyring = Keyring::load(&settings.keys, settings.production())
            .await
            .context("loading the keyring")?;
        for w in keyring.warnings() {
            tracing::warn!(warning = %w, "keyring");
        }
        Self::build_with_keyring(settings, keyring).await
    }

    /// As `build`, with a keyring already in hand (tests, tools).
    pub async fn build_with_keyring(settings: &Settings, keyring: Keyring) -> anyhow::Result<Self> {
        let keyring = Arc::new(KeyringHandle::awaiting_check(keyring));
        let db = &settings.database;
        // How this gateway's statements go (prepared by name or not, the
        // timeouts): one value, carried by every transaction it begins.
        let mode = crate::store::Mode::of(db);
        // The workers' pools are made in `serve`; this one serves the
        // background work (analytics refresh, export pages).
        let pool = Db::new(crate::db::background_pool(db)?, mode);
        let audit_pool = Db::new(crate::db::audit_pool(db)?, mode);
        let mut tasks = Vec::new();
        // Its keys must be the database's (or it will not start); if the
        // database cannot say yet, nothing is sealed or opened until it can.
        tasks.extend(crate::service::keycheck::guard(&pool, &keyring).await?);
        let metrics = Arc::new(Metrics::default());
        metrics.keyring_active(keyring.current().active_key_id());
        let refusals = Arc::new(Refusals::with_metrics(metrics.clone()));
        tasks.push(refusals::spawn_flusher(
            refusals.clone(),
            audit_pool.clone(),
            settings.audit.refusal_flush,
        ));
        let sealer = sealer(settings)?;
        if sealer.is_some() && settings.audit.anchor.is_none() && settings.production() {
            tracing::warn!(
                "sealing without PHI_AUDIT_ANCHOR: checkpoints stay in the database only, where whoever \
                 can rewrite the chain can drop them too (deploy/README.md, The audit anchor)"
            );
        }
        match &sealer {
            Some(s) => tasks.push(s.clone().spawn(
                settings.audit.seal_interval,
                settings.audit.checkpoint_every,
            )),
            None => tracing::warn!(
                "no AUDIT_SEALER_DATABASE_URL or PHI_AUDIT_SIGNING_KEY: this process does not seal the audit chain; \
                 run `phi-gateway audit seal --follow` elsewhere"
            ),
        }
        if !settings.server.analytics_refresh.is_zero() {
            tasks.push(crate::service::upkeep::spawn_analytics_refresh(
                pool.clone(),
                settings.server.analytics_refresh,
                metrics.clone(),
            ));
        }
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!("binding {}:{}", settings.server.host, settings.server.port)
            })?;
        let port = listener.local_addr()?.port();
        let mut services = Services::new(pool.clone(), audit_pool.clone(), keyring.clone())
            .with_refusals(refusals.clone())
            .with_user_collections(&settings.auth.user_collections);
        metrics.trust_files(
            [&settings.database.ca_file, &settings.keys.kek_auth.ca_file]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
        );
        if !settings.keys.kek_check.is_zero() {
            tasks.push(crate::keyreload::watch_kek(
                keyring.clone(),
                settings.clone(),
                metrics.clone(),
                settings.keys.kek_check,
            ));
        }
        // The replica is asked how far behind it is every second; reads go
        // there only while it is within its bound.
        let replica = match settings.database.read_options()? {
            Some(options) => {
                let state = Arc::new(crate::replica::ReplicaLag::new(
                    settings.database.read_max_lag,
                ));
                tasks.push(crate::replica::watch(
                    options,
                    state.clone(),
                    metrics.clone(),
                    std::time::Duration::from_secs(1),
                ));
                services.replica = state.clone();
                Some(state)
            }
            None => None,
        };
        let final_flush = audit_pool.clone();
        let exporter = sealer.map(|sealer| Exporter {
            reader: pool.pool.clone(),
            audit_pool,
            sealer,
        });
        let pools = web::Data::new(routes::health::WorkerPools::default());
        let ops = match &settings.server.metrics_addr {
            Some(addr) => Some(ops_server(
                addr,
                pool.clone(),
                pools.clone(),
                metrics.clone(),
                replica,
                settings,
            )?),
            None => None,
        };
        let server = serve(
            listener,
            services,
            exporter,
            metrics.clone(),
            pools,
            settings,
        )?;
        Ok(Self {
            port,
            server,
            ops,
            keyring,
            metrics,
            refusals,
            audit_pool: final_flush,
            tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A pool as the service's role (the reserved audit pool), for the
    /// keyring's comparison with the database on reload.
    pub fn service_pool(&self) -> Db {
        self.audit_pool.clone()
    }

    /// The operations listener's port, when there is one.
    pub fn ops_port(&self) -> Option<u16> {
        self.ops.as_ref().map(|(p, _)| *p)
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let ops = self.ops.map(|(_, s)| {
            let handle = s.handle();
            (handle, tokio::spawn(s))
        });
        let served = self.server.await;
        if let Some((handle, task)) = ops {
            handle.stop(true).await;
            let _ = task.await;
        }
        for task in &self.tasks {
            task.abort();
        }
        self.refusals.flush(&self.audit_pool).await;
        served
    }
}

/// The sealer, when this process has its connection and the signing key.
fn sealer(settings: &Settings) -> anyhow::Result<Option<Sealer>> {
    let (Some(url), Some(key)) = (&settings.audit.sealer_url, &settings.audit.signing_key) else {
        return Ok(None);
    };
    let signing = SigningKeys::load_file(key)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .min_connections(0)
        .acquire_timeout(settings.database.acquire_timeout)
        .connect_lazy_with(settings.database.sealer_options(url)?);
    Ok(Some(Sealer {
        pool,
        signing: Arc::new(signing),
        anchor: settings.audit.anchor.as_ref().map(Anchor::new),
    }))
}

/// The HTTP server. Each worker (a thread with a runtime of its own) gets
/// its own share of the service's pool, so a connection's I/O is always
/// driven by the runtime of the requests that use it: with one pool shared
/// by every worker, each reply from PostgreSQL woke another thread first
/// (BENCHMARKS.md: 12% more reads per second at 16 clients).
fn serve(
    listener: TcpListener,
    services: Services,
    exporter: Option<Exporter>,
    metrics: Arc<Metrics>,
    pools: web::Data<routes::health::WorkerPools>,
    settings: &Settings,
) -> anyhow::Result<Server> {
    let db = &settings.database;
    let (workers, per_worker) = worker_shape(settings);
    let options = db.connect_options()?;
    let read_options = db.read_options()?;
    let db = db.clone();
    let services = Arc::new(services);
    let exporter = exporter.map(web::Data::new);
    // Request spans leave the process only when a collector is named.
    let spans = settings
        .server
        .otlp_endpoint
        .as_deref()
        .map(crate::trace::export_to)
        .transpose()?
        .map(web::Data::new);
    let verifier = settings.auth.payload_secret.as_ref().map(|secret| {
        Arc::new(
            JwtVerifier::new(
                secret,
                settings.auth.user_collections.clone(),
                settings.auth.leeway_secs,
            )
            .with_max_age(settings.auth.max_token_age_secs),
        )
    });
    let cookies = CookieAuth {
        origins: settings.auth.csrf_origins.clone(),
    };
    let csrf_origins = settings.auth.csrf_origins.clone();
    // The request pools' connections start with the statement timeout, so
    // that a request may be one statement that sets the rest itself.
    let (options, mode) = crate::store::Mode::of(&settings.database).with_one_statement(options);
    let metrics = web::Data::from(metrics);
    let limits = web::Data::new(BodyLimits {
        max_bytes: settings.server.max_body_bytes,
        timeout: settings.server.body_timeout,
    });
    let max_connections = web::Data::new(routes::health::PoolMax(per_worker * workers as u32));
    let lag = web::Data::new(routes::health::SealLagLimit(settings.audit.max_seal_lag));
    let anonymous = settings.limits.clone();
    let gate = Arc::new(crate::gate::Gate::new(
        &anonymous,
        per_worker,
        workers as u32,
    ));
    let server = HttpServer::new(move || {
        // Runs on the worker's own thread: the pool's connections will be
        // registered with this worker's runtime.
        let pool = crate::db::worker_pool(&db, options.clone(), per_worker);
        pools.add(pool.clone());
        let pool = Db::new(pool, mode);
        let mut svc = (*services).clone();
        svc.pool = pool.clone();
        svc.read_pool = read_options
            .as_ref()
            .map(|ro| Db::new(crate::db::worker_pool(&db, ro.clone(), per_worker), mode));
        let auth = web::Data::new(AuthState {
            verifier: verifier.clone(),
            cookies: cookies.clone(),
            api_keys: ApiKeys::new(pool.clone(), svc.keyring.clone()),
            refusals: svc.refusals.clone(),
            audit: svc.audit_pool.clone(),
        });
        let gate = gate.for_worker(&anonymous, per_worker, workers as u32);
        let csrf_origins = csrf_origins.clone();
        // This worker keeps its connections between its requests.
        let held = web::Data::new(crate::store::hold_connections_on_this_thread());
        let mut app = App::new();
        if let Some(e) = &exporter {
            app = app.app_data(e.clone());
        }
        if let Some(s) = &spans {
            app = app.app_data(s.clone());
        }
        app.wrap(TracingLogger::<PhiRootSpan>::new())
            .wrap(actix_web::middleware::Condition::new(
                !csrf_origins.is_empty(),
                cors(&csrf_origins),
            ))
            .wrap(from_fn(request_context))
            .app_data(web::Data::new(gate))
            .app_data(held)
            .app_data(web::Data::new(pool))
            .app_data(web::Data::new(svc))
            .app_data(auth)
            .app_data(pools.clone())
            .app_data(metrics.clone())
            .app_data(max_connections.clone())
            .app_data(lag.clone())
            .app_data(limits.clone())
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ApiError::bad_request(format!("Invalid query string: {e}")).into()
            }))
            .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::NotFound.into()))
            // The document first: the `/api` scope would take its paths.
            .configure(crate::openapi::configure)
            .configure(routes::configure)
            .default_service(web::to(not_found))
    })
    .workers(workers)
    .shutdown_timeout(settings.server.shutdown_timeout.as_secs())
    .client_request_timeout(settings.server.body_timeout)
    .listen(listener)?;
    Ok(server.run())
}

/// How many HTTP workers, and how many connections each one's pool has.
fn worker_shape(settings: &Settings) -> (usize, u32) {
    let db = &settings.database;
    let workers = settings
        .server
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, db.max_connections.max(1) as usize);
    (workers, (db.max_connections / workers as u32).max(1))
}

/// The operations listener: `/metrics` and the detailed health answers
/// (`routes::health::ops_configure`), on one worker, for operators and
/// Prometheus only (bind it to a private address).
fn ops_server(
    addr: &str,
    pool: Db,
    pools: web::Data<routes::health::WorkerPools>,
    metrics: Arc<Metrics>,
    replica: Option<Arc<crate::replica::ReplicaLag>>,
    settings: &Settings,
) -> anyhow::Result<(u16, Server)> {
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("binding the operations listener PHI_METRICS_ADDR={addr}"))?;
    let port = listener.local_addr()?.port();
    let pool = web::Data::new(pool);
    let metrics = web::Data::from(metrics);
    let (workers, per_worker) = worker_shape(settings);
    let max = web::Data::new(routes::health::PoolMax(per_worker * workers as u32));
    let lag = web::Data::new(routes::health::SealLagLimit(settings.audit.max_seal_lag));
    let replica = web::Data::new(routes::health::Replica(replica));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(replica.clone())
            .app_data(pool.clone())
            .app_data(pools.clone())
            .app_data(metrics.clone())
            .app_data(max.clone())
            .app_data(lag.clone())
            .configure(routes::health::ops_configure)
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok((port, server))
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// CORS for the origins cookie authentication is honoured from (Payload's
/// `csrf` list, `PHI_CSRF_ORIGINS`), with credentials. Without origins
/// there is no CORS at all: browsers keep cross-origin answers from pages.
fn cors(origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::{Method, header};
    let mut c = actix_cors::Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("x-break-glass-reason"),
            header::HeaderName::from_static("x-purpose-of-use"),
        ])
        .expose_headers([header::HeaderName::from_static("x-request-id")])
        .supports_credentials()
        .max_age(600);
    for o in origins {
        c = c.allowed_origin(o);
    }
    c
}
