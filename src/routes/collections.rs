//! The three collections' HTTP handlers: translate requests into service
//! calls and results into Payload's response shapes, nothing more.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::query;
use crate::service::{Services, consents, herbs, practitioners, submissions};

fn created(doc: impl Serialize, singular: &str) -> HttpResponse {
    HttpResponse::Created()
        .json(json!({ "doc": doc, "message": format!("{singular} successfully created.") }))
}

fn updated(doc: impl Serialize) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "doc": doc, "message": "Updated successfully." }))
}

fn deleted(doc: impl Serialize) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "doc": doc, "message": "Deleted successfully." }))
}

type Svc = web::Data<Services>;
type Body = web::Json<serde_json::Value>;
type Id = web::Path<Uuid>;
type Reply = Result<HttpResponse, ApiError>;

/// Five handlers per collection, identical in shape.
macro_rules! collection {
    ($module:ident, $service:ident, $singular:literal, $extra:expr) => {
        pub mod $module {
            use super::*;

            pub async fn list(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
                let q = query::parse(req.query_string(), $extra)?;
                Ok(HttpResponse::Ok().json($service::list(&svc, &who, q).await?))
            }
            pub async fn create(svc: Svc, who: Principal, body: Body) -> Reply {
                Ok(created(
                    $service::create(&svc, &who, body.into_inner()).await?,
                    $singular,
                ))
            }
            pub async fn get(svc: Svc, who: Principal, id: Id) -> Reply {
                Ok(HttpResponse::Ok().json($service::get(&svc, &who, *id).await?))
            }
            pub async fn update(svc: Svc, who: Principal, id: Id, body: Body) -> Reply {
                Ok(updated(
                    $service::update(&svc, &who, *id, body.into_inner()).await?,
                ))
            }
            pub async fn delete(svc: Svc, who: Principal, id: Id) -> Reply {
                Ok(deleted($service::delete(&svc, &who, *id).await?))
            }
        }
    };
}

collection!(practitioner, practitioners, "Practitioner", &[]);
collection!(herb, herbs, "Herb", herbs::FILTER_PARAMS);
collection!(submission, submissions, "Symptom submission", &[]);

pub async fn practitioners_near(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
    let q = query::parse(req.query_string(), &["lat", "lon", "radius_km", "modality"])?;
    Ok(HttpResponse::Ok().json(practitioners::near(&svc, &who, q).await?))
}

pub async fn consents_list(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
    let q = query::parse(req.query_string(), &[])?;
    Ok(HttpResponse::Ok().json(consents::list(&svc, &who, q).await?))
}

pub async fn consents_create(svc: Svc, who: Principal, body: Body) -> Reply {
    Ok(created(
        consents::create(&svc, &who, body.into_inner()).await?,
        "Consent",
    ))
}

pub async fn consents_revoke(svc: Svc, who: Principal, id: Id) -> Reply {
    Ok(deleted(consents::revoke(&svc, &who, *id).await?))
}

macro_rules! register {
    ($cfg:expr, $path:literal, $module:ident) => {
        $cfg.service(
            web::resource($path)
                .route(web::get().to($module::list))
                .route(web::post().to($module::create)),
        )
        .service(
            web::resource(concat!($path, "/{id}"))
                .route(web::get().to($module::get))
                .route(web::patch().to($module::update))
                .route(web::delete().to($module::delete)),
        );
    };
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/practitioners/near").route(web::get().to(practitioners_near)));
    register!(cfg, "/api/practitioners", practitioner);
    register!(cfg, "/api/herbs", herb);
    register!(cfg, "/api/symptom-submissions", submission);
    cfg.service(
        web::resource("/api/consents")
            .route(web::get().to(consents_list))
            .route(web::post().to(consents_create)),
    )
    .service(web::resource("/api/consents/{id}").route(web::delete().to(consents_revoke)));
}
