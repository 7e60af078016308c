//! The answers of lists, counts and bulk changes, in Payload's shapes:
//! `Page` (a paginated list), `Count`, and `Bulk` (a bulk change's result).

use serde::Serialize;

use crate::query::ListQuery;

/// The answer of a bulk change (Payload's `BulkOperationResult`). All or
/// nothing: `errors` is always empty when the change is made.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bulk<T> {
    pub docs: Vec<T>,
    pub errors: Vec<serde_json::Value>,
    pub message: String,
}

/// The answer of `GET /api/{collection}/count`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Count {
    pub total_docs: i64,
    /// `true` when more match than `totalDocs` (see `Page`).
    pub total_docs_capped: bool,
}

impl<T> From<Page<T>> for Count {
    fn from(p: Page<T>) -> Self {
        Self {
            total_docs: p.total_docs,
            total_docs_capped: p.total_docs_capped,
        }
    }
}

/// Payload's paginated list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub docs: Vec<T>,
    pub total_docs: i64,
    pub limit: u32,
    pub total_pages: i64,
    pub page: u32,
    pub paging_counter: i64,
    pub has_prev_page: bool,
    pub has_next_page: bool,
    pub prev_page: Option<u32>,
    pub next_page: Option<u32>,
    /// Not Payload's: `true` when there are more matches than `totalDocs`.
    /// Counts stop past the deepest page the caller may ask for (one that
    /// starts 10,000 documents in; 1,000 without credentials), so every
    /// page that may be asked for is counted exactly.
    pub total_docs_capped: bool,
}

impl<T> Page<T> {
    /// `total_docs` is ignored when the query asked for no pagination: the
    /// page is then all that was looked at. `capped`: more matched.
    pub fn new(docs: Vec<T>, total_docs: i64, capped: bool, q: &ListQuery) -> Self {
        let (total_docs, capped) = if q.pagination {
            (total_docs, capped)
        } else {
            (docs.len() as i64, false)
        };
        let limit = q.limit as i64;
        // `limit` 0 is a count (`parse_count`): no pages.
        let total_pages = if limit == 0 {
            0
        } else {
            ((total_docs + limit - 1) / limit).max(1)
        };
        let page = q.page;
        Self {
            docs,
            total_docs,
            limit: q.limit,
            total_pages,
            page,
            paging_counter: (page as i64 - 1) * limit + 1,
            has_prev_page: page > 1,
            has_next_page: (page as i64) < total_pages,
            prev_page: (page > 1).then(|| page - 1),
            next_page: ((page as i64) < total_pages).then(|| page + 1),
            total_docs_capped: capped,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            docs: self.docs.into_iter().map(f).collect(),
            total_docs: self.total_docs,
            limit: self.limit,
            total_pages: self.total_pages,
            page: self.page,
            paging_counter: self.paging_counter,
            has_prev_page: self.has_prev_page,
            has_next_page: self.has_next_page,
            prev_page: self.prev_page,
            next_page: self.next_page,
            total_docs_capped: self.total_docs_capped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use crate::identity::{Principal, Role};
    use crate::query::{NoParams, parse};
    use crate::schema::PRACTITIONERS;

    fn list(s: &str) -> Result<ListQuery, ApiError> {
        let staff = Principal::user("users", "ed", &[Role::Editor]);
        parse::<NoParams>(s, &PRACTITIONERS, &staff).map(|(q, _)| q)
    }

    #[test]
    fn pages_follow_payload() {
        let lq = list("limit=10&page=2").unwrap();
        let p = Page::new(vec![(); 10], 25, false, &lq);
        assert_eq!(
            (p.total_pages, p.paging_counter, p.prev_page, p.next_page),
            (3, 11, Some(1), Some(3))
        );
        let lq = list("").unwrap();
        let p: Page<()> = Page::new(vec![], 0, false, &lq);
        assert_eq!(
            (p.total_pages, p.has_next_page, p.has_prev_page),
            (1, false, false)
        );
        // Without pagination a full page says only what it holds.
        let lq = list("limit=10&pagination=false").unwrap();
        assert!(!lq.pagination);
        let p = Page::new(vec![(); 10], 999, true, &lq);
        assert_eq!(
            (
                p.total_docs,
                p.total_pages,
                p.has_next_page,
                p.next_page,
                p.total_docs_capped
            ),
            (10, 1, false, None, false)
        );
        assert!(list("pagination=no").is_err());
        assert!(list("pagination=false&page=2").is_err());
    }
}
