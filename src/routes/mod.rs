//! The route table: thin translation between HTTP and the services. No SQL,
//! no crypto here. Resources are declared with `web::resource(..).route(..)`
//! so that a wrong method on a known path is a 405, not a 404.

pub mod audit;
pub mod collections;
pub mod health;
pub mod params;
pub mod respond;
pub mod shape;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").route(web::get().to(health::alive)))
        .service(web::resource("/health/database").route(web::get().to(health::database)))
        .service(web::resource("/metrics").route(web::get().to(health::metrics)))
        .service(web::resource("/health/audit").route(web::get().to(health::audit)))
        .configure(collections::configure)
        .service(
            web::scope("/api/audit")
                .service(web::resource("/export").route(web::get().to(audit::export)))
                .service(
                    web::resource("/exports/{request_id}/manifest")
                        .route(web::get().to(audit::manifest)),
                ),
        );
}
