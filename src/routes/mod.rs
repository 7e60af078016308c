//! The route table: thin translation between HTTP and the services. No SQL,
//! no crypto here. Resources are declared with `web::resource(..).route(..)`
//! so that a wrong method on a known path is a 405, not a 404.

pub mod audit;
pub mod collections;
pub mod health;

use actix_web::{HttpResponse, web};
use utoipa::OpenApi;

/// The OpenAPI 3.1 document, generated from the code.
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(crate::openapi::ApiDoc::openapi())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").route(web::get().to(health::alive)))
        .service(web::resource("/health/database").route(web::get().to(health::database)))
        .service(web::resource("/metrics").route(web::get().to(health::metrics)))
        .service(web::resource("/api/audit/export").route(web::get().to(audit::export)))
        .service(web::resource("/api/openapi.json").route(web::get().to(openapi_json)))
        .service(
            utoipa_swagger_ui::SwaggerUi::new("/api/docs/{_:.*}")
                .url("/api/openapi-ui.json", crate::openapi::ApiDoc::openapi()),
        )
        .configure(collections::configure);
}
