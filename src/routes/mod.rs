//! The route table: thin translation between HTTP and the services. No SQL,
//! no crypto here. Resources are declared with `web::resource(..).route(..)`
//! so that a wrong method on a known path is a 405, not a 404.

pub mod audit;
pub mod collections;
pub mod health;
pub mod respond;
pub mod sessions;
pub mod shape;

use actix_web::middleware::from_fn;
use actix_web::web;

/// Every route of the API port but the OpenAPI document and its UI (which
/// `startup` registers first, so that the `/api` scope does not take
/// them). The API's own routes are one scope behind `gate`
/// (identification, the anonymous limits, refusals on the record), which
/// runs after routing.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").route(web::get().to(health::alive)))
        .service(web::resource("/health/database").route(web::get().to(health::database)))
        .service(web::resource("/health/audit").route(web::get().to(health::audit)))
        .service(
            web::scope("/api")
                .wrap(from_fn(crate::gate::gate))
                .configure(collections::configure)
                .service(web::resource("/auth/logout").route(web::post().to(sessions::logout)))
                .service(
                    web::scope("/audit")
                        .service(web::resource("/export").route(web::get().to(audit::export)))
                        .service(
                            web::resource("/disclosures").route(web::get().to(audit::disclosures)),
                        )
                        .service(
                            web::resource("/my-access-report")
                                .route(web::get().to(audit::my_access_report)),
                        )
                        .service(
                            web::resource("/exports/{request_id}/manifest")
                                .route(web::get().to(audit::manifest)),
                        ),
                ),
        );
}
